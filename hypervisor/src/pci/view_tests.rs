//! The configuration-space filter, register by register, over the fake
//! ECAM: an NVMe-like function with a 64-bit BAR, a 32-bit BAR and the
//! capabilities PM (0x40), MSI (0x50), PCIe (0x60) and MSI-X (0x80).

use super::config::{Bdf, ConfigAccess, command, reg};
use super::enumerate::enumerate;
use super::fake::{ENDPOINT, FakeBar, FakeEcam, MULTI};
use super::view::FunctionView;

const F: Bdf = Bdf::new(0, 2, 0);
const PM: u16 = 0x40;
const MSI: u16 = 0x50;
const PCIE: u16 = 0x60;
const MSIX: u16 = 0x80;

/// The fake function, enumerated (BARs placed), and its view.
fn setup() -> (FakeEcam, FunctionView) {
    let mut e = FakeEcam::default();
    e.add(
        F,
        (0x1b36, 0x0010),
        0x010802,
        ENDPOINT | MULTI,
        &[FakeBar::Mem64(0x4000, false), FakeBar::Mem32(0x1000)],
        1,
    );
    // Status: capabilities list; the chain PM -> MSI -> PCIe -> MSI-X.
    e.write32_raw(F, reg::COMMAND, 1 << 20);
    e.write32_raw(F, 0x34, PM.into());
    e.write32_raw(F, PM, u32::from(MSI) << 8 | 0x01);
    e.write32_raw(F, MSI, u32::from(PCIE) << 8 | 0x05);
    e.write32_raw(F, PCIE, u32::from(MSIX) << 8 | 0x10);
    e.write32_raw(F, PCIE + 8, 0x0000_2810); // device control
    e.write32_raw(F, MSIX, 0x11);
    e.write32_raw(F, 0x2c, 0x1100_1af4);
    let host = crate::vm::tests::host().pcie[0].clone();
    let t = enumerate(&mut e, &host);
    let v = FunctionView::new(&e, t.function(F).unwrap());
    e.writes.clear();
    (e, v)
}

#[test]
fn identity_registers_are_the_functions_and_read_only() {
    let (mut e, mut v) = setup();
    assert_eq!(v.read(&e, 0x00, 4), 0x0010_1b36);
    assert_eq!(v.read(&e, 0x02, 2), 0x0010);
    assert_eq!(v.read(&e, 0x08, 4) >> 8, 0x010802);
    assert_eq!(v.read(&e, 0x2c, 4), 0x1100_1af4);
    assert_eq!(v.read(&e, 0x0e, 1), 0x00, "multi-function bit hidden");
    for off in [0x00, 0x08, 0x0c, 0x2c] {
        v.write(&mut e, off, 4, 0xdead_beef);
    }
    assert!(e.writes.is_empty(), "{:x?}", e.writes);
}

#[test]
fn bars_show_the_hypervisors_placement_and_answer_sizing() {
    let (mut e, mut v) = setup();
    // BAR 0-1: 64-bit at the 64-bit window; BAR 2: 32-bit.
    assert_eq!(v.read(&e, 0x10, 4), 0x0000_0004);
    assert_eq!(v.read(&e, 0x14, 4), 0x80);
    assert_eq!(v.read(&e, 0x18, 4), 0x1000_0000);
    // Sizing, as Linux does it: all ones, read, restore.
    v.write(&mut e, 0x10, 4, u32::MAX);
    assert_eq!(v.read(&e, 0x10, 4), 0xffff_c004);
    v.write(&mut e, 0x14, 4, u32::MAX);
    assert_eq!(v.read(&e, 0x14, 4), u32::MAX);
    v.write(&mut e, 0x10, 4, 0x4);
    v.write(&mut e, 0x14, 4, 0x80);
    assert_eq!(v.read(&e, 0x10, 4), 0x0000_0004);
    assert_eq!(v.read(&e, 0x14, 4), 0x80);
    v.write(&mut e, 0x18, 4, u32::MAX);
    assert_eq!(v.read(&e, 0x18, 4), 0xffff_f000);
    // A new address is not taken; nothing reaches the function.
    v.write(&mut e, 0x18, 4, 0x2000_0000);
    assert_eq!(v.read(&e, 0x18, 4), 0x1000_0000);
    // No BAR 3-5, no ROM: zero, sizing included.
    v.write(&mut e, 0x1c, 4, u32::MAX);
    assert_eq!(v.read(&e, 0x1c, 4), 0);
    v.write(&mut e, 0x30, 4, u32::MAX);
    assert_eq!(v.read(&e, 0x30, 4), 0);
    assert!(e.writes.is_empty(), "{:x?}", e.writes);
    assert_eq!(e.reg(F, 0x18), 0x1000_0000, "the function keeps its BAR");
}

#[test]
fn the_command_register_takes_memory_bus_master_and_intx_disable_only() {
    let (mut e, mut v) = setup();
    v.write(&mut e, reg::COMMAND, 2, 0xffff);
    let cmd = e.reg(F, reg::COMMAND) & 0xffff;
    assert_eq!(
        cmd,
        command::MEMORY | command::BUS_MASTER | command::INTX_DISABLE,
        "no I/O, no SERR, parity or other bits"
    );
    assert_eq!(e.reg(F, reg::COMMAND) >> 16, 1 << 4, "status untouched");
    // A write of the status half does nothing.
    e.writes.clear();
    v.write(&mut e, reg::COMMAND + 2, 2, 0xffff);
    assert!(e.writes.is_empty());
    v.write(&mut e, reg::COMMAND, 2, command::MEMORY);
    assert_eq!(e.reg(F, reg::COMMAND) & 0xffff, command::MEMORY);
    assert_eq!(v.read(&e, reg::COMMAND, 2), command::MEMORY);
    // Byte by byte, as `dd bs=1` into sysfs' config file does it: the
    // upper byte's write leaves the lower byte's bits alone.
    v.write(&mut e, reg::COMMAND, 1, 0x06);
    v.write(&mut e, reg::COMMAND + 1, 1, 0x04);
    assert_eq!(
        e.reg(F, reg::COMMAND) & 0xffff,
        command::MEMORY | command::BUS_MASTER | command::INTX_DISABLE
    );
    v.write(&mut e, reg::COMMAND + 1, 1, 0x00);
    assert_eq!(
        e.reg(F, reg::COMMAND) & 0xffff,
        command::MEMORY | command::BUS_MASTER
    );
}

#[test]
fn msi_and_msix_are_hidden_and_the_list_relinked() {
    let (mut e, mut v) = setup();
    assert_eq!(v.read(&e, 0x06, 2) & (1 << 4), 1 << 4, "capability list");
    assert_eq!(v.read(&e, 0x34, 1), PM.into());
    assert_eq!(v.read(&e, PM, 2), u32::from(PCIE) << 8 | 0x01, "PM -> PCIe");
    assert_eq!(v.read(&e, PCIE, 2), 0x10, "PCIe ends the list");
    assert_eq!(v.read(&e, PCIE + 1, 1), 0);
    // Hidden capabilities read as zero and take no write.
    assert_eq!(v.read(&e, MSI, 4), 0);
    assert_eq!(v.read(&e, MSI + 4, 4), 0);
    assert_eq!(v.read(&e, MSIX, 4), 0);
    v.write(&mut e, MSI + 2, 2, 0x1);
    v.write(&mut e, MSIX + 2, 2, 0x8000);
    assert!(e.writes.is_empty());
    // A kept capability's registers pass through, its header does not.
    assert_eq!(v.read(&e, PCIE + 8, 2), 0x2810);
    v.write(&mut e, PCIE + 8, 2, 0x2830);
    assert_eq!(e.reg(F, PCIE + 8) & 0xffff, 0x2830);
    v.write(&mut e, PCIE, 2, 0xffff);
    assert_eq!(e.reg(F, PCIE) & 0xffff, u32::from(MSIX) << 8 | 0x10);
}

#[test]
fn extended_space_is_empty_and_the_interrupt_line_is_the_guests() {
    let (mut e, mut v) = setup();
    for off in [0x100, 0x104, 0x200, 0xffc] {
        assert_eq!(v.read(&e, off, 4), 0, "{off:#x}");
        v.write(&mut e, off, 4, u32::MAX);
    }
    assert!(e.writes.is_empty());
    assert_eq!(v.read(&e, 0x3d, 1), 1, "INTA");
    v.write(&mut e, 0x3c, 1, 42);
    assert_eq!(v.read(&e, 0x3c, 1), 42);
    assert_eq!(v.read(&e, 0x3c, 2), 1 << 8 | 42);
    assert!(e.writes.is_empty(), "the line is the guest's scratch");
}

#[test]
fn malformed_accesses_and_capability_lists_are_harmless() {
    let (mut e, mut v) = setup();
    assert_eq!(v.read(&e, 0x01, 2), u32::MAX, "misaligned");
    assert_eq!(v.read(&e, 0x00, 3), u32::MAX, "odd width");
    assert_eq!(v.read(&e, 0x1000, 4), u32::MAX, "beyond 4 KiB");
    v.write(&mut e, 0x05, 2, u32::MAX);
    assert!(e.writes.is_empty());
    // A list that loops back on itself, and one pointing into the header.
    let mut e = FakeEcam::default();
    e.add(F, (1, 2), 0, ENDPOINT, &[], 0);
    e.write32_raw(F, reg::COMMAND, 1 << 20);
    e.write32_raw(F, 0x34, 0x40);
    e.write32_raw(F, 0x40, 0x50 << 8 | 0x01);
    e.write32_raw(F, 0x50, 0x40 << 8 | 0x10);
    let host = crate::vm::tests::host().pcie[0].clone();
    let t = enumerate(&mut e, &host);
    let v = FunctionView::new(&e, t.function(F).unwrap());
    assert_eq!(v.read(&e, 0x41, 1), 0x50);
    assert_eq!(v.read(&e, 0x51, 1), 0, "the loop is cut");
    e.write32_raw(F, 0x34, 0x08);
    let v = FunctionView::new(&e, t.function(F).unwrap());
    assert_eq!(
        v.read(&e, 0x34, 1),
        0,
        "a pointer into the header ends the list"
    );
    assert_eq!(v.read(&e, 0x06, 2) & (1 << 4), 0);
    let _ = e.read32(F, 0);
}
