//! Linux guest tests: the default configuration (Debian's arm64 kernel and
//! the project's busybox initramfs, 2 vCPUs, PL011 and PCIe host passed
//! through) booted under the hypervisor on QEMU `virt`.
//!
//! `cargo xtask test` builds one bundle per file in guest-configs/ and
//! passes the directory holding them in `PARTITA_BUNDLES`
//! (`<dir>/<config stem>.bundle`).

use std::time::Duration;

use hv_tests::guest::{self, INIT_DONE, bundle};
use hv_tests::{HarnessError, Qemu, Session};

/// Time for the hypervisor and Linux to reach the shell under TCG.
const BOOT: Duration = Duration::from_secs(60);
/// Time for one shell command.
const CMD: Duration = Duration::from_secs(20);

/// QEMU virt with 4 CPUs and 1 GiB, the bundle of `config` as the initrd.
fn linux(config: &str) -> Result<Qemu, HarnessError> {
    Ok(Qemu::new()
        .smp(4)
        .memory("1G")
        .timeout(Duration::from_secs(180))
        .arg("-initrd")
        .arg(bundle(config)?))
}

/// Runs `cmd` at the guest's shell and waits for `expect` in its output.
fn run(vm: &mut Session, cmd: &str, expect: &str) -> Result<(), HarnessError> {
    guest::run(vm, cmd, expect, CMD)
}

/// Waits for the hypervisor's `guest '<name>': hypervisor RAM: peak <P>
/// bytes, live <L> bytes` line (the benchmark parses it); returns (P, L).
fn hypervisor_ram(vm: &mut Session, name: &str) -> Result<(u64, u64), HarnessError> {
    let prefix = format!("guest '{name}': hypervisor RAM: peak ");
    let line = vm.expect_line(&[&prefix], BOOT)?;
    let rest = &line[line.find(&prefix).unwrap_or(0) + prefix.len()..];
    let parsed = rest
        .split_once(" bytes, live ")
        .and_then(|(p, l)| Some((p.parse().ok()?, l.strip_suffix(" bytes")?.parse().ok()?)));
    match parsed {
        Some((peak, live)) if peak >= live && live > 0 => Ok((peak, live)),
        _ => Err(vm.fail(format!("malformed hypervisor RAM line: {line:?}"))),
    }
}

#[test]
fn default_guest_boots_to_a_working_shell() -> Result<(), HarnessError> {
    let mut vm = linux("qemu-virt-linux")?.spawn()?;
    // The static cost, printed once the guest is built.
    let (_, built) = hypervisor_ram(&mut vm, "linux")?;
    vm.expect("guest 'linux': vcpu 0 starts", BOOT)?;
    vm.expect("guest 'linux': vcpu 1 starts", BOOT)?;
    vm.expect(INIT_DONE, BOOT)?;
    // Both vCPUs online, a ticking timer, the passed-through PCIe host.
    run(
        &mut vm,
        "echo cpus=$(grep -c ^processor /proc/cpuinfo)",
        "cpus=2",
    )?;
    run(
        &mut vm,
        "sleep 1 && echo slept-one-second",
        "slept-one-second",
    )?;
    run(
        &mut vm,
        "ls /sys/bus/pci/devices/ && echo pci-listed",
        "0000:00:00.0",
    )?;
    run(
        &mut vm,
        "cat /sys/bus/pci/devices/0000:00:00.0/vendor",
        "0x1b36",
    )?;
    // A device the guest does not own (a virtio-mmio slot of the host):
    // the access is refused with an abort, logged, and the guest goes on.
    vm.send("devmem 0x0a000000 32; echo devmem-status=$?\n")?;
    vm.expect("unclaimed address 0xa000000", CMD)?;
    vm.expect("devmem-status=", CMD)?;
    run(&mut vm, "echo still-alive", "still-alive")?;
    vm.send("poweroff -f\n")?;
    let (peak, _) = hypervisor_ram(&mut vm, "linux")?;
    if peak < built {
        return Err(vm.fail(format!(
            "hypervisor RAM peak {peak} at power-off is below the {built} bytes live at boot"
        )));
    }
    vm.expect("no guest left running: powering off", CMD)?;
    vm.expect_exit_code(0, CMD)
}

#[test]
fn reboot_restarts_the_guest() -> Result<(), HarnessError> {
    let mut vm = linux("qemu-virt-linux")?.spawn()?;
    vm.expect(INIT_DONE, BOOT)?;
    vm.send("reboot -f\n")?;
    vm.expect("guest 'linux' reset: restarting", CMD)?;
    vm.expect("guest 'linux': vcpu 0 starts", CMD)?;
    vm.expect(INIT_DONE, BOOT)?;
    run(
        &mut vm,
        "echo cpus=$(grep -c ^processor /proc/cpuinfo)",
        "cpus=2",
    )?;
    vm.send("poweroff -f\n")?;
    vm.expect_exit_code(0, CMD)
}

#[test]
fn reboot_powers_off_when_configured() -> Result<(), HarnessError> {
    let mut vm = linux("qemu-virt-linux-reset-poweroff")?.spawn()?;
    vm.expect(INIT_DONE, BOOT)?;
    vm.send("reboot -f\n")?;
    vm.expect("on_reset = poweroff", CMD)?;
    vm.expect_exit_code(0, CMD)
}

#[test]
fn guest_refused_when_its_cpus_are_missing() -> Result<(), HarnessError> {
    // The default guest wants CPUs 0 and 1; with one CPU the hypervisor's
    // own check against the live device tree must refuse it.
    let mut vm = Qemu::new()
        .smp(1)
        .memory("1G")
        .append("partita.idle=poweroff")
        .arg("-initrd")
        .arg(bundle("qemu-virt-linux")?)
        .spawn()?;
    vm.expect("guest 'linux' refused", BOOT)?;
    vm.expect("no guest could be started", CMD)?;
    vm.expect_exit_code(0, CMD)?;
    vm.expect_not_seen("vcpu 0 starts")
}
