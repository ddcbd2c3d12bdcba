//! The run report: what was done, how long each part took, the verdict;
//! written as `report.txt` (for people) and `junit.xml` (for CI), next to
//! `console.log` (the raw transcript).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::Failure;

/// The outcome of one part of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It passed.
    Passed,
    /// It failed, and why.
    Failed(String),
    /// An earlier failure stopped the run before it.
    NotRun,
}

/// One part of a run: a U-Boot command, a scenario step...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// What it was.
    pub name: String,
    /// How long it took.
    pub time: Duration,
    /// How it went.
    pub outcome: Outcome,
}

/// Everything the report files say.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Board name.
    pub board: String,
    /// Board description.
    pub board_description: String,
    /// Whether the board definition was ever tried on hardware.
    pub board_untested: bool,
    /// Scenario name.
    pub scenario: String,
    /// Scenario description.
    pub scenario_description: String,
    /// The scenario's TODO marker, if any.
    pub todo: Option<String>,
    /// The guest configuration.
    pub guest: String,
    /// When the run started.
    pub started: SystemTime,
    /// Total wall time.
    pub total: Duration,
    /// Files delivered: name as the board sees it, size, host path.
    pub files: Vec<(String, u64, PathBuf)>,
    /// The U-Boot commands, in order.
    pub uboot_commands: Vec<String>,
    /// Every part, in order.
    pub records: Vec<Record>,
    /// The verdict: `None` when the run passed.
    pub failure: Option<Failure>,
    /// How the board process (an emulator) ended, if there was one.
    pub board_exit: Option<String>,
    /// The last console lines before the end (for the text report).
    pub console_tail: String,
    /// The whole transcript (for junit's system-out).
    pub transcript: String,
    /// Anything else worth a line (log file problems...).
    pub notes: Vec<String>,
}

impl RunReport {
    /// Whether the run passed.
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }

    /// The one-line verdict: `PASSED` or `FAILED: reason`.
    pub fn verdict(&self) -> String {
        match &self.failure {
            None => "PASSED".to_owned(),
            Some(f) => format!("FAILED: {f}"),
        }
    }

    /// `report.txt`.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let untested = if self.board_untested {
            "  [definition not yet tried on hardware]"
        } else {
            ""
        };
        // Writing to a String cannot fail.
        let _ = writeln!(out, "partita HIL report");
        let _ = writeln!(
            out,
            "board:     {} ({}){untested}",
            self.board, self.board_description
        );
        let _ = writeln!(
            out,
            "scenario:  {} ({})",
            self.scenario, self.scenario_description
        );
        if let Some(todo) = &self.todo {
            let _ = writeln!(out, "todo:      {todo}");
        }
        let _ = writeln!(out, "guest:     {}", self.guest);
        let _ = writeln!(out, "started:   {}", iso8601(self.started));
        let _ = writeln!(out, "wall time: {:.1} s", self.total.as_secs_f64());
        let _ = writeln!(out, "result:    {}", self.verdict());
        if let Some(exit) = &self.board_exit {
            let _ = writeln!(out, "board process: {exit}");
        }
        let _ = writeln!(out, "\nfiles delivered:");
        for (name, size, path) in &self.files {
            let _ = writeln!(
                out,
                "  {name:<32} {size:>10} bytes  from {}",
                path.display()
            );
        }
        let _ = writeln!(out, "\nU-Boot commands:");
        for cmd in &self.uboot_commands {
            let _ = writeln!(out, "  {cmd}");
        }
        let _ = writeln!(out, "\nparts of the run:");
        for r in &self.records {
            let (status, time) = match &r.outcome {
                Outcome::Passed => ("ok", format!("{:6.2} s", r.time.as_secs_f64())),
                Outcome::Failed(_) => ("FAILED", format!("{:6.2} s", r.time.as_secs_f64())),
                Outcome::NotRun => ("not run", String::new()),
            };
            let _ = writeln!(out, "  {status:<8} {time:>8}  {}", r.name);
            if let Outcome::Failed(why) = &r.outcome {
                let _ = writeln!(out, "  {:>18}{why}", "");
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "\nnote: {note}");
        }
        let _ = writeln!(
            out,
            "\nconsole: console.log ({} bytes); its last lines:",
            self.transcript.len()
        );
        for line in self.console_tail.lines() {
            let _ = writeln!(out, "  | {line}");
        }
        out
    }

    /// `junit.xml`: one test suite, one test case per part of the run.
    pub fn junit(&self) -> String {
        let failures = self
            .records
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
            .count();
        let skipped = self
            .records
            .iter()
            .filter(|r| r.outcome == Outcome::NotRun)
            .count();
        let suite = format!("hil.{}.{}", self.board, self.scenario);
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<testsuites name=\"partita-hil\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{:.3}\">",
            self.records.len(),
            self.total.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{:.3}\" timestamp=\"{}\">",
            xml(&suite),
            self.records.len(),
            self.total.as_secs_f64(),
            iso8601(self.started)
        );
        let _ = writeln!(out, "    <properties>");
        for (name, value) in [
            ("board", self.board.as_str()),
            ("scenario", self.scenario.as_str()),
            ("guest", self.guest.as_str()),
            ("result", &self.verdict()),
        ] {
            let _ = writeln!(
                out,
                "      <property name=\"{name}\" value=\"{}\"/>",
                xml(value)
            );
        }
        let _ = writeln!(out, "    </properties>");
        for r in &self.records {
            let open = format!(
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                xml(&suite),
                xml(&r.name),
                r.time.as_secs_f64()
            );
            match &r.outcome {
                Outcome::Passed => {
                    let _ = writeln!(out, "{open}/>");
                }
                Outcome::NotRun => {
                    let _ = writeln!(
                        out,
                        "{open}>\n      <skipped message=\"not run: an earlier part failed\"/>\n    </testcase>"
                    );
                }
                Outcome::Failed(why) => {
                    let _ = writeln!(
                        out,
                        "{open}>\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                        xml(why),
                        xml(&self.console_tail)
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "    <system-out>{}</system-out>",
            xml(&self.transcript)
        );
        let _ = writeln!(out, "  </testsuite>\n</testsuites>");
        out
    }
}

/// Escapes text for XML attributes and content; characters XML 1.0 cannot
/// carry (most control characters, from a console) become U+FFFD.
pub fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' => out.push(c),
            '\r' => {}
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC) for a time.
pub fn iso8601(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(failure: Option<Failure>) -> RunReport {
        let failed = failure.as_ref().map(ToString::to_string);
        RunReport {
            board: "qemu-uboot".into(),
            board_description: "QEMU virt".into(),
            board_untested: false,
            scenario: "linux-boot".into(),
            scenario_description: "boots".into(),
            todo: None,
            guest: "qemu-virt-linux".into(),
            started: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            total: Duration::from_millis(6300),
            files: vec![(
                "partita.bin".into(),
                210_120,
                PathBuf::from("/t/partita.bin"),
            )],
            uboot_commands: vec!["setenv serverip 10.0.2.2".into()],
            records: vec![
                Record {
                    name: "u-boot prompt".into(),
                    time: Duration::from_millis(210),
                    outcome: Outcome::Passed,
                },
                Record {
                    name: "step 1: expect \"a<b>&'c'\"".into(),
                    time: Duration::from_secs(2),
                    outcome: failed.map_or(Outcome::Passed, Outcome::Failed),
                },
                Record {
                    name: "step 2: send \"poweroff -f\"".into(),
                    time: Duration::ZERO,
                    outcome: Outcome::NotRun,
                },
            ],
            failure,
            board_exit: Some("exit status: 0".into()),
            console_tail: "last line".into(),
            transcript: "U-Boot\r\n\x1b[0mdone\r\n".into(),
            notes: vec![],
        }
    }

    #[test]
    fn dates() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            iso8601(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            iso8601(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn text_report() {
        let failure = Failure::Timeout {
            at: "step 1".into(),
            expected: "\"cpus=2\"".into(),
            secs: 2.0,
        };
        let text = report(Some(failure)).text();
        for needle in [
            "board:     qemu-uboot (QEMU virt)\n",
            "result:    FAILED: timeout at step 1 (expected \"cpus=2\" within 2 s)\n",
            "wall time: 6.3 s\n",
            "started:   2023-11-14T22:13:20Z\n",
            "board process: exit status: 0\n",
            "partita.bin",
            "  ok         0.21 s  u-boot prompt\n",
            "  FAILED     2.00 s  step 1:",
            "  not run            step 2: send \"poweroff -f\"\n",
            "  | last line\n",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        let passed = report(None).text();
        assert!(passed.contains("result:    PASSED\n"), "{passed}");
    }

    #[test]
    fn junit_report() {
        let failure = Failure::Unexpected {
            at: "step 1".into(),
            found: "Kernel panic".into(),
        };
        let xml_text = report(Some(failure)).junit();
        for needle in [
            "<testsuites name=\"partita-hil\" tests=\"3\" failures=\"1\" skipped=\"1\" time=\"6.300\">",
            "<testsuite name=\"hil.qemu-uboot.linux-boot\" tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\" time=\"6.300\" timestamp=\"2023-11-14T22:13:20Z\">",
            "<testcase classname=\"hil.qemu-uboot.linux-boot\" name=\"u-boot prompt\" time=\"0.210\"/>",
            "name=\"step 1: expect &quot;a&lt;b&gt;&amp;&apos;c&apos;&quot;\"",
            "<failure message=\"unexpected output at step 1: &quot;Kernel panic&quot; appeared on the console\">last line</failure>",
            "<skipped message=\"not run: an earlier part failed\"/>",
            "<system-out>U-Boot\n\u{fffd}[0mdone\n</system-out>",
            "<property name=\"result\" value=\"FAILED: unexpected output",
        ] {
            assert!(
                xml_text.contains(needle),
                "missing {needle:?} in:\n{xml_text}"
            );
        }
        assert!(xml_text.ends_with("</testsuites>\n"));
        let passed = report(None).junit();
        assert!(passed.contains("failures=\"0\""), "{passed}");
    }

    #[test]
    fn xml_escaping() {
        assert_eq!(xml("a\u{7}b\r\n\t"), "a\u{fffd}b\n\t");
        assert_eq!(xml("<&>"), "&lt;&amp;&gt;");
    }
}
