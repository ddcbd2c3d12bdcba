//! W^X of the hypervisor's own EL2 map, on QEMU `virt`.
//!
//! The boot log lists the ranges of the map with their permissions and the
//! result of the self-check (AT S1E2R/S1E2W at an address of each kind, on
//! every CPU). `partita.wxtest=` makes the hypervisor break W^X on purpose
//! (a store to its code or relocated constants, a branch into .data or the
//! heap); the MMU must refuse with a permission fault, which the EL2
//! exception handler reports at the faulting address before parking the CPU.

use std::time::Duration;

use hv_tests::{HarnessError, Qemu, Session};

/// The hypervisor command line that makes it power off when there is no guest.
const POWEROFF: &str = "partita.idle=poweroff";
/// Time allowed for one step of the boot.
const STEP: Duration = Duration::from_secs(15);
/// The self-check's line on the boot CPU, whole.
const CHECK: &str = "EL2 map check (AT S1E2R/W): text r-x, rodata r--, relro r--, \
                     data rw-, bss rw-, stack rw-, heap rw-, ram rw-";

/// The first hexadecimal number after `prefix` in `line`.
fn hex_after(vm: &Session, line: &str, prefix: &str) -> Result<u64, HarnessError> {
    line.split_once(prefix)
        .map(|(_, rest)| {
            rest.chars()
                .take_while(char::is_ascii_hexdigit)
                .collect::<String>()
        })
        .and_then(|h| u64::from_str_radix(&h, 16).ok())
        .ok_or_else(|| vm.fail(format!("no number after {prefix:?} in {line:?}")))
}

/// An `EL2 map: 0xSTART..0xEND PERMS WHAT` line: (start, end, perms, what).
fn map_line(line: &str) -> Option<(u64, u64, String, String)> {
    let rest = line.split_once("EL2 map: 0x")?.1;
    let (start, rest) = rest.split_once("..0x")?;
    let (end, rest) = rest.split_once(' ')?;
    let (perms, what) = rest.split_once(' ')?;
    Some((
        u64::from_str_radix(start, 16).ok()?,
        u64::from_str_radix(end, 16).ok()?,
        perms.to_string(),
        what.trim_end().to_string(),
    ))
}

#[test]
fn el2_map_is_wx_on_every_cpu() -> Result<(), HarnessError> {
    let mut vm = Qemu::new().smp(4).append(POWEROFF).spawn()?;
    let image = vm.expect_line(&["image at 0x"], STEP)?;
    let img_start = hex_after(&vm, &image, "image at 0x")?;
    let img_end = hex_after(&vm, &image, "..0x")?;
    vm.expect("EL2 map: W^X, SCTLR_EL2.WXN on", STEP)?;
    vm.expect(CHECK, STEP)?;
    vm.expect("EL2 map check passed on 4 of 4 cpus", STEP)?;
    vm.expect_exit_code(0, STEP)?;
    vm.expect_not_seen("EL2 map check FAILED")?;

    let ranges: Vec<_> = vm.transcript().lines().filter_map(map_line).collect();
    let find = |what: &str| ranges.iter().find(|r| r.3 == what).cloned();
    let (Some(text), Some(ro), Some(data)) = (
        find("image text"),
        find("image rodata, relro"),
        find("image data, bss"),
    ) else {
        return Err(vm.fail(format!(
            "the image's three pieces are not all listed: {ranges:?}"
        )));
    };
    let pieces_ok = text.0 == img_start
        && text.1 == ro.0
        && ro.1 == data.0
        && data.1 == img_end
        && (text.2.as_str(), ro.2.as_str(), data.2.as_str()) == ("r-x", "r--", "rw-");
    if !pieces_ok {
        return Err(vm.fail(format!(
            "image {img_start:#x}..{img_end:#x} should be r-x text, r-- rodata, rw- data \
             back to back: {text:?} {ro:?} {data:?}"
        )));
    }
    for r in &ranges {
        let bad = r.2.contains('w') && r.2.contains('x')
            || r.2.contains('x') && r.3 != "image text"
            || r.2 != "rw-" && r.3 == "RAM";
        if bad {
            return Err(vm.fail(format!("range breaks W^X: {r:?}")));
        }
    }
    Ok(())
}

/// Boots with `partita.wxtest=TEST` and expects the crash report of a
/// permission fault at the address the test names: exception class `ec`,
/// the decoded fault `abort`, FAR (and for a fetch, ELR) at the address.
fn expect_permission_fault(test: &str, ec: &str, abort: &str) -> Result<(), HarnessError> {
    let mut vm = Qemu::new()
        .smp(2)
        .append(format!("{POWEROFF} partita.wxtest={test}"))
        .spawn()?;
    vm.expect(CHECK, STEP)?;
    let line = vm.expect_line(&["W^X test: ", "expecting a permission fault"], STEP)?;
    let addr = hex_after(&vm, &line, " at 0x")?;
    vm.expect("unhandled exception: synchronous from EL2", STEP)?;
    vm.expect_line(&[ec, &format!("FAR 0x{addr:016x}")], STEP)?;
    vm.expect_line(&[abort], STEP)?;
    if ec.contains("instruction abort") {
        vm.expect_line(&[&format!("ELR 0x{addr:016x}")], STEP)?;
    }
    vm.expect("cpu 0 parked", STEP)?;
    vm.expect_running(Duration::from_millis(300))?;
    vm.expect_not_seen("the EL2 map is not W^X")?;
    vm.expect_not_seen("powering off")
}

#[test]
fn writing_to_text_is_a_permission_fault() -> Result<(), HarnessError> {
    expect_permission_fault(
        "write-text",
        "EC 0x25 (data abort at the same EL)",
        "data abort: permission fault (FSC 0x0f) at level 3, write",
    )
}

#[test]
fn writing_to_relocated_constants_is_a_permission_fault() -> Result<(), HarnessError> {
    expect_permission_fault(
        "write-relro",
        "EC 0x25 (data abort at the same EL)",
        "data abort: permission fault (FSC 0x0f) at level 3, write",
    )
}

#[test]
fn executing_data_is_a_permission_fault() -> Result<(), HarnessError> {
    expect_permission_fault(
        "exec-data",
        "EC 0x21 (instruction abort at the same EL)",
        "instruction abort: permission fault",
    )
}

#[test]
fn executing_the_heap_is_a_permission_fault() -> Result<(), HarnessError> {
    expect_permission_fault(
        "exec-heap",
        "EC 0x21 (instruction abort at the same EL)",
        "instruction abort: permission fault",
    )
}
