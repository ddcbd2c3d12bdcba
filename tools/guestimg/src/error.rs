//! The crate's error type: every failure names what was being done, the
//! command or file involved, and (for missing host tools) what to install.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while fetching the kernel or building an
/// initramfs.
#[derive(Debug, thiserror::Error)]
pub enum GuestImgError {
    /// A host tool or file this crate relies on is not there.
    #[error(
        "`{tool}` is not available on this host: install the Debian package `{package}` (`apt-get install {package}`)"
    )]
    MissingTool {
        /// The program (or file) that is missing.
        tool: String,
        /// The Debian package that provides it.
        package: &'static str,
    },
    /// A host command ran but failed.
    #[error("`{command}` failed ({status}):\n{stderr}")]
    CommandFailed {
        /// The command line, as it would be typed.
        command: String,
        /// How it ended (exit status or signal).
        status: String,
        /// What it wrote to stderr (the last part, if it was long).
        stderr: String,
    },
    /// A file operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done ("read", "create", ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The private apt configuration found no such package for arm64.
    #[error("the Debian archive has no arm64 package `{0}` (in bookworm or bookworm-backports)")]
    PackageNotFound(String),
    /// A file is not what it should be (kernel Image, package layout,
    /// module, cache stamp, ...).
    #[error("{path}: {reason}")]
    Invalid {
        /// The offending file or directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A requested kernel module is neither a module nor built in.
    #[error("kernel module `{name}` is in neither modules.dep nor modules.builtin of {dir}")]
    UnknownModule {
        /// The module name as requested.
        name: String,
        /// The kernel's modules directory.
        dir: PathBuf,
    },
    /// Busybox lacks an applet the generated `/init` needs.
    #[error("busybox {path} lacks applets /init needs: {}", missing.join(", "))]
    MissingApplets {
        /// The busybox binary.
        path: PathBuf,
        /// The applets it does not have.
        missing: Vec<String>,
    },
    /// The cache directory cannot be written into an apt configuration file.
    #[error(
        "cache path {0} cannot be used in an apt configuration (it must be UTF-8 without `\"`)"
    )]
    BadCachePath(PathBuf),
}

impl GuestImgError {
    /// An [`GuestImgError::Io`] error for `path`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }

    /// An [`GuestImgError::Invalid`] error for `path`.
    pub(crate) fn invalid(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
