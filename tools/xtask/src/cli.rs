//! Command-line parsing: `cargo xtask <build|run|test|hil> [-- ARGS]`.
//!
//! Hand-written: four subcommands and a pass-through list do not need an
//! argument-parsing crate.

use std::ffi::OsString;
use std::path::PathBuf;

/// Usage text printed by `cargo xtask help` and after a command-line error.
pub const USAGE: &str = "\
usage: cargo xtask <task> [--config FILE] [-- ARGS]

tasks:
  build [--config FILE]
                      build the EL2 image and convert it to a raw binary
                      (target/aarch64-unknown-none-softfloat/release/partita.bin);
                      with --config also the guest bundle of FILE (bundle: PATH)
  run [--config FILE] [-- QEMU ARGS]
                      build, then boot the image with the guests of FILE
                      (default guest-configs/qemu-virt-linux.toml) on QEMU virt
                      (4 CPUs, 1 GiB, SMMUv3, GICv3) with the serial console on
                      this terminal (Ctrl-A X quits); ARGS go to QEMU verbatim and
                      may override earlier options, e.g. -- -smp 2
  test [-- TEST ARGS] host unit tests, image build, QEMU integration tests, the
                      HIL runs of linux-viommu and two-linux on qemu-uboot; ARGS go to the QEMU
                      test binaries (a test name, --nocapture)
  hil --board NAME --scenario NAME [--quiet]
                      build, then run a scenario (tests/scenarios/) on a board
                      (tools/hil/boards/) through U-Boot and its serial console;
                      report in target/hil/BOARD-SCENARIO/ (docs/hil.md);
                      --quiet does not echo the console
  hil --list          the boards and scenarios there are
  bench [--runs N] [--peer | --peer-only]
                      the virtio-iommu MAP/UNMAP benchmark: the bench guest under
                      partita and on QEMU's own virtio-iommu (no hypervisor), on
                      virtio-mmio and virtio-pci, N runs each (default 3);
                      target/bench/{report.md,results.json,plot.svg};
                      --peer adds Linux/KVM with QEMU's virtio-iommu (both
                      transports, with and without VFIO) in the same emulator
                      (one L1 boot, N runs each way), --peer-only runs that alone
  fuzz [--minutes N]  the randomized virtio-iommu backend test with fresh seeds and
                      long sequences for N minutes (default 10); prints the seed of
                      a failure
  layering            how much of hypervisor/src compiles only for the target
                      (limit 5%) and whether any layer names one above it
                      (docs/architecture.md); also checked by the host tests
  help                this text

Missing prerequisites (the aarch64-unknown-none-softfloat Rust target, QEMU >= 10.0,
dtc) are installed when possible; set PARTITA_QEMU to use a QEMU of your own.";

/// What the user asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Task {
    /// `build [--config FILE]`
    Build {
        /// A guest configuration whose bundle to build too.
        config: Option<PathBuf>,
    },
    /// `run [--config FILE] [-- QEMU ARGS]`
    Run {
        /// The guest configuration to boot (None: the default one).
        config: Option<PathBuf>,
        /// Arguments appended to the QEMU command line.
        qemu_args: Vec<OsString>,
    },
    /// `test [-- TEST ARGS]`
    Test {
        /// Arguments for the QEMU test binaries (libtest options, filters).
        test_args: Vec<OsString>,
    },
    /// `hil --board NAME --scenario NAME [--quiet]`
    Hil {
        /// Board name (or path of a board file).
        board: String,
        /// Scenario name (or path of a scenario file).
        scenario: String,
        /// Do not echo the console.
        quiet: bool,
    },
    /// `hil --list`
    HilList,
    /// `bench [--runs N] [--peer | --peer-only]`
    Bench {
        /// QEMU runs per side.
        runs: usize,
        /// Which sides run.
        sides: BenchSides,
    },
    /// `layering`
    Layering,
    /// `fuzz [--minutes N]`
    Fuzz {
        /// How long to run.
        minutes: u64,
    },
    /// `help`, `-h`, `--help`
    Help,
}

/// A command line that does not name a task or has arguments out of place.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CliError {
    /// No task given.
    #[error("no task given")]
    NoTask,
    /// The first argument is not a known task.
    #[error("unknown task `{0}`")]
    UnknownTask(String),
    /// An option without its value.
    #[error("`{0}` needs a value")]
    MissingValue(&'static str),
    /// A required option is missing.
    #[error("`{task}` needs {option}")]
    MissingOption {
        /// The task being parsed.
        task: &'static str,
        /// The option(s), as they would be written.
        option: &'static str,
    },
    /// An argument where none is accepted (pass-through arguments follow `--`).
    #[error(
        "unexpected argument `{arg}` for `{task}` (arguments for QEMU or the tests go after `--`)"
    )]
    Unexpected {
        /// The task being parsed.
        task: &'static str,
        /// The argument that was not expected.
        arg: String,
    },
}

/// Parses the arguments that follow `cargo xtask`.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Task, CliError> {
    let mut args = args.into_iter();
    let Some(first) = args.next() else {
        return Err(CliError::NoTask);
    };
    let mut rest: Vec<OsString> = args.collect();
    let task = match first.to_string_lossy().as_ref() {
        "build" => "build",
        "run" => "run",
        "test" => "test",
        "hil" => return parse_hil(rest),
        "bench" => return parse_bench(rest),
        "layering" if rest.is_empty() => return Ok(Task::Layering),
        "fuzz" => return parse_fuzz(rest),
        "help" | "-h" | "--help" => return Ok(Task::Help),
        other => return Err(CliError::UnknownTask(other.to_owned())),
    };
    let mut config = None;
    if rest.first().is_some_and(|a| a == "--config") && task != "test" {
        if rest.len() < 2 || rest[1] == "--" {
            return Err(CliError::MissingValue("--config"));
        }
        config = Some(PathBuf::from(rest[1].clone()));
        rest.drain(..2);
    }
    let passthrough = match rest.split_first() {
        None => Vec::new(),
        Some((dashdash, tail)) if dashdash == "--" && task != "build" => tail.to_vec(),
        Some((arg, _)) => {
            return Err(CliError::Unexpected {
                task,
                arg: arg.to_string_lossy().into_owned(),
            });
        }
    };
    Ok(match task {
        "build" => Task::Build { config },
        "run" => Task::Run {
            config,
            qemu_args: passthrough,
        },
        _ => Task::Test {
            test_args: passthrough,
        },
    })
}

/// Which sides `bench` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchSides {
    /// partita and QEMU's virtio-iommu without a hypervisor.
    Default,
    /// Those and the peer (Linux/KVM with QEMU's virtio-iommu, `--peer`).
    WithPeer,
    /// The peer alone (`--peer-only`).
    PeerOnly,
}

/// The arguments of `bench`: `[--runs N]` (N >= 1, default 3), `--peer`,
/// `--peer-only`.
fn parse_bench(args: Vec<OsString>) -> Result<Task, CliError> {
    let mut runs = 3;
    let mut sides = BenchSides::Default;
    let mut args = args.into_iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => {
                runs = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n: &usize| n >= 1)
                    .ok_or(CliError::MissingValue("--runs"))?;
            }
            "--peer" => sides = BenchSides::WithPeer,
            "--peer-only" => sides = BenchSides::PeerOnly,
            _ => return Err(CliError::Unexpected { task: "bench", arg }),
        }
    }
    Ok(Task::Bench { runs, sides })
}

/// The arguments of `fuzz`.
fn parse_fuzz(args: Vec<OsString>) -> Result<Task, CliError> {
    let mut minutes = 10;
    let mut args = args.into_iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--minutes" => {
                minutes = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n: &u64| n >= 1)
                    .ok_or(CliError::MissingValue("--minutes"))?;
            }
            _ => return Err(CliError::Unexpected { task: "fuzz", arg }),
        }
    }
    Ok(Task::Fuzz { minutes })
}

/// The arguments of `hil`: options in any order.
fn parse_hil(args: Vec<OsString>) -> Result<Task, CliError> {
    let (mut board, mut scenario, mut quiet, mut list) = (None, None, false, false);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let arg = arg.to_string_lossy().into_owned();
        let mut value = |name: &'static str| {
            args.next()
                .map(|v| v.to_string_lossy().into_owned())
                .filter(|v| !v.starts_with("--"))
                .ok_or(CliError::MissingValue(name))
        };
        match arg.as_str() {
            "--board" => board = Some(value("--board")?),
            "--scenario" => scenario = Some(value("--scenario")?),
            "--quiet" => quiet = true,
            "--list" => list = true,
            _ => return Err(CliError::Unexpected { task: "hil", arg }),
        }
    }
    match (board, scenario) {
        _ if list => Ok(Task::HilList),
        (Some(board), Some(scenario)) => Ok(Task::Hil {
            board,
            scenario,
            quiet,
        }),
        _ => Err(CliError::MissingOption {
            task: "hil",
            option: "--board NAME and --scenario NAME (or --list)",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Task, CliError> {
        parse(args.iter().map(OsString::from))
    }

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn tasks_without_arguments() {
        assert_eq!(parse_strs(&["build"]), Ok(Task::Build { config: None }));
        assert_eq!(
            parse_strs(&["run"]),
            Ok(Task::Run {
                config: None,
                qemu_args: vec![]
            })
        );
        assert_eq!(parse_strs(&["test"]), Ok(Task::Test { test_args: vec![] }));
        assert_eq!(parse_strs(&["--help"]), Ok(Task::Help));
    }

    #[test]
    fn passthrough_is_verbatim() {
        assert_eq!(
            parse_strs(&["run", "--", "-s", "-S", "--", "-smp", "2"]),
            Ok(Task::Run {
                config: None,
                qemu_args: os(&["-s", "-S", "--", "-smp", "2"])
            })
        );
        assert_eq!(
            parse_strs(&["run", "--config", "g.toml", "--", "-s"]),
            Ok(Task::Run {
                config: Some(PathBuf::from("g.toml")),
                qemu_args: os(&["-s"])
            })
        );
        assert_eq!(
            parse_strs(&["build", "--config", "g.toml"]),
            Ok(Task::Build {
                config: Some(PathBuf::from("g.toml"))
            })
        );
        assert_eq!(
            parse_strs(&["run", "--config"]),
            Err(CliError::MissingValue("--config"))
        );
        assert_eq!(
            parse_strs(&["test", "--", "boot_virt_1cpu", "--nocapture"]),
            Ok(Task::Test {
                test_args: os(&["boot_virt_1cpu", "--nocapture"])
            })
        );
    }

    #[test]
    fn hil_options() {
        assert_eq!(
            parse_strs(&["hil", "--scenario", "linux-boot", "--board", "qemu-uboot"]),
            Ok(Task::Hil {
                board: "qemu-uboot".into(),
                scenario: "linux-boot".into(),
                quiet: false
            })
        );
        assert_eq!(
            parse_strs(&["hil", "--board", "b", "--scenario", "s", "--quiet"]),
            Ok(Task::Hil {
                board: "b".into(),
                scenario: "s".into(),
                quiet: true
            })
        );
        assert_eq!(parse_strs(&["hil", "--list"]), Ok(Task::HilList));
        assert_eq!(
            parse_strs(&["hil", "--board", "--scenario", "s"]),
            Err(CliError::MissingValue("--board"))
        );
        let err = parse_strs(&["hil", "--board", "b"]).expect_err("no scenario");
        assert_eq!(
            err.to_string(),
            "`hil` needs --board NAME and --scenario NAME (or --list)"
        );
        assert!(matches!(
            parse_strs(&["hil", "--board", "b", "--scenario", "s", "--", "x"]),
            Err(CliError::Unexpected { task: "hil", .. })
        ));
    }

    #[test]
    fn errors() {
        assert_eq!(parse_strs(&[]), Err(CliError::NoTask));
        assert_eq!(
            parse_strs(&["bogus"]),
            Err(CliError::UnknownTask("bogus".into()))
        );
        assert_eq!(
            parse_strs(&["bench"]),
            Ok(Task::Bench {
                runs: 3,
                sides: BenchSides::Default
            })
        );
        assert_eq!(
            parse_strs(&["bench", "--peer", "--runs", "1"]),
            Ok(Task::Bench {
                runs: 1,
                sides: BenchSides::WithPeer
            })
        );
        assert_eq!(
            parse_strs(&["bench", "--peer-only"]),
            Ok(Task::Bench {
                runs: 3,
                sides: BenchSides::PeerOnly
            })
        );
        assert_eq!(parse_strs(&["fuzz"]), Ok(Task::Fuzz { minutes: 10 }));
        assert_eq!(
            parse_strs(&["fuzz", "--minutes", "2"]),
            Ok(Task::Fuzz { minutes: 2 })
        );
        assert!(parse_strs(&["fuzz", "--minutes", "0"]).is_err());
        assert_eq!(
            parse_strs(&["bench", "--runs", "5"]),
            Ok(Task::Bench {
                runs: 5,
                sides: BenchSides::Default
            })
        );
        assert_eq!(
            parse_strs(&["bench", "--runs", "0"]),
            Err(CliError::MissingValue("--runs"))
        );
        assert!(matches!(
            parse_strs(&["run", "-s"]),
            Err(CliError::Unexpected { task: "run", .. })
        ));
        assert!(matches!(
            parse_strs(&["build", "--", "x"]),
            Err(CliError::Unexpected { task: "build", .. })
        ));
    }
}
