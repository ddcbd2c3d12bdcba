//! Tests of [`build_initramfs`]: offline on a fake kernel tree, and (ignored
//! by default) on the real Debian packages.

use std::io::{Read, Write};
use std::path::Path;

use super::*;
use crate::cpio::mode;
use crate::cpio::read::{Entry, parse};
use crate::test_util::temp_dir;

/// Unpacks a gzip'd newc archive.
fn unpack(path: &Path) -> Vec<Entry> {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(fs::File::open(path).unwrap())
        .read_to_end(&mut raw)
        .unwrap();
    parse(&raw)
}

fn find<'a>(entries: &'a [Entry], name: &str) -> &'a Entry {
    entries
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no {name} in the archive"))
}

/// A kernel tree with modules c <- b <- a (a.ko.xz compressed) and a busybox
/// whose applet table has the required applets but no lspci.
fn fake_kernel(dir: &Path) -> KernelArtifacts {
    let modules_dir = dir.join("lib/modules/9.9.9-test");
    fs::create_dir_all(modules_dir.join("kernel/lib")).unwrap();
    fs::write(
        modules_dir.join("modules.dep"),
        "kernel/lib/a.ko.xz: kernel/lib/b-x.ko kernel/lib/c.ko\n\
         kernel/lib/b-x.ko: kernel/lib/c.ko\nkernel/lib/c.ko:\nkernel/lib/unused.ko:\n",
    )
    .unwrap();
    fs::write(
        modules_dir.join("modules.builtin"),
        "kernel/drivers/virtio/virtio_pci.ko\n",
    )
    .unwrap();
    let mut xz = xz2::write::XzEncoder::new(Vec::new(), 6);
    xz.write_all(b"module a").unwrap();
    fs::write(modules_dir.join("kernel/lib/a.ko.xz"), xz.finish().unwrap()).unwrap();
    fs::write(modules_dir.join("kernel/lib/b-x.ko"), b"module b").unwrap();
    fs::write(modules_dir.join("kernel/lib/c.ko"), b"module c").unwrap();
    let mut bb = b"\x7fELF junk\0".to_vec();
    let mut names = busybox::REQUIRED.to_vec();
    names.extend(["busybox", "cat", "ls"]);
    names.sort();
    for n in names {
        bb.extend_from_slice(n.as_bytes());
        bb.push(0);
    }
    bb.extend_from_slice(b"\0more junk\0");
    fs::write(dir.join("busybox"), &bb).unwrap();
    KernelArtifacts {
        release: "9.9.9-test".into(),
        kernel_package: "linux-image-test".into(),
        kernel_version: "1".into(),
        image: dir.join("Image"),
        modules_dir,
        busybox: dir.join("busybox"),
        busybox_version: "1".into(),
    }
}

#[test]
fn offline_build() {
    let dir = temp_dir("initramfs");
    let k = fake_kernel(&dir);
    let spec = InitramfsSpec {
        modules: vec!["virtio_pci".into(), "a".into()],
        extra_init: "echo extra".into(),
    };
    let out = dir.join("initramfs.cpio.gz");
    build_initramfs(&k, &spec, &out).unwrap();
    let e = unpack(&out);

    // Parents come before children.
    for (i, entry) in e.iter().enumerate() {
        if let Some((parent, _)) = entry.name.rsplit_once('/') {
            let p = e.iter().position(|x| x.name == parent).expect(parent);
            assert!(p < i, "{parent} after {}", entry.name);
        }
    }
    let console = find(&e, "dev/console");
    assert_eq!(console.mode() & mode::S_IFMT, mode::S_IFCHR);
    assert_eq!(console.rdev(), (5, 1));
    for d in ["dev", "proc", "sys", "tmp"] {
        assert_eq!(find(&e, d).mode() & mode::S_IFMT, mode::S_IFDIR, "{d}");
    }
    assert_eq!(find(&e, "bin/sh").data, b"busybox");
    assert_eq!(find(&e, "bin/insmod").data, b"busybox");
    assert!(
        !e.iter()
            .any(|x| x.name == "bin/busybox" && x.mode() & mode::S_IFMT == mode::S_IFLNK)
    );
    assert_eq!(find(&e, "bin/busybox").mode(), mode::S_IFREG | 0o755);
    assert!(find(&e, "bin/lspci").data.starts_with(b"#!/bin/sh"));
    assert_eq!(find(&e, "sbin").data, b"bin");

    let m = "lib/modules/9.9.9-test/kernel/lib";
    assert_eq!(find(&e, &format!("{m}/a.ko")).data, b"module a");
    assert_eq!(find(&e, &format!("{m}/b-x.ko")).data, b"module b");
    assert!(!e.iter().any(|x| x.name.contains("unused")));
    let dep =
        String::from_utf8(find(&e, "lib/modules/9.9.9-test/modules.dep").data.clone()).unwrap();
    assert!(
        dep.starts_with("kernel/lib/c.ko:\nkernel/lib/b-x.ko: kernel/lib/c.ko\n"),
        "{dep}"
    );

    let init = String::from_utf8(find(&e, "init").data.clone()).unwrap();
    assert_eq!(find(&e, "init").mode(), mode::S_IFREG | 0o755);
    let c = init.find(&format!("load '/{m}/c.ko'")).unwrap();
    let b = init.find(&format!("load '/{m}/b-x.ko'")).unwrap();
    let a = init.find(&format!("load '/{m}/a.ko'")).unwrap();
    assert!(c < b && b < a, "{init}");
    assert!(init.find(crate::INIT_DONE).unwrap() < init.find("echo extra").unwrap());
    assert!(init.contains("Built into 9.9.9-test: virtio_pci"));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unknown_module_is_an_error() {
    let dir = temp_dir("unknown");
    let k = fake_kernel(&dir);
    let spec = InitramfsSpec {
        modules: vec!["nope".into()],
        ..Default::default()
    };
    let err = build_initramfs(&k, &spec, &dir.join("x.cpio.gz")).unwrap_err();
    assert!(
        matches!(err, GuestImgError::UnknownModule { ref name, .. } if name == "nope"),
        "{err}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "downloads about 90 MB from deb.debian.org on first run (cached in target/guest-cache)"]
fn real_debian_kernel_with_nvme() {
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/guest-cache");
    let k = crate::debian_kernel(&cache).unwrap();
    let img = fs::read(&k.image).unwrap();
    assert_eq!(&img[0x38..0x3c], b"ARM\x64");
    let out = temp_dir("real").join("initramfs.cpio.gz");
    let spec = InitramfsSpec {
        modules: vec!["nvme".into()],
        ..Default::default()
    };
    build_initramfs(&k, &spec, &out).unwrap();
    let e = unpack(&out);
    let init = String::from_utf8(find(&e, "init").data.clone()).unwrap();
    let core = init.find("/nvme-core.ko'").unwrap();
    let nvme = init.find("/nvme.ko'").unwrap();
    assert!(core < nvme, "{init}");
    for applet in [
        "sh",
        "mount",
        "insmod",
        "poweroff",
        "cttyhack",
        "devmem",
        "sha256sum",
    ] {
        assert_eq!(
            find(&e, &format!("bin/{applet}")).data,
            b"busybox",
            "{applet}"
        );
    }
}
