//! A second, uncompressed cpio archive of host files to append to an
//! initramfs: the kernel unpacks concatenated archives in order, so the
//! files land beside (or over) the first archive's.
//!
//! Uncompressed because it is large (a program and its libraries) and the
//! kernel that unpacks it may run in an emulator that counts instructions:
//! copying costs a few instructions per byte, inflating far more.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::cpio::CpioWriter;
use crate::error::GuestImgError;
use crate::human_size;

/// One file of the overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayFile {
    /// Its path in the guest, relative to `/` (`bin/qemu-system-aarch64`).
    pub path: String,
    /// Permission bits (`0o755`, `0o644`).
    pub perm: u32,
    /// The host file with its bytes.
    pub source: PathBuf,
}

/// Writes `files` as an uncompressed newc archive at `out`, each parent
/// directory first (mode 0755; a directory that already exists in the
/// guest keeps its contents). Returns the archive's size.
pub fn build_overlay(files: &[OverlayFile], out: &Path) -> Result<u64, GuestImgError> {
    let mut dirs = BTreeSet::new();
    for f in files {
        let mut p = Path::new(&f.path);
        while let Some(parent) = p.parent() {
            if parent.as_os_str().is_empty() {
                break;
            }
            dirs.insert(parent.to_string_lossy().into_owned());
            p = parent;
        }
    }
    let file = fs::File::create(out).map_err(GuestImgError::io("create", out))?;
    let mut w = CpioWriter::new(BufWriter::new(file));
    let io = GuestImgError::io;
    for d in &dirs {
        w.dir(d, 0o755).map_err(io("write", out))?;
    }
    let mut seen = BTreeSet::new();
    for f in files {
        if dirs.contains(&f.path) || !seen.insert(&f.path) {
            return Err(GuestImgError::invalid(
                out,
                format!("{} is in the overlay twice", f.path),
            ));
        }
        let data = fs::read(&f.source).map_err(io("read", &f.source))?;
        w.file(&f.path, f.perm, &data).map_err(io("write", out))?;
    }
    w.finish()
        .and_then(|mut b| b.flush())
        .map_err(io("write", out))?;
    let size = fs::metadata(out).map_err(io("stat", out))?.len();
    eprintln!(
        "guestimg: overlay {} ({}, {} file(s))",
        out.display(),
        human_size(size),
        files.len()
    );
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpio::read::parse;
    use crate::test_util::temp_dir;

    #[test]
    fn parents_first_then_files() {
        let dir = temp_dir("overlay");
        fs::write(dir.join("a"), b"alpha").unwrap();
        fs::write(dir.join("b"), b"beta").unwrap();
        let files = [
            OverlayFile {
                path: "lib/x/liba.so.1".into(),
                perm: 0o644,
                source: dir.join("a"),
            },
            OverlayFile {
                path: "bin/prog".into(),
                perm: 0o755,
                source: dir.join("b"),
            },
        ];
        let out = dir.join("o.cpio");
        let size = build_overlay(&files, &out).unwrap();
        let raw = fs::read(&out).unwrap();
        assert_eq!(raw.len() as u64, size);
        let names: Vec<String> = parse(&raw).into_iter().map(|e| e.name).collect();
        assert_eq!(
            names,
            [
                "bin",
                "lib",
                "lib/x",
                "lib/x/liba.so.1",
                "bin/prog",
                "TRAILER!!!"
            ]
        );
        let twice = [files[1].clone(), files[1].clone()];
        assert!(build_overlay(&twice, &out).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
