//! Harness errors. Their `Display` (and `Debug`, which libtest prints when a
//! test returns `Err`) carries everything needed to understand a failure
//! without re-running: what was expected, the command line, the transcript.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// The evidence attached to a failure: the command and everything it printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Report {
    /// The command line, shell-quoted.
    pub command: String,
    /// The whole console transcript (stdout and stderr), lossily decoded.
    pub transcript: String,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "command: {}", self.command)?;
        writeln!(
            f,
            "----- console transcript ({} bytes) -----",
            self.transcript.len()
        )?;
        f.write_str(&self.transcript)?;
        if !self.transcript.is_empty() && !self.transcript.ends_with('\n') {
            writeln!(f)?;
        }
        write!(f, "----- end of console transcript -----")
    }
}

impl fmt::Debug for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a QEMU test failed.
#[derive(thiserror::Error)]
pub enum HarnessError {
    /// `PARTITA_IMAGE` is not set.
    #[error(
        "PARTITA_IMAGE is not set: the QEMU tests need a built image. Run them with `cargo xtask test` \
         (it builds the image and sets PARTITA_IMAGE and PARTITA_QEMU), or set PARTITA_IMAGE to the \
         image from `cargo xtask build`"
    )]
    ImageNotSet,
    /// Something a test needs from `cargo xtask test` is missing.
    #[error("{0}")]
    Setup(String),
    /// `PARTITA_IMAGE` names a file that does not exist.
    #[error("PARTITA_IMAGE={}: no such file; run `cargo xtask build` or `cargo xtask test`", .0.display())]
    ImageMissing(PathBuf),
    /// The process could not be started.
    #[error("could not start `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// What was expected did not happen in time.
    #[error("timed out after {:.1} s waiting for {expected}\n{report}", .waited.as_secs_f64())]
    Timeout {
        /// What was expected.
        expected: String,
        /// How long was waited.
        waited: Duration,
        /// Command and transcript.
        report: Report,
    },
    /// The process exited (or closed its output) before what was expected happened.
    #[error("the process ended ({status}) while waiting for {expected}\n{report}")]
    Exited {
        /// What was expected.
        expected: String,
        /// How it ended.
        status: String,
        /// Command and transcript.
        report: Report,
    },
    /// Output appeared that should not have.
    #[error("unexpected output: found {found:?}, which must not appear\n{report}")]
    Unexpected {
        /// The text that appeared.
        found: String,
        /// Command and transcript.
        report: Report,
    },
    /// A check made by the test on what it saw failed.
    #[error("{problem}\n{report}")]
    Check {
        /// What is wrong.
        problem: String,
        /// Command and transcript.
        report: Report,
    },
    /// Writing to the console input failed.
    #[error("could not send {text:?} to the console: {source}\n{report}")]
    Send {
        /// The text.
        text: String,
        /// Why.
        #[source]
        source: io::Error,
        /// Command and transcript.
        report: Report,
    },
}

/// Same as `Display`: libtest prints a returned error with `{:?}`, and the
/// transcript must stay readable there.
impl fmt::Debug for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
