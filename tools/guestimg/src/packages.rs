//! A user space from Debian's arm64 packages: a set of packages and
//! everything they depend on, as apt resolves it from nothing, downloaded
//! once through a private apt configuration and unpacked into one root
//! with `dpkg-deb -x` (no maintainer scripts run; nothing is installed on
//! the host).
//!
//! Layout under `CACHE/NAME/`: `apt/` (private apt state), `root/` (every
//! package unpacked) and `stamp` (the request and what apt chose). While the
//! stamp matches the request, nothing is downloaded.

use std::fs;
use std::path::{Path, PathBuf};

use crate::apt::{PrivateApt, Resolved};
use crate::error::GuestImgError;
use crate::human_size;
use crate::process::DPKG_DEB;

/// Version of the stamp's format.
const STAMP_FORMAT: &str = "1";

/// One package asked for by name, at a pinned version if the archive still
/// has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted<'a> {
    /// The package name, e.g. `qemu-system-arm`.
    pub package: &'a str,
    /// The version wanted; when the archive no longer has it, apt's choice
    /// in the target suite is taken and a warning says so.
    pub version: &'a str,
}

/// What [`debian_packages`] fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackageSet<'a> {
    /// The cache subdirectory (e.g. `debian-arm64-peer`).
    pub name: &'a str,
    /// The suite apt prefers (`-t`), e.g. `bookworm-backports`.
    pub target_release: &'a str,
    /// The packages asked for; their dependencies come with them.
    pub packages: &'a [Wanted<'a>],
}

/// A set of packages unpacked into one root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// The root every package was unpacked into.
    pub root: PathBuf,
    /// Every package unpacked, as `NAME=VERSION`, in apt's order.
    pub packages: Vec<String>,
}

impl Unpacked {
    /// The version of `package` in the set, if it is there.
    pub fn version_of(&self, package: &str) -> Option<&str> {
        self.packages
            .iter()
            .find_map(|p| p.strip_prefix(package)?.strip_prefix('='))
    }
}

/// Makes sure the packages of `set` and their dependencies are unpacked in
/// `cache/NAME/root`, downloading them the first time.
pub fn debian_packages(cache: &Path, set: &PackageSet<'_>) -> Result<Unpacked, GuestImgError> {
    fs::create_dir_all(cache).map_err(GuestImgError::io("create", cache))?;
    let cache = cache
        .canonicalize()
        .map_err(GuestImgError::io("resolve", cache))?;
    let dir = cache.join(set.name);
    let request = request_line(set);
    if let Some(found) = read_stamp(&dir, &request) {
        return Ok(found);
    }
    let apt = PrivateApt::for_fetch(&dir)?;
    let resolved = resolve(&apt, set)?;
    let total: u64 = resolved.len() as u64;
    eprintln!(
        "guestimg: {} arm64 package(s) for {}",
        total,
        set.packages
            .iter()
            .map(|w| w.package)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let debs = apt.download_all(&resolved, &dir.join("download"))?;
    let root_new = dir.join("root.new");
    if root_new.exists() {
        fs::remove_dir_all(&root_new).map_err(GuestImgError::io("remove", &root_new))?;
    }
    fs::create_dir_all(&root_new).map_err(GuestImgError::io("create", &root_new))?;
    let mut bytes = 0;
    for deb in &debs {
        bytes += fs::metadata(deb)
            .map_err(GuestImgError::io("stat", deb))?
            .len();
        let mut cmd = DPKG_DEB.command();
        cmd.arg("-x").arg(deb).arg(&root_new);
        DPKG_DEB.run(&mut cmd)?;
    }
    let download = dir.join("download");
    fs::remove_dir_all(&download).map_err(GuestImgError::io("remove", &download))?;
    eprintln!(
        "guestimg: unpacked {} package(s) ({} downloaded) into {}",
        debs.len(),
        human_size(bytes),
        dir.join("root").display()
    );
    let root = dir.join("root");
    if root.exists() {
        fs::remove_dir_all(&root).map_err(GuestImgError::io("remove", &root))?;
    }
    fs::rename(&root_new, &root).map_err(GuestImgError::io("rename", &root_new))?;
    let found = Unpacked {
        root,
        packages: resolved
            .iter()
            .map(|r| format!("{}={}", r.package, r.version))
            .collect(),
    };
    write_stamp(&dir, &request, &found)?;
    Ok(found)
}

/// apt's resolution of the set: the pinned versions if the archive has
/// them, else (with a warning) what apt picks in the target suite.
fn resolve(apt: &PrivateApt, set: &PackageSet<'_>) -> Result<Vec<Resolved>, GuestImgError> {
    let pinned: Vec<String> = set
        .packages
        .iter()
        .map(|w| format!("{}={}", w.package, w.version))
        .collect();
    match apt.resolve(set.target_release, &pinned) {
        Ok(r) => Ok(r),
        Err(e) => {
            let names: Vec<String> = set.packages.iter().map(|w| w.package.into()).collect();
            let r = apt.resolve(set.target_release, &names)?;
            eprintln!(
                "guestimg: warning: the pinned versions ({}) did not resolve ({e}); using apt's choice in {}: {}. Update the pins.",
                pinned.join(" "),
                set.target_release,
                set.packages
                    .iter()
                    .filter_map(|w| r.iter().find(|x| x.package == w.package))
                    .map(|x| format!("{}={}", x.package, x.version))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            Ok(r)
        }
    }
}

/// The stamp's `request=` value: the suite and the pinned packages.
fn request_line(set: &PackageSet<'_>) -> String {
    let mut s = format!("-t {}", set.target_release);
    for w in set.packages {
        s.push_str(&format!(" {}={}", w.package, w.version));
    }
    s
}

/// Writes the stamp.
fn write_stamp(dir: &Path, request: &str, found: &Unpacked) -> Result<(), GuestImgError> {
    let mut text = format!(
        "# guestimg package-set stamp: delete this file to fetch again\n\
         format={STAMP_FORMAT}\nrequest={request}\n"
    );
    for p in &found.packages {
        text.push_str(&format!("package={p}\n"));
    }
    let path = dir.join("stamp");
    fs::write(&path, text).map_err(GuestImgError::io("write", &path))
}

/// The set recorded by a stamp for the same request whose root is there;
/// `None` means "fetch".
fn read_stamp(dir: &Path, request: &str) -> Option<Unpacked> {
    let text = fs::read_to_string(dir.join("stamp")).ok()?;
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
    };
    if value("format")? != STAMP_FORMAT || value("request")? != request {
        eprintln!(
            "guestimg: {} was fetched for another request: fetching again",
            dir.display()
        );
        return None;
    }
    let packages: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("package="))
        .map(str::to_owned)
        .collect();
    let root = dir.join("root");
    (root.is_dir() && !packages.is_empty()).then_some(Unpacked { root, packages })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::temp_dir;

    const SET: PackageSet<'static> = PackageSet {
        name: "set",
        target_release: "bookworm-backports",
        packages: &[Wanted {
            package: "qemu-system-arm",
            version: "1:10.0.2+ds-2+deb13u1~bpo12+1",
        }],
    };

    #[test]
    fn stamp_round_trip() {
        let dir = temp_dir("pkgstamp");
        let request = request_line(&SET);
        assert_eq!(
            request,
            "-t bookworm-backports qemu-system-arm=1:10.0.2+ds-2+deb13u1~bpo12+1"
        );
        let found = Unpacked {
            root: dir.join("root"),
            packages: vec!["libc6=2.36-9".into(), "qemu-system-arm=1:10.0.2".into()],
        };
        write_stamp(&dir, &request, &found).unwrap();
        assert_eq!(read_stamp(&dir, &request), None, "no root yet");
        fs::create_dir_all(dir.join("root")).unwrap();
        let back = read_stamp(&dir, &request).unwrap();
        assert_eq!(back, found);
        assert_eq!(back.version_of("qemu-system-arm"), Some("1:10.0.2"));
        assert_eq!(back.version_of("qemu-system"), None);
        assert_eq!(read_stamp(&dir, "-t bookworm other=1"), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// apt's real resolution of the peer's packages from the archive.
    #[test]
    #[ignore = "fetches the arm64 package lists (about 9 MB) from deb.debian.org"]
    fn resolves_qemu_from_backports() {
        let dir = temp_dir("pkgapt");
        let apt = PrivateApt::create(&dir).unwrap();
        apt.update().unwrap();
        let r = resolve(&apt, &SET).unwrap();
        let qemu = r.iter().find(|r| r.package == "qemu-system-arm").unwrap();
        assert_eq!(qemu.version, SET.packages[0].version);
        assert!(r.iter().any(|r| r.package == "libc6"));
        assert!(r.iter().any(|r| r.package == "libglib2.0-0"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
