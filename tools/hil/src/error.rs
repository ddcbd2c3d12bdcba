//! Errors: a definition file that cannot be used ([`LoadError`]), a run on a
//! board that did not go as the scenario says ([`Failure`]), and the runner's
//! own problems ([`HilError`]).
//!
//! A [`Failure`] is a verdict, written into the report; a [`HilError`] means
//! no trustworthy report could be produced at all.

use std::io;
use std::path::PathBuf;

/// A board or scenario file that cannot be read, parsed or accepted.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file is not valid TOML or does not match the schema (the message
    /// from the TOML parser names the line and column).
    #[error("{}: {message}", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The file parses but breaks rules of the schema: every problem found.
    #[error("{}: {}", .path.display(), .problems.join("; "))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// One entry per problem, each naming its key.
        problems: Vec<String>,
    },
    /// A name given on the command line matches no file.
    #[error("no {what} named `{name}` (looked for {}); known: {}", .path.display(), .known.join(", "))]
    Unknown {
        /// "board" or "scenario".
        what: &'static str,
        /// The name asked for.
        name: String,
        /// The file that would have matched.
        path: PathBuf,
        /// The names that exist.
        known: Vec<String>,
    },
}

/// Why a run on a board failed: the verdict in the report.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Failure {
    /// Neither the autoboot message nor the U-Boot prompt appeared in time.
    #[error("no U-Boot prompt within {secs} s (waited for {autoboot:?} or {prompt:?})")]
    NoPrompt {
        /// How long was waited.
        secs: u64,
        /// The autoboot message looked for.
        autoboot: String,
        /// The prompt looked for.
        prompt: String,
    },
    /// A U-Boot command returned a non-zero status.
    #[error("U-Boot command `{command}` failed (status {status}): {output}")]
    CommandFailed {
        /// The command.
        command: String,
        /// `$?` after it.
        status: u32,
        /// What it printed (last lines).
        output: String,
    },
    /// A U-Boot command did not come back to the prompt in time.
    #[error("U-Boot command `{command}` did not finish within {secs} s")]
    CommandTimeout {
        /// The command.
        command: String,
        /// Its time limit.
        secs: u64,
    },
    /// `booti` returned to the prompt instead of starting the image.
    #[error("`{command}` did not start the image: {output}")]
    BootFailed {
        /// The boot command.
        command: String,
        /// What U-Boot printed.
        output: String,
    },
    /// An expectation (a scenario step or a board check) did not appear in time.
    #[error("timeout at {at} (expected {expected} within {secs} s)")]
    Timeout {
        /// "step 3", "boot check", "booti"...
        at: String,
        /// What was expected, quoted.
        expected: String,
        /// The time limit.
        secs: f64,
    },
    /// Text the scenario fails on appeared on the console.
    #[error("unexpected output at {at}: {found:?} appeared on the console")]
    Unexpected {
        /// Where the run was.
        at: String,
        /// The text that appeared.
        found: String,
    },
    /// The console closed (the board process ended, the connection dropped).
    #[error("the console closed at {at} ({reason})")]
    ConsoleClosed {
        /// Where the run was.
        at: String,
        /// Why, as far as known.
        reason: String,
    },
    /// A scenario step cannot give a guest the focus.
    #[error("cannot focus at {at}: {reason}")]
    Focus {
        /// Where the run was.
        at: String,
        /// Why.
        reason: String,
    },
    /// The console could not be opened or written.
    #[error("console {what}: {reason}")]
    Console {
        /// What was attempted.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// A power hook failed, or the board process could not be started.
    #[error("power: {0}")]
    Power(String),
    /// The files could not be delivered to the board, or do not fit its memory.
    #[error("delivery: {0}")]
    Delivery(String),
}

/// A problem of the runner itself: no report could be written.
#[derive(Debug, thiserror::Error)]
pub enum HilError {
    /// A board or scenario file is unusable.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A placeholder cannot be expanded safely.
    #[error("{0}")]
    Template(#[from] crate::template::TemplateError),
    /// A file of the run directory cannot be written.
    #[error("cannot {what} {}: {source}", .path.display())]
    Io {
        /// The operation.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl HilError {
    /// A file-operation error.
    pub fn io(what: &'static str, path: &std::path::Path, source: io::Error) -> Self {
        Self::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}
