//! Running host tools (`apt-get`, `apt-cache`, `dpkg-deb`) with errors that
//! say which command failed and why, or which package provides a missing
//! tool.

use std::io;
use std::process::{Command, Output};

use crate::error::GuestImgError;

/// A host program and the Debian package that provides it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tool {
    /// Program name, looked up in `PATH`.
    pub name: &'static str,
    /// Debian package to install when it is missing.
    pub package: &'static str,
}

/// `apt-get`, for `update` and `download`.
pub(crate) const APT_GET: Tool = Tool {
    name: "apt-get",
    package: "apt",
};
/// `apt-cache`, for `show`.
pub(crate) const APT_CACHE: Tool = Tool {
    name: "apt-cache",
    package: "apt",
};
/// `dpkg-deb`, to unpack `.deb` files without touching the host's dpkg state.
pub(crate) const DPKG_DEB: Tool = Tool {
    name: "dpkg-deb",
    package: "dpkg",
};

/// How much of a failing command's stderr goes into the error.
const STDERR_TAIL: usize = 4000;

impl Tool {
    /// A [`Command`] for this tool, with a C locale so its output parses.
    pub(crate) fn command(&self) -> Command {
        let mut cmd = Command::new(self.name);
        cmd.env("LC_ALL", "C");
        cmd
    }

    /// Runs `cmd` (made by [`Tool::command`]) to completion and returns its
    /// stdout; a non-zero exit is an error carrying stderr.
    pub(crate) fn run(&self, cmd: &mut Command) -> Result<String, GuestImgError> {
        let output = cmd.output().map_err(|e| self.spawn_error(cmd, e))?;
        check(cmd, &output)?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Runs `cmd` and returns its whole output whatever the exit status.
    pub(crate) fn output(&self, cmd: &mut Command) -> Result<Output, GuestImgError> {
        cmd.output().map_err(|e| self.spawn_error(cmd, e))
    }

    /// The error for a command that could not be started.
    fn spawn_error(&self, cmd: &Command, e: io::Error) -> GuestImgError {
        if e.kind() == io::ErrorKind::NotFound {
            GuestImgError::MissingTool {
                tool: self.name.to_owned(),
                package: self.package,
            }
        } else {
            GuestImgError::CommandFailed {
                command: render(cmd),
                status: "could not start".to_owned(),
                stderr: e.to_string(),
            }
        }
    }
}

/// Turns a non-zero exit of `cmd` into [`GuestImgError::CommandFailed`].
pub(crate) fn check(cmd: &Command, output: &Output) -> Result<(), GuestImgError> {
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr = stderr.trim();
    let start = stderr
        .char_indices()
        .map(|(i, _)| i)
        .find(|&i| stderr.len() - i <= STDERR_TAIL)
        .unwrap_or(stderr.len());
    Err(GuestImgError::CommandFailed {
        command: render(cmd),
        status: output.status.to_string(),
        stderr: stderr[start..].to_owned(),
    })
}

/// `cmd` as a shell-like line, with its environment additions in front.
pub(crate) fn render(cmd: &Command) -> String {
    let mut parts: Vec<String> = cmd
        .get_envs()
        .filter(|(k, _)| *k != "LC_ALL")
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_string_lossy(), v?.to_string_lossy())))
        .collect();
    parts.push(cmd.get_program().to_string_lossy().into_owned());
    parts.extend(cmd.get_args().map(|a| quote(&a.to_string_lossy())));
    parts.join(" ")
}

/// Quotes a word for display if it contains shell-special characters.
fn quote(word: &str) -> String {
    let plain = word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./:=+~,@%".contains(c));
    if plain && !word.is_empty() {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tool_names_the_package() {
        let tool = Tool {
            name: "guestimg-no-such-tool",
            package: "no-such-package",
        };
        let err = tool.run(&mut tool.command()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("guestimg-no-such-tool"), "{msg}");
        assert!(msg.contains("apt-get install no-such-package"), "{msg}");
    }

    #[test]
    fn failure_carries_command_and_stderr() {
        let tool = Tool {
            name: "sh",
            package: "dash",
        };
        let mut cmd = tool.command();
        cmd.args(["-c", "echo oops >&2; exit 3"]);
        match tool.run(&mut cmd).unwrap_err() {
            GuestImgError::CommandFailed {
                command, stderr, ..
            } => {
                assert_eq!(command, "sh -c 'echo oops >&2; exit 3'");
                assert_eq!(stderr, "oops");
            }
            other => panic!("unexpected {other}"),
        }
    }
}
