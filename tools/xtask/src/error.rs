//! The error every task returns: one variant per module that can fail.

use std::path::PathBuf;

use crate::image::ImageError;
use crate::prereq::PrereqError;
use crate::process::ProcessError;

/// Why a task failed.
#[derive(Debug, thiserror::Error)]
pub enum XtaskError {
    /// A prerequisite is missing and was not installed.
    #[error(transparent)]
    Prereq(#[from] PrereqError),
    /// A command (cargo, QEMU) could not run or failed.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// The ELF could not be turned into a raw image.
    #[error("cannot make a raw image from {elf}: {source}")]
    Image {
        /// The ELF file.
        elf: PathBuf,
        /// What went wrong.
        #[source]
        source: ImageError,
    },
    /// A guest configuration is invalid (every problem, one per line).
    #[error("invalid guest configuration:\n{0}")]
    Config(String),
    /// A guest payload could not be assembled.
    #[error("cannot build the guest payload: {0}")]
    Payload(String),
    /// A file operation failed.
    #[error("cannot {what} {}: {source}", .path.display())]
    Io {
        /// The operation.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A board or scenario definition is unusable, or a HIL report could not be written.
    #[error(transparent)]
    Hil(#[from] hil::HilError),
    /// A HIL run finished with a failed verdict.
    #[error("HIL run {verdict} (report: {})", .report.display())]
    HilFailed {
        /// `FAILED: reason`.
        verdict: String,
        /// The text report.
        report: PathBuf,
    },
    /// `cargo xtask bench` could not measure.
    #[error("bench: {0}")]
    Bench(String),
    /// `cargo xtask bench --peer` could not measure the peer.
    #[error("bench --peer: {0}")]
    Peer(#[from] crate::bench::peer::PeerError),
    /// A stage of `cargo xtask test` failed.
    #[error("stage `{stage}` failed: {source}")]
    Stage {
        /// The stage's name.
        stage: &'static str,
        /// What went wrong.
        #[source]
        source: Box<XtaskError>,
    },
}

impl XtaskError {
    /// A file-operation error.
    pub fn io(what: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        XtaskError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }

    /// A configuration error from every problem found.
    pub fn config(errors: Vec<guestcfg::ConfigError>) -> Self {
        let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
        XtaskError::Config(lines.join("\n"))
    }
}
