//! The hypervisor's own command line: `/chosen/bootargs` of the host DT
//! (QEMU `-append`, U-Boot `bootargs`). Options are `partita.KEY=VALUE`
//! words; other words are ignored, unknown `partita.` options are reported.

use alloc::string::String;
use alloc::vec::Vec;

/// What to do when no guest is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleAction {
    /// Wait for interrupts forever (default).
    Idle,
    /// Power the machine off through PSCI `SYSTEM_OFF`.
    PowerOff,
}

/// A deliberate violation of the EL2 map's W^X rule, made at boot to prove
/// that the MMU refuses it (`partita.wxtest=`, for the boot tests only: the
/// hypervisor stops with a crash report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WxTest {
    /// `write-text`: a store to the image's code.
    WriteText,
    /// `write-relro`: a store to the relocated constants (.data.rel.ro).
    WriteRelro,
    /// `exec-data`: a branch to an instruction in the image's .data.
    ExecData,
    /// `exec-heap`: a branch to an instruction in the heap, outside the image.
    ExecHeap,
}

impl WxTest {
    fn parse(value: &str) -> Option<WxTest> {
        Some(match value {
            "write-text" => WxTest::WriteText,
            "write-relro" => WxTest::WriteRelro,
            "exec-data" => WxTest::ExecData,
            "exec-heap" => WxTest::ExecHeap,
            _ => return None,
        })
    }
}

/// Options parsed from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `partita.idle=idle|poweroff`.
    pub idle: IdleAction,
    /// `partita.log=error|warn|info|debug|trace`.
    pub log_level: log::LevelFilter,
    /// `partita.wxtest=write-text|write-relro|exec-data|exec-heap`.
    pub wx_test: Option<WxTest>,
    /// `partita.virq=hcr`: signal the guests' virtual interrupts through
    /// HCR_EL2.VI too (a GIC whose virtual IRQ output is not wired, as on
    /// QEMU 10.0's `imx8mp-evk`); `partita.virq=gic` (the default) does not.
    pub virq_via_hcr: bool,
    /// Problems found while parsing, to print once the console is up.
    pub warnings: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            idle: IdleAction::Idle,
            log_level: log::LevelFilter::Info,
            wx_test: None,
            virq_via_hcr: false,
            warnings: Vec::new(),
        }
    }
}

impl Options {
    /// Parses a command line; never fails: bad options become warnings and
    /// keep their defaults.
    pub fn parse(cmdline: &str) -> Options {
        let mut o = Options::default();
        for word in cmdline.split_ascii_whitespace() {
            let Some(opt) = word.strip_prefix("partita.") else {
                continue;
            };
            let (key, value) = opt.split_once('=').unwrap_or((opt, ""));
            match (key, value) {
                ("idle", "idle") => o.idle = IdleAction::Idle,
                ("idle", "poweroff") => o.idle = IdleAction::PowerOff,
                ("log", level) if level.parse::<log::LevelFilter>().is_ok() => {
                    o.log_level = level.parse().unwrap_or(log::LevelFilter::Info)
                }
                ("wxtest", test) if WxTest::parse(test).is_some() => {
                    o.wx_test = WxTest::parse(test)
                }
                ("virq", "hcr") => o.virq_via_hcr = true,
                ("virq", "gic") => o.virq_via_hcr = false,
                ("idle", _) | ("log", _) | ("wxtest", _) | ("virq", _) => o.warnings.push(alloc::format!(
                    "command line: bad value in `{word}` (idle: idle|poweroff; log: error|warn|info|debug|trace; \
                     wxtest: write-text|write-relro|exec-data|exec-heap; virq: gic|hcr)"
                )),
                _ => o
                    .warnings
                    .push(alloc::format!("command line: unknown option `{word}`")),
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_options() {
        assert_eq!(Options::parse("console=ttyAMA0 quiet"), Options::default());
    }

    #[test]
    fn parses_idle_and_log() {
        assert!(Options::parse("partita.virq=hcr").virq_via_hcr);
        assert!(!Options::parse("partita.virq=gic").virq_via_hcr);
        assert!(!Options::parse("partita.virq=x").warnings.is_empty());
        let o = Options::parse("partita.idle=poweroff partita.log=debug");
        assert_eq!(o.idle, IdleAction::PowerOff);
        assert_eq!(o.log_level, log::LevelFilter::Debug);
        assert!(o.warnings.is_empty());
    }

    #[test]
    fn parses_wx_tests() {
        assert_eq!(Options::parse("partita.idle=poweroff").wx_test, None);
        for (word, test) in [
            ("write-text", WxTest::WriteText),
            ("write-relro", WxTest::WriteRelro),
            ("exec-data", WxTest::ExecData),
            ("exec-heap", WxTest::ExecHeap),
        ] {
            let o = Options::parse(&alloc::format!("partita.wxtest={word}"));
            assert_eq!(o.wx_test, Some(test));
            assert!(o.warnings.is_empty());
        }
        let o = Options::parse("partita.wxtest=write-rodata");
        assert_eq!(o.wx_test, None);
        assert!(o.warnings[0].contains("bad value in `partita.wxtest=write-rodata`"));
    }

    #[test]
    fn reports_bad_and_unknown_options() {
        let o = Options::parse("partita.idle=sleep partita.colour=red partita.log");
        assert_eq!(o.idle, IdleAction::Idle);
        assert_eq!(o.warnings.len(), 3);
        assert!(o.warnings[0].contains("partita.idle=sleep"));
        assert!(o.warnings[1].contains("unknown option `partita.colour=red`"));
    }
}
