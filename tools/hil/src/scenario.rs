//! Scenarios (`tests/scenarios/NAME.toml`): the guest configuration to boot
//! and the console dialogue that judges it. The same file drives the QEMU
//! integration tests (`-kernel` + `-initrd`) and the HIL runner (U-Boot).
//!
//! ```toml
//! description = "Boot the default Linux guest, check its CPUs, power off"
//! guest = "qemu-virt-linux"          # guest-configs/qemu-virt-linux.toml
//! timeout = 30                       # default step time limit, seconds
//! fail_on = ["Kernel panic"]         # any of these on the console fails the run
//!
//! [[step]]
//! expect = "partita-guest: init done"
//! timeout = 90
//!
//! [[step]]
//! send = "echo cpus=$(grep -c ^processor /proc/cpuinfo)"   # a line: "\n" is added
//! expect = "cpus=2"
//! ```
//!
//! A step sends (`send`: a line, or `send_raw`: exact text) and then
//! waits for `expect` (a substring, searched after whatever the previous
//! step matched, so steps also check order) within `timeout` seconds.
//! `expect_all` (a list) waits for every one of its texts, in any order.
//! `resend = N` sends again every N seconds until the expectation is met
//! (still within `timeout`): input that reaches a guest before its shell
//! has opened the console is lost (Linux's PL011 driver drains its receive
//! FIFO when the port is opened), so a step asking a guest that may still
//! be booting repeats itself.
//!
//! With several guests, each with its own console (`docs/guests.md`,
//! "Consoles"), a step can first give a guest the focus and can look for
//! its text in one guest's lines only:
//!
//! ```toml
//! [[step]]
//! focus = "beta"        # Ctrl-] and beta's number, learnt from Ctrl-] l
//! send = "hostname"     # so this goes to beta
//! expect = "beta"
//! from = "beta"         # in a line tagged `[beta] `, after the tag
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::LoadError;
use crate::file;
use crate::guests;

/// The longest time limit a step may have, in seconds.
pub const MAX_STEP_SECS: f64 = 600.0;

/// Default step time limit when the scenario gives none, in seconds.
pub const DEFAULT_STEP_SECS: f64 = 30.0;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    description: String,
    guest: String,
    #[serde(default)]
    todo: Option<String>,
    #[serde(default)]
    timeout: Option<f64>,
    #[serde(default)]
    fail_on: Vec<String>,
    #[serde(default)]
    step: Vec<RawStep>,
}

/// One `[[step]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    #[serde(default)]
    send: Option<String>,
    #[serde(default)]
    send_raw: Option<String>,
    #[serde(default)]
    expect: Option<String>,
    #[serde(default)]
    expect_all: Option<Vec<String>>,
    #[serde(default)]
    focus: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    timeout: Option<f64>,
    #[serde(default)]
    resend: Option<f64>,
}

/// A scenario, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Its name: the file stem.
    pub name: String,
    /// The file it came from.
    pub path: PathBuf,
    /// One line saying what it checks.
    pub description: String,
    /// The guest configuration: `guest-configs/<guest>.toml`.
    pub guest: String,
    /// Work known to be missing from this scenario (printed and reported).
    pub todo: Option<String>,
    /// Text that fails the run wherever it appears after boot.
    pub fail_on: Vec<String>,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// One step: give a guest the focus, send something, then expect something.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The guest to give the focus to first (its name), if any.
    pub focus: Option<String>,
    /// Exact text to write to the console then, if any.
    pub send: Option<String>,
    /// Texts that must then appear, all of them in any order (none: the
    /// step waits for nothing).
    pub expect: Vec<String>,
    /// The guest whose lines (tagged `[name] `) `expect` looks in; `None`:
    /// anywhere on the console.
    pub from: Option<String>,
    /// How long to wait for `expect` (and for the focus to change).
    pub timeout: Duration,
    /// Send `send` again every this long until `expect` is met (within
    /// `timeout`): for a shell that may not have opened its console yet,
    /// whose UART driver drains what came before (Linux's PL011 does).
    pub resend: Option<Duration>,
}

impl Step {
    /// A short description for reports: `send "poweroff -f", expect "..."`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(guest) = &self.focus {
            parts.push(format!("focus {guest:?}"));
        }
        if let Some(send) = &self.send {
            parts.push(format!("send {:?}", send.trim_end_matches('\n')));
        }
        let from = self
            .from
            .as_ref()
            .map(|g| format!(" from {g:?}"))
            .unwrap_or_default();
        match self.expect.as_slice() {
            [] => {}
            [one] => parts.push(format!("expect {one:?}{from}")),
            all => parts.push(format!("expect all of {all:?}{from}")),
        }
        parts.join(", ")
    }
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let raw: RawScenario = file::read_toml(path)?;
        Self::check(path, raw)
    }

    /// Parses and checks scenario text (`path` names it in errors and gives its name).
    pub fn parse(path: &Path, text: &str) -> Result<Self, LoadError> {
        let raw: RawScenario = file::parse_toml(path, text)?;
        Self::check(path, raw)
    }

    /// Finds `name_or_path` in `dir` (see [`file::locate`]) and loads it.
    pub fn find(dir: &Path, name_or_path: &str) -> Result<Self, LoadError> {
        Self::load(&file::locate(dir, name_or_path, "scenario")?)
    }

    /// Every scenario in `dir` (its `*.toml` files, not subdirectories), by name.
    pub fn load_dir(dir: &Path) -> Result<Vec<Self>, LoadError> {
        file::names(dir)
            .iter()
            .map(|name| Self::load(&dir.join(format!("{name}.toml"))))
            .collect()
    }

    fn check(path: &Path, raw: RawScenario) -> Result<Self, LoadError> {
        let mut problems = Vec::new();
        if raw.description.trim().is_empty() {
            problems.push("description: must say what the scenario checks".to_owned());
        }
        let guest_ok = !raw.guest.is_empty()
            && raw
                .guest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !guest_ok {
            problems.push(format!(
                "guest: {:?} is not a configuration name (the stem of a file in guest-configs/)",
                raw.guest
            ));
        }
        let default = raw.timeout.unwrap_or(DEFAULT_STEP_SECS);
        file::check_secs(&mut problems, "timeout", default, MAX_STEP_SECS);
        for (i, text) in raw.fail_on.iter().enumerate() {
            if text.is_empty() {
                problems.push(format!("fail_on[{i}]: must not be empty"));
            }
        }
        if raw.step.is_empty() {
            problems.push("step: a scenario needs at least one [[step]]".to_owned());
        }
        let mut steps = Vec::new();
        for (i, step) in raw.step.into_iter().enumerate() {
            let key = format!("step[{}] (step {})", i, i + 1);
            let send = match (step.send, step.send_raw) {
                (Some(_), Some(_)) => {
                    problems.push(format!("{key}: give `send` or `send_raw`, not both"));
                    None
                }
                (Some(line), None) => Some(format!("{line}\n")),
                (None, raw) => raw,
            };
            if send.as_deref() == Some("") {
                problems.push(format!("{key}: send_raw: must not be empty"));
            }
            let expect = match (step.expect, step.expect_all) {
                (Some(_), Some(_)) => {
                    problems.push(format!("{key}: give `expect` or `expect_all`, not both"));
                    Vec::new()
                }
                (Some(one), None) => vec![one],
                (None, Some(all)) => {
                    if all.is_empty() {
                        problems.push(format!("{key}: expect_all: must list something"));
                    }
                    all
                }
                (None, None) => Vec::new(),
            };
            if expect.iter().any(String::is_empty) {
                problems.push(format!("{key}: expect: must not be empty"));
            }
            for (what, guest) in [("focus", &step.focus), ("from", &step.from)] {
                if let Some(guest) = guest
                    && !guests::valid_name(guest)
                {
                    problems.push(format!("{key}: {what}: {guest:?} is not a guest name"));
                }
            }
            if send.is_none() && expect.is_empty() && step.focus.is_none() {
                problems.push(format!(
                    "{key}: needs `focus`, `send`, `send_raw`, `expect` or `expect_all`"
                ));
            }
            if step.from.is_some() && expect.is_empty() {
                problems.push(format!(
                    "{key}: from: only a step with `expect` looks for text"
                ));
            }
            if step.timeout.is_some() && expect.is_empty() && step.focus.is_none() {
                problems.push(format!(
                    "{key}: timeout: only a step with `expect` or `focus` waits for something"
                ));
            }
            let secs = step.timeout.unwrap_or(default);
            file::check_secs(
                &mut problems,
                &format!("{key}: timeout"),
                secs,
                MAX_STEP_SECS,
            );
            if let Some(every) = step.resend {
                if send.is_none() || expect.is_empty() {
                    problems.push(format!(
                        "{key}: resend: only a step that sends and expects sends again"
                    ));
                }
                file::check_secs(&mut problems, &format!("{key}: resend"), every, secs);
            }
            steps.push(Step {
                focus: step.focus,
                send,
                expect,
                from: step.from,
                timeout: file::duration(secs, MAX_STEP_SECS),
                resend: step.resend.map(|every| file::duration(every, secs)),
            });
        }
        if !problems.is_empty() {
            return Err(LoadError::Invalid {
                path: path.to_path_buf(),
                problems,
            });
        }
        Ok(Self {
            name: file::stem(path),
            path: path.to_path_buf(),
            description: raw.description,
            guest: raw.guest,
            todo: raw.todo,
            fail_on: raw.fail_on,
            steps,
        })
    }

    /// The sum of every step's time limit: the longest a run of the steps can take.
    pub fn budget(&self) -> Duration {
        self.steps.iter().map(|s| s.timeout).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Scenario, LoadError> {
        Scenario::parse(Path::new("tests/scenarios/s.toml"), text)
    }

    fn problems(text: &str) -> String {
        match parse(text) {
            Err(LoadError::Invalid { problems, .. }) => problems.join("\n"),
            other => panic!("expected validation problems, got {other:?}"),
        }
    }

    #[test]
    fn a_scenario() {
        let s = parse(
            r#"
description = "boots"
guest = "qemu-virt-linux"
timeout = 20
fail_on = ["Kernel panic"]
[[step]]
expect = "init done"
timeout = 90
[[step]]
send = "echo hi"
expect = "hi"
[[step]]
send_raw = "\u0003"
"#,
        )
        .expect("valid");
        assert_eq!(s.name, "s");
        assert_eq!(s.guest, "qemu-virt-linux");
        assert_eq!(s.fail_on, ["Kernel panic"]);
        assert_eq!(s.steps.len(), 3);
        assert_eq!(s.steps[0].timeout, Duration::from_secs(90));
        assert_eq!(s.steps[1].send.as_deref(), Some("echo hi\n"));
        assert_eq!(s.steps[1].timeout, Duration::from_secs(20));
        assert_eq!(s.steps[2].send.as_deref(), Some("\u{3}"));
        assert_eq!(s.steps[1].describe(), r#"send "echo hi", expect "hi""#);
        assert_eq!(s.budget(), Duration::from_secs(130));
    }

    #[test]
    fn guest_steps() {
        let s = parse(
            r#"
description = "two guests"
guest = "qemu-virt-two-linux"
[[step]]
expect_all = ["alpha up", "beta up"]
from = "alpha"
[[step]]
focus = "beta"
timeout = 5
[[step]]
focus = "alpha"
send = "hostname"
expect = "alpha"
from = "alpha"
"#,
        )
        .expect("valid");
        assert_eq!(s.steps[0].expect, ["alpha up", "beta up"]);
        assert_eq!(s.steps[0].from.as_deref(), Some("alpha"));
        assert_eq!(
            s.steps[0].describe(),
            r#"expect all of ["alpha up", "beta up"] from "alpha""#
        );
        assert_eq!(s.steps[1].focus.as_deref(), Some("beta"));
        assert!(s.steps[1].send.is_none() && s.steps[1].expect.is_empty());
        assert_eq!(s.steps[1].timeout, Duration::from_secs(5));
        assert_eq!(s.steps[1].describe(), r#"focus "beta""#);
        assert_eq!(
            s.steps[2].describe(),
            r#"focus "alpha", send "hostname", expect "alpha" from "alpha""#
        );
        let text = problems(
            r#"
description = "x"
guest = "g"
[[step]]
expect = "a"
expect_all = ["b"]
[[step]]
expect_all = []
[[step]]
focus = "it's"
from = "[x]"
[[step]]
send = "ls"
from = "alpha"
[[step]]
expect_all = ["a", ""]
"#,
        );
        for needle in [
            "step[0] (step 1): give `expect` or `expect_all`, not both",
            "step[1] (step 2): expect_all: must list something",
            "step[2] (step 3): focus: \"it's\" is not a guest name",
            "step[2] (step 3): from: \"[x]\" is not a guest name",
            "step[2] (step 3): from: only a step with `expect` looks for text",
            "step[3] (step 4): from: only a step with `expect` looks for text",
            "step[4] (step 5): expect: must not be empty",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }

    #[test]
    fn resend_needs_a_send_and_an_expect_within_the_step_time() {
        let text = problems(
            r#"
description = "x"
guest = "g"
[[step]]
expect = "a"
resend = 1
[[step]]
send = "b"
resend = 1
[[step]]
send = "c"
expect = "c"
timeout = 5
resend = 10
"#,
        );
        for needle in [
            "step[0] (step 1): resend: only a step that sends and expects sends again",
            "step[1] (step 2): resend: only a step that sends and expects sends again",
            "step[2] (step 3): resend: 10 is not a time limit (seconds, more than 0 and at most 5)",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }

    #[test]
    fn every_problem_is_named() {
        let text = problems(
            r#"
description = ""
guest = "../etc/passwd"
timeout = 0
fail_on = [""]
[[step]]
send = "a"
send_raw = "b"
[[step]]
timeout = 5
[[step]]
expect = ""
timeout = 9999
"#,
        );
        for needle in [
            "description: must say",
            "guest: \"../etc/passwd\" is not a configuration name",
            "timeout: 0 is not a time limit",
            "fail_on[0]: must not be empty",
            "step[0] (step 1): give `send` or `send_raw`, not both",
            "step[1] (step 2): needs `focus`, `send`, `send_raw`, `expect` or `expect_all`",
            "step[1] (step 2): timeout: only a step with `expect` or `focus` waits",
            "step[2] (step 3): expect: must not be empty",
            "step[2] (step 3): timeout: 9999 is not a time limit",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        assert!(problems("description = \"x\"\nguest = \"g\"\n").contains("at least one [[step]]"));
        let nan = problems(
            "description = \"x\"\nguest = \"g\"\n[[step]]\nexpect = \"y\"\ntimeout = nan\n",
        );
        assert!(
            nan.contains("step[0] (step 1): timeout: NaN is not a time limit"),
            "{nan}"
        );
    }

    #[test]
    fn schema_errors_carry_the_position() {
        let err = parse("description = \"x\"\nguest = \"g\"\n[[step]]\nexpct = \"typo\"\n")
            .expect_err("unknown key");
        let text = err.to_string();
        assert!(text.starts_with("tests/scenarios/s.toml: "), "{text}");
        assert!(text.contains("unknown field `expct`"), "{text}");
        assert!(text.contains("line 4"), "{text}");
        let err = parse("guest = \"g\"\n[[step]]\nexpect = \"x\"\n").expect_err("no description");
        assert!(
            err.to_string().contains("missing field `description`"),
            "{err}"
        );
    }

    #[test]
    fn the_shipped_scenarios_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/scenarios");
        let all = Scenario::load_dir(&dir).expect("every shipped scenario is valid");
        let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
        assert!(names.contains(&"linux-boot"), "{names:?}");
        for s in &all {
            assert!(
                dir.join("../../guest-configs")
                    .join(format!("{}.toml", s.guest))
                    .is_file(),
                "{}: guest {} has no configuration",
                s.name,
                s.guest
            );
        }
        let fixtures = Scenario::load_dir(&dir.join("fixtures")).expect("fixtures are valid");
        assert!(!fixtures.is_empty());
    }
}
