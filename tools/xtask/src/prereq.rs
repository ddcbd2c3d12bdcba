//! Prerequisites: checked by every task, installed when missing and possible.
//!
//! - the Rust target `aarch64-unknown-none-softfloat` (`rustup target add`), for all tasks;
//! - `qemu-system-aarch64` >= 10.0 (SMMUv3 stage 2, the `imx8mp-evk` machine)
//!   and `dtc`, for `run` and `test`.
//!
//! QEMU and dtc come from apt on Debian when running as root: on bookworm,
//! QEMU from bookworm-backports (bookworm's own 7.2 has no SMMUv3 stage 2),
//! adding that suite to the apt sources if it is not configured; on trixie and
//! later from the distribution. Anywhere else the exact commands to run are
//! printed and the task fails. `PARTITA_QEMU` names a QEMU of the user's own,
//! which is checked but never replaced.
//!
//! The decision ([`plan`]) is a pure function of the host facts so that it is
//! unit-tested without touching the machine.

use std::env;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::host::{self, Distro, OsRelease};
use crate::process::{self, ProcessError};
use crate::qemu::{self, QemuVersion};

/// The Rust target of the EL2 image.
pub const TARGET: &str = "aarch64-unknown-none-softfloat";

/// Environment variable naming a QEMU binary to use instead of the one on `PATH`.
pub const QEMU_ENV: &str = "PARTITA_QEMU";

/// The apt source file written on bookworm when backports are not configured.
pub const BACKPORTS_FILE: &str = "/etc/apt/sources.list.d/partita-backports.sources";

/// Its contents (deb822).
pub const BACKPORTS_SOURCES: &str = "\
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

/// A prerequisite that is missing and could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum PrereqError {
    /// A command (rustup, apt-get, rustc) could not run or failed.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// The target is missing and there is no rustup to add it.
    #[error(
        "the Rust target `{TARGET}` is not installed and `rustup` is not on PATH: install Rust with rustup (https://rustup.rs), then run `rustup target add {TARGET}`"
    )]
    NoRustup,
    /// `rustup target add` ran but the target is still not visible to rustc.
    #[error(
        "`rustup target add {TARGET}` succeeded but rustc still has no `{TARGET}` standard library (looked in {0})"
    )]
    TargetStillMissing(PathBuf),
    /// Installing needs the user: the commands to run are in the message.
    #[error("missing prerequisites:\n{problems}\n{instructions}")]
    Manual {
        /// One line per missing prerequisite.
        problems: String,
        /// What to run, or what to do.
        instructions: String,
    },
    /// `PARTITA_QEMU` names a QEMU that cannot be used.
    #[error("{QEMU_ENV}={path}: {problem} (unset {QEMU_ENV} to use and install the system's QEMU)")]
    UserQemu {
        /// The path from the environment.
        path: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The apt source file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The installation ran but the prerequisite is still not there.
    #[error("installation finished but {0}")]
    StillMissing(String),
}

/// Makes sure rustc has the standard library for [`TARGET`], adding it with rustup if not.
pub fn ensure_target(root: &Path) -> Result<(), PrereqError> {
    let libdir = target_libdir(root)?;
    if has_target(&libdir) {
        return Ok(());
    }
    if host::find_in_path("rustup").is_none() {
        return Err(PrereqError::NoRustup);
    }
    eprintln!("prerequisite: the Rust target {TARGET} is missing; adding it");
    process::run(
        Command::new("rustup")
            .args(["target", "add", TARGET])
            .current_dir(root),
    )?;
    let libdir = target_libdir(root)?;
    if has_target(&libdir) {
        Ok(())
    } else {
        Err(PrereqError::TargetStillMissing(libdir))
    }
}

/// Where rustc looks for the target's standard library (it need not exist).
fn target_libdir(root: &Path) -> Result<PathBuf, PrereqError> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = process::output(
        Command::new(rustc)
            .args(["--print", "target-libdir", "--target", TARGET])
            .current_dir(root),
    )?;
    Ok(PathBuf::from(
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    ))
}

/// Whether `libdir` holds a `libcore` for the target.
fn has_target(libdir: &Path) -> bool {
    fs::read_dir(libdir).is_ok_and(|dir| {
        dir.flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("libcore-"))
    })
}

/// A usable QEMU.
#[derive(Debug, Clone)]
pub struct Emulator {
    /// Absolute path of a `qemu-system-aarch64` >= [`qemu::MIN_VERSION`].
    pub qemu: PathBuf,
}

/// What was found when looking for QEMU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QemuState {
    /// Not on `PATH` (or the given path does not exist).
    Missing,
    /// `--version` could not be run or read.
    Unreadable {
        /// The binary.
        path: PathBuf,
        /// What it printed, or why it could not run.
        output: String,
    },
    /// Present but older than [`qemu::MIN_VERSION`].
    TooOld {
        /// The binary.
        path: PathBuf,
        /// Its version.
        version: QemuVersion,
    },
    /// Present and recent enough.
    Usable {
        /// The binary.
        path: PathBuf,
        /// Its version.
        version: QemuVersion,
    },
}

impl QemuState {
    /// Runs `path --version` and judges the answer.
    pub fn probe(path: Option<PathBuf>) -> Self {
        let Some(path) = path.filter(|p| p.exists()) else {
            return Self::Missing;
        };
        let text = match Command::new(&path).arg("--version").output() {
            Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
            Err(e) => {
                return Self::Unreadable {
                    path,
                    output: e.to_string(),
                };
            }
        };
        Self::judge(path, &text)
    }

    /// Judges the `--version` output of the QEMU at `path`.
    pub fn judge(path: PathBuf, version_output: &str) -> Self {
        match QemuVersion::parse_version_output(version_output) {
            Some(version) if version.is_supported() => Self::Usable { path, version },
            Some(version) => Self::TooOld { path, version },
            None => Self::Unreadable {
                path,
                output: version_output.trim().to_owned(),
            },
        }
    }

    /// A one-line description of what is wrong, `None` if it is usable.
    pub fn problem(&self) -> Option<String> {
        let min = qemu::MIN_VERSION;
        match self {
            Self::Usable { .. } => None,
            Self::Missing => Some(format!(
                "{} not found (QEMU >= {min} needed)",
                qemu::PROGRAM
            )),
            Self::Unreadable { path, output } => Some(format!(
                "cannot tell the version of {}: `--version` said {output:?}",
                path.display()
            )),
            Self::TooOld { path, version } => Some(format!(
                "{} is QEMU {version}; partita needs QEMU >= {min} (SMMUv3 stage 2, the imx8mp-evk machine)",
                path.display()
            )),
        }
    }
}

/// What has to be installed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// A QEMU >= 10.0.
    pub qemu: bool,
    /// `dtc`.
    pub dtc: bool,
}

/// One installation step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write [`BACKPORTS_SOURCES`] to [`BACKPORTS_FILE`].
    AddBackports,
    /// `apt-get update`
    AptUpdate,
    /// `apt-get install -y [-t bookworm-backports] PACKAGES`
    AptInstall {
        /// Install from bookworm-backports.
        backports: bool,
        /// Debian package names.
        packages: Vec<&'static str>,
    },
}

impl Step {
    /// The step as a shell command, prefixed with `sudo` when `sudo` is set.
    pub fn shell(&self, sudo: bool) -> String {
        let sudo = if sudo { "sudo " } else { "" };
        match self {
            Self::AddBackports => {
                format!("{sudo}tee {BACKPORTS_FILE} >/dev/null <<'EOF'\n{BACKPORTS_SOURCES}EOF")
            }
            Self::AptUpdate => format!("{sudo}apt-get update"),
            Self::AptInstall {
                backports,
                packages,
            } => format!(
                "{sudo}DEBIAN_FRONTEND=noninteractive apt-get install -y {}{}",
                if *backports {
                    "-t bookworm-backports "
                } else {
                    ""
                },
                packages.join(" ")
            ),
        }
    }

    /// Performs the step (as root).
    fn execute(&self) -> Result<(), PrereqError> {
        match self {
            Self::AddBackports => {
                eprintln!("writing {BACKPORTS_FILE}");
                fs::write(BACKPORTS_FILE, BACKPORTS_SOURCES).map_err(|source| PrereqError::Write {
                    path: BACKPORTS_FILE.into(),
                    source,
                })
            }
            Self::AptUpdate => Ok(process::run(apt().arg("update"))?),
            Self::AptInstall {
                backports,
                packages,
            } => {
                let mut cmd = apt();
                cmd.args(["install", "-y"]);
                if *backports {
                    cmd.args(["-t", "bookworm-backports"]);
                }
                Ok(process::run(cmd.args(packages))?)
            }
        }
    }
}

/// `apt-get` that never asks questions.
fn apt() -> Command {
    let mut cmd = Command::new("apt-get");
    cmd.env("DEBIAN_FRONTEND", "noninteractive");
    cmd
}

/// What to do about missing prerequisites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing is missing.
    Nothing,
    /// Run these steps now (we are root on Debian).
    Install(Vec<Step>),
    /// The user must act: these are the instructions.
    Manual(String),
}

/// Decides how to obtain what `needs` lists on this host.
pub fn plan(distro: &Distro, root: bool, backports_configured: bool, needs: Needs) -> Plan {
    if needs == Needs::default() {
        return Plan::Nothing;
    }
    let qemu_from = match distro {
        _ if !needs.qemu => None,
        Distro::DebianBookworm => Some(true),
        Distro::DebianNewer => Some(false),
        Distro::DebianOlder(name) | Distro::Other(name) => {
            return Plan::Manual(manual_text(distro, name, needs));
        }
    };
    if !distro.is_debian() {
        // Only dtc is missing, on a distribution whose package names we do not know.
        let name = match distro {
            Distro::Other(name) => name.as_str(),
            _ => "this system",
        };
        return Plan::Manual(manual_text(distro, name, needs));
    }
    let mut steps = Vec::new();
    if qemu_from == Some(true) && !backports_configured {
        steps.push(Step::AddBackports);
    }
    steps.push(Step::AptUpdate);
    let mut default_suite = Vec::new();
    match qemu_from {
        Some(true) => steps.push(Step::AptInstall {
            backports: true,
            packages: vec!["qemu-system-arm"],
        }),
        Some(false) => default_suite.push("qemu-system-arm"),
        None => {}
    }
    if needs.dtc {
        default_suite.push("device-tree-compiler");
    }
    if !default_suite.is_empty() {
        steps.push(Step::AptInstall {
            backports: false,
            packages: default_suite,
        });
    }
    if root {
        Plan::Install(steps)
    } else {
        let commands: Vec<String> = steps.iter().map(|s| s.shell(true)).collect();
        Plan::Manual(format!(
            "not running as root, so nothing was installed; run:\n\n{}\n\nthen try again.",
            commands.join("\n")
        ))
    }
}

/// Instructions for a host where apt cannot provide everything.
fn manual_text(distro: &Distro, name: &str, needs: Needs) -> String {
    let name = if name.is_empty() { "this system" } else { name };
    let mut text = format!("{name} is not a Debian release that provides these; please install:\n");
    if needs.qemu {
        text.push_str(&format!(
            "  - QEMU >= {} with {} (distribution package, often qemu-system-arm or \
             qemu-system-aarch64, or built from https://www.qemu.org/download/); then put it \
             on PATH or set {QEMU_ENV}=/path/to/{}\n",
            qemu::MIN_VERSION,
            qemu::PROGRAM,
            qemu::PROGRAM,
        ));
        if matches!(distro, Distro::DebianOlder(_)) {
            text.push_str(
                "    (Debian 12 bookworm with bookworm-backports, or Debian 13, packages it)\n",
            );
        }
    }
    if needs.dtc {
        text.push_str("  - the device-tree compiler `dtc` (package device-tree-compiler or dtc)\n");
    }
    text.push_str("then try again.");
    text
}

/// Makes sure a QEMU >= 10.0 and dtc are installed, installing them when
/// possible, and returns the QEMU to use.
pub fn ensure_emulator() -> Result<Emulator, PrereqError> {
    let user_qemu = env::var_os(QEMU_ENV).filter(|v| !v.is_empty());
    let find_qemu = || match &user_qemu {
        Some(path) => QemuState::probe(Some(resolve_program(Path::new(path)))),
        None => QemuState::probe(host::find_in_path(qemu::PROGRAM)),
    };
    let qemu_state = find_qemu();
    if let (Some(path), Some(problem)) = (&user_qemu, qemu_state.problem()) {
        return Err(PrereqError::UserQemu {
            path: path.to_string_lossy().into_owned(),
            problem,
        });
    }
    let needs = Needs {
        qemu: qemu_state.problem().is_some(),
        dtc: host::find_in_path("dtc").is_none(),
    };
    let mut problems = Vec::new();
    problems.extend(qemu_state.problem());
    if needs.dtc {
        problems.push("dtc (device-tree-compiler) not found".to_owned());
    }
    let problems: String = problems.iter().map(|p| format!("  - {p}\n")).collect();

    let distro = OsRelease::read()
        .map(|os| os.distro())
        .unwrap_or_else(|| Distro::Other("unknown".into()));
    let backports = matches!(distro, Distro::DebianBookworm) && host::backports_configured();
    match plan(&distro, host::is_root(), backports, needs) {
        Plan::Nothing => {}
        Plan::Manual(instructions) => {
            return Err(PrereqError::Manual {
                problems,
                instructions,
            });
        }
        Plan::Install(steps) => {
            eprintln!("missing prerequisites:\n{problems}installing them:");
            for step in &steps {
                step.execute()?;
            }
        }
    }

    let (path, version) = match find_qemu() {
        QemuState::Usable { path, version } => (path, version),
        other => {
            let problem = other.problem().unwrap_or_default();
            return Err(PrereqError::StillMissing(format!(
                "{problem} (is another {} earlier on PATH?)",
                qemu::PROGRAM
            )));
        }
    };
    if host::find_in_path("dtc").is_none() {
        return Err(PrereqError::StillMissing("dtc is not on PATH".into()));
    }
    let qemu = fs::canonicalize(&path).unwrap_or(path);
    eprintln!("qemu: {} (QEMU {version})", qemu.display());
    Ok(Emulator { qemu })
}

/// A program named by the user: a bare name is looked up on `PATH`.
fn resolve_program(program: &Path) -> PathBuf {
    let bare = program.components().count() == 1;
    bare.then(|| host::find_in_path(&program.to_string_lossy()))
        .flatten()
        .unwrap_or_else(|| program.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: Needs = Needs {
        qemu: true,
        dtc: true,
    };
    const QEMU: Needs = Needs {
        qemu: true,
        dtc: false,
    };
    const DTC: Needs = Needs {
        qemu: false,
        dtc: true,
    };

    fn install(backports: bool, packages: &[&'static str]) -> Step {
        Step::AptInstall {
            backports,
            packages: packages.to_vec(),
        }
    }

    #[test]
    fn judging_versions() {
        let path = PathBuf::from("/usr/bin/qemu-system-aarch64");
        let old = QemuState::judge(
            path.clone(),
            "QEMU emulator version 7.2.15 (Debian 1:7.2+dfsg-7+deb12u12)\n",
        );
        assert!(matches!(old, QemuState::TooOld { .. }));
        let problem = old.problem().expect("7.2 is too old");
        assert!(
            problem.contains("7.2.15") && problem.contains("10.0.0"),
            "{problem}"
        );
        let nine = QemuState::judge(path.clone(), "QEMU emulator version 9.2.4\n");
        assert!(
            matches!(nine, QemuState::TooOld { .. }),
            "9.2 has no imx8mp-evk"
        );
        let new = QemuState::judge(
            path.clone(),
            "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\n",
        );
        assert!(matches!(new, QemuState::Usable { .. }));
        assert_eq!(new.problem(), None);
        let odd = QemuState::judge(path, "Segmentation fault\n");
        assert!(matches!(odd, QemuState::Unreadable { .. }));
        assert!(QemuState::Missing.problem().is_some());
        assert_eq!(QemuState::probe(None), QemuState::Missing);
        assert_eq!(
            QemuState::probe(Some("/nonexistent/qemu".into())),
            QemuState::Missing
        );
    }

    #[test]
    fn nothing_missing_means_nothing_to_do() {
        let other = Distro::Other("Fedora".into());
        assert_eq!(plan(&other, false, false, Needs::default()), Plan::Nothing);
    }

    #[test]
    fn bookworm_root_adds_backports_then_installs() {
        assert_eq!(
            plan(&Distro::DebianBookworm, true, false, BOTH),
            Plan::Install(vec![
                Step::AddBackports,
                Step::AptUpdate,
                install(true, &["qemu-system-arm"]),
                install(false, &["device-tree-compiler"]),
            ])
        );
    }

    #[test]
    fn bookworm_with_backports_configured_does_not_write_sources() {
        assert_eq!(
            plan(&Distro::DebianBookworm, true, true, QEMU),
            Plan::Install(vec![Step::AptUpdate, install(true, &["qemu-system-arm"])])
        );
        // dtc alone never needs backports.
        assert_eq!(
            plan(&Distro::DebianBookworm, true, false, DTC),
            Plan::Install(vec![
                Step::AptUpdate,
                install(false, &["device-tree-compiler"])
            ])
        );
    }

    #[test]
    fn trixie_uses_the_distribution() {
        assert_eq!(
            plan(&Distro::DebianNewer, true, false, BOTH),
            Plan::Install(vec![
                Step::AptUpdate,
                install(false, &["qemu-system-arm", "device-tree-compiler"]),
            ])
        );
    }

    #[test]
    fn not_root_prints_the_sudo_commands() {
        let Plan::Manual(text) = plan(&Distro::DebianBookworm, false, false, QEMU) else {
            panic!("not root: the user must install");
        };
        assert!(
            text.contains(&format!("sudo tee {BACKPORTS_FILE}")),
            "{text}"
        );
        assert!(text.contains("Suites: bookworm-backports"), "{text}");
        assert!(text.contains("sudo apt-get update"), "{text}");
        assert!(
            text.contains(
                "sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -t bookworm-backports qemu-system-arm"
            ),
            "{text}"
        );
    }

    #[test]
    fn other_systems_get_instructions() {
        let ubuntu = Distro::Other("Ubuntu 24.04.1 LTS".into());
        for root in [false, true] {
            let Plan::Manual(text) = plan(&ubuntu, root, false, BOTH) else {
                panic!("not Debian: the user must install");
            };
            assert!(text.contains("Ubuntu 24.04.1 LTS"), "{text}");
            assert!(text.contains("QEMU >= 10.0.0"), "{text}");
            assert!(text.contains(QEMU_ENV), "{text}");
            assert!(text.contains("dtc"), "{text}");
        }
        let Plan::Manual(text) = plan(&ubuntu, true, false, DTC) else {
            panic!("not Debian: the user must install dtc");
        };
        assert!(!text.contains("QEMU"), "{text}");
        let old = Distro::DebianOlder("Debian GNU/Linux 11 (bullseye)".into());
        let Plan::Manual(text) = plan(&old, true, false, QEMU) else {
            panic!("bullseye has no QEMU 10.0");
        };
        assert!(text.contains("bookworm-backports"), "{text}");
    }

    #[test]
    fn backports_step_renders_deb822() {
        let shell = Step::AddBackports.shell(false);
        assert!(shell.starts_with("tee /etc/apt/sources.list.d/partita-backports.sources"));
        assert!(shell.ends_with("Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\nEOF"));
    }
}
