//! `cargo xtask hil --board NAME --scenario NAME`: builds the image and the
//! scenario's guest bundle, installs what the board needs on the host
//! (U-Boot for `qemu-uboot`), and runs the scenario on the board through
//! U-Boot with the `hil` crate; the report goes to
//! `target/hil/<board>-<scenario>/`. Also the HIL stage of `cargo xtask test`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use hil::{Board, Scenario};

use crate::error::XtaskError;
use crate::host::{self, OsRelease};
use crate::payload;
use crate::prereq::PrereqError;
use crate::process;
use crate::tasks;
use crate::workspace::Workspace;

/// The board and scenario of the HIL stage of `cargo xtask test`.
pub const TEST_BOARD: &str = "qemu-uboot";
/// The scenarios the HIL stage of `cargo xtask test` runs on [`TEST_BOARD`],
/// in order: one guest with the virtio-iommu, then two guests with their
/// own consoles.
pub const TEST_SCENARIOS: &[&str] = &["linux-viommu", "two-linux"];

/// `cargo xtask hil`: build, then run `scenario` on `board`.
pub fn hil(ws: &Workspace, board: &str, scenario: &str, echo: bool) -> Result<(), XtaskError> {
    let emulator = tasks::ensure_all(ws)?;
    let board = load_board(ws, board)?;
    ensure_board(&board)?;
    let scenario = load_scenario(ws, scenario)?;
    let image = tasks::build_image(ws)?;
    let config = ws
        .root
        .join("guest-configs")
        .join(format!("{}.toml", scenario.guest));
    let bundle = payload::build(ws, &config, &emulator.qemu)?;
    run_on_board(ws, &board, &scenario, &image, &bundle, &emulator.qemu, echo)
}

/// `cargo xtask hil --list`: the boards and scenarios there are.
pub fn list(ws: &Workspace) -> Result<(), XtaskError> {
    println!("boards ({}):", hil::BOARDS_DIR);
    for name in hil::file::names(&ws.root.join(hil::BOARDS_DIR)) {
        let board = load_board(ws, &name)?;
        let untested = match board.status {
            hil::board::Status::Untested => " [not yet tried on hardware]",
            hil::board::Status::Tested => "",
        };
        println!("  {name:<20} {}{untested}", board.description);
    }
    println!("scenarios ({}):", hil::SCENARIOS_DIR);
    for scenario in
        Scenario::load_dir(&ws.root.join(hil::SCENARIOS_DIR)).map_err(hil::HilError::from)?
    {
        println!(
            "  {:<20} {} (guest {})",
            scenario.name, scenario.description, scenario.guest
        );
    }
    Ok(())
}

/// The HIL stage of `cargo xtask test`: each of [`TEST_SCENARIOS`] on
/// [`TEST_BOARD`] with the image and bundles the earlier stages built;
/// stops at the first that fails.
pub fn test_stage(
    ws: &Workspace,
    image: &Path,
    bundles: &Path,
    qemu: &Path,
) -> Result<(), XtaskError> {
    let board = load_board(ws, TEST_BOARD)?;
    for name in TEST_SCENARIOS {
        let scenario = load_scenario(ws, name)?;
        let bundle = bundles.join(format!("{}.bundle", scenario.guest));
        run_on_board(ws, &board, &scenario, image, &bundle, qemu, false)?;
    }
    Ok(())
}

/// Makes sure the host has what [`TEST_BOARD`] needs (for the prerequisites stage).
pub fn ensure_test_board(ws: &Workspace) -> Result<(), XtaskError> {
    ensure_board(&load_board(ws, TEST_BOARD)?)
}

fn load_board(ws: &Workspace, name: &str) -> Result<Board, XtaskError> {
    Ok(Board::find(&ws.root.join(hil::BOARDS_DIR), name).map_err(hil::HilError::from)?)
}

fn load_scenario(ws: &Workspace, name: &str) -> Result<Scenario, XtaskError> {
    Ok(Scenario::find(&ws.root.join(hil::SCENARIOS_DIR), name).map_err(hil::HilError::from)?)
}

/// Runs the scenario and prints where the report is; fails unless it passed.
fn run_on_board(
    ws: &Workspace,
    board: &Board,
    scenario: &Scenario,
    image: &Path,
    bundle: &Path,
    qemu: &Path,
    echo: bool,
) -> Result<(), XtaskError> {
    let mut vars = hil::Vars::new();
    vars.set("workspace", ws.root.to_string_lossy())
        .map_err(hil::HilError::from)?;
    vars.set("qemu", qemu.to_string_lossy())
        .map_err(hil::HilError::from)?;
    let run_dir = hil::runner::run_dir(&ws.target_dir, &board.name, &scenario.name);
    eprintln!(
        "hil: scenario {} on board {} (report in {})",
        scenario.name,
        board.name,
        run_dir.display()
    );
    let start = Instant::now();
    let report = hil::run(&hil::RunSpec {
        board,
        scenario,
        image,
        bundle,
        run_dir: run_dir.clone(),
        vars,
        echo,
    })?;
    println!(
        "hil: {} on {}: {} ({:.1} s)",
        scenario.name,
        board.name,
        report.verdict(),
        start.elapsed().as_secs_f64()
    );
    println!("hil: report: {}", run_dir.join("report.txt").display());
    if report.passed() {
        return Ok(());
    }
    if !echo {
        eprintln!("{}", report.text());
    }
    Err(XtaskError::HilFailed {
        verdict: report.verdict(),
        report: run_dir.join("report.txt"),
    })
}

/// Installs the Debian packages a board needs when its files are missing
/// (as root on Debian); otherwise says what to run.
fn ensure_board(board: &Board) -> Result<(), XtaskError> {
    let missing: Vec<&String> = board
        .requires
        .files
        .iter()
        .filter(|f| !f.contains('{') && !Path::new(f).exists())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let problems: String = missing
        .iter()
        .map(|f| format!("  - {f} (needed by board {})\n", board.name))
        .collect();
    let packages = &board.requires.debian_packages;
    let debian = OsRelease::read().is_some_and(|os| os.distro().is_debian());
    let install = format!(
        "DEBIAN_FRONTEND=noninteractive apt-get install -y {}",
        packages.join(" ")
    );
    if packages.is_empty() || !debian || !host::is_root() {
        let instructions = if packages.is_empty() || !debian {
            let what = if packages.is_empty() {
                "the files above".to_owned()
            } else {
                format!("the files above (Debian packages: {})", packages.join(" "))
            };
            format!("install {what}, then try again.")
        } else {
            format!(
                "not running as root, so nothing was installed; run:\n\nsudo apt-get update\nsudo {install}\n\nthen try again."
            )
        };
        return Err(PrereqError::Manual {
            problems,
            instructions,
        }
        .into());
    }
    eprintln!("missing prerequisites:\n{problems}installing them:");
    let apt = || {
        let mut cmd = Command::new("apt-get");
        cmd.env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    process::run(apt().arg("update"))?;
    process::run(apt().args(["install", "-y"]).args(packages))?;
    let still: Vec<PathBuf> = missing
        .iter()
        .map(PathBuf::from)
        .filter(|f| !f.exists())
        .collect();
    if let Some(file) = still.first() {
        return Err(PrereqError::StillMissing(format!(
            "{} is still missing after installing {}",
            file.display(),
            packages.join(" ")
        ))
        .into());
    }
    Ok(())
}
