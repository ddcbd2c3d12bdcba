//! The peer's L1 host: Debian's arm64 kernel (KVM built in) with an
//! initramfs holding Debian's arm64 `qemu-system-aarch64` and the
//! libraries it links against, the VFIO modules, the bench guest, and an
//! `/init` that binds the outer machine's `edu` to `vfio-pci` and runs the
//! bench guest under KVM, once per [`L2Run`], printing every line to the
//! console between markers.
//!
//! The initrd is an uncompressed cpio of the user space
//! ([`guestimg::build_overlay`]) followed by the default initramfs of
//! `tools/guestimg` (busybox, the modules, the script; gzip'd): the kernel
//! unpacks both.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use guestimg::{KernelArtifacts, OverlayFile, PackageSet, Unpacked, Wanted};

use super::PeerError;

/// The Debian packages of the L1 user space: QEMU for arm64 from
/// bookworm-backports (the same QEMU release as the host's emulator) and
/// the DT tools (`fdtput` edits L2's DT).
pub const PACKAGES: PackageSet<'static> = PackageSet {
    name: "debian-arm64-peer",
    target_release: "bookworm-backports",
    packages: &[
        Wanted {
            package: "qemu-system-arm",
            version: "1:10.0.2+ds-2+deb13u1~bpo12+1",
        },
        Wanted {
            package: "device-tree-compiler",
            version: "1.6.1-4+b1",
        },
    ],
};

/// The programs taken from the unpacked packages, and where they go.
const PROGRAMS: &[(&str, &str)] = &[
    ("usr/bin/qemu-system-aarch64", "bin/qemu-system-aarch64"),
    ("usr/bin/fdtput", "bin/fdtput"),
];

/// Kernel modules the L1 script needs (with their dependencies).
pub const MODULES: &[&str] = &["vfio", "vfio_iommu_type1", "vfio_pci"];

/// Where the bench guest sits in L1.
pub const GUEST_PATH: &str = "peer/bench-guest.bin";

/// Marker lines of the L1 console (see [`script`]).
pub mod marker {
    /// `peer l1 ...`: what L1 is, once.
    pub const L1: &str = "peer l1";
    /// `peer edu ...`: the assigned function and its IOMMU group.
    pub const EDU: &str = "peer edu";
    /// `peer run NAME begin`.
    pub const RUN: &str = "peer run";
    /// `peer done`: the script finished.
    pub const DONE: &str = "peer done";
}

/// Wall-clock limit of one L2 run inside L1 (busybox `timeout`).
pub const L2_TIMEOUT_S: u32 = 900;

/// How L2 reaches QEMU's virtio-iommu.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `virtio-iommu-device` on virtio-mmio, with the DT the bare
    /// reference gets: QEMU's own (`dumpdtb` in L1) with `#iommu-cells`
    /// on its slot and an `iommu-map` on the PCIe host ([`DT_EDITS`]).
    Mmio,
    /// `virtio-iommu-pci` at L2's 00:02.0, described by QEMU's own DT (a
    /// `virtio,pci-iommu` node and an `iommu-map` on the host, no edit),
    /// as on the bare virtio-pci reference.
    Pci,
}

/// One run of the bench guest in L1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2Run {
    /// Its name on the console and in the report (`vfio`, `novfio`,
    /// `pci-vfio`, `pci-novfio`).
    pub name: &'static str,
    /// Whether the endpoint is the outer `edu`, assigned through VFIO
    /// (otherwise QEMU's own emulated `edu` in L2).
    pub vfio: bool,
    /// The virtio-iommu's transport.
    pub transport: Transport,
}

/// The four runs: on each transport, the VMM exit alone, then with the
/// assigned function.
pub const RUNS: [L2Run; 4] = [
    L2Run {
        name: "novfio",
        vfio: false,
        transport: Transport::Mmio,
    },
    L2Run {
        name: "vfio",
        vfio: true,
        transport: Transport::Mmio,
    },
    L2Run {
        name: "pci-novfio",
        vfio: false,
        transport: Transport::Pci,
    },
    L2Run {
        name: "pci-vfio",
        vfio: true,
        transport: Transport::Pci,
    },
];

/// The run of `transport` with or without VFIO.
pub fn run_of(transport: Transport, vfio: bool) -> L2Run {
    RUNS.into_iter()
        .find(|r| r.transport == transport && r.vfio == vfio)
        .unwrap_or(L2Run {
            name: "none",
            vfio,
            transport,
        })
}

/// The run made once after L1's boot and not counted: the first QEMU
/// started after boot was measured slower (null exit 16 900 instead of
/// 8 150 guest ns) while L1 finished its own start-up work.
pub const WARMUP: L2Run = L2Run {
    name: "warmup",
    vfio: false,
    transport: Transport::Mmio,
};

/// The slot QEMU gives `virtio-iommu-device` (the free virtio-mmio slot
/// with the highest address, as on the bare reference).
pub const MMIO_SLOT: &str = "/virtio_mmio@a003e00";
/// The phandle given to it (QEMU allocates its own from 0x8000 up).
pub const MMIO_PHANDLE: u32 = 0x00ff_0001;
/// Where L1 keeps the edited DT.
const DTB: &str = "/tmp/l2.dtb";

/// The `fdtput` edits of QEMU's DT for [`Transport::Mmio`]: (node,
/// property, cells), as `refdt` makes them for the bare reference
/// (endpoint ID = requester ID over the whole bus range).
pub const DT_EDITS: [(&str, &str, &[u32]); 3] = [
    (MMIO_SLOT, "#iommu-cells", &[1]),
    (MMIO_SLOT, "phandle", &[MMIO_PHANDLE]),
    (
        "/pcie@10000000",
        "iommu-map",
        &[0, MMIO_PHANDLE, 0, 0x10000],
    ),
];

/// What an L2 command line is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Write QEMU's DT to [`DTB`] and exit (no endpoint).
    DumpDtb,
    /// Run the bench guest (with the edited DT on virtio-mmio).
    Run,
}

/// The L2 QEMU arguments of `run` (after the program name), `$EDU` being
/// the shell variable holding the assigned function's address.
pub fn l2_args(run: L2Run, stage: Stage) -> Vec<String> {
    let machine = match stage {
        Stage::DumpDtb => format!("virt,gic-version=3,dumpdtb={DTB}"),
        Stage::Run => "virt,gic-version=3".into(),
    };
    let mut a: Vec<String> = vec!["-M".into(), machine];
    a.extend(
        [
            "-accel", "kvm", "-cpu", "host", "-smp", "1", "-m", "256M", "-display", "none",
            "-serial", "stdio", "-monitor", "none", "-nic", "none", "-kernel",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    a.push(format!("/{GUEST_PATH}"));
    // The virtio-iommu first on the command line: a PCI device realized
    // before it gets the bus's address space without it (a vfio-pci then
    // maps all guest RAM at start and never sees a MAP: seen with QEMU
    // 10.0's traces). The endpoint at 00:01.0, where the bare reference
    // has its NIC.
    match run.transport {
        Transport::Mmio => {
            a.extend(
                [
                    "-device",
                    "virtio-iommu-device,primary-bus=pcie.0",
                    "-global",
                    "virtio-mmio.force-legacy=false",
                    // Notifies handled in the vCPU thread's MMIO exit, as
                    // on the bare reference (with KVM, an ioeventfd would
                    // hand them to QEMU's main loop on the same CPU).
                    "-global",
                    "virtio-mmio.ioeventfd=false",
                ]
                .iter()
                .map(|s| s.to_string()),
            );
            if stage == Stage::Run {
                a.extend(["-dtb".into(), DTB.into()]);
            }
        }
        // QEMU's DT maps every other requester ID to it. No `ioeventfd`
        // property on this device type: notifies are handled in the
        // vCPU thread's MMIO exit already.
        Transport::Pci => a.extend(["-device".into(), "virtio-iommu-pci,addr=2.0".into()]),
    }
    if stage == Stage::Run {
        a.push("-device".into());
        a.push(if run.vfio {
            "vfio-pci,host=$EDU,addr=1.0".into()
        } else {
            "edu,addr=1.0".into()
        });
    }
    a
}

/// `args` as shell words (the `$EDU` one in double quotes).
fn shell(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.contains('$') {
                format!("\"{a}\"")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The script lines of one run: for virtio-mmio the DT dump and edits,
/// then the bench guest between the markers.
fn run_lines(s: &mut String, run: L2Run) {
    let _ = writeln!(s, "echo '{} {} begin'", marker::RUN, run.name);
    if run.transport == Transport::Mmio {
        let _ = writeln!(
            s,
            "rm -f {DTB}; qemu-system-aarch64 {} 2>&1 < /dev/null",
            shell(&l2_args(run, Stage::DumpDtb))
        );
        for (node, prop, cells) in DT_EDITS {
            let cells: Vec<String> = cells.iter().map(|c| format!("{c:#x}")).collect();
            let _ = writeln!(s, "fdtput -t x {DTB} {node} '{prop}' {}", cells.join(" "));
        }
    }
    let _ = writeln!(
        s,
        "timeout {L2_TIMEOUT_S} qemu-system-aarch64 {} 2>&1 < /dev/null\n\
         echo \"{} {} end status=$?\"",
        shell(&l2_args(run, Stage::Run)),
        marker::RUN,
        run.name,
    );
}

/// The `/init` text run after the modules are loaded: each [`L2Run`]
/// `reps` times, in turn.
pub fn script(reps: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"# The peer bench (cargo xtask bench --peer): L1 side.
export LD_LIBRARY_PATH=/lib/aarch64-linux-gnu:/usr/lib/aarch64-linux-gnu
echo "{l1} kernel=$(uname -r) cpus=$(grep -c ^processor /proc/cpuinfo) kvm=$(ls /dev/kvm 2>&1)"
dmesg | grep -iE 'kvm \[|arm-smmu-v3|vfio' | sed 's/^/peer dmesg /'
EDU=
for d in /sys/bus/pci/devices/*; do
	[ "$(cat $d/vendor)" = 0x1234 ] && [ "$(cat $d/device)" = 0x11e8 ] && EDU=${{d##*/}}
done
if [ -n "$EDU" ]; then
	echo vfio-pci > /sys/bus/pci/devices/$EDU/driver_override
	echo $EDU > /sys/bus/pci/drivers_probe
	echo "{edu} $EDU group=$(basename "$(readlink /sys/bus/pci/devices/$EDU/iommu_group)") driver=$(basename "$(readlink /sys/bus/pci/devices/$EDU/driver)") vfio=$(ls /dev/vfio | tr '\n' ' ')"
else
	echo "{edu} none"
fi"#,
        l1 = marker::L1,
        edu = marker::EDU,
    );
    run_lines(&mut s, WARMUP);
    for run in RUNS.iter().copied().cycle().take(RUNS.len() * reps) {
        run_lines(&mut s, run);
    }
    let _ = writeln!(s, "echo '{}'\npoweroff -f", marker::DONE);
    s
}

/// The overlay's files: each program, every file it needs, the bench guest.
fn overlay_files(user: &Unpacked, guest: &Path) -> Result<Vec<OverlayFile>, PeerError> {
    let programs: Vec<&str> = PROGRAMS.iter().map(|(p, _)| *p).collect();
    let needed = guestimg::elf::closure(&user.root, &programs, guestimg::elf::ARM64_LIB_DIRS)?;
    let mut files = Vec::new();
    for (from, to) in PROGRAMS {
        files.push(OverlayFile {
            path: (*to).into(),
            perm: 0o755,
            source: user.root.join(from),
        });
    }
    for n in needed {
        files.push(OverlayFile {
            path: n.path.to_string_lossy().into_owned(),
            perm: 0o755,
            source: n.file,
        });
    }
    files.push(OverlayFile {
        path: GUEST_PATH.into(),
        perm: 0o644,
        source: guest.to_owned(),
    });
    Ok(files)
}

/// What [`build`] made.
#[derive(Debug)]
pub struct L1Image {
    /// The kernel `Image`.
    pub kernel: PathBuf,
    /// The initrd (initramfs + overlay).
    pub initrd: PathBuf,
    /// The kernel release and package version.
    pub kernel_version: String,
    /// The QEMU package version in L1.
    pub qemu_version: String,
    /// How many packages apt resolved for the user space.
    pub packages: usize,
}

/// Fetches (once) the kernel and the user space into `cache` and writes the
/// L1 initrd to `out/l1-initrd.cpio`, with `guest` as the bench guest and
/// [`script`]`(reps)`.
pub fn build(cache: &Path, guest: &Path, out: &Path, reps: usize) -> Result<L1Image, PeerError> {
    let kernel: KernelArtifacts = guestimg::debian_kernel(cache)?;
    let user = guestimg::debian_packages(cache, &PACKAGES)?;
    let base = out.join("l1-initramfs.cpio.gz");
    let spec = guestimg::InitramfsSpec {
        modules: MODULES.iter().map(|m| m.to_string()).collect(),
        extra_init: script(reps),
    };
    guestimg::build_initramfs(&kernel, &spec, &base)?;
    let overlay = out.join("l1-overlay.cpio");
    guestimg::build_overlay(&overlay_files(&user, guest)?, &overlay)?;
    let initrd = out.join("l1-initrd.cpio");
    // The uncompressed archive first: after a gzip'd one, Linux 6.12
    // stopped with "invalid magic at start of compressed archive".
    concat(&[&overlay, &base], &initrd)?;
    Ok(L1Image {
        kernel: kernel.image.clone(),
        initrd,
        kernel_version: format!(
            "{} ({} {})",
            kernel.release, kernel.kernel_package, kernel.kernel_version
        ),
        qemu_version: user
            .version_of(PACKAGES.packages[0].package)
            .unwrap_or("?")
            .to_owned(),
        packages: user.packages.len(),
    })
}

/// Writes the concatenation of `parts` to `out`.
fn concat(parts: &[&Path], out: &Path) -> Result<(), PeerError> {
    let io = |what: &'static str, p: &Path| {
        let p = p.to_owned();
        move |e| PeerError::Io {
            what,
            path: p,
            source: e,
        }
    };
    let mut f = fs::File::create(out).map_err(io("create", out))?;
    for p in parts {
        let data = fs::read(p).map_err(io("read", p))?;
        f.write_all(&data).map_err(io("write", out))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l2_command_lines() {
        let novfio = l2_args(RUNS[0], Stage::Run).join(" ");
        assert!(novfio.starts_with("-M virt,gic-version=3 -accel kvm -cpu host -smp 1 -m 256M"));
        // The virtio-iommu before the endpoint.
        assert!(novfio.ends_with(
            "-device virtio-iommu-device,primary-bus=pcie.0 -global virtio-mmio.force-legacy=false \
             -global virtio-mmio.ioeventfd=false -dtb /tmp/l2.dtb -device edu,addr=1.0"
        ));
        let vfio = l2_args(RUNS[1], Stage::Run).join(" ");
        assert!(vfio.ends_with("-dtb /tmp/l2.dtb -device vfio-pci,host=$EDU,addr=1.0"));
        assert!(vfio.contains(&format!("-kernel /{GUEST_PATH}")));
        let dump = l2_args(RUNS[1], Stage::DumpDtb).join(" ");
        assert!(dump.starts_with("-M virt,gic-version=3,dumpdtb=/tmp/l2.dtb "));
        assert!(!dump.contains("vfio-pci") && !dump.contains("-dtb"));
        let pci = l2_args(run_of(Transport::Pci, true), Stage::Run).join(" ");
        assert!(
            pci.ends_with("-device virtio-iommu-pci,addr=2.0 -device vfio-pci,host=$EDU,addr=1.0")
        );
        assert!(!pci.contains("-dtb") && !pci.contains("virtio-mmio"));
        let pci = l2_args(run_of(Transport::Pci, false), Stage::Run).join(" ");
        assert!(pci.ends_with("-device virtio-iommu-pci,addr=2.0 -device edu,addr=1.0"));
        assert_eq!(run_of(Transport::Pci, false).name, "pci-novfio");
        assert_eq!(run_of(Transport::Mmio, true).name, "vfio");
    }

    #[test]
    fn script_binds_edu_then_runs_both() {
        let s = script(2);
        let pos = |n: &str| s.find(n).unwrap_or_else(|| panic!("{n} not in\n{s}"));
        assert!(pos("driver_override") < pos("drivers_probe"));
        assert!(pos("drivers_probe") < pos("peer run warmup begin"));
        assert!(pos("peer run warmup begin") < pos("peer run novfio begin"));
        assert!(pos("peer run novfio begin") < pos("peer run vfio begin"));
        assert!(pos("peer run vfio begin") < pos("peer run pci-novfio begin"));
        assert!(pos("peer run pci-novfio begin") < pos("peer run pci-vfio begin"));
        assert!(pos("peer run pci-vfio begin") < pos("peer done"));
        assert_eq!(s.matches("peer run vfio begin").count(), 2);
        assert_eq!(s.matches("peer run pci-vfio begin").count(), 2);
        // Only the virtio-mmio runs dump and edit a DT: warm-up + 2 x 2.
        assert_eq!(s.matches("dumpdtb=").count(), 5);
        assert!(s.rfind("peer run novfio begin") > s.find("peer run vfio begin"));
        assert!(s.contains("\"vfio-pci,host=$EDU,addr=1.0\""));
        assert!(s.contains(&format!("timeout {L2_TIMEOUT_S} qemu-system-aarch64")));
        assert!(s.contains("end status=$?"));
        assert!(s.contains(
            "fdtput -t x /tmp/l2.dtb /pcie@10000000 'iommu-map' 0x0 0xff0001 0x0 0x10000\n"
        ));
        assert!(pos("dumpdtb=/tmp/l2.dtb") < pos("'#iommu-cells' 0x1"));
    }
}
