//! The HIL runner itself on the `qemu-uboot` board (QEMU virt with U-Boot as
//! its firmware, console on a Unix socket, TFTP over QEMU's user network),
//! with a deliberately broken scenario: the run must fail with a readable
//! reason and leave a complete report. The passing run of `linux-boot` on
//! this board is the HIL stage of `cargo xtask test`.
//!
//! Needs U-Boot from Debian's u-boot-qemu, which the prerequisites stage of
//! `cargo xtask test` installs.

use std::fs;
use std::path::{Path, PathBuf};

use hil::{Board, Scenario};
use hv_tests::HarnessError;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn env_path(name: &str) -> Result<PathBuf, HarnessError> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| {
            HarnessError::Setup(format!(
                "{name} is not set: run these tests with `cargo xtask test`"
            ))
        })
}

fn setup(e: impl std::fmt::Display) -> HarnessError {
    HarnessError::Setup(e.to_string())
}

#[test]
fn broken_step_fails_with_a_readable_reason_and_a_report() -> Result<(), HarnessError> {
    let board = Board::find(&root().join(hil::BOARDS_DIR), "qemu-uboot").map_err(setup)?;
    let scenario = Scenario::load(&root().join("tests/scenarios/fixtures/never-printed.toml"))
        .map_err(setup)?;
    let image = env_path("PARTITA_IMAGE")?;
    let bundle = env_path("PARTITA_BUNDLES")?.join(format!("{}.bundle", scenario.guest));
    let qemu = env_path("PARTITA_QEMU").unwrap_or_else(|_| "qemu-system-aarch64".into());
    let mut vars = hil::Vars::new();
    vars.set("qemu", qemu.to_string_lossy()).map_err(setup)?;
    vars.set("workspace", root().to_string_lossy())
        .map_err(setup)?;
    let run_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hil-qemu-uboot-never-printed");
    let report = hil::run(&hil::RunSpec {
        board: &board,
        scenario: &scenario,
        image: &image,
        bundle: &bundle,
        run_dir: run_dir.clone(),
        vars,
        echo: false,
    })
    .map_err(setup)?;

    let text = fs::read_to_string(run_dir.join("report.txt")).map_err(setup)?;
    let check = |ok: bool, what: &str| -> Result<(), HarnessError> {
        if ok {
            Ok(())
        } else {
            Err(HarnessError::Setup(format!(
                "{what}\n----- report.txt -----\n{text}"
            )))
        }
    };
    // U-Boot, TFTP and booti worked: the hypervisor started at EL2 and the
    // board's checks (banner, 4 CPUs online, PSCI via SMC) passed.
    check(
        text.contains("ok")
            && text.contains("after boot:")
            && text.contains("step 1: expect \"arm64 EL2 hypervisor\""),
        "the report lists the parts of the run",
    )?;
    check(
        report.verdict()
            == "FAILED: timeout at step 2 (expected \"this line is never printed\" within 2 s)",
        &format!(
            "the verdict names the step and what it expected: {}",
            report.verdict()
        ),
    )?;
    check(
        text.contains("result:    FAILED: timeout at step 2 (expected \"this line is never printed\" within 2 s)"),
        "report.txt carries the verdict",
    )?;
    let log = fs::read_to_string(run_dir.join("console.log")).map_err(setup)?;
    check(
        log.contains("Hit any key to stop autoboot")
            && log.contains("Starting kernel")
            && log.contains("cpu 3 online")
            && !log.contains("must be entered at EL2"),
        "console.log has U-Boot and the hypervisor at EL2 with every CPU",
    )?;
    let junit = fs::read_to_string(run_dir.join("junit.xml")).map_err(setup)?;
    check(
        junit.contains("failures=\"1\"") && junit.contains("<failure message=\"timeout at step 2"),
        "junit.xml has the failure",
    )
}
