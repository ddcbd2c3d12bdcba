//! The errors of the host tool: [`ConfigError`] (a problem in a TOML file,
//! located by file, line, column and key path) and [`BuildError`] (building
//! the bundle).

use std::fmt;
use std::io;
use std::path::PathBuf;

use hypervisor::config::{BundleError, Problem};
use hypervisor::fdt::DtError;

/// A 1-based line and column (in characters) in a TOML file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

/// What is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// The file cannot be read.
    #[error("cannot read the file: {0}")]
    Read(#[source] io::Error),
    /// TOML syntax, an unknown key, a missing key or a value of the wrong
    /// type (the message is the `toml` crate's).
    #[error("{0}")]
    Toml(String),
    /// A memory size that is neither a number of bytes nor `<n>K|M|G|T`.
    #[error("{0:?} is not a size (use a number of bytes or K/M/G)")]
    BadSize(String),
    /// A size that does not fit in 64 bits.
    #[error("{0:?} is too large")]
    SizeOverflow(String),
    /// A negative number where a size or address is expected.
    #[error("{0} is negative")]
    Negative(i64),
    /// An empty kernel or initrd path.
    #[error("the path is empty")]
    EmptyPath,
    /// A kernel or initrd file that does not exist.
    #[error("file {} does not exist (paths are relative to the TOML file)", .0.display())]
    MissingFile(PathBuf),
    /// An `@...` token that is not known.
    #[error("unknown token {token:?}; use a path or {expected:?}")]
    UnknownToken {
        /// The token.
        token: String,
        /// The token that would fit.
        expected: &'static str,
    },
    /// A known token used for the wrong part (`@debian-kernel` as initrd).
    #[error("{token:?} cannot be used here; use a path or {expected:?}")]
    WrongToken {
        /// The token.
        token: String,
        /// The token that would fit.
        expected: &'static str,
    },
    /// A rule of [`hypervisor::config::validate()`] is broken.
    #[error("{0}")]
    Invalid(Problem),
    /// The board's device tree blob cannot be used.
    #[error("the board's device tree is unusable: {0}")]
    BadBoard(DtError),
}

/// A problem in a configuration file.
#[derive(Debug)]
pub struct ConfigError {
    /// The TOML file.
    pub file: PathBuf,
    /// Where in it, when known.
    pub position: Option<Position>,
    /// The key path (`guest[0].memory.size`), when known.
    pub key: Option<String>,
    /// What is wrong.
    pub kind: ErrorKind,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(p) = self.position {
            write!(f, ":{}:{}", p.line, p.column)?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.kind)
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Read(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a bundle could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The caller's resolver could not provide a kernel or initrd.
    #[error("guest {guest:?}: cannot get the {part} ({source_name}): {message}")]
    Resolve {
        /// The guest's name.
        guest: String,
        /// `"kernel"` or `"initrd"`.
        part: &'static str,
        /// The source as written (`@debian-kernel`, a path).
        source_name: String,
        /// The resolver's error.
        message: String,
    },
    /// The bundle encoder refused the guests.
    #[error("cannot build the bundle: {0}")]
    Bundle(BundleError),
}
