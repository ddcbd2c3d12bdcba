//! Where a guest's kernel or initrd comes from: a file next to the TOML, or
//! a token the caller (`cargo xtask`) resolves.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::ErrorKind;

/// The token for the Debian arm64 kernel the tools fetch.
pub const DEBIAN_KERNEL: &str = "@debian-kernel";
/// The token for the initramfs the tools build.
pub const DEFAULT_INITRAMFS: &str = "@default-initramfs";

/// Where a kernel or initrd comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// A file (the path as resolved against the TOML file's directory).
    File(PathBuf),
    /// `@debian-kernel`.
    DebianKernel,
    /// `@default-initramfs`.
    DefaultInitramfs,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::DebianKernel => f.write_str(DEBIAN_KERNEL),
            Self::DefaultInitramfs => f.write_str(DEFAULT_INITRAMFS),
        }
    }
}

/// Which image a source is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Image {
    Kernel,
    Initrd,
}

impl Image {
    /// The token that stands for this image.
    fn token(self) -> &'static str {
        match self {
            Self::Kernel => DEBIAN_KERNEL,
            Self::Initrd => DEFAULT_INITRAMFS,
        }
    }
}

/// Interprets a `kernel`/`initrd` value: a token, or a path relative to
/// `dir` that must name an existing file.
pub(crate) fn source(value: &str, dir: &Path, image: Image) -> Result<Source, ErrorKind> {
    if value.starts_with('@') {
        let expected = image.token();
        return match (value, image) {
            (DEBIAN_KERNEL, Image::Kernel) => Ok(Source::DebianKernel),
            (DEFAULT_INITRAMFS, Image::Initrd) => Ok(Source::DefaultInitramfs),
            (DEBIAN_KERNEL | DEFAULT_INITRAMFS, _) => Err(ErrorKind::WrongToken {
                token: value.into(),
                expected,
            }),
            _ => Err(ErrorKind::UnknownToken {
                token: value.into(),
                expected,
            }),
        };
    }
    if value.is_empty() {
        return Err(ErrorKind::EmptyPath);
    }
    let path = dir.join(value);
    if path.is_file() {
        Ok(Source::File(path))
    } else {
        Err(ErrorKind::MissingFile(path))
    }
}
