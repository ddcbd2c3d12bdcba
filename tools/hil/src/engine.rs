//! The step engine: runs a scenario's steps on a [`Session`], whatever is
//! behind it (QEMU's stdio, a board's UART after U-Boot, a fake), and turns
//! what happens into [`Record`]s and at most one [`Failure`].
//!
//! A step runs in this order: `focus` (Ctrl-] `l` the first time a guest is
//! named, to learn its number from the list; then Ctrl-] and the number,
//! waiting for the hypervisor to confirm), `send`, `expect` (in the lines
//! of guest `from` only when given; see [`crate::guests`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::error::Failure;
use crate::guests;
use crate::report::{Outcome, Record};
use crate::scenario::{Scenario, Step};
use crate::session::{self, Session, WaitError};

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
    let mut numbers = HashMap::new();
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
        let result = run_step(session, &at, step, &mut numbers);
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

/// Runs one step; `numbers` holds the guest numbers learnt so far.
fn run_step(
    session: &mut Session,
    at: &str,
    step: &Step,
    numbers: &mut HashMap<String, u8>,
) -> Result<(), Failure> {
    if let Some(guest) = &step.focus {
        focus(session, at, guest, numbers, step.timeout)?;
    }
    if let (Some(text), Some(every)) = (&step.send, step.resend) {
        return send_until(session, at, step, text, every);
    }
    if let Some(text) = &step.send {
        send(session, at, text)?;
    }
    if !step.expect.is_empty() {
        expect(
            session,
            at,
            &step.expect,
            step.from.as_deref(),
            step.timeout,
        )?;
    }
    Ok(())
}

/// Sends `text` and waits for the step's expectation, sending again
/// every `every` until it is met or the step's time is up.
fn send_until(
    session: &mut Session,
    at: &str,
    step: &Step,
    text: &str,
    every: Duration,
) -> Result<(), Failure> {
    let started = std::time::Instant::now();
    loop {
        send(session, at, text)?;
        let left = step.timeout.saturating_sub(started.elapsed());
        let wait = every.min(left);
        match expect(session, at, &step.expect, step.from.as_deref(), wait) {
            Err(Failure::Timeout { .. }) if started.elapsed() < step.timeout => continue,
            Err(Failure::Timeout { at, expected, .. }) => {
                return Err(Failure::Timeout {
                    at,
                    expected,
                    secs: step.timeout.as_secs_f64(),
                });
            }
            other => return other,
        }
    }
}

fn send(session: &mut Session, at: &str, text: &str) -> Result<(), Failure> {
    session.send(text).map_err(|e| Failure::Console {
        what: format!("write at {at}"),
        reason: e.to_string(),
    })
}

/// Gives guest `guest` the focus: its number from the guest list (Ctrl-]
/// `l`, once per run), then Ctrl-] and the number, then the hypervisor's
/// confirmation.
fn focus(
    session: &mut Session,
    at: &str,
    guest: &str,
    numbers: &mut HashMap<String, u8>,
    timeout: Duration,
) -> Result<(), Failure> {
    let number = match numbers.get(guest) {
        Some(&n) => n,
        None => {
            send(session, at, guests::LIST_KEYS)?;
            let start = session.cursor();
            let n = session
                .wait(timeout, |tail| guests::find_listed(tail, guest))
                .map_err(|e| {
                    let expected = format!("guest '{guest}' in the guest list (Ctrl-] l)");
                    wait_failure(e, at, &expected, timeout)
                })?;
            // The other guests listed so far, for later focus steps.
            for (n, name) in guests::listed(&session.transcript()[start..]) {
                numbers.entry(name).or_insert(n);
            }
            numbers.insert(guest.to_owned(), n);
            n
        }
    };
    if number > 9 {
        return Err(Failure::Focus {
            at: at.to_owned(),
            reason: format!(
                "guest '{guest}' is guest {number}: Ctrl-] and a digit reach guests 0 to 9 only"
            ),
        });
    }
    send(session, at, &guests::focus_keys(number))?;
    let reply = guests::focus_reply(number, guest);
    session
        .expect(&reply, timeout)
        .map_err(|e| wait_failure(e, at, &format!("{reply:?}"), timeout))
}

/// Waits for every one of `needles` (in guest `from`'s lines when given),
/// in any order; the cursor moves past the last of them.
fn expect(
    session: &mut Session,
    at: &str,
    needles: &[String],
    from: Option<&str>,
    timeout: Duration,
) -> Result<(), Failure> {
    let head = guests::line_head(session.transcript(), session.cursor()).to_vec();
    let end = |tail: &[u8], needle: &str| match from {
        Some(guest) => guests::find_tagged(&head, tail, guest, needle),
        None => session::find(tail, needle.as_bytes()).map(|at| at + needle.len()),
    };
    let start = session.cursor();
    let result = session.wait(timeout, |tail| {
        let ends: Option<Vec<usize>> = needles.iter().map(|n| end(tail, n)).collect();
        ends.map(|ends| ((), ends.into_iter().max().unwrap_or(0)))
    });
    result.map_err(|e| {
        let tail = &session.transcript()[start..];
        let missing: Vec<&String> = needles.iter().filter(|n| end(tail, n).is_none()).collect();
        let from = from
            .map(|g| format!(" in lines tagged [{g}]"))
            .unwrap_or_default();
        let expected = match needles {
            [one] => format!("{one:?}{from}"),
            all => format!("all of {all:?}{from} (missing: {missing:?})"),
        };
        wait_failure(e, at, &expected, timeout)
    })
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

    /// A shell that loses the first line typed at it (it had not opened
    /// its console yet): only the second `echo hi` is answered.
    fn late_shell() -> FakeConsole {
        FakeConsole::new("booting\r\n").reply("echo hi\necho hi\n", "hi\r\n~ # ")
    }

    #[test]
    fn a_step_with_resend_types_again_until_answered() {
        let once = "[[step]]\nsend = \"echo hi\"\nexpect = \"hi\\r\"\ntimeout = 1\n";
        let mut s = Session::new(Box::new(late_shell()));
        let out = run_steps(&mut s, &scenario(once));
        assert_eq!(
            out.failure.map(|f| f.to_string()).as_deref(),
            Some("timeout at step 1 (expected \"hi\\r\" within 1 s)")
        );
        let again = format!("{once}resend = 0.1\n");
        let mut s = Session::new(Box::new(late_shell()));
        let out = run_steps(&mut s, &scenario(&again));
        assert_eq!(out.failure, None);
        let again = again.replace(
            "echo hi\"\nexpect = \"hi\\r\"",
            "echo ho\"\nexpect = \"ho\\r\"",
        );
        let mut s = Session::new(Box::new(late_shell()));
        let out = run_steps(&mut s, &scenario(&again));
        assert_eq!(
            out.failure.map(|f| f.to_string()).as_deref(),
            Some("timeout at step 1 (expected \"ho\\r\" within 1 s)"),
            "the whole step's time, not one resend's, is the limit"
        );
    }

    fn two_guests() -> FakeConsole {
        FakeConsole::new(
            "[beta] partita-guest: init done\r\n[alpha] partita-guest: init done\r\n[alpha] ~ # ",
        )
        .reply(
            "\u{1d}l",
            "\r\npartita console: guest 0 'alpha': running, 2/2 vcpus on, emulated console (focus)\r\n\
             partita console: guest 1 'beta': running, 2/2 vcpus on, emulated console\r\n",
        )
        .reply("\u{1d}1", "partita console: focus on guest 1 'beta'\r\n")
        .reply("hostname\n", "[beta] hostname\r\n[beta] beta\r\n[beta] ~ # ")
        .reply("\u{1d}0", "\r\npartita console: focus on guest 0 'alpha'\r\n")
        .reply("uname -n\n", "[alpha] uname -n\r\n[alpha] alpha\r\n")
        .reply("\u{1d}1", "partita console: focus on guest 1 'beta'\r\n")
    }

    #[test]
    fn guests_get_the_focus_and_their_lines_are_told_apart() {
        let steps = r#"
[[step]]
expect_all = ["partita-guest: init done"]
from = "beta"
[[step]]
expect_all = ["partita-guest: init done", "~ # "]
from = "alpha"
[[step]]
focus = "beta"
send = "hostname"
expect = "beta"
from = "beta"
[[step]]
focus = "alpha"
send = "uname -n"
expect = "alpha"
from = "alpha"
[[step]]
focus = "beta"
"#;
        let mut s = Session::new(Box::new(two_guests()));
        let out = run_steps(&mut s, &scenario(steps));
        assert_eq!(out.failure, None, "{:?}", out.records);
        // The list was asked for once: the second focus on beta used the
        // number learnt the first time.
        let sent = String::from_utf8_lossy(s.transcript()).into_owned();
        assert_eq!(sent.matches("partita console: guest 1 'beta'").count(), 1);
    }

    #[test]
    fn guest_failures_say_what_was_looked_for() {
        // alpha's text in beta's lines only does not count.
        let mut s = Session::new(Box::new(two_guests()));
        let out = run_steps(
            &mut s,
            &scenario("[[step]]\nexpect = \"~ # \"\nfrom = \"beta\"\n"),
        );
        assert_eq!(
            out.failure.map(|f| f.to_string()).as_deref(),
            Some("timeout at step 1 (expected \"~ # \" in lines tagged [beta] within 0.2 s)")
        );
        let mut s = Session::new(Box::new(two_guests()));
        let out = run_steps(
            &mut s,
            &scenario("[[step]]\nexpect_all = [\"init done\", \"nope\"]\nfrom = \"alpha\"\n"),
        );
        let why = out.failure.map(|f| f.to_string()).unwrap_or_default();
        assert!(why.contains("(missing: [\"nope\"])"), "{why}");
        let mut s = Session::new(Box::new(two_guests()));
        let out = run_steps(&mut s, &scenario("[[step]]\nfocus = \"gamma\"\n"));
        assert_eq!(
            out.failure.map(|f| f.to_string()).as_deref(),
            Some(
                "timeout at step 1 (expected guest 'gamma' in the guest list (Ctrl-] l) within 0.2 s)"
            )
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
