//! Child processes: echo a command before running it, turn a failure into a
//! typed error that names the command.

use std::ffi::OsStr;
use std::io;
use std::process::{Command, ExitStatus, Output};

/// A child process that could not be started or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program could not be started (not found, not executable).
    #[error("could not start `{command}`: {source}")]
    Spawn {
        /// The command line, shell-quoted.
        command: String,
        /// Why it could not start.
        #[source]
        source: io::Error,
    },
    /// The program ran and exited unsuccessfully.
    #[error("`{command}` failed ({status})")]
    Failed {
        /// The command line, shell-quoted.
        command: String,
        /// How it ended.
        status: ExitStatus,
    },
}

/// Runs `cmd` with inherited stdio after printing it; fails unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<(), ProcessError> {
    let status = status(cmd)?;
    if status.success() {
        Ok(())
    } else {
        Err(ProcessError::Failed {
            command: display(cmd),
            status,
        })
    }
}

/// Runs `cmd` with inherited stdio after printing it and returns how it ended.
pub fn status(cmd: &mut Command) -> Result<ExitStatus, ProcessError> {
    eprintln!("$ {}", display(cmd));
    cmd.status().map_err(|source| ProcessError::Spawn {
        command: display(cmd),
        source,
    })
}

/// Runs `cmd` silently with captured output; only a failure to start is an error.
pub fn output(cmd: &mut Command) -> Result<Output, ProcessError> {
    cmd.output().map_err(|source| ProcessError::Spawn {
        command: display(cmd),
        source,
    })
}

/// The command line as a user could paste it into a shell: environment
/// variables set on the command first, every word quoted when needed.
pub fn display(cmd: &Command) -> String {
    let mut words = Vec::new();
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            words.push(format!("{}={}", key.to_string_lossy(), shell_quote(value)));
        }
    }
    words.push(shell_quote(cmd.get_program()));
    words.extend(cmd.get_args().map(shell_quote));
    words.join(" ")
}

/// Quotes one word for a POSIX shell, leaving plain words as they are.
pub fn shell_quote(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@%".contains(c));
    if plain {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote(OsStr::new("-M")), "-M");
        assert_eq!(
            shell_quote(OsStr::new("virt,iommu=smmuv3")),
            "virt,iommu=smmuv3"
        );
        assert_eq!(shell_quote(OsStr::new("a b")), "'a b'");
        assert_eq!(shell_quote(OsStr::new("")), "''");
        assert_eq!(shell_quote(OsStr::new("it's")), r"'it'\''s'");
    }

    #[test]
    fn display_shows_env_and_args() {
        let mut cmd = Command::new("cargo");
        cmd.args(["test", "-p", "hv-tests"])
            .env("PARTITA_IMAGE", "/tmp/my image.bin");
        assert_eq!(
            display(&cmd),
            "PARTITA_IMAGE='/tmp/my image.bin' cargo test -p hv-tests"
        );
    }

    #[test]
    fn failures_are_typed() {
        let err = run(&mut Command::new("/nonexistent/partita-xtask-test"))
            .expect_err("a missing program cannot start");
        assert!(matches!(err, ProcessError::Spawn { .. }), "{err}");
        let err = run(Command::new("sh").args(["-c", "exit 3"])).expect_err("exit 3 is a failure");
        assert!(matches!(err, ProcessError::Failed { .. }), "{err}");
        assert!(err.to_string().contains("sh -c 'exit 3'"), "{err}");
    }
}
