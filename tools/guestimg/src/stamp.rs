//! The cache stamp: a small `key=value` file recording what
//! [`debian_kernel`](crate::debian_kernel) fetched, so later calls use the
//! cache without any network access. It also records the pins it was
//! fetched under: changing the `PINNED_*` constants fetches again.

use std::fs;
use std::path::Path;

use crate::error::GuestImgError;
use crate::kernel::{
    KernelArtifacts, PINNED_BUSYBOX_VERSION, PINNED_KERNEL_PACKAGE, PINNED_KERNEL_VERSION,
};

/// Version of the stamp file's format.
const STAMP_FORMAT: &str = "1";

/// Writes the stamp that makes later calls skip the network.
pub(crate) fn write_stamp(dir: &Path, k: &KernelArtifacts) -> Result<(), GuestImgError> {
    let rel = |p: &Path| p.strip_prefix(dir).unwrap_or(p).display().to_string();
    let text = format!(
        "# guestimg cache stamp: delete this file to fetch again\n\
         format={STAMP_FORMAT}\n\
         pinned={PINNED_KERNEL_PACKAGE}={PINNED_KERNEL_VERSION} busybox={PINNED_BUSYBOX_VERSION}\n\
         release={}\nkernel_package={}\nkernel_version={}\n\
         image={}\nmodules_dir={}\nbusybox={}\nbusybox_version={}\n",
        k.release,
        k.kernel_package,
        k.kernel_version,
        rel(&k.image),
        rel(&k.modules_dir),
        rel(&k.busybox),
        k.busybox_version,
    );
    let path = dir.join("stamp");
    fs::write(&path, text).map_err(GuestImgError::io("write", &path))
}

/// The artifacts recorded by a stamp whose pins match this build and whose
/// files are all there; `None` means "fetch".
pub(crate) fn read_stamp(dir: &Path) -> Option<KernelArtifacts> {
    let text = fs::read_to_string(dir.join("stamp")).ok()?;
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_owned)
    };
    let pins =
        format!("{PINNED_KERNEL_PACKAGE}={PINNED_KERNEL_VERSION} busybox={PINNED_BUSYBOX_VERSION}");
    if get("format")? != STAMP_FORMAT || get("pinned")? != pins {
        eprintln!("guestimg: cache stamp is from other pins: fetching again");
        return None;
    }
    let found = KernelArtifacts {
        release: get("release")?,
        kernel_package: get("kernel_package")?,
        kernel_version: get("kernel_version")?,
        image: dir.join(get("image")?),
        modules_dir: dir.join(get("modules_dir")?),
        busybox: dir.join(get("busybox")?),
        busybox_version: get("busybox_version")?,
    };
    let complete = found.image.is_file()
        && found.busybox.is_file()
        && found.modules_dir.join("modules.dep").is_file();
    if !complete {
        eprintln!(
            "guestimg: cache in {} is incomplete: fetching again",
            dir.display()
        );
        return None;
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trip() {
        let dir = crate::test_util::temp_dir("stamp");
        let k = KernelArtifacts {
            release: "6.12.95+deb12-arm64".into(),
            kernel_package: PINNED_KERNEL_PACKAGE.into(),
            kernel_version: PINNED_KERNEL_VERSION.into(),
            image: dir.join("Image"),
            modules_dir: dir.join("root/lib/modules/6.12.95+deb12-arm64"),
            busybox: dir.join("root/bin/busybox"),
            busybox_version: PINNED_BUSYBOX_VERSION.into(),
        };
        write_stamp(&dir, &k).unwrap();
        assert_eq!(read_stamp(&dir), None, "files missing: not complete");
        fs::create_dir_all(&k.modules_dir).unwrap();
        fs::create_dir_all(k.busybox.parent().unwrap()).unwrap();
        for f in [&k.image, &k.busybox, &k.modules_dir.join("modules.dep")] {
            fs::write(f, b"x").unwrap();
        }
        assert_eq!(read_stamp(&dir), Some(k));
        let stale = fs::read_to_string(dir.join("stamp"))
            .unwrap()
            .replace(PINNED_KERNEL_VERSION, "6.12.1-1~bpo12+1");
        fs::write(dir.join("stamp"), stale).unwrap();
        assert_eq!(read_stamp(&dir), None, "other pins: fetch again");
        fs::remove_dir_all(&dir).unwrap();
    }
}
