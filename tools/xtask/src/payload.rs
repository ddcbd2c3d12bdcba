//! Guest payloads: a guest configuration (TOML) turned into the bundle the
//! hypervisor takes as its initrd. The configuration is checked against
//! the device tree of its `board` (QEMU virt's as `run` boots it, or a
//! board's upstream DTB); `@debian-kernel` and
//! `@default-initramfs` are fetched and built into the cache.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use guestcfg::Source;

use crate::error::XtaskError;
use crate::image;
use crate::prereq::TARGET;
use crate::process;
use crate::qemu;
use crate::workspace::Workspace;

/// The configuration `cargo xtask run` boots when given none.
pub const DEFAULT_CONFIG: &str = "guest-configs/qemu-virt-linux.toml";

/// Kernel modules the default initramfs loads at boot, in this order
/// (dependencies are added by the initramfs builder): the virtio-iommu
/// first, so that PCI devices waiting for their IOMMU attach as soon as
/// it registers.
pub const DEFAULT_INITRAMFS_MODULES: &[&str] = &["virtio_mmio", "virtio_iommu", "nvme", "pci_stub"];

/// The binaries of the bare-metal guest crate (`tools/bench-guest`): the
/// bench guest, the two guests of the QEMU test `tests/tests/hostile.rs`
/// and the architecture test guest of `tests/tests/arch.rs`.
pub const BARE_GUESTS: &[&str] = &["bench-guest", "hostile", "heartbeat", "archtest"];

/// The configurations of the QEMU tests with bare-metal guests (the
/// hostile-guest test, the architecture test), beside the bench's (their
/// kernels are [`BARE_GUESTS`], built first): `cargo xtask test` writes
/// their bundles next to those of guest-configs/.
pub const TEST_GUEST_CONFIGS: &[&str] = &[
    "tools/bench-guest/hostile.toml",
    "tools/bench-guest/hostile-contained.toml",
    "tools/bench-guest/hostile-icount.toml",
    "tools/bench-guest/archtest.toml",
];

/// Builds the bare-metal guest crate (its own workspace, static relocation
/// model: the top `.cargo/config.toml` asks for PIE for the hypervisor's
/// target) into `target/bench-guest`, and converts each of
/// [`BARE_GUESTS`] to `out/<name>.bin`, the kernels the configurations of
/// tools/bench-guest name. Returns each image with its load address.
pub fn build_bare_guests(ws: &Workspace, out: &Path) -> Result<Vec<(PathBuf, u64)>, XtaskError> {
    let target_dir = ws.target_dir.join("bench-guest");
    let mut cmd = ws.cargo();
    cmd.env("RUSTFLAGS", "-C relocation-model=static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .arg("build")
        .arg("--release")
        .arg("--manifest-path")
        .arg(ws.root.join("tools/bench-guest/Cargo.toml"))
        .args(["--target", TARGET])
        .arg("--target-dir")
        .arg(&target_dir);
    process::run(&mut cmd)?;
    fs::create_dir_all(out).map_err(|e| XtaskError::io("create", out, e))?;
    let mut built = Vec::new();
    for name in BARE_GUESTS {
        let elf = target_dir.join(TARGET).join("release").join(name);
        let bin = out.join(format!("{name}.bin"));
        let raw = image::convert(&elf, &bin).map_err(|source| XtaskError::Image {
            elf: elf.clone(),
            source,
        })?;
        println!(
            "bare-metal guest: {} ({} bytes at {:#x})",
            bin.display(),
            raw.bytes.len(),
            raw.base
        );
        built.push((bin, raw.base));
    }
    Ok(built)
}

/// The bare-metal guests (into `target/bench/`, where the configurations of
/// tools/bench-guest find them, and where the architecture test takes its
/// reference kernel) and the bundles of [`TEST_GUEST_CONFIGS`]; returns the
/// bundle directory.
pub fn build_test_guests(ws: &Workspace, qemu_bin: &Path) -> Result<PathBuf, XtaskError> {
    build_bare_guests(ws, &guest_image_dir(ws))?;
    for config in TEST_GUEST_CONFIGS {
        build(ws, &ws.root.join(config), qemu_bin)?;
    }
    Ok(bundle_dir(ws))
}

/// Where the bare-metal guest images go: `<target>/bench/<name>.bin` (the
/// kernels the configurations of tools/bench-guest name).
pub fn guest_image_dir(ws: &Workspace) -> PathBuf {
    ws.target_dir.join("bench")
}

/// Where bundles are written: `<target>/bundles/<config stem>.bundle`.
pub fn bundle_dir(ws: &Workspace) -> PathBuf {
    ws.target_dir.join("bundles")
}

/// The device tree of the machine `cargo xtask run` starts (4 CPUs, 1 GiB).
fn board_dtb(ws: &Workspace, qemu_bin: &Path) -> Result<Vec<u8>, XtaskError> {
    let path = bundle_dir(ws).join("qemu-virt.dtb");
    fs::create_dir_all(bundle_dir(ws)).map_err(|e| XtaskError::io("create", &bundle_dir(ws), e))?;
    let mut cmd = Command::new(qemu_bin);
    cmd.args([
        "-M",
        &format!("{},dumpdtb={}", qemu::MACHINE, path.display()),
    ])
    .args([
        "-cpu",
        qemu::CPU,
        "-smp",
        "4",
        "-m",
        "1G",
        "-display",
        "none",
    ]);
    process::run(&mut cmd)?;
    fs::read(&path).map_err(|e| XtaskError::io("read", &path, e))
}

/// The device tree of the board `file` names: QEMU virt's (dumped) for
/// `qemu-virt` or no name, else the board's upstream DTB.
fn dtb_for(
    ws: &Workspace,
    file: &guestcfg::ConfigFile,
    qemu_bin: &Path,
) -> Result<Vec<u8>, XtaskError> {
    match file.board.as_deref() {
        None | Some("qemu-virt") => board_dtb(ws, qemu_bin),
        Some(name) => {
            let dtb = guestcfg::board_dtb(name).ok_or_else(|| {
                let known: Vec<&str> = guestcfg::BOARD_DTBS.iter().map(|(b, _)| *b).collect();
                XtaskError::Payload(format!(
                    "{}: board {name:?} has no device tree to check against (known: qemu-virt, {})",
                    file.path.display(),
                    known.join(", ")
                ))
            })?;
            let path = ws.root.join(guestcfg::BOARD_DTB_DIR).join(dtb);
            fs::read(&path).map_err(|e| XtaskError::io("read", &path, e))
        }
    }
}

/// Builds the bundle for `config`; returns its path.
pub fn build(ws: &Workspace, config: &Path, qemu_bin: &Path) -> Result<PathBuf, XtaskError> {
    let file = guestcfg::load(config).map_err(XtaskError::config)?;
    let dtb = dtb_for(ws, &file, qemu_bin)?;
    guestcfg::check_against_board(&file, &dtb).map_err(XtaskError::config)?;
    let cache = ws.target_dir.join("guest-cache");
    let mut kernel: Option<guestimg::KernelArtifacts> = None;
    let mut artifacts = || -> Result<guestimg::KernelArtifacts, String> {
        if kernel.is_none() {
            kernel = Some(guestimg::debian_kernel(&cache).map_err(|e| e.to_string())?);
        }
        kernel.clone().ok_or_else(|| "no kernel".to_string())
    };
    let initramfs = cache.join("initramfs-default.cpio.gz");
    let bytes = guestcfg::build_bundle(&file, |source: &Source| -> Result<Vec<u8>, String> {
        match source {
            Source::File(path) => fs::read(path).map_err(|e| format!("{}: {e}", path.display())),
            Source::DebianKernel => {
                let k = artifacts()?;
                fs::read(&k.image).map_err(|e| format!("{}: {e}", k.image.display()))
            }
            Source::DefaultInitramfs => {
                let k = artifacts()?;
                let spec = guestimg::InitramfsSpec {
                    modules: DEFAULT_INITRAMFS_MODULES
                        .iter()
                        .map(|m| m.to_string())
                        .collect(),
                    extra_init: String::new(),
                };
                guestimg::build_initramfs(&k, &spec, &initramfs).map_err(|e| e.to_string())?;
                fs::read(&initramfs).map_err(|e| format!("{}: {e}", initramfs.display()))
            }
        }
    })
    .map_err(|e| XtaskError::Payload(e.to_string()))?;
    let stem = config
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "guest".into());
    let dir = bundle_dir(ws);
    fs::create_dir_all(&dir).map_err(|e| XtaskError::io("create", &dir, e))?;
    let out = dir.join(format!("{stem}.bundle"));
    fs::write(&out, &bytes).map_err(|e| XtaskError::io("write", &out, e))?;
    println!("bundle: {} ({} bytes)", out.display(), bytes.len());
    Ok(out)
}

/// Builds a bundle for every `*.toml` in guest-configs/; returns the directory.
pub fn build_all(ws: &Workspace, qemu_bin: &Path) -> Result<PathBuf, XtaskError> {
    let dir = ws.root.join("guest-configs");
    let mut configs: Vec<PathBuf> = fs::read_dir(&dir)
        .map_err(|e| XtaskError::io("read", &dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    configs.sort();
    for c in &configs {
        build(ws, c, qemu_bin)?;
    }
    Ok(bundle_dir(ws))
}
