//! Helpers shared by the tests that boot guests: the bundles and bare-metal
//! guest images `cargo xtask test` builds, shell commands at the guest's
//! prompt, a disk image with a known checksum, and enabling a PCI function
//! for DMA.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{HarnessError, Qemu, Session};

/// Printed by the default initramfs's `/init` once it is ready for commands.
pub const INIT_DONE: &str = "partita-guest: init done";
/// Environment variable naming the directory of the guest bundles.
pub const BUNDLES_ENV: &str = "PARTITA_BUNDLES";

/// The bundle `cargo xtask test` built for `guest-configs/<config>.toml`.
pub fn bundle(config: &str) -> Result<PathBuf, HarnessError> {
    let dir = std::env::var_os(BUNDLES_ENV).ok_or_else(|| {
        HarnessError::Setup(format!(
            "{BUNDLES_ENV} is not set: run these tests with `cargo xtask test`"
        ))
    })?;
    Ok(PathBuf::from(dir).join(format!("{config}.bundle")))
}

/// The upstream device tree blob `name` (`imx8mp-evk.dtb`, ...) kept in
/// `hypervisor/src/fdt/testdata/boards/`, a copy of the one in Debian's
/// arm64 kernel package (see that directory's README).
pub fn board_dtb(name: &str) -> Result<PathBuf, HarnessError> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../hypervisor/src/fdt/testdata/boards")
        .join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(HarnessError::Setup(format!(
            "{}: no such DTB",
            path.display()
        )))
    }
}

/// Environment variable naming the directory of the bare-metal guest
/// images (`tools/bench-guest`, raw `Image`s) `cargo xtask test` builds.
pub const GUEST_IMAGES_ENV: &str = "PARTITA_GUEST_IMAGES";

/// The bare-metal guest image `<name>.bin` that `cargo xtask test` built
/// (for a run on bare QEMU, without the hypervisor).
pub fn guest_image(name: &str) -> Result<PathBuf, HarnessError> {
    let dir = std::env::var_os(GUEST_IMAGES_ENV).ok_or_else(|| {
        HarnessError::Setup(format!(
            "{GUEST_IMAGES_ENV} is not set: run these tests with `cargo xtask test`"
        ))
    })?;
    Ok(PathBuf::from(dir).join(format!("{name}.bin")))
}

/// Shell text that reads the guest's first NVMe namespace with `md5sum`
/// once its device node exists. Linux's NVMe driver probes asynchronously
/// (the controller reset and the namespace scan run after `insmod`
/// returns), so the shell can answer before `/dev/nvme0n1` exists: after a
/// guest reboot on a loaded machine it did, and `md5sum` failed at once.
/// Waits up to 20 s, and says so when the node never came.
pub const READ_NVME: &str = "n=0; while [ ! -b /dev/nvme0n1 ] && [ $n -lt 20 ]; do sleep 1; n=$((n+1)); done; \
[ -b /dev/nvme0n1 ] || echo \"no /dev/nvme0n1 after $n s\"; md5sum /dev/nvme0n1";

/// Types `cmd` at the guest's shell and waits for `expect` in the output.
pub fn run(
    vm: &mut Session,
    cmd: &str,
    expect: &str,
    timeout: Duration,
) -> Result<(), HarnessError> {
    vm.send(&format!("{cmd}\n"))?;
    vm.expect(expect, timeout)
}

/// Writes a 4 MiB disk image of a pattern derived from `seed` into `dir`;
/// returns its path and its MD5 as `md5sum` prints it.
pub fn disk_image(dir: &Path, seed: u32) -> Result<(PathBuf, String), HarnessError> {
    let path = dir.join(format!("disk-{seed:08x}.img"));
    let mut data = vec![0u8; 4 << 20];
    let mut x = seed | 1;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = (x >> 7) as u8;
    }
    std::fs::write(&path, &data)
        .map_err(|e| HarnessError::Setup(format!("{}: {e}", path.display())))?;
    let out = std::process::Command::new("md5sum")
        .arg(&path)
        .output()
        .map_err(|e| HarnessError::Setup(format!("md5sum: {e}")))?;
    let sum = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string();
    if sum.len() != 32 {
        return Err(HarnessError::Setup(format!("md5sum printed {sum:?}")));
    }
    Ok((path, sum))
}

/// A scratch directory for one test, removed when dropped.
pub struct ScratchDir(pub PathBuf);

impl ScratchDir {
    /// Creates `$TMPDIR/partita-<name>-<pid>`.
    pub fn new(name: &str) -> Result<Self, HarnessError> {
        let dir = std::env::temp_dir().join(format!("partita-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| HarnessError::Setup(format!("{}: {e}", dir.display())))?;
        Ok(ScratchDir(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Shell text that enables memory decoding and bus mastering of the PCI
/// function at sysfs path `dev` (the command register through its config
/// file: the ECAM itself is the kernel's) and sets `bar` to its BAR 0.
pub fn enable_pci_function(dev: &str) -> String {
    format!(
        "echo 1 > {dev}/enable; printf '\\006\\000' | dd of={dev}/config bs=1 seek=4 count=2 conv=notrunc 2>/dev/null; \
         bar=$(cut -d' ' -f1 {dev}/resource | head -n1); echo enabled"
    )
}

/// Shell text that binds QEMU's `edu` (1234:11e8) to `pci-stub`, so that
/// Linux puts it in an IOMMU group and attaches its (empty) default DMA
/// domain.
pub const STUB_EDU: &str = "echo 1234 11e8 > /sys/bus/pci/drivers/pci-stub/new_id";

/// Shell text that makes QEMU's `edu` device (BAR 0 in `$bar`) DMA 4 KiB
/// from its buffer to `target`, then waits a second.
pub fn edu_dma_to(target: u64) -> String {
    format!(
        "devmem $((bar+0x80)) 64 0x40000; devmem $((bar+0x88)) 64 {target:#x}; \
         devmem $((bar+0x90)) 64 0x1000; devmem $((bar+0x98)) 64 3; sleep 1"
    )
}

/// QEMU's `-device` value for an NVMe controller on drive `drive` with
/// serial `serial` (and `addr=ADDR` when given), its shadow doorbells off
/// (`dbcs=off`). With them on (QEMU's default since 9.2) and pin-based
/// interrupts, QEMU's model can leave its INTx line asserted with no
/// completion for the guest to find when a completion lands between the
/// driver's last look at the queue and its doorbell update: Linux reports
/// `irq N: nobody cared` and the disk stalls. That is the likeliest cause
/// of the storms seen on loaded machines (docs/pci.md, "Known problem"),
/// not yet confirmed; with MMIO doorbells a storm would point back at the
/// hypervisor.
pub fn nvme(drive: &str, serial: &str, addr: Option<&str>) -> String {
    let addr = addr.map(|a| format!(",addr={a}")).unwrap_or_default();
    format!("nvme,drive={drive},serial={serial},dbcs=off{addr}")
}

/// PCI slot of the `edu` device in [`dma_machine`]: requester ID 0x28
/// (endpoint 40).
pub const EDU_SLOT: u64 = 5;

/// The machine of the DMA tests: 4 CPUs, 1 GiB, the bundle of guest config
/// `config`, an NVMe disk backed by `disk` and QEMU's `edu` device (64-bit
/// DMA) at 00:[`EDU_SLOT`].0, with a 240 s timeout. Add options, then spawn.
pub fn dma_machine(config: &str, disk: &Path) -> Result<Qemu, HarnessError> {
    Ok(Qemu::new()
        .smp(4)
        .memory("1G")
        .timeout(Duration::from_secs(240))
        .arg("-initrd")
        .arg(bundle(config)?)
        .arg("-drive")
        .arg(format!(
            "file={},if=none,id=disk,format=raw",
            disk.display()
        ))
        .args(["-device", &nvme("disk", "partita", None)])
        .args([
            "-device",
            &format!("edu,dma_mask=0xffffffffffffffff,addr={EDU_SLOT:x}.0"),
        ]))
}
