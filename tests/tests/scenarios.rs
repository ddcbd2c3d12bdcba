//! The scenarios of `tests/scenarios/` run directly on QEMU virt: the image
//! as `-kernel`, the scenario's guest bundle as `-initrd`, the console on
//! QEMU's stdio. The steps run through the same engine as on a board
//! (`hil::engine`), so a scenario that passes here only has U-Boot and the
//! board left to blame when it fails under `cargo xtask hil`.
//!
//! `cargo xtask test` builds one bundle per guest configuration and passes
//! their directory in `PARTITA_BUNDLES`.

use std::path::{Path, PathBuf};

use hil::Scenario;
use hil::console::ChildConsole;
use hv_tests::{ECHO_ENV, HarnessError, Qemu, Report};

/// The scenarios directory.
fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

/// The bundle of a guest configuration, from `PARTITA_BUNDLES`.
fn bundle(guest: &str) -> Result<PathBuf, HarnessError> {
    let dir = std::env::var_os("PARTITA_BUNDLES").ok_or_else(|| {
        HarnessError::Setup(
            "PARTITA_BUNDLES is not set: run these tests with `cargo xtask test`".into(),
        )
    })?;
    Ok(PathBuf::from(dir).join(format!("{guest}.bundle")))
}

/// Runs scenario `name` on QEMU virt (4 CPUs, 1 GiB, the defaults of
/// `cargo xtask run`); fails with the first failing step and the transcript.
fn run_scenario(name: &str) -> Result<(), HarnessError> {
    let scenario =
        Scenario::find(&scenarios_dir(), name).map_err(|e| HarnessError::Setup(e.to_string()))?;
    if let Some(todo) = &scenario.todo {
        eprintln!("scenario {name}: TODO: {todo}");
    }
    let cmd = Qemu::new()
        .arg("-initrd")
        .arg(bundle(&scenario.guest)?)
        .command()?;
    let command = format!("{cmd:?}");
    let console = ChildConsole::spawn(cmd).map_err(|source| HarnessError::Spawn {
        command: command.clone(),
        source,
    })?;
    let echo = std::env::var_os(ECHO_ENV).is_some_and(|v| !v.is_empty() && v != "0");
    let mut session = hil::Session::new(Box::new(console)).with_echo(echo);
    let outcome = hil::engine::run_steps(&mut session, &scenario);
    match outcome.failure {
        None => Ok(()),
        Some(failure) => Err(HarnessError::Check {
            problem: format!("scenario {name}: {failure}"),
            report: Report {
                command,
                transcript: String::from_utf8_lossy(session.transcript()).into_owned(),
            },
        }),
    }
}

/// One test per scenario file; [`every_scenario_has_a_test`] keeps the list honest.
macro_rules! scenario_tests {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() -> Result<(), HarnessError> {
                run_scenario($name)
            }
        )*
        const TESTED: &[&str] = &[$($name),*];
    };
}

scenario_tests! {
    linux_boot => "linux-boot",
    linux_viommu => "linux-viommu",
    two_linux => "two-linux",
}

#[test]
fn every_scenario_has_a_test() {
    let found = hil::file::names(&scenarios_dir());
    assert_eq!(
        found, TESTED,
        "tests/scenarios/*.toml and the scenario_tests! list in tests/tests/scenarios.rs differ"
    );
}
