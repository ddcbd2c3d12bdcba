//! Fetching Debian's arm64 kernel (Image + modules) and busybox-static once
//! into a cache directory, through a private apt configuration.
//!
//! Layout under `CACHE/debian-arm64/`: `apt/` (private apt state), `root/`
//! (both packages unpacked with `dpkg-deb -x`, minus the vmlinuz), `Image`
//! (the checked, uncompressed kernel) and `stamp` (what was fetched). While
//! the stamp is present and matches the pins below, nothing is downloaded.

use std::fs;
use std::path::{Path, PathBuf};

use crate::apt::{self, PrivateApt, Stanza};
use crate::error::GuestImgError;
use crate::process::DPKG_DEB;
use crate::stamp::{read_stamp, write_stamp};
use crate::{depmod, human_size, image, version};

/// The kernel package fetched: the unsigned build of bookworm-backports'
/// 6.12 kernel, the newest when this crate was written.
pub const PINNED_KERNEL_PACKAGE: &str = "linux-image-6.12.95+deb12-arm64-unsigned";
/// The exact version of [`PINNED_KERNEL_PACKAGE`]. If the archive no longer
/// has it (backports keeps only the newest), the newest kernel is used and a
/// warning says so.
pub const PINNED_KERNEL_VERSION: &str = "6.12.95-1~bpo12+1";
/// The exact busybox-static version fetched (same fallback rule).
pub const PINNED_BUSYBOX_VERSION: &str = "1:1.35.0-4+deb12u1+b1";

/// The metapackage whose Depends names the newest kernel.
const KERNEL_META: &str = "linux-image-arm64";
/// The static busybox package.
const BUSYBOX: &str = "busybox-static";
/// Subdirectory of the cache this crate owns.
const SUBDIR: &str = "debian-arm64";

/// The kernel and busybox in the cache, ready for [`crate::build_initramfs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelArtifacts {
    /// The kernel release (`uname -r`), e.g. `6.12.95+deb12-arm64`.
    pub release: String,
    /// The Debian package the kernel came from.
    pub kernel_package: String,
    /// That package's version.
    pub kernel_version: String,
    /// The uncompressed arm64 `Image`, for QEMU's `-kernel` or a hypervisor.
    pub image: PathBuf,
    /// `.../lib/modules/RELEASE`, with a `modules.dep`.
    pub modules_dir: PathBuf,
    /// The static arm64 busybox binary.
    pub busybox: PathBuf,
    /// busybox-static's package version.
    pub busybox_version: String,
}

/// Makes sure Debian's arm64 kernel Image, its modules and a static arm64
/// busybox are in `cache` (e.g. `target/guest-cache`), downloading them the
/// first time. The host's apt and dpkg state are not touched.
pub fn debian_kernel(cache: &Path) -> Result<KernelArtifacts, GuestImgError> {
    fs::create_dir_all(cache).map_err(GuestImgError::io("create", cache))?;
    let cache = cache
        .canonicalize()
        .map_err(GuestImgError::io("resolve", cache))?;
    let dir = cache.join(SUBDIR);
    if let Some(found) = read_stamp(&dir) {
        return Ok(found);
    }
    fetch(&dir)
}

/// Downloads, unpacks and checks everything, then writes the stamp.
fn fetch(dir: &Path) -> Result<KernelArtifacts, GuestImgError> {
    let apt = PrivateApt::for_fetch(dir)?;
    let kernel = choose(
        &apt,
        PINNED_KERNEL_PACKAGE,
        PINNED_KERNEL_VERSION,
        newest_kernel,
    )?;
    let busybox = choose(&apt, BUSYBOX, PINNED_BUSYBOX_VERSION, |apt| {
        newest(apt, BUSYBOX)
    })?;

    let root_new = dir.join("root.new");
    fresh_dir(&root_new)?;
    for pkg in [&kernel, &busybox] {
        let spec = format!("{}:arm64={}", pkg.package, pkg.version);
        let deb = apt.download(&spec, &dir.join("download"))?;
        let size = fs::metadata(&deb)
            .map_err(GuestImgError::io("stat", &deb))?
            .len();
        eprintln!("guestimg: downloaded {spec} ({})", human_size(size));
        let mut cmd = DPKG_DEB.command();
        cmd.arg("-x").arg(&deb).arg(&root_new);
        DPKG_DEB.run(&mut cmd)?;
        fs::remove_file(&deb).map_err(GuestImgError::io("remove", &deb))?;
    }

    let (release, vmlinuz) = find_vmlinuz(&root_new)?;
    let data = fs::read(&vmlinuz).map_err(GuestImgError::io("read", &vmlinuz))?;
    let img = image::to_image(data).map_err(|e| GuestImgError::invalid(&vmlinuz, e))?;
    let image_path = dir.join("Image");
    fs::write(&image_path, &img).map_err(GuestImgError::io("write", &image_path))?;
    fs::remove_file(&vmlinuz).map_err(GuestImgError::io("remove", &vmlinuz))?;
    eprintln!(
        "guestimg: kernel {release}: Image {} ({})",
        image_path.display(),
        human_size(img.len() as u64)
    );

    let modules_rel = first_existing(&root_new, &["lib/modules", "usr/lib/modules"], &release)?;
    let busybox_rel = first_existing(&root_new, &["bin", "usr/bin"], "busybox")?;
    let modules_new = root_new.join(&modules_rel);
    if !modules_new.join("modules.dep").exists() {
        let n = depmod::generate(&modules_new)?;
        eprintln!("guestimg: wrote modules.dep for {n} modules");
    }

    let root = dir.join("root");
    if root.exists() {
        fs::remove_dir_all(&root).map_err(GuestImgError::io("remove", &root))?;
    }
    fs::rename(&root_new, &root).map_err(GuestImgError::io("rename", &root_new))?;
    let found = KernelArtifacts {
        release,
        kernel_package: kernel.package,
        kernel_version: kernel.version,
        image: image_path,
        modules_dir: root.join(modules_rel),
        busybox: root.join(busybox_rel),
        busybox_version: busybox.version,
    };
    write_stamp(dir, &found)?;
    Ok(found)
}

/// The pinned `package` `version` if the archive has it, else `fallback`'s
/// choice, with a warning.
fn choose(
    apt: &PrivateApt,
    package: &str,
    version: &str,
    fallback: impl FnOnce(&PrivateApt) -> Result<Stanza, GuestImgError>,
) -> Result<Stanza, GuestImgError> {
    if let Some(s) = apt
        .show(package)?
        .into_iter()
        .find(|s| s.version == version)
    {
        eprintln!(
            "guestimg: found the pinned {} {} ({})",
            s.package,
            s.version,
            human_size(s.size)
        );
        return Ok(s);
    }
    let s = fallback(apt)?;
    eprintln!(
        "guestimg: warning: the pinned {package} {version} is no longer in the archive; \
         using the newest, {} {} ({}). Update the PINNED_* constants in tools/guestimg/src/kernel.rs.",
        s.package,
        s.version,
        human_size(s.size)
    );
    Ok(s)
}

/// The newest version of `package`.
fn newest(apt: &PrivateApt, package: &str) -> Result<Stanza, GuestImgError> {
    apt.show(package)?
        .into_iter()
        .max_by(|a, b| version::compare(&a.version, &b.version))
        .ok_or_else(|| GuestImgError::PackageNotFound(package.to_owned()))
}

/// The newest `linux-image-6.*-arm64`, as named by the metapackage's
/// Depends, preferring its `-unsigned` build.
fn newest_kernel(apt: &PrivateApt) -> Result<Stanza, GuestImgError> {
    let meta = newest(apt, KERNEL_META)?;
    let image = apt::depends_names(&meta.depends)
        .find(|n| n.starts_with("linux-image-6.") && n.ends_with("-arm64"))
        .ok_or_else(|| {
            GuestImgError::PackageNotFound(format!(
                "linux-image-6.*-arm64 (Depends of {KERNEL_META} {})",
                meta.version
            ))
        })?
        .to_owned();
    newest(apt, &format!("{image}-unsigned")).or_else(|_| newest(apt, &image))
}

/// Removes `dir` if present and creates it empty.
fn fresh_dir(dir: &Path) -> Result<(), GuestImgError> {
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(GuestImgError::io("remove", dir))?;
    }
    fs::create_dir_all(dir).map_err(GuestImgError::io("create", dir))
}

/// The single `boot/vmlinuz-RELEASE` under `root`: (release, path).
fn find_vmlinuz(root: &Path) -> Result<(String, PathBuf), GuestImgError> {
    let boot = root.join("boot");
    let mut found = Vec::new();
    for entry in fs::read_dir(&boot).map_err(GuestImgError::io("read", &boot))? {
        let entry = entry.map_err(GuestImgError::io("read", &boot))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(release) = name.strip_prefix("vmlinuz-") {
            found.push((release.to_owned(), entry.path()));
        }
    }
    match <[_; 1]>::try_from(found) {
        Ok([one]) => Ok(one),
        Err(found) => Err(GuestImgError::invalid(
            boot,
            format!("expected one vmlinuz-*, found {}", found.len()),
        )),
    }
}

/// The first of `parents/name` that exists under `root`, relative to `root`.
fn first_existing(root: &Path, parents: &[&str], name: &str) -> Result<PathBuf, GuestImgError> {
    parents
        .iter()
        .map(|p| Path::new(p).join(name))
        .find(|rel| root.join(rel).exists())
        .ok_or_else(|| {
            GuestImgError::invalid(root, format!("no {name} in any of {}", parents.join(", ")))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails when the archive has moved on: time to update the pins.
    #[test]
    #[ignore = "fetches the arm64 package lists (about 9 MB) from deb.debian.org"]
    fn pins_are_the_newest() {
        let dir = crate::test_util::temp_dir("apt");
        let apt = PrivateApt::create(&dir).unwrap();
        apt.update().unwrap();
        let kernel = newest_kernel(&apt).unwrap();
        assert_eq!(
            (kernel.package.as_str(), kernel.version.as_str()),
            (PINNED_KERNEL_PACKAGE, PINNED_KERNEL_VERSION)
        );
        assert_eq!(
            newest(&apt, BUSYBOX).unwrap().version,
            PINNED_BUSYBOX_VERSION
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
