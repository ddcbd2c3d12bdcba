//! Boards other than QEMU `virt`, and console UARTs chosen by the device
//! tree: the hypervisor on QEMU's `imx8mp-evk` (i.MX 8M Plus: Cortex-A53,
//! GICv3, i.MX UART, no SMMU) with the board's upstream DTB, alone and with
//! a Debian Linux guest; and a `virt` whose `stdout-path` names a UART no
//! driver claims, which must never be written.
//!
//! QEMU 10.0's `imx8mp-evk` does not wire the GIC's virtual IRQ outputs
//! to the CPUs: the guest test runs the hypervisor with `partita.virq=hcr`
//! (docs/boards.md).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hv_tests::guest::{self, INIT_DONE, ScratchDir, board_dtb, bundle};
use hv_tests::{HarnessError, Qemu, Session};

/// One step of the hypervisor's boot.
const STEP: Duration = Duration::from_secs(30);
/// The hypervisor and Linux to the shell under TCG on a Cortex-A53.
const BOOT: Duration = Duration::from_secs(150);
/// One shell command.
const CMD: Duration = Duration::from_secs(30);

/// QEMU's i.MX 8M Plus EVK with 4 CPUs and 2 GiB, the upstream DTB, the
/// console on UART2 (QEMU's second serial port).
fn imx8mp() -> Result<Qemu, HarnessError> {
    Ok(Qemu::new()
        .machine("imx8mp-evk")
        .machine_cpu()
        .console_serial(1)
        .smp(4)
        .memory("2G")
        .arg("-dtb")
        .arg(board_dtb("imx8mp-evk.dtb")?))
}

/// Expects the i.MX 8M Plus summary lines, in the order printed.
fn expect_imx8mp_summary(vm: &mut Session) -> Result<(), HarnessError> {
    vm.expect("hardware summary (NXP i.MX 8M Plus EVK):", STEP)?;
    vm.expect("cpus: 4 in the DT, 4 online", STEP)?;
    vm.expect("psci: 1.1 via smc", STEP)?;
    vm.expect("gic: GICv3 distributor 0x38800000", STEP)?;
    vm.expect("timer: 8000000 Hz", STEP)?;
    vm.expect(
        "console: /soc@0/bus@30800000/spba-bus@30800000/serial@30890000 (fsl,imx8mp-uart) \
         at 0x30890000 intid 59: imx-uart driver",
        STEP,
    )?;
    vm.expect(
        "no SMMUv3 in the device tree: DMA isolation is unavailable",
        STEP,
    )
}

#[test]
fn imx8mp_evk_hypervisor_alone_on_the_imx_uart() -> Result<(), HarnessError> {
    let mut vm = imx8mp()?
        .append("partita.idle=poweroff")
        .timeout(Duration::from_secs(90))
        .spawn()?;
    vm.expect("partita 0.1.0: arm64 EL2 hypervisor", STEP)?;
    expect_imx8mp_summary(&mut vm)?;
    vm.expect("no guest payload: powering off", STEP)?;
    vm.expect_exit_code(0, STEP)
}

#[test]
fn imx8mp_evk_runs_a_linux_guest_to_a_shell() -> Result<(), HarnessError> {
    let mut vm = imx8mp()?
        .append("partita.virq=hcr")
        .timeout(Duration::from_secs(300))
        .arg("-initrd")
        .arg(bundle("imx8mp-evk-linux")?)
        .spawn()?;
    expect_imx8mp_summary(&mut vm)?;
    vm.expect(
        "guest 'linux': emulated PL011 console at 0x30890000, SPI 27",
        STEP,
    )?;
    vm.expect("guest 'linux': vcpu 0 starts", BOOT)?;
    vm.expect(INIT_DONE, BOOT)?;
    guest::run(
        &mut vm,
        "echo cpus=$(grep -c ^processor /proc/cpuinfo)",
        "cpus=2",
        CMD,
    )?;
    // Timer interrupts reach the guest: a sleep ends.
    guest::run(
        &mut vm,
        "sleep 1 && echo slept-one-second",
        "slept-one-second",
        CMD,
    )?;
    vm.send("poweroff -f\n")?;
    vm.expect("no guest left running: powering off", CMD)?;
    vm.expect_exit_code(0, CMD)
}

/// QEMU `virt`'s device tree (the default machine of the tests) with
/// `edit` applied to its source, compiled into `dir`.
fn patched_virt_dtb(dir: &Path, edit: impl Fn(String) -> String) -> Result<PathBuf, HarnessError> {
    let qemu = std::env::var_os(hv_tests::QEMU_ENV).unwrap_or_else(|| "qemu-system-aarch64".into());
    let orig = dir.join("virt.dtb");
    let run = |cmd: &mut Command| -> Result<Vec<u8>, HarnessError> {
        let out = cmd
            .output()
            .map_err(|e| HarnessError::Setup(format!("{cmd:?}: {e}")))?;
        if !out.status.success() {
            return Err(HarnessError::Setup(format!(
                "{cmd:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(out.stdout)
    };
    run(Command::new(&qemu)
        .arg("-M")
        .arg(format!(
            "{},dumpdtb={}",
            hv_tests::DEFAULT_MACHINE,
            orig.display()
        ))
        .args(["-cpu", hv_tests::DEFAULT_CPU, "-smp", "4", "-m", "1G"])
        .args(["-display", "none"]))?;
    let dts = run(Command::new("dtc")
        .args(["-q", "-I", "dtb", "-O", "dts"])
        .arg(&orig))?;
    let patched = edit(String::from_utf8_lossy(&dts).into_owned());
    let src = dir.join("patched.dts");
    std::fs::write(&src, patched).map_err(|e| HarnessError::Setup(format!("{e}")))?;
    let out = dir.join("patched.dtb");
    run(Command::new("dtc")
        .args(["-q", "-I", "dts", "-O", "dtb", "-o"])
        .arg(&out)
        .arg(&src))?;
    Ok(out)
}

/// The compatible of QEMU virt's PL011 in `dtc` output.
const PL011_COMPATIBLE: &str = "compatible = \"arm,pl011\\0arm,primecell\";";

#[test]
fn console_uart_without_driver_is_never_written() -> Result<(), HarnessError> {
    let dir = ScratchDir::new("mystery-console")?;
    // The PL011 (the console, and the only UART) claims to be something
    // no driver knows.
    let dtb = patched_virt_dtb(&dir.0, |dts| {
        assert!(dts.contains(PL011_COMPATIBLE), "virt's PL011 node changed");
        dts.replace(PL011_COMPATIBLE, "compatible = \"acme,mystery-uart\";")
    })?;
    let trace = dir.0.join("pl011-writes.log");
    let mut vm = Qemu::new()
        .append("partita.idle=poweroff")
        .arg("-dtb")
        .arg(&dtb)
        .args(["-d", "trace:pl011_write", "-D"])
        .arg(&trace)
        .spawn()?;
    // It boots to the end (powering off) without a word on the line.
    vm.expect_exit_code(0, STEP)?;
    if !vm.transcript().trim().is_empty() {
        return Err(vm.fail("the console UART without a driver was written to"));
    }
    let writes = std::fs::read_to_string(&trace).unwrap_or_default();
    let n = writes.lines().filter(|l| l.contains("pl011_write")).count();
    if n != 0 {
        return Err(vm.fail(format!("{n} PL011 register writes traced: {writes}")));
    }
    Ok(())
}

#[test]
fn console_uart_without_driver_is_reported_on_another_uart() -> Result<(), HarnessError> {
    let dir = ScratchDir::new("mystery-console2")?;
    // stdout-path names a UART no driver knows, at an address with no
    // device behind it (a write there would abort); the PL011 stays
    // serial0.
    let dtb = patched_virt_dtb(&dir.0, |dts| {
        let dts = dts.replace(
            "stdout-path = \"/pl011@9000000\";",
            "stdout-path = \"/mystery@9040000\";",
        );
        let node = "\tmystery@9040000 {\n\t\tcompatible = \"acme,mystery-uart\";\n\t\t\
                    reg = <0x00 0x9040000 0x00 0x1000>;\n\t};\n";
        let at = dts.find("\tpl011@9000000 {").expect("virt has its PL011");
        format!("{}{node}{}", &dts[..at], &dts[at..])
    })?;
    let mut vm = Qemu::new()
        .append("partita.idle=poweroff")
        .arg("-dtb")
        .arg(&dtb)
        .spawn()?;
    vm.expect(
        "partita: the console UART mystery@9040000 at 0x9040000 (compatible \"acme,mystery-uart\"): \
         no driver for any of its compatibles; it is left untouched and partita runs without a console",
        STEP,
    )?;
    vm.expect_exit_code(0, STEP)?;
    vm.expect_not_seen("hardware summary")
}
