//! One run of a scenario on a board through U-Boot: deliver the files, power
//! the board, reach its console, drive U-Boot, check the hypervisor came up,
//! run the scenario's steps, write the report.
//!
//! The run directory (`target/hil/<board>-<scenario>/`) receives
//! `console.log` (written as the console talks), `report.txt`, `junit.xml`
//! and `power.log` (output of the power hooks or the emulator). A failure
//! of the board is a verdict in the report, not an error: [`run`] fails only
//! when the report itself cannot be produced.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::board::{Board, Dtb, Serial};
use crate::console::{self, Console};
use crate::engine;
use crate::error::{Failure, HilError};
use crate::layout::{self, ImageHeader};
use crate::power::{self, BoardProcess};
use crate::report::{Outcome, Record, RunReport};
use crate::scenario::Scenario;
use crate::session::{Session, last_lines};
use crate::template::{self, Vars};
use crate::uboot::{self, Files};

/// The name the image gets on the board's side.
pub const IMAGE_NAME: &str = "partita.bin";
/// The name a DTB file gets on the board's side.
pub const DTB_NAME: &str = "board.dtb";
/// Files of the run directory that a new run replaces.
const OUTPUTS: &[&str] = &[
    "console.log",
    "report.txt",
    "junit.xml",
    "power.log",
    "console.sock",
];
/// The longest Unix socket path Linux accepts (`sun_path` less the NUL).
const MAX_SOCKET_PATH: usize = 107;
/// How long a board process gets to exit by itself after a passing run.
const EXIT_GRACE: Duration = Duration::from_secs(10);

/// What to run where.
#[derive(Debug, Clone)]
pub struct RunSpec<'a> {
    /// The board.
    pub board: &'a Board,
    /// The scenario.
    pub scenario: &'a Scenario,
    /// The hypervisor image (`partita.bin`).
    pub image: &'a Path,
    /// The scenario's guest bundle.
    pub bundle: &'a Path,
    /// Where the run's files go (created; earlier outputs replaced).
    pub run_dir: PathBuf,
    /// Placeholder values other than `{run_dir}` (set here).
    pub vars: Vars,
    /// Echo the console to stderr as it arrives.
    pub echo: bool,
}

/// The run directory for a board and a scenario under `target_dir`.
pub fn run_dir(target_dir: &Path, board: &str, scenario: &str) -> PathBuf {
    target_dir.join("hil").join(format!("{board}-{scenario}"))
}

/// Times the parts of the run and keeps the first failure; parts after it
/// are recorded as not run.
struct Recorder {
    records: Vec<Record>,
    failure: Option<Failure>,
    /// The console is echoed: progress lines start on a line of their own.
    echo: bool,
}

impl Recorder {
    fn step<T>(&mut self, name: String, part: impl FnOnce() -> Result<T, Failure>) -> Option<T> {
        if self.failure.is_some() {
            self.skip(name);
            return None;
        }
        let start = Instant::now();
        let result = part();
        let time = start.elapsed();
        let (outcome, value) = match result {
            Ok(value) => (Outcome::Passed, Some(value)),
            Err(f) => {
                let outcome = Outcome::Failed(f.to_string());
                self.failure = Some(f);
                (outcome, None)
            }
        };
        progress(&name, &outcome, time, self.echo);
        self.records.push(Record {
            name,
            time,
            outcome,
        });
        value
    }

    fn skip(&mut self, name: String) {
        self.records.push(Record {
            name,
            time: Duration::ZERO,
            outcome: Outcome::NotRun,
        });
    }
}

/// One progress line on stderr per part of the run.
fn progress(name: &str, outcome: &Outcome, time: Duration, echo: bool) {
    let status = match outcome {
        Outcome::Passed => "ok".to_owned(),
        Outcome::Failed(why) => format!("FAILED: {why}"),
        Outcome::NotRun => "not run".to_owned(),
    };
    let newline = if echo { "\n" } else { "" };
    eprintln!(
        "{newline}[hil] {name}: {status} ({:.2} s)",
        time.as_secs_f64()
    );
}

/// Runs `spec.scenario` on `spec.board` and writes the report files.
pub fn run(spec: &RunSpec<'_>) -> Result<RunReport, HilError> {
    let started = SystemTime::now();
    let t0 = Instant::now();
    let dir = &spec.run_dir;
    fs::create_dir_all(dir).map_err(|e| HilError::io("create", dir, e))?;
    for name in OUTPUTS {
        let path = dir.join(name);
        if path.exists() {
            fs::remove_file(&path).map_err(|e| HilError::io("remove", &path, e))?;
        }
    }
    let log_path = dir.join("console.log");
    let log = File::create(&log_path).map_err(|e| HilError::io("create", &log_path, e))?;
    let mut vars = spec.vars.clone();
    vars.set("run_dir", dir.to_string_lossy())?;
    let board = expand(spec.board, &vars)?;
    let scenario = spec.scenario;
    let power_log = dir.join("power.log");
    let env = hook_env(&board, scenario, &vars);
    if board.status == crate::board::Status::Untested {
        eprintln!(
            "[hil] warning: the board definition {} has not been tried on hardware yet",
            board.path.display()
        );
    }
    if let Some(todo) = &scenario.todo {
        eprintln!("[hil] scenario {}: TODO: {todo}", scenario.name);
    }

    let files = Files {
        image: IMAGE_NAME.into(),
        bundle: format!("{}.bundle", scenario.guest),
        dtb: matches!(board.dtb, Dtb::File { .. }).then(|| DTB_NAME.to_owned()),
    };
    let commands = uboot::script(&board, &files);
    let mut rec = Recorder {
        records: Vec::new(),
        failure: None,
        echo: spec.echo,
    };
    let delivered = rec.step("deliver files".into(), || deliver(&board, spec, &files));
    let mut process = rec
        .step("power on".into(), || power_on(&board, &env, &power_log))
        .flatten();
    let console = rec.step(
        format!(
            "connect to the console ({})",
            console::describe(&board.serial)
        ),
        || connect(&board, process.as_mut(), &power_log),
    );
    let mut session = console.map(|c| {
        let mut s = Session::new(c).with_log(log).with_echo(spec.echo);
        s.set_char_delay(board.uboot.char_delay);
        s
    });
    let no_power = board.power.cycle.trim().is_empty() && board.power.spawn.trim().is_empty();
    let u = &board.uboot;
    rec.step("U-Boot prompt".into(), || {
        let s = connected(&mut session)?;
        if no_power {
            eprintln!(
                "[hil] no power control: reset the board now (or leave it at the U-Boot prompt)"
            );
            s.send("\n").map_err(|e| Failure::Console {
                what: "write".into(),
                reason: e.to_string(),
            })?;
        }
        uboot::enter_prompt(s, u)
    });
    for cmd in &commands {
        rec.step(format!("u-boot: {}", cmd.text), || {
            uboot::run(connected(&mut session)?, u, cmd)
        });
    }
    rec.step(format!("u-boot: {}", u.booti), || {
        let s = connected(&mut session)?;
        // From here on the scenario's fail_on texts fail the run.
        s.watch(&scenario.fail_on);
        uboot::boot(s, u)
    });
    if !board.after_boot.expect.is_empty() {
        let name = format!("after boot: {}", quoted(&board.after_boot.expect));
        rec.step(name, || after_boot(connected(&mut session)?, &board));
    }
    match (&rec.failure, session.as_mut()) {
        (None, Some(s)) => {
            let out = engine::run_steps(s, scenario);
            for r in &out.records {
                progress(&r.name, &r.outcome, r.time, spec.echo);
            }
            rec.records.extend(out.records);
            rec.failure = out.failure;
        }
        _ => {
            for (i, step) in scenario.steps.iter().enumerate() {
                rec.skip(format!("step {}: {}", i + 1, step.describe()));
            }
        }
    }

    let passed = rec.failure.is_none();
    if !board.power.off.trim().is_empty() {
        let off = power::run_hook(
            "off",
            &board.power.off,
            &env,
            board.power.hook_timeout,
            &power_log,
        );
        if let Err(e) = off {
            eprintln!("[hil] {e}");
        }
    }
    let board_exit = process
        .as_mut()
        .map(|p| p.finish(if passed { EXIT_GRACE } else { Duration::ZERO }));
    drop(process);

    let transcript = session
        .as_ref()
        .map(Session::transcript)
        .unwrap_or_default();
    let mut notes = Vec::new();
    if let Some(e) = session.as_ref().and_then(Session::log_error) {
        notes.push(format!("console.log is incomplete: {e}"));
    }
    let report = RunReport {
        board: board.name.clone(),
        board_description: board.description.clone(),
        board_untested: board.status == crate::board::Status::Untested,
        scenario: scenario.name.clone(),
        scenario_description: scenario.description.clone(),
        todo: scenario.todo.clone(),
        guest: scenario.guest.clone(),
        started,
        total: t0.elapsed(),
        files: delivered.unwrap_or_default(),
        uboot_commands: commands
            .iter()
            .map(|c| c.text.clone())
            .chain(std::iter::once(u.booti.clone()))
            .collect(),
        records: rec.records,
        failure: rec.failure,
        board_exit,
        console_tail: last_lines(transcript, 20),
        transcript: String::from_utf8_lossy(transcript).into_owned(),
        notes,
    };
    for (name, text) in [("report.txt", report.text()), ("junit.xml", report.junit())] {
        let path = dir.join(name);
        fs::write(&path, text).map_err(|e| HilError::io("write", &path, e))?;
    }
    Ok(report)
}

/// The session, which exists whenever no earlier part failed.
fn connected(session: &mut Option<Session>) -> Result<&mut Session, Failure> {
    session.as_mut().ok_or_else(|| Failure::Console {
        what: "use".into(),
        reason: "not connected".into(),
    })
}

fn quoted(texts: &[String]) -> String {
    texts
        .iter()
        .map(|t| format!("{t:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The board with every placeholder filled in.
fn expand(board: &Board, vars: &Vars) -> Result<Board, HilError> {
    let x = |text: &str| template::expand(text, vars);
    let mut b = board.clone();
    b.serial = match &board.serial {
        Serial::Device { path, baud } => Serial::Device {
            path: x(path)?,
            baud: *baud,
        },
        Serial::Unix(path) => Serial::Unix(x(path)?),
        Serial::Tcp(addr) => Serial::Tcp(x(addr)?),
    };
    b.delivery.dir = x(&board.delivery.dir)?;
    b.power.cycle = x(&board.power.cycle)?;
    b.power.spawn = x(&board.power.spawn)?;
    b.power.off = x(&board.power.off)?;
    if let Dtb::File { path, addr } = &board.dtb {
        b.dtb = Dtb::File {
            path: x(path)?,
            addr: *addr,
        };
    }
    Ok(b)
}

/// The environment of hooks and board processes.
fn hook_env(board: &Board, scenario: &Scenario, vars: &Vars) -> Vec<(String, String)> {
    let mut env = vec![
        ("HIL_BOARD".to_owned(), board.name.clone()),
        ("HIL_SCENARIO".to_owned(), scenario.name.clone()),
        ("HIL_DELIVERY_DIR".to_owned(), board.delivery.dir.clone()),
    ];
    env.extend(
        vars.iter()
            .map(|(k, v)| (format!("HIL_{}", k.to_ascii_uppercase()), v.to_owned())),
    );
    env
}

/// Checks the layout, then copies the image, the bundle and a DTB file into
/// the delivery directory. Returns (name on the board, size, host path).
fn deliver(
    board: &Board,
    spec: &RunSpec<'_>,
    files: &Files,
) -> Result<Vec<(String, u64, PathBuf)>, Failure> {
    let fail = |what: &str, path: &Path, e: std::io::Error| {
        Failure::Delivery(format!("cannot {what} {}: {e}", path.display()))
    };
    let image = fs::read(spec.image).map_err(|e| fail("read", spec.image, e))?;
    let header = ImageHeader::parse(&image).ok_or_else(|| {
        Failure::Delivery(format!(
            "{} is not an arm64 Image (no ARM\\x64 magic at 0x38)",
            spec.image.display()
        ))
    })?;
    let bundle_len = fs::metadata(spec.bundle)
        .map_err(|e| fail("read", spec.bundle, e))?
        .len();
    let dtb_src = match &board.dtb {
        Dtb::File { path, .. } => Some(PathBuf::from(path)),
        _ => None,
    };
    let dtb_len = match &dtb_src {
        Some(path) => Some(fs::metadata(path).map_err(|e| fail("read", path, e))?.len()),
        None => None,
    };
    let regions = layout::regions(
        &board.load,
        &board.dtb,
        header,
        image.len() as u64,
        bundle_len,
        dtb_len,
    );
    layout::check(&board.load, &regions).map_err(|problem| {
        Failure::Delivery(format!(
            "{problem}: change [load] or [dtb] in {}",
            board.path.display()
        ))
    })?;
    let dir = Path::new(&board.delivery.dir);
    fs::create_dir_all(dir).map_err(|e| fail("create", dir, e))?;
    let mut copies = vec![
        (files.image.clone(), spec.image.to_path_buf()),
        (files.bundle.clone(), spec.bundle.to_path_buf()),
    ];
    if let (Some(name), Some(src)) = (&files.dtb, dtb_src) {
        copies.push((name.clone(), src));
    }
    let mut delivered = Vec::new();
    for (name, src) in copies {
        let dest = dir.join(&name);
        let size = fs::copy(&src, &dest).map_err(|e| fail("copy", &dest, e))?;
        delivered.push((format!("{}{name}", board.delivery.prefix), size, src));
    }
    Ok(delivered)
}

/// Starts the board process or runs the cycle hook.
fn power_on(
    board: &Board,
    env: &[(String, String)],
    log: &Path,
) -> Result<Option<BoardProcess>, Failure> {
    if !board.power.spawn.trim().is_empty() {
        return BoardProcess::spawn(&board.power.spawn, env, log).map(Some);
    }
    if !board.power.cycle.trim().is_empty() {
        power::run_hook(
            "cycle",
            &board.power.cycle,
            env,
            board.power.hook_timeout,
            log,
        )?;
    }
    Ok(None)
}

/// Opens the console, retrying until the board's connect timeout (a socket
/// appears when the emulator is up, a USB serial adapter after power-on).
fn connect(
    board: &Board,
    mut process: Option<&mut BoardProcess>,
    power_log: &Path,
) -> Result<Box<dyn Console>, Failure> {
    let what = format!("open {}", console::describe(&board.serial));
    if let Serial::Unix(path) = &board.serial
        && path.len() > MAX_SOCKET_PATH
    {
        return Err(Failure::Console {
            what,
            reason: format!(
                "the path is {} bytes long, Unix sockets allow {MAX_SOCKET_PATH}: use a shorter \
                     workspace path or CARGO_TARGET_DIR",
                path.len()
            ),
        });
    }
    let end = Instant::now() + board.connect_timeout;
    loop {
        let error = match console::open(&board.serial) {
            Ok(console) => return Ok(console),
            Err(e) => e,
        };
        if let Some(status) = process.as_mut().and_then(|p| p.exited()) {
            let output = fs::read(power_log).unwrap_or_default();
            return Err(Failure::Power(format!(
                "the board process ended ({status}) before its console could be reached: {}",
                last_lines(&output, 5).replace('\n', " | ")
            )));
        }
        if Instant::now() >= end {
            return Err(Failure::Console {
                what,
                reason: format!("{error} (tried for {} s)", board.connect_timeout.as_secs()),
            });
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for every `after_boot` text (in any order) after `booti`.
fn after_boot(session: &mut Session, board: &Board) -> Result<(), Failure> {
    let checks = &board.after_boot;
    session
        .expect_all(&checks.expect, checks.timeout)
        .map_err(|(e, missing)| {
            engine::wait_failure(
                e,
                "the after-boot checks",
                &quoted(&missing),
                checks.timeout,
            )
        })
}
