//! Enumeration over the fake ECAM with QEMU `virt`'s host bridge
//! (`/pcie@10000000`: buses 0-255, 32-bit window 0x1000_0000 +
//! 0x2eff_0000, 64-bit window 0x80_0000_0000 + 0x80_0000_0000).

use super::config::{Bdf, command, reg};
use super::enumerate::{BarKind, EnumProblem, enumerate};
use super::fake::{BRIDGE, ENDPOINT, FakeBar, FakeEcam, MULTI};
use crate::fdt::host::PcieHost;

fn host() -> PcieHost {
    crate::vm::tests::host().pcie[0].clone()
}

const NVME: (u16, u16) = (0x1b36, 0x0010);
const EDU: (u16, u16) = (0x1234, 0x11e8);
const ROOT_PORT: (u16, u16) = (0x1b36, 0x000c);

fn b(bus: u8, dev: u8, func: u8) -> Bdf {
    Bdf::new(bus, dev, func)
}

#[test]
fn endpoints_on_bus_0_get_their_bars_placed_and_stay_disabled() {
    let mut e = FakeEcam::default();
    // The host bridge itself (no BAR), NVMe (16 KiB 64-bit BAR 0), edu
    // (1 MiB 32-bit BAR 0), a function with an I/O BAR.
    e.add(b(0, 0, 0), (0x1b36, 0x0008), 0x060000, ENDPOINT, &[], 0);
    e.add(
        b(0, 2, 0),
        NVME,
        0x010802,
        ENDPOINT,
        &[FakeBar::Mem64(0x4000, false)],
        1,
    );
    e.add(
        b(0, 5, 0),
        EDU,
        0x00ff00,
        ENDPOINT,
        &[FakeBar::Mem32(1 << 20)],
        1,
    );
    e.add(
        b(0, 6, 0),
        (0x8086, 0x100e),
        0x020000,
        ENDPOINT,
        &[FakeBar::Mem32(0x2_0000), FakeBar::Io(0x40)],
        1,
    );
    // Two BARs of 256 bytes.
    e.add(
        b(0, 7, 0),
        EDU,
        0x00ff00,
        ENDPOINT,
        &[FakeBar::Mem32(0x100), FakeBar::Mem32(0x100)],
        0,
    );
    // Decoding and mastering were on (firmware, or an earlier owner).
    e.write32_raw(
        b(0, 2, 0),
        reg::COMMAND,
        command::MEMORY | command::BUS_MASTER,
    );
    let t = enumerate(&mut e, &host());
    assert!(t.problems.is_empty(), "{:?}", t.problems);
    let ids: Vec<_> = t
        .functions
        .iter()
        .map(|f| (f.bdf, f.vendor, f.device))
        .collect();
    assert_eq!(
        ids,
        [
            (b(0, 0, 0), 0x1b36, 0x0008),
            (b(0, 2, 0), NVME.0, NVME.1),
            (b(0, 5, 0), EDU.0, EDU.1),
            (b(0, 6, 0), 0x8086, 0x100e),
            (b(0, 7, 0), EDU.0, EDU.1),
        ]
    );
    let nvme = t.function(b(0, 2, 0)).unwrap();
    assert_eq!(nvme.class, 0x010802);
    assert_eq!(nvme.intx_pin, 1);
    assert_eq!(nvme.bars.len(), 1);
    assert_eq!(nvme.bars[0].kind, BarKind::Mem64);
    assert_eq!(nvme.bars[0].size, 0x4000);
    // A 64-bit BAR on the root bus goes to the 64-bit window.
    assert_eq!(nvme.bars[0].placed, Some((0x80_0000_0000, 0x80_0000_0000)));
    assert_eq!(e.bar64(b(0, 2, 0), 0), 0x80_0000_0000);
    // 32-bit BARs in the 32-bit window, largest first, naturally aligned,
    // a page at least each.
    let edu = t.function(b(0, 5, 0)).unwrap();
    assert_eq!(edu.bars[0].placed, Some((0x1000_0000, 0x1000_0000)));
    assert_eq!(e.reg(b(0, 5, 0), reg::BAR0), 0x1000_0000);
    let nic = t.function(b(0, 6, 0)).unwrap();
    assert_eq!(nic.bars[0].placed, Some((0x1010_0000, 0x1010_0000)));
    let small = t.function(b(0, 7, 0)).unwrap();
    assert_eq!(small.bars[0].size, 0x100);
    assert_eq!(small.bars[0].placed, Some((0x1012_0000, 0x1012_0000)));
    assert_eq!(
        small.bars[1].placed,
        Some((0x1012_1000, 0x1012_1000)),
        "its own page"
    );
    assert_eq!(nic.bars[1].kind, BarKind::Io);
    assert_eq!(nic.bars[1].placed, None, "I/O BARs are not placed");
    // Nothing decodes, masters or asserts INTx (a function no guest gets
    // must not signal on a line a guest's function shares).
    for f in &t.functions {
        let cmd = e.reg(f.bdf, reg::COMMAND);
        assert_eq!(
            cmd & (command::MEMORY | command::IO | command::BUS_MASTER | command::INTX_DISABLE),
            command::INTX_DISABLE,
            "{}",
            f.bdf
        );
        assert_eq!(e.reg(f.bdf, reg::ROM0), 0, "ROM off");
    }
}

#[test]
fn functions_behind_a_bridge_get_a_bus_and_the_bridge_windows_cover_them() {
    let mut e = FakeEcam::default();
    e.add(b(0, 1, 0), ROOT_PORT, 0x060400, BRIDGE | MULTI, &[], 0);
    e.add(b(0, 1, 1), ROOT_PORT, 0x060400, BRIDGE, &[], 0);
    // Behind 00:01.0 (bus 1): NVMe with a prefetchable 64-bit BAR and a
    // 32-bit one.
    e.add(
        b(1, 0, 0),
        NVME,
        0x010802,
        ENDPOINT,
        &[FakeBar::Mem64(0x10_0000, true), FakeBar::Mem32(0x1000)],
        1,
    );
    // Behind 00:01.1 (bus 2): edu.
    e.add(
        b(2, 0, 0),
        EDU,
        0x00ff00,
        ENDPOINT,
        &[FakeBar::Mem32(1 << 20)],
        1,
    );
    let t = enumerate(&mut e, &host());
    assert!(t.problems.is_empty(), "{:?}", t.problems);
    // Bus numbers: primary 0, secondary 1 and 2, each its own subordinate.
    assert_eq!(e.reg(b(0, 1, 0), reg::BUS_NUMBERS) & 0xff_ffff, 0x01_01_00);
    assert_eq!(e.reg(b(0, 1, 1), reg::BUS_NUMBERS) & 0xff_ffff, 0x02_02_00);
    let nvme = t.function(b(1, 0, 0)).unwrap();
    let (pref, _) = nvme.bars[0].placed.unwrap();
    let (mem, _) = nvme.bars[1].placed.unwrap();
    assert!(
        pref >= 0x80_0000_0000,
        "prefetchable 64-bit above 4 GiB: {pref:#x}"
    );
    assert!(mem < 1 << 32);
    // The bridge's windows cover its subtree's BARs.
    let w = e.reg(b(0, 1, 0), reg::MEMORY_WINDOW);
    let (base, limit) = (
        u64::from(w & 0xfff0) << 16,
        u64::from(w >> 16 & 0xfff0) << 16 | 0xf_ffff,
    );
    assert!(
        base <= mem && mem + 0x1000 - 1 <= limit,
        "{base:#x}..{limit:#x} {mem:#x}"
    );
    let p = e.reg(b(0, 1, 0), reg::PREF_WINDOW);
    let pbase =
        u64::from(e.reg(b(0, 1, 0), reg::PREF_BASE_UPPER)) << 32 | u64::from(p & 0xfff0) << 16;
    let plimit = u64::from(e.reg(b(0, 1, 0), reg::PREF_LIMIT_UPPER)) << 32
        | u64::from(p >> 16 & 0xfff0) << 16
        | 0xf_ffff;
    assert!(pbase <= pref && pref + 0x10_0000 - 1 <= plimit);
    // The other bridge's memory window covers edu and not the NVMe's.
    let edu = t.function(b(2, 0, 0)).unwrap().bars[0].placed.unwrap().0;
    let w2 = e.reg(b(0, 1, 1), reg::MEMORY_WINDOW);
    let base2 = u64::from(w2 & 0xfff0) << 16;
    assert!(base2 <= edu && base2 > limit);
    // Its prefetchable window is closed (base above limit).
    let p2 = e.reg(b(0, 1, 1), reg::PREF_WINDOW);
    assert!((p2 & 0xfff0) > (p2 >> 16 & 0xfff0));
    // Bridges forward; endpoints stay off.
    let on = command::MEMORY | command::BUS_MASTER;
    assert_eq!(e.reg(b(0, 1, 0), reg::COMMAND) & on, on);
    assert_eq!(e.reg(b(1, 0, 0), reg::COMMAND) & on, 0);
    // Each endpoint knows its bridge, and is alone below it.
    assert_eq!(nvme.upstream, Some(b(0, 1, 0)));
    assert_eq!(t.alone_below(b(1, 0, 0)), Some(b(0, 1, 0)));
    assert_eq!(t.alone_below(b(2, 0, 0)), Some(b(0, 1, 1)));
    assert_eq!(t.function(b(0, 1, 0)).unwrap().upstream, None);
    assert_eq!(t.alone_below(b(0, 1, 0)), None, "on the root bus");
}

#[test]
fn a_function_sharing_its_bridge_or_a_bridge_itself_is_not_alone_below_it() {
    let mut e = FakeEcam::default();
    e.add(b(0, 1, 0), ROOT_PORT, 0x060400, BRIDGE, &[], 0);
    // Bus 1: a two-function device and a bridge to bus 2 with edu alone.
    e.add(b(1, 0, 0), NVME, 0x010802, ENDPOINT | MULTI, &[], 1);
    e.add(b(1, 0, 1), EDU, 0x00ff00, ENDPOINT, &[], 1);
    e.add(b(1, 1, 0), ROOT_PORT, 0x060400, BRIDGE, &[], 0);
    e.add(b(2, 0, 0), EDU, 0x00ff00, ENDPOINT, &[], 1);
    let t = enumerate(&mut e, &host());
    assert!(t.problems.is_empty(), "{:?}", t.problems);
    assert_eq!(t.alone_below(b(1, 0, 0)), None, "its sibling function");
    assert_eq!(t.alone_below(b(1, 0, 1)), None);
    assert_eq!(t.alone_below(b(1, 1, 0)), None, "a bridge");
    assert_eq!(t.function(b(2, 0, 0)).unwrap().upstream, Some(b(1, 1, 0)));
    assert_eq!(t.alone_below(b(2, 0, 0)), Some(b(1, 1, 0)));
    assert_eq!(t.alone_below(b(7, 0, 0)), None, "no such function");
}

#[test]
fn what_does_not_fit_is_reported_and_left_unplaced() {
    let mut h = host();
    h.bus_range = (0, 1);
    let mut e = FakeEcam::default();
    // Larger than the whole 32-bit window, and only 32-bit.
    e.add(
        b(0, 3, 0),
        EDU,
        0x00ff00,
        ENDPOINT,
        &[FakeBar::Mem32(1 << 31)],
        0,
    );
    // Two bridges, one bus number left.
    e.add(b(0, 4, 0), ROOT_PORT, 0x060400, BRIDGE, &[], 0);
    e.add(b(0, 5, 0), ROOT_PORT, 0x060400, BRIDGE, &[], 0);
    let t = enumerate(&mut e, &h);
    assert_eq!(
        t.problems,
        [
            EnumProblem::NoBusNumber { bdf: b(0, 5, 0) },
            EnumProblem::NoRoom {
                bdf: b(0, 3, 0),
                bar: 0,
                size: 1 << 31
            },
        ]
    );
    assert_eq!(t.function(b(0, 3, 0)).unwrap().bars[0].placed, None);
    assert!(t.problems[1].to_string().contains("stays disabled"));
}

#[test]
fn multi_function_devices_are_scanned_and_single_function_ones_are_not() {
    let mut e = FakeEcam::default();
    e.add(b(0, 2, 0), EDU, 0x00ff00, ENDPOINT | MULTI, &[], 0);
    e.add(b(0, 2, 3), EDU, 0x00ff00, ENDPOINT, &[], 0);
    e.add(b(0, 3, 0), EDU, 0x00ff00, ENDPOINT, &[], 0);
    // Function 1 of a single-function device is not looked at.
    e.add(b(0, 3, 1), NVME, 0x010802, ENDPOINT, &[], 0);
    let t = enumerate(&mut e, &host());
    let found: Vec<Bdf> = t.functions.iter().map(|f| f.bdf).collect();
    assert_eq!(found, [b(0, 2, 0), b(0, 2, 3), b(0, 3, 0)]);
    assert_eq!(b(0, 2, 3).rid(), 0x13);
    assert_eq!(b(0, 2, 3).to_string(), "00:02.3");
}

#[test]
fn the_hardware_summary_lists_every_function_and_problem() {
    use crate::summary::{SmmuStatus, Summary};
    let hw = crate::vm::tests::host();
    let mut e = FakeEcam::default();
    e.add(
        b(0, 2, 0),
        NVME,
        0x010802,
        ENDPOINT,
        &[FakeBar::Mem64(0x4000, false)],
        1,
    );
    e.add(
        b(0, 3, 0),
        EDU,
        0x00ff00,
        ENDPOINT,
        &[FakeBar::Mem32(1 << 31)],
        0,
    );
    let t = [enumerate(&mut e, &host())];
    let summary = Summary {
        hw,
        board: "test",
        online: Some(1),
        psci_version: None,
        counter_hz: Some(1),
        gic_spis: None,
        smmus: hw
            .smmus
            .iter()
            .map(|_| SmmuStatus::Unreachable("test".into()))
            .collect(),
        pci: t.iter().collect(),
    };
    let text = alloc::format!("{summary}");
    assert!(
        text.contains("    00:02.0 1b36:0010 class 010802, bar0 mem64 0x8000000000+0x4000, INTA\n"),
        "{text}"
    );
    assert!(
        text.contains("    00:03.0 1234:11e8 class 00ff00, bar0 mem32 0x80000000 bytes unplaced\n")
    );
    assert!(text.contains("    problem: 00:03.0 BAR 0 (0x80000000 bytes) fits no window"));
}

#[test]
fn ecam_addresses_functions_and_writes_sub_words_in_place() {
    use super::config::ConfigAccess;
    use super::ecam::Ecam;
    // Two buses of "configuration space" in host memory.
    let mut window = alloc::vec![0u32; (2 << 20) / 4];
    let base = window.as_mut_ptr() as u64;
    // SAFETY: the buffer covers buses 3 and 4 and outlives `ecam`.
    let mut ecam = unsafe { Ecam::new(base, 3, 4) };
    let f = b(4, 2, 1);
    ecam.write32(f, 0x04, 0x0010_0000);
    ecam.write(f, 0x04, 2, 0x0006);
    ecam.write(f, 0x3c, 1, 0x2a);
    assert_eq!(ecam.read32(f, 0x04), 0x0010_0006, "status untouched");
    assert_eq!(ecam.read32(f, 0x3c), 0x2a);
    let index = ((1 << 20) | (2 << 15) | (1 << 12) | 0x04) / 4;
    assert_eq!(window[index], 0x0010_0006, "bus 4 is the second MiB");
    // Outside the bus range or misaligned: all ones, no write.
    assert_eq!(ecam.read32(b(5, 0, 0), 0), u32::MAX);
    assert_eq!(ecam.read32(f, 0x02), u32::MAX);
    ecam.write(f, 0x05, 2, 0xffff);
    assert_eq!(ecam.read32(f, 0x04), 0x0010_0006);
}
