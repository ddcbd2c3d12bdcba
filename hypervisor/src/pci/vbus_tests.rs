//! The virtual bus's decoding of ECAM offsets over an assigned function
//! (the fake ECAM behind its view) and an emulated one.

use super::config::{Bdf, command, reg};
use super::enumerate::enumerate;
use super::fake::{ENDPOINT, FakeBar, FakeEcam};
use super::function::{BarWindow, IntxChange, PciFunction};
use super::vbus::{MAX_SLOTS, Slot, VbusError, VirtualBus};
use super::view::FunctionView;
use crate::virtio::memory::{GuestMemory, VecMemory};
use alloc::boxed::Box;
use spin::Mutex;

/// An emulated function: a 256-byte configuration space of its own, whose
/// reads of 0x40 clear a pending interrupt.
struct Toy {
    regs: [u32; 64],
    irq: bool,
}

impl PciFunction for Toy {
    fn config_read(&mut self, offset: u16, width: u8) -> (u32, IntxChange) {
        let v = self.regs.get(usize::from(offset / 4)).copied().unwrap_or(0);
        let v = v >> (u32::from(offset % 4) * 8);
        let v = if width == 4 {
            v
        } else {
            v & ((1 << (8 * u32::from(width))) - 1)
        };
        if offset == 0x40 && self.irq {
            self.irq = false;
            return (v, IntxChange::Deassert);
        }
        (v, IntxChange::Unchanged)
    }
    fn config_write(
        &mut self,
        _mem: &dyn GuestMemory,
        offset: u16,
        _width: u8,
        value: u32,
    ) -> IntxChange {
        if let Some(r) = self.regs.get_mut(usize::from(offset / 4)) {
            *r = value;
        }
        IntxChange::Unchanged
    }
    fn bar(&self, _index: u8) -> Option<BarWindow> {
        None
    }
    fn bar_read(&mut self, _index: u8, _offset: u64, _width: usize) -> (u64, IntxChange) {
        (0, IntxChange::Unchanged)
    }
    fn bar_write(
        &mut self,
        _m: &dyn GuestMemory,
        _i: u8,
        _o: u64,
        _w: usize,
        _v: u64,
    ) -> IntxChange {
        IntxChange::Unchanged
    }
    fn intx(&self) -> bool {
        self.irq
    }
    fn reset(&mut self) -> IntxChange {
        IntxChange::Unchanged
    }
}

/// ECAM offset of `dev`.`func` register `reg` on `bus`.
fn at(bus: u64, dev: u64, func: u64, reg: u64) -> u64 {
    bus << 20 | dev << 15 | func << 12 | reg
}

#[test]
fn slots_answer_at_their_device_number_and_the_rest_reads_all_ones() {
    let phys = Bdf::new(0, 2, 0);
    let mut e = FakeEcam::default();
    e.add(
        phys,
        (0x1b36, 0x0010),
        0x010802,
        ENDPOINT,
        &[FakeBar::Mem64(0x4000, false)],
        1,
    );
    let host = crate::vm::tests::host().pcie[0].clone();
    let t = enumerate(&mut e, &host);
    let view = FunctionView::new(&e, t.function(phys).unwrap());
    let ecam: &'static Mutex<FakeEcam> = Box::leak(Box::new(Mutex::new(e)));
    let mut bus = VirtualBus::new();
    assert_eq!(
        bus.add(Slot::Assigned { view, host: ecam }),
        Ok(Bdf::new(0, 0, 0))
    );
    let mut regs = [0u32; 64];
    regs[0] = 0x1057_1af4;
    let toy = Toy { regs, irq: true };
    assert_eq!(
        bus.add(Slot::Emulated(Box::new(toy))),
        Ok(Bdf::new(0, 1, 0))
    );

    // The physical function at virtual 00:00.0 (it is 00:02.0 on the host).
    assert_eq!(bus.read(at(0, 0, 0, 0), 4), (0x0010_1b36, None));
    assert_eq!(bus.read(at(0, 0, 0, 2), 2), (0x0010, None));
    // The emulated one at 00:01.0.
    assert_eq!(bus.read(at(0, 1, 0, 0), 4).0, 0x1057_1af4);
    assert_eq!(
        bus.read(at(0, 1, 0, 0x40), 4),
        (0, Some((1, IntxChange::Deassert)))
    );
    // Empty slots, other functions and other buses: all ones.
    assert_eq!(bus.read(at(0, 2, 0, 0), 4).0, u32::MAX);
    assert_eq!(bus.read(at(0, 0, 1, 0), 2).0, 0xffff);
    assert_eq!(bus.read(at(1, 0, 0, 0), 1).0, 0xff);
    assert_eq!(bus.read(at(0, 0, 0, 1), 2).0, 0xffff, "misaligned");

    // Writes reach the view (filtered) and the emulated function.
    let mem = VecMemory::new(0, 0);
    assert_eq!(bus.write(&mem, at(0, 0, 0, 4), 2, 0xffff), None);
    assert_eq!(
        ecam.lock().reg(phys, reg::COMMAND) & 0xffff,
        command::MEMORY | command::BUS_MASTER | command::INTX_DISABLE
    );
    assert_eq!(
        bus.write(&mem, at(0, 1, 0, 0x44), 4, 7),
        Some((1, IntxChange::Unchanged))
    );
    assert_eq!(bus.read(at(0, 1, 0, 0x44), 4).0, 7);
    assert_eq!(bus.write(&mem, at(0, 5, 0, 4), 4, 0xffff), None, "no slot");
}

#[test]
fn the_bus_holds_at_most_32_functions() {
    let mut bus: VirtualBus<FakeEcam> = VirtualBus::new();
    for i in 0..MAX_SLOTS {
        let toy = Toy {
            regs: [0; 64],
            irq: false,
        };
        assert_eq!(
            bus.add(Slot::Emulated(Box::new(toy))).map(|b| b.dev),
            Ok(i as u8)
        );
    }
    let toy = Toy {
        regs: [0; 64],
        irq: false,
    };
    assert!(matches!(
        bus.add(Slot::Emulated(Box::new(toy))),
        Err(VbusError::Full)
    ));
    assert_eq!(bus.slots().len(), MAX_SLOTS);
}

#[test]
fn random_guest_accesses_never_panic_and_reach_only_what_the_filter_allows() {
    // Guest-controlled: any offset, width and value on the bridge's window.
    // Nothing panics; the physical function only ever sees writes to its
    // command register (memory, bus master, INTx disable) and to its kept
    // capabilities; its BARs never move; no write allocates.
    let phys = Bdf::new(0, 2, 0);
    let mut e = FakeEcam::default();
    e.add(
        phys,
        (0x1b36, 0x0010),
        0x010802,
        ENDPOINT,
        &[FakeBar::Mem64(0x4000, false)],
        1,
    );
    e.write32_raw(phys, reg::COMMAND, 1 << 20);
    e.write32_raw(phys, 0x34, 0x40);
    e.write32_raw(phys, 0x40, 0x50 << 8 | 0x10); // PCIe
    e.write32_raw(phys, 0x50, 0x11); // MSI-X, hidden
    let host = crate::vm::tests::host().pcie[0].clone();
    let t = enumerate(&mut e, &host);
    let bar = e.bar64(phys, 0);
    let view = FunctionView::new(&e, t.function(phys).unwrap());
    e.writes.clear();
    let ecam: &'static Mutex<FakeEcam> = Box::leak(Box::new(Mutex::new(e)));
    let mut bus = VirtualBus::new();
    bus.add(Slot::Assigned { view, host: ecam }).unwrap();
    let toy = Toy {
        regs: [0; 64],
        irq: false,
    };
    bus.add(Slot::Emulated(Box::new(toy))).unwrap();
    let mem = VecMemory::new(0, 0);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..200_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Mostly slot 0 and 1, sometimes anywhere in (and past) the window.
        let offset = if x & 0xf == 0 {
            x >> 8 & 0x1f_ffff
        } else {
            (x >> 8 & 0x8fff) & !0x7000
        };
        let width = [1, 2, 4, 8, 3][(x >> 40) as usize % 5];
        if x & 0x10 == 0 {
            let _ = bus.read(offset, width);
        } else {
            let _ = bus.write(&mem, offset, width, (x >> 20) as u32);
        }
    }
    let e = ecam.lock();
    assert_eq!(e.bar64(phys, 0), bar, "the BAR never moved");
    assert!(
        e.writes.iter().any(|&(_, off, _)| off == 0x04)
            && e.writes.iter().any(|&(_, off, _)| off >= 0x44),
        "the sequence reached the command register and the capability"
    );
    for &(bdf, off, v) in &e.writes {
        assert_eq!(bdf, phys);
        match off {
            0x04 => assert_eq!(
                v & 0xffff & !(command::MEMORY | command::BUS_MASTER | command::INTX_DISABLE),
                0,
                "command {v:#x}"
            ),
            // The PCIe capability: its registers, and (the fake's
            // read-merge-write of a write at 0x42) its header unchanged.
            0x40 => assert_eq!(v & 0xffff, 0x5010, "header {v:#x}"),
            0x44..=0x4f => {}
            _ => panic!("a write reached offset {off:#x}: {v:#x}"),
        }
    }
}
