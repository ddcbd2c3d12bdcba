//! Boot tests: the hypervisor alone (no guest) on QEMU `virt` variants.
//!
//! The console lines checked here are the contract with the hypervisor's
//! boot flow; they are matched as substrings. Run with `cargo xtask test`
//! (which sets `PARTITA_IMAGE` and `PARTITA_QEMU`), one test with
//! `cargo xtask test -- boot_virt_1cpu`.

use std::time::Duration;

use hv_tests::{HarnessError, Qemu, Session};

/// Printed first, by the boot CPU.
const BANNER: &str = "partita 0.1.0: arm64 EL2 hypervisor";
/// Heads the hardware summary.
const SUMMARY: &str = "hardware summary";
/// The hypervisor command line that makes it power off when there is no guest.
const POWEROFF: &str = "partita.idle=poweroff";
/// Printed before powering off.
const POWERING_OFF: &str = "no guest payload: powering off";
/// Printed before idling.
const IDLING: &str = "no guest payload: idling";
/// Printed when there is no SMMUv3 node.
const NO_SMMU: &str = "no SMMUv3 in the device tree: DMA isolation is unavailable";
/// Printed when started at EL1.
const NOT_EL2: &str = "must be entered at EL2";

/// Time allowed for one step of the boot. A boot takes well under a second
/// under TCG; the margin is for a loaded machine.
const STEP: Duration = Duration::from_secs(15);

/// The `cpu N online (mpidr 0xN)` lines of CPUs `0..n` (QEMU virt: MPIDR Aff0 = N).
fn cpu_lines(n: u32) -> Vec<String> {
    (0..n)
        .map(|i| format!("cpu {i} online (mpidr {i:#x})"))
        .collect()
}

/// Expects the banner, then (in any order) the given CPUs coming online and
/// the hardware summary header; leaves the cursor just after the header.
fn expect_boot(vm: &mut Session, cpus: u32) -> Result<(), HarnessError> {
    vm.expect(BANNER, STEP)?;
    let after_banner = vm.cursor();
    let lines = cpu_lines(cpus);
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    vm.expect_all(&lines, STEP)?;
    vm.set_cursor(after_banner);
    vm.expect(SUMMARY, STEP)
}

#[test]
fn boot_virt_4cpus() -> Result<(), HarnessError> {
    let mut vm = Qemu::new().smp(4).append(POWEROFF).spawn()?;
    expect_boot(&mut vm, 4)?;
    // The summary's lines, in whatever order the hypervisor prints them.
    let summary = vm.cursor();
    vm.expect_line(&["smmuv3", "stages=s1+s2"], STEP)?;
    vm.set_cursor(summary);
    vm.expect_line(&["gic: GICv3"], STEP)?;
    vm.set_cursor(summary);
    vm.expect_line(&["pcie"], STEP)?;
    vm.set_cursor(summary);
    vm.expect(POWERING_OFF, STEP)?;
    vm.expect_exit_code(0, STEP)
}

#[test]
fn boot_virt_1cpu() -> Result<(), HarnessError> {
    let mut vm = Qemu::new().smp(1).append(POWEROFF).spawn()?;
    expect_boot(&mut vm, 1)?;
    vm.expect(POWERING_OFF, STEP)?;
    vm.expect_exit_code(0, STEP)?;
    vm.expect_not_seen("cpu 1 online")
}

#[test]
fn boot_virt91_stage2_only() -> Result<(), HarnessError> {
    // virt-9.1 honours arm-smmuv3.stage (later machine versions force nested).
    let mut vm = Qemu::new()
        .machine("virt-9.1,virtualization=on,gic-version=3,iommu=smmuv3")
        .append(POWEROFF)
        .args(["-global", "arm-smmuv3.stage=2"])
        .spawn()?;
    vm.expect(BANNER, STEP)?;
    vm.expect(SUMMARY, STEP)?;
    let line = vm.expect_line(&["smmuv3", "stages="], STEP)?;
    if !line.contains("stages=s2") || line.contains("s1+s2") {
        return Err(vm.fail(format!(
            "the SMMUv3 line should report stage 2 only (stages=s2), got: {line:?}"
        )));
    }
    Ok(())
}

#[test]
fn boot_without_smmu() -> Result<(), HarnessError> {
    let mut vm = Qemu::new()
        .machine("virt,virtualization=on,gic-version=3")
        .append(POWEROFF)
        .spawn()?;
    vm.expect(BANNER, STEP)?;
    vm.expect(NO_SMMU, STEP)?;
    vm.expect_exit_code(0, STEP)
}

#[test]
fn refuses_el1() -> Result<(), HarnessError> {
    // Without virtualization=on QEMU starts the image at EL1. The poweroff
    // option makes sure that "keeps running" means the CPU parked rather
    // than carried on to the end of the boot.
    let mut vm = Qemu::new()
        .machine("virt,gic-version=3,iommu=smmuv3")
        .append(POWEROFF)
        .spawn()?;
    vm.expect(NOT_EL2, STEP)?;
    vm.expect_running(Duration::from_millis(500))?;
    vm.expect_not_seen(POWERING_OFF)
    // Dropping the session kills QEMU.
}

#[test]
fn idles_without_poweroff() -> Result<(), HarnessError> {
    let mut vm = Qemu::new().spawn()?;
    vm.expect(BANNER, STEP)?;
    vm.expect(IDLING, STEP)?;
    vm.expect_running(Duration::from_secs(1))
}
