//! guestimg: a Linux guest for partita without building a kernel.
//!
//! [`debian_kernel`] fetches Debian's arm64 kernel package (Image and
//! modules) and `busybox-static` once into a cache directory, using a
//! private apt configuration so the host's package state is untouched.
//! [`build_initramfs`] then writes a small gzip'd cpio initramfs with
//! busybox, the kernel modules a test needs, and an `/init` that loads them,
//! prints [`INIT_DONE`] and runs a shell on the console.
//!
//! [`debian_packages`] does the same for any set of arm64 packages and
//! their dependencies (apt resolves them from nothing), unpacked into one
//! root; [`elf::closure`] lists the loader and libraries a program of that
//! root needs, and [`build_overlay`] writes such files as an uncompressed
//! cpio archive to append to an initramfs (the peer bench's L1 host, with
//! Debian's QEMU).
//!
//! Host tools: `apt-get`/`apt-cache` (package `apt`), `dpkg-deb` (`dpkg`)
//! and the Debian archive keyring (`debian-archive-keyring`), only for the
//! first download.

mod apt;
mod busybox;
pub mod cpio;
mod depmod;
pub mod elf;
mod error;
mod image;
mod init;
mod initramfs;
mod kernel;
mod modules;
mod overlay;
mod packages;
mod process;
mod stamp;
mod version;

pub use error::GuestImgError;
pub use init::INIT_DONE;
pub use initramfs::{InitramfsSpec, build_initramfs};
pub use kernel::{
    KernelArtifacts, PINNED_BUSYBOX_VERSION, PINNED_KERNEL_PACKAGE, PINNED_KERNEL_VERSION,
    debian_kernel,
};
pub use overlay::{OverlayFile, build_overlay};
pub use packages::{PackageSet, Unpacked, Wanted, debian_packages};

/// `bytes` for people: "88.1 MiB", "803 KiB", "12 B".
pub(crate) fn human_size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    match bytes {
        b if b >= MIB => format!("{:.1} MiB", b as f64 / MIB as f64),
        b if b >= KIB => format!("{} KiB", b.div_ceil(KIB)),
        b => format!("{b} B"),
    }
}

/// Helpers shared by the unit tests.
#[cfg(test)]
pub(crate) mod test_util {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A new empty directory under the system's temporary directory.
    pub(crate) fn temp_dir(name: &str) -> PathBuf {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("guestimg-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_sizes() {
        assert_eq!(super::human_size(12), "12 B");
        assert_eq!(super::human_size(822_236), "803 KiB");
        assert_eq!(super::human_size(92_332_276), "88.1 MiB");
    }
}
