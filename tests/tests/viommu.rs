//! The in-hypervisor virtio-iommu with an unmodified Linux guest (the
//! default configuration, `iommu.strict=1`): the guest binds
//! `virtio_iommu`, a user-added NVMe disk sits in an IOMMU group of type DMA
//! and reads back its image through MAP/UNMAP requests handled at EL2, and
//! QEMU's `edu` device DMAing to an IOVA nobody mapped is blocked, with the
//! fault reported to the guest through the virtio-iommu event queue.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hv_tests::{HarnessError, Qemu, Session};

const INIT_DONE: &str = "partita-guest: init done";
const BOOT: Duration = Duration::from_secs(90);
const CMD: Duration = Duration::from_secs(30);
/// The edu device's slot on the root bus: requester ID 0x28 (endpoint 40).
const EDU_SLOT: u64 = 5;

fn bundles() -> Result<PathBuf, HarnessError> {
    std::env::var_os("PARTITA_BUNDLES")
        .map(PathBuf::from)
        .ok_or_else(|| {
            HarnessError::Setup("PARTITA_BUNDLES is not set: run with `cargo xtask test`".into())
        })
}

fn run(vm: &mut Session, cmd: &str, expect: &str) -> Result<(), HarnessError> {
    vm.send(&format!("{cmd}\n"))?;
    vm.expect(expect, CMD)
}

/// A 4 MiB disk image of a deterministic pattern, and its MD5.
fn disk_image(dir: &Path) -> Result<(PathBuf, String), HarnessError> {
    let path = dir.join("viommu-test-disk.img");
    let mut data = vec![0u8; 4 << 20];
    let mut x: u32 = 0x9e37_79b9;
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
    Ok((path, sum))
}

/// The `ok` count of a request type in the counters table the hypervisor
/// prints when the guest stops (`map        231      0 ...`).
fn ok_count(transcript: &str, request: &str) -> Option<u64> {
    transcript
        .lines()
        .rev()
        .find(|l| l.split_whitespace().next() == Some(request))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
}

#[test]
fn linux_uses_the_in_hypervisor_virtio_iommu() -> Result<(), HarnessError> {
    let dir = std::env::temp_dir().join(format!("partita-viommu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| HarnessError::Setup(e.to_string()))?;
    let (disk, md5) = disk_image(&dir)?;
    let mut vm = Qemu::new()
        .smp(4)
        .memory("1G")
        .timeout(Duration::from_secs(240))
        .arg("-initrd")
        .arg(bundles()?.join("qemu-virt-linux.bundle"))
        .arg("-drive")
        .arg(format!(
            "file={},if=none,id=disk,format=raw",
            disk.display()
        ))
        .args(["-device", "nvme,drive=disk,serial=partita"])
        .args([
            "-device",
            &format!("edu,dma_mask=0xffffffffffffffff,addr={EDU_SLOT:x}.0"),
        ])
        .spawn()?;
    vm.expect("abort until its virtio-iommu attaches them", BOOT)?;
    vm.expect("virtio_iommu virtio0: input address: 40 bits", BOOT)?;
    vm.expect(INIT_DONE, BOOT)?;
    run(&mut vm, "cat /proc/cmdline", "iommu.strict=1")?;

    // NVMe: in an IOMMU group of type DMA, and its data arrives intact.
    run(
        &mut vm,
        "cat /sys/bus/pci/devices/0000:00:02.0/iommu_group/type",
        "DMA",
    )?;
    run(&mut vm, "md5sum /dev/nvme0n1", &md5)?;

    // edu, bound to pci-stub so that Linux puts it in an IOMMU group and
    // attaches its (empty) default DMA domain: DMA to an unmapped IOVA.
    let d = format!("/sys/bus/pci/devices/0000:00:{EDU_SLOT:02x}.0");
    run(
        &mut vm,
        &format!("echo 1234 11e8 > /sys/bus/pci/drivers/pci-stub/new_id; cat {d}/iommu_group/type"),
        "DMA",
    )?;
    run(
        &mut vm,
        &format!(
            "echo 1 > {d}/enable; printf '\\006\\000' | dd of={d}/config bs=1 seek=4 count=2 conv=notrunc 2>/dev/null; echo enabled"
        ),
        "enabled",
    )?;
    vm.send(&format!(
        "bar=$(cut -d' ' -f1 {d}/resource | head -n1); devmem $((bar+0x80)) 64 0x40000; \
         devmem $((bar+0x88)) 64 0x1000000000; devmem $((bar+0x90)) 64 0x1000; devmem $((bar+0x98)) 64 3; \
         sleep 1; echo edu-dma-sent\n"
    ))?;
    vm.expect("edu-dma-sent", CMD)?;
    vm.expect("reported to its virtio-iommu", CMD)?;
    vm.expect("fault from EP 40", CMD)?;
    run(&mut vm, "echo still-alive", "still-alive")?;

    vm.send("poweroff -f\n")?;
    vm.expect("virtio-iommu requests:", CMD)?;
    vm.expect("no guest left running", CMD)?;
    let text = vm.transcript();
    let (maps, unmaps) = (ok_count(&text, "map"), ok_count(&text, "unmap"));
    if !matches!(maps, Some(n) if n > 0) || !matches!(unmaps, Some(n) if n > 0) {
        return Err(vm.fail(format!(
            "expected MAP and UNMAP requests handled, got map={maps:?} unmap={unmaps:?}"
        )));
    }
    vm.expect_exit_code(0, CMD)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
