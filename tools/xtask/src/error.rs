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
