//! DMA isolation through the SMMUv3: a Linux guest whose RAM sits at a
//! different physical address than its guest-physical one reads an NVMe
//! disk (its DMA works only if the SMMU translates it), and QEMU's `edu`
//! device, driven from the guest with `devmem`, is aimed outside the guest's
//! RAM and at the hypervisor's own memory: both are blocked and reported,
//! the hypervisor's memory is unchanged, and the guest keeps running.
//!
//! Uses the bundle of guest-configs/qemu-virt-linux-highmem.toml (RAM at
//! guest-physical 0x8000_0000, so the host RAM holding the hypervisor is
//! outside the guest's address space).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use hv_tests::guest::{
    self, EDU_SLOT, INIT_DONE, READ_NVME, ScratchDir, bundle, disk_image, edu_dma_to,
    enable_pci_function, nvme,
};
use hv_tests::{HarnessError, Qemu, Session};

const BOOT: Duration = Duration::from_secs(90);
const CMD: Duration = Duration::from_secs(30);
/// Where QEMU loads the image on `virt` (RAM base + 2 MiB).
const HYPERVISOR_PA: u64 = 0x4020_0000;

fn run(vm: &mut Session, cmd: &str, expect: &str) -> Result<(), HarnessError> {
    guest::run(vm, cmd, expect, CMD)
}

/// Reads 64 bytes of physical memory through the QEMU monitor at `sock`.
fn read_phys(sock: &Path, addr: u64) -> Result<String, HarnessError> {
    let err =
        |e: std::io::Error| HarnessError::Setup(format!("QEMU monitor {}: {e}", sock.display()));
    let mut s = UnixStream::connect(sock).map_err(err)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(err)?;
    // Wait for the prompt: input sent before it is dropped.
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"(qemu) ") {
        if s.read(&mut byte).map_err(err)? == 0 {
            return Err(HarnessError::Setup("QEMU monitor closed".into()));
        }
        seen.push(byte[0]);
    }
    writeln!(s, "xp /8gx {addr:#x}").map_err(err)?;
    let last = format!("{:016x}:", addr + 0x30);
    let mut reader = BufReader::new(s);
    let mut dump = String::new();
    let mut line = String::new();
    while reader.read_line(&mut line).map_err(err)? > 0 {
        if let Some(at) = line.find(&format!("{:012x}", addr >> 16)) {
            let data = line[at..].trim().to_string();
            dump.push_str(&data);
            dump.push('\n');
            if data.contains(&last) {
                break;
            }
        }
        line.clear();
    }
    Ok(dump)
}

#[test]
fn dma_is_translated_and_confined() -> Result<(), HarnessError> {
    let dir = ScratchDir::new("dma")?;
    let (disk, md5) = disk_image(&dir.0, 0x1234_5678)?;
    let monitor = dir.0.join("monitor.sock");
    let mut vm = guest::dma_machine("qemu-virt-linux-highmem", &disk)?
        .arg("-monitor")
        .arg(format!("unix:{},server=on,wait=off", monitor.display()))
        .spawn()?;
    vm.expect(INIT_DONE, BOOT)?;

    // NVMe: the guest's DMA addresses are guest-physical; only the SMMU's
    // stage-2 translation makes them land in the guest's RAM.
    run(&mut vm, READ_NVME, &md5)?;

    // edu: memory decoding and bus mastering on, its identification register.
    let d = format!("/sys/bus/pci/devices/0000:00:{EDU_SLOT:02x}.0");
    run(&mut vm, &enable_pci_function(&d), "enabled")?;
    run(&mut vm, "devmem $((bar)) 32", "0x010000ED")?;
    let before = read_phys(&monitor, HYPERVISOR_PA)?;
    // DMA from the device's buffer to (1) a guest-physical address outside
    // the guest's RAM and (2) the hypervisor's physical address.
    for (i, target) in [0x10_0000_0000u64, HYPERVISOR_PA].iter().enumerate() {
        vm.send(&format!("{}; echo dma-{i}-sent\n", edu_dma_to(*target)))?;
        vm.expect(&format!("dma-{i}-sent"), CMD)?;
        vm.expect_line(&["smmuv3", "guest 'linux'", &format!("{target:#x}")], CMD)?;
    }
    let after = read_phys(&monitor, HYPERVISOR_PA)?;
    if before.is_empty() || before != after {
        return Err(vm.fail(format!(
            "hypervisor memory at {HYPERVISOR_PA:#x} changed (or could not be read):\nbefore:\n{before}\nafter:\n{after}"
        )));
    }
    // The guest is still alive and its disk still reads.
    run(&mut vm, "echo still-alive", "still-alive")?;
    run(&mut vm, READ_NVME, &md5)?;
    vm.send("poweroff -f\n")?;
    vm.expect_exit_code(0, CMD)
}

#[test]
fn nvme_reads_through_a_stage2_only_smmu() -> Result<(), HarnessError> {
    // QEMU 9.1's machine honours arm-smmuv3.stage=2: an SMMU without stage 1.
    let dir = ScratchDir::new("dma-s2")?;
    let (disk, md5) = disk_image(&dir.0, 0x1234_5678)?;
    let mut vm = Qemu::new()
        .machine("virt-9.1,virtualization=on,gic-version=3,iommu=smmuv3")
        .smp(4)
        .memory("1G")
        .timeout(Duration::from_secs(240))
        .args(["-global", "arm-smmuv3.stage=2"])
        .arg("-initrd")
        .arg(bundle("qemu-virt-linux-highmem")?)
        .arg("-drive")
        .arg(format!(
            "file={},if=none,id=disk,format=raw",
            disk.display()
        ))
        .args(["-device", &nvme("disk", "partita", None)])
        .spawn()?;
    vm.expect_line(&["smmuv3", "stages=s2 "], BOOT)?;
    vm.expect("translate through its stage 2", BOOT)?;
    vm.expect(INIT_DONE, BOOT)?;
    run(&mut vm, READ_NVME, &md5)?;
    vm.send("poweroff -f\n")?;
    vm.expect_exit_code(0, CMD)
}
