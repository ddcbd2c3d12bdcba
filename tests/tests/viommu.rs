//! The in-hypervisor virtio-iommu with an unmodified Linux guest (the
//! default configuration, `iommu.strict=1`): the guest binds
//! `virtio_iommu`, a user-added NVMe disk sits in an IOMMU group of type DMA
//! and reads back its image through MAP/UNMAP requests handled at EL2, and
//! QEMU's `edu` device DMAing to an IOVA nobody mapped is blocked, with the
//! fault reported to the guest through the virtio-iommu event queue.

use std::time::Duration;

use hv_tests::guest::{
    self, EDU_SLOT, INIT_DONE, READ_NVME, STUB_EDU, ScratchDir, bundle, disk_image, edu_dma_to,
    enable_pci_function,
};
use hv_tests::{HarnessError, Qemu, Session};
use virtio_defs::features::F_VERSION_1;
use virtio_defs::iommu;
use virtio_defs::mmio::{
    STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FEATURES_OK, offset,
};
use virtio_defs::ring::{
    AVAIL_ELEM_LEN, DESC_LEN, RING_HEAD_LEN, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
};

const BOOT: Duration = Duration::from_secs(90);
const CMD: Duration = Duration::from_secs(30);

fn run(vm: &mut Session, cmd: &str, expect: &str) -> Result<(), HarnessError> {
    guest::run(vm, cmd, expect, CMD)
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
    let dir = ScratchDir::new("viommu")?;
    let (disk, md5) = disk_image(&dir.0, 0x9e37_79b9)?;
    let mut vm = guest::dma_machine("qemu-virt-linux", &disk)?.spawn()?;
    vm.expect(
        "translate through the table of its unattached virtio-iommu endpoints",
        BOOT,
    )?;
    vm.expect("virtio_iommu virtio0: input address: 40 bits", BOOT)?;
    vm.expect(INIT_DONE, BOOT)?;
    run(&mut vm, "cat /proc/cmdline", "iommu.strict=1")?;

    // NVMe: in an IOMMU group of type DMA, and its data arrives intact.
    run(
        &mut vm,
        "cat /sys/bus/pci/devices/0000:00:02.0/iommu_group/type",
        "DMA",
    )?;
    run(&mut vm, READ_NVME, &md5)?;

    // edu, bound to pci-stub so that Linux puts it in an IOMMU group and
    // attaches its (empty) default DMA domain: DMA to an unmapped IOVA.
    let d = format!("/sys/bus/pci/devices/0000:00:{EDU_SLOT:02x}.0");
    run(
        &mut vm,
        &format!("{STUB_EDU}; cat {d}/iommu_group/type"),
        "DMA",
    )?;
    run(&mut vm, &enable_pci_function(&d), "enabled")?;
    vm.send(&format!(
        "{}; echo edu-dma-sent\n",
        edu_dma_to(0x10_0000_0000)
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
    vm.expect_exit_code(0, CMD)
}

/// Writes a 32-bit word with devmem.
fn w(addr: u64, value: impl Into<u64>) -> String {
    format!("devmem {addr:#x} 32 {:#x}", value.into())
}

/// A status byte as `devmem ADDR 8` prints it.
fn status_text(status: u8) -> String {
    format!("status={status:#04x}")
}

#[test]
fn a_map_of_memory_the_guest_does_not_own_is_refused() -> Result<(), HarnessError> {
    // Linux is kept off the device; the shell plays the driver.
    const V: u64 = 0x0b00_0000; // the virtio-mmio window
    const R: u64 = 0x4f00_0000; // free guest RAM (mem=224M of 256M at 0x4000_0000)
    let (desc, avail, used, req, status) = (R, R + 0x1000, R + 0x2000, R + 0x3000, R + 0x3100);
    let mut vm = Qemu::new()
        .smp(4)
        .memory("1G")
        .timeout(Duration::from_secs(240))
        .arg("-initrd")
        .arg(bundle("qemu-virt-linux-viommu-raw")?)
        .spawn()?;
    vm.expect(INIT_DONE, BOOT)?;
    // Reset, ACKNOWLEDGE|DRIVER, VERSION_1 + MAP_UNMAP, FEATURES_OK.
    let acked = STATUS_ACKNOWLEDGE | STATUS_DRIVER;
    let setup = [
        w(V + offset::STATUS, 0u32),
        w(V + offset::STATUS, acked),
        w(V + offset::DRIVER_FEATURES_SEL, 1u32),
        w(V + offset::DRIVER_FEATURES, F_VERSION_1 >> 32),
        w(V + offset::DRIVER_FEATURES_SEL, 0u32),
        w(V + offset::DRIVER_FEATURES, iommu::F_MAP_UNMAP),
        w(V + offset::STATUS, acked | STATUS_FEATURES_OK),
    ];
    run(
        &mut vm,
        &format!("{}; devmem {:#x} 32", setup.join("; "), V + offset::STATUS),
        &format!("{:#010X}", acked | STATUS_FEATURES_OK),
    )?;
    // Request queue 0: 8 entries, rings in the free RAM, ready, DRIVER_OK.
    let queue = [
        w(V + offset::QUEUE_SEL, iommu::REQUEST_QUEUE),
        w(V + offset::QUEUE_NUM, 8u32),
        w(V + offset::QUEUE_DESC_LOW, desc),
        w(V + offset::QUEUE_DESC_HIGH, 0u32),
        w(V + offset::QUEUE_DRIVER_LOW, avail),
        w(V + offset::QUEUE_DRIVER_HIGH, 0u32),
        w(V + offset::QUEUE_DEVICE_LOW, used),
        w(V + offset::QUEUE_DEVICE_HIGH, 0u32),
        w(V + offset::QUEUE_READY, 1u32),
        w(
            V + offset::STATUS,
            acked | STATUS_FEATURES_OK | STATUS_DRIVER_OK,
        ),
    ];
    run(
        &mut vm,
        &format!("{}; echo queue-ready", queue.join("; ")),
        "queue-ready",
    )?;
    // Descriptor 0: the request (readable, NEXT -> 1); 1: the status (writable).
    let chain = |req_len: usize| {
        let d1 = desc + DESC_LEN;
        [
            w(desc, req),
            w(desc + 4, 0u32),
            w(desc + 8, req_len as u64),
            w(desc + 12, u32::from(VIRTQ_DESC_F_NEXT) | 1 << 16),
            w(d1, status),
            w(d1 + 4, 0u32),
            w(d1 + 8, iommu::TAIL_LEN as u64),
            w(d1 + 12, VIRTQ_DESC_F_WRITE),
            w(status, 0xffu32),
        ]
        .join("; ")
    };
    // Publish ring slot `n` (head 0), then notify queue 0; print the status.
    let submit = |n: u64| {
        format!(
            "devmem {:#x} 16 0; devmem {:#x} 16 {}; {}; echo status=$(devmem {status:#x} 8)",
            avail + RING_HEAD_LEN + AVAIL_ELEM_LEN * n,
            avail + 2,
            n + 1,
            w(V + offset::QUEUE_NOTIFY, iommu::REQUEST_QUEUE)
        )
    };
    // ATTACH endpoint 8 (the virtio-net function 00:01.0) to domain 1.
    let attach = [
        w(req, iommu::T_ATTACH),
        w(req + 4, 1u32),
        w(req + 8, 8u32),
        w(req + 12, 0u32),
        w(req + 16, 0u32),
    ]
    .join("; ");
    run(
        &mut vm,
        &format!("{}; {attach}; {}", chain(iommu::ATTACH_LEN), submit(0)),
        &status_text(iommu::S_OK),
    )?;
    // MAP IOVA 0..0xfff of domain 1 to physical 0x1_0000_0000: not the guest's.
    let map = |phys: u64| {
        [
            w(req, iommu::T_MAP),
            w(req + 4, 1u32),
            w(req + 8, 0u32),
            w(req + 12, 0u32),
            w(req + 16, 0xfffu32),
            w(req + 20, 0u32),
            w(req + 24, phys & 0xffff_ffff),
            w(req + 28, phys >> 32),
            w(req + 32, iommu::MAP_F_READ | iommu::MAP_F_WRITE),
        ]
        .join("; ")
    };
    run(
        &mut vm,
        &format!(
            "{}; {}; {}",
            chain(iommu::MAP_LEN),
            map(0x1_0000_0000),
            submit(1)
        ),
        &status_text(iommu::S_RANGE),
    )?;
    // The same IOVA is still free: a MAP of the guest's own RAM succeeds.
    run(
        &mut vm,
        &format!(
            "{}; {}; {}",
            chain(iommu::MAP_LEN),
            map(0x4000_0000),
            submit(2)
        ),
        &status_text(iommu::S_OK),
    )?;
    vm.send("poweroff -f\n")?;
    vm.expect("virtio-iommu requests:", CMD)?;
    vm.expect("no guest left running", CMD)?;
    let text = vm.transcript();
    let map_line = text
        .lines()
        .rev()
        .find(|l| l.split_whitespace().next() == Some("map"))
        .unwrap_or("")
        .to_string();
    // Columns: request ok ioerr unsupp deverr inval range ...
    let cols: Vec<&str> = map_line.split_whitespace().collect();
    if cols.get(1) != Some(&"1") || cols.get(6) != Some(&"1") {
        return Err(vm.fail(format!(
            "expected one MAP OK and one MAP RANGE, got {map_line:?}"
        )));
    }
    vm.expect_exit_code(0, CMD)
}
