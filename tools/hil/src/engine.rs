//! The step engine: runs a scenario's steps on a [`Session`], whatever is
//! behind it (QEMU's stdio, a board's UART after U-Boot, a fake), and turns
//! what happens into [`Record`]s and at most one [`Failure`].

use std::time::{Duration, Instant};

use crate::error::Failure;
use crate::report::{Outcome, Record};
use crate::scenario::Scenario;
use crate::session::{Session, WaitError};

/// What running the steps gave.
#[derive(Debug, Clone, PartialEq)]
pub struct StepsOutcome {
    /// One record per step (steps after a failure are `NotRun`).
    pub records: Vec<Record>,
    /// The first failure, if any.
    pub failure: Option<Failure>,
}

/// Runs every step of `scenario`, watching for its `fail_on` texts from the
/// session's cursor on; stops at the first failure.
pub fn run_steps(session: &mut Session, scenario: &Scenario) -> StepsOutcome {
    session.watch(&scenario.fail_on);
    let mut records = Vec::with_capacity(scenario.steps.len());
    let mut failure = None;
    for (i, step) in scenario.steps.iter().enumerate() {
        let name = format!("step {}: {}", i + 1, step.describe());
        if failure.is_some() {
            records.push(Record {
                name,
                time: Duration::ZERO,
                outcome: Outcome::NotRun,
            });
            continue;
        }
        let at = format!("step {}", i + 1);
        let start = Instant::now();
        let result = run_step(
            session,
            &at,
            step.send.as_deref(),
            step.expect.as_deref(),
            step.timeout,
        );
        let outcome = match result {
            Ok(()) => Outcome::Passed,
            Err(f) => {
                let outcome = Outcome::Failed(f.to_string());
                failure = Some(f);
                outcome
            }
        };
        records.push(Record {
            name,
            time: start.elapsed(),
            outcome,
        });
    }
    StepsOutcome { records, failure }
}

fn run_step(
    session: &mut Session,
    at: &str,
    send: Option<&str>,
    expect: Option<&str>,
    timeout: Duration,
) -> Result<(), Failure> {
    if let Some(text) = send {
        session.send(text).map_err(|e| Failure::Console {
            what: format!("write at {at}"),
            reason: e.to_string(),
        })?;
    }
    if let Some(needle) = expect {
        session
            .expect(needle, timeout)
            .map_err(|e| wait_failure(e, at, &format!("{needle:?}"), timeout))?;
    }
    Ok(())
}

/// The failure for a wait that did not find `expected` (already quoted).
pub fn wait_failure(err: WaitError, at: &str, expected: &str, timeout: Duration) -> Failure {
    match err {
        WaitError::Timeout => Failure::Timeout {
            at: at.to_owned(),
            expected: expected.to_owned(),
            secs: timeout.as_secs_f64(),
        },
        WaitError::Closed(reason) => Failure::ConsoleClosed {
            at: at.to_owned(),
            reason,
        },
        WaitError::Unexpected(found) => Failure::Unexpected {
            at: at.to_owned(),
            found,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::fake::FakeConsole;
    use std::path::Path;

    fn scenario(steps: &str) -> Scenario {
        let text = format!(
            "description = \"test\"\nguest = \"g\"\ntimeout = 0.2\nfail_on = [\"Kernel panic\"]\n{steps}"
        );
        Scenario::parse(Path::new("fixture.toml"), &text).expect("valid scenario")
    }

    fn shell() -> FakeConsole {
        FakeConsole::new("partita 0.1.0: arm64 EL2 hypervisor\r\npartita-guest: init done\r\n~ # ")
            .reply(
                "echo cpus=$(grep -c ^processor /proc/cpuinfo)\n",
                "cpus=2\r\n~ # ",
            )
            .reply("poweroff -f\n", "no guest left running: powering off\r\n")
    }

    const GOOD: &str = r#"
[[step]]
expect = "init done"
[[step]]
expect = "~ # "
[[step]]
send = "echo cpus=$(grep -c ^processor /proc/cpuinfo)"
expect = "cpus=2"
[[step]]
send = "poweroff -f"
expect = "no guest left running: powering off"
"#;

    #[test]
    fn a_good_run_passes_every_step() {
        let mut s = Session::new(Box::new(shell()));
        let out = run_steps(&mut s, &scenario(GOOD));
        assert_eq!(out.failure, None);
        assert_eq!(out.records.len(), 4);
        assert!(out.records.iter().all(|r| r.outcome == Outcome::Passed));
        assert_eq!(
            out.records[2].name,
            "step 3: send \"echo cpus=$(grep -c ^processor /proc/cpuinfo)\", expect \"cpus=2\""
        );
    }

    #[test]
    fn a_broken_step_fails_with_a_readable_reason() {
        let broken = GOOD.replace("expect = \"cpus=2\"", "expect = \"cpus=3\"");
        let mut s = Session::new(Box::new(shell()));
        let out = run_steps(&mut s, &scenario(&broken));
        let failure = out.failure.expect("cpus=3 never comes");
        assert_eq!(
            failure.to_string(),
            "timeout at step 3 (expected \"cpus=3\" within 0.2 s)"
        );
        let outcomes: Vec<&Outcome> = out.records.iter().map(|r| &r.outcome).collect();
        assert_eq!(outcomes[..2], [&Outcome::Passed, &Outcome::Passed]);
        assert!(
            matches!(outcomes[2], Outcome::Failed(why) if why.starts_with("timeout at step 3"))
        );
        assert_eq!(outcomes[3], &Outcome::NotRun);
    }

    #[test]
    fn unexpected_output_fails_the_step_it_arrives_in() {
        let fake = FakeConsole::new("partita-guest: init done\r\n~ # ")
            .reply("echo hi\n", "Kernel panic - not syncing\r\nhi\r\n");
        let mut s = Session::new(Box::new(fake));
        let out = run_steps(
            &mut s,
            &scenario(
                "[[step]]\nexpect = \"init done\"\n[[step]]\nsend = \"echo hi\"\nexpect = \"hi\"\n",
            ),
        );
        assert_eq!(
            out.failure.map(|f| f.to_string()).as_deref(),
            Some("unexpected output at step 2: \"Kernel panic\" appeared on the console")
        );
    }

    #[test]
    fn a_closed_console_is_named() {
        let fake = FakeConsole::new("partita-guest: init done\r\n").close_at_end();
        let mut s = Session::new(Box::new(fake));
        let out = run_steps(
            &mut s,
            &scenario(
                "[[step]]\nexpect = \"init done\"\n[[step]]\nexpect = \"more\"\ntimeout = 30\n",
            ),
        );
        assert_eq!(
            out.failure,
            Some(Failure::ConsoleClosed {
                at: "step 2".into(),
                reason: "the fake board ended".into()
            })
        );
    }
}
