//! Host tests over a fake function: QEMU's `virtio-iommu-pci` as bare
//! QEMU leaves it (BAR 4 unassigned, an MSI-X capability first), partita's
//! (BAR 0 placed by the hypervisor), and the malformed cases.

extern crate std;

use super::*;
use bars::{Bar, Placer};
use core::cell::RefCell;
use std::vec::Vec;
use virtio_defs::pci::{CAP_COMMON_CFG, CAP_DEVICE_CFG, CAP_ISR_CFG, CAP_NOTIFY_CFG, CAP_PCI_CFG};

/// A BAR of the fake: size, 64-bit, prefetchable.
#[derive(Clone, Copy)]
struct FakeBar {
    size: u64,
    mem64: bool,
    pref: bool,
}

/// A function's configuration space with BARs that answer sizing and a
/// read-only status register.
struct Fake {
    regs: RefCell<[u32; 1024]>,
    bars: [Option<FakeBar>; 6],
    /// (offset, value, command register at the time) of every write.
    writes: RefCell<Vec<(u16, u32, u32)>>,
}

impl Fake {
    fn new(device: u16) -> Self {
        let f = Fake {
            regs: RefCell::new([0; 1024]),
            bars: [None; 6],
            writes: RefCell::new(Vec::new()),
        };
        f.set(0x00, u32::from(device) << 16 | 0x1af4);
        f.set(0x04, header::STATUS_CAP_LIST << 16);
        f.set(0x08, 0x00ff_0001);
        f
    }
    fn set(&self, off: u16, v: u32) {
        self.regs.borrow_mut()[usize::from(off / 4)] = v;
    }
    fn get(&self, off: u16) -> u32 {
        self.regs.borrow()[usize::from(off / 4)]
    }
    fn bar(&mut self, i: usize, size: u64, mem64: bool, pref: bool, addr: u64) {
        self.bars[i] = Some(FakeBar { size, mem64, pref });
        self.set(0x10 + 4 * i as u16, addr as u32 | bar_type(mem64, pref));
        if mem64 {
            self.set(0x14 + 4 * i as u16, (addr >> 32) as u32);
        }
    }
    /// A vendor capability at `at`: cfg_type, BAR, offset, length (and the
    /// multiplier for a notification one), linked to `next`.
    fn vcap(&self, at: u16, next: u8, cfg_type: u8, bar: u8, offset: u32, length: u32) {
        let len: u32 = if matches!(cfg_type, CAP_NOTIFY_CFG | CAP_PCI_CFG) {
            20
        } else {
            16
        };
        self.set(
            at,
            0x09 | u32::from(next) << 8 | len << 16 | u32::from(cfg_type) << 24,
        );
        self.set(at + 4, u32::from(bar));
        self.set(at + 8, offset);
        self.set(at + 12, length);
    }
    fn cap_ptr(&self, p: u8) {
        self.set(0x34, u32::from(p));
    }
}

fn bar_type(mem64: bool, pref: bool) -> u32 {
    (if mem64 { 4 } else { 0 }) | (if pref { 8 } else { 0 })
}

impl ConfigSpace for Fake {
    fn read32(&self, offset: u16) -> u32 {
        self.get(offset)
    }
    fn write32(&self, offset: u16, value: u32) {
        let cmd = self.get(0x04) & 0xffff;
        self.writes.borrow_mut().push((offset, value, cmd));
        match offset {
            0x00 | 0x08 | 0x34 => {}
            0x04 => self.set(0x04, (self.get(0x04) & 0xffff_0000) | (value & 0xffff)),
            0x10..=0x24 => {
                let i = usize::from((offset - 0x10) / 4);
                // The high half of a 64-bit BAR below it?
                let (owner, high) =
                    match (i.checked_sub(1).and_then(|j| self.bars[j]), self.bars[i]) {
                        (Some(b), _) if b.mem64 => (b, true),
                        (_, Some(b)) => (b, false),
                        _ => return,
                    };
                let mask = !(owner.size - 1);
                let v = if high {
                    value & (mask >> 32) as u32
                } else {
                    value & mask as u32 | bar_type(owner.mem64, owner.pref)
                };
                self.set(offset, v);
            }
            _ => self.set(offset, value),
        }
    }
}

/// QEMU virt's bridge windows (identity: PCI address = CPU address).
const WINDOWS: [Window; 2] = [
    Window {
        cpu: 0x1000_0000,
        pci: 0x1000_0000,
        size: 0x2eff_0000,
        mem64: false,
    },
    Window {
        cpu: 0x80_0000_0000,
        pci: 0x80_0000_0000,
        size: 0x80_0000_0000,
        mem64: true,
    },
];

/// QEMU 10's `virtio-iommu-pci` on bare `virt`: MSI-X table in BAR 1,
/// the virtio structures in the 16 KiB 64-bit prefetchable BAR 4, every
/// BAR at 0.
fn qemu() -> Fake {
    let mut f = Fake::new(0x1057);
    f.bar(1, 0x1000, false, false, 0);
    f.bar(4, 0x4000, true, true, 0);
    f.cap_ptr(0x98);
    f.set(0x98, 0x11 | 0x84 << 8); // MSI-X, next 0x84
    f.vcap(0x84, 0x70, CAP_PCI_CFG, 0, 0, 0);
    f.vcap(0x70, 0x60, CAP_NOTIFY_CFG, 4, 0x3000, 0x1000);
    f.set(0x70 + 16, 4);
    f.vcap(0x60, 0x50, CAP_DEVICE_CFG, 4, 0x2000, 0x1000);
    f.vcap(0x50, 0x40, CAP_ISR_CFG, 4, 0x1000, 0x1000);
    f.vcap(0x40, 0, CAP_COMMON_CFG, 4, 0, 0x1000);
    f
}

/// partita's function (docs/viommu.md): BAR 0 at the top 16 KiB of the
/// 64-bit window, already placed.
fn partita() -> Fake {
    let mut f = Fake::new(0x1057);
    f.bar(0, 0x4000, true, true, 0xff_ffff_c000);
    f.cap_ptr(0x40);
    f.vcap(0x40, 0x50, CAP_COMMON_CFG, 0, 0, 0x1000);
    f.vcap(0x50, 0x64, CAP_NOTIFY_CFG, 0, 0x3000, 4);
    f.set(0x50 + 16, 4);
    f.vcap(0x64, 0x74, CAP_ISR_CFG, 0, 0x1000, 0x1000);
    f.vcap(0x74, 0x84, CAP_DEVICE_CFG, 0, 0x2000, 0x1000);
    f.vcap(0x84, 0, CAP_PCI_CFG, 0, 0, 0);
    f
}

#[test]
fn qemu_function_gets_its_bar_placed_in_the_64_bit_window() {
    let f = qemu();
    let l = probe(&f, &WINDOWS).expect("probe");
    let base = 0x80_0000_0000;
    assert_eq!(
        l,
        Layout {
            device_type: 23,
            common: base,
            notify: base + 0x3000,
            notify_len: 0x1000,
            notify_off_multiplier: 4,
            isr: base + 0x1000,
            device: Some((base + 0x2000, 0x1000)),
            placed: 1 << 4,
        }
    );
    // BAR 4 programmed (both halves), BAR 1 untouched, decoding on.
    assert_eq!(f.get(0x20), 0xc);
    assert_eq!(f.get(0x24), 0x80);
    assert_eq!(f.get(0x14), 0);
    assert_eq!(
        f.get(0x04) & 0xffff,
        header::CMD_MEMORY | header::CMD_BUS_MASTER
    );
    assert_eq!(l.notify_addr(1), Some(base + 0x3004));
}

#[test]
fn partita_function_keeps_its_bar() {
    let f = partita();
    f.set(0x04, f.get(0x04) | header::CMD_MEMORY);
    let l = probe(&f, &WINDOWS).expect("probe");
    let base = 0xff_ffff_c000;
    assert_eq!(l.common, base);
    assert_eq!(l.notify, base + 0x3000);
    assert_eq!(l.isr, base + 0x1000);
    assert_eq!(l.device, Some((base + 0x2000, 0x1000)));
    assert_eq!(l.placed, 0);
    assert_eq!(f.get(0x10), 0xffff_c00c);
    assert_eq!(f.get(0x14), 0xff);
    // A 4-byte notification region holds queue 0 only.
    assert_eq!(l.notify_addr(0), Some(base + 0x3000));
    assert_eq!(l.notify_addr(1), None);
    // Sized with decoding off, and nothing but sizing and restoring, then
    // the command register, was written.
    let writes = f.writes.borrow();
    for &(off, v, cmd) in writes.iter() {
        if v == u32::MAX {
            assert!((0x10..0x18).contains(&off));
            assert_eq!(cmd & header::CMD_MEMORY, 0, "sizing with decoding on");
        }
    }
    let last = writes.last().expect("writes");
    assert_eq!(last.0, 0x04);
    assert_eq!(last.1, header::CMD_MEMORY | header::CMD_BUS_MASTER);
}

#[test]
fn first_usable_capability_of_each_type_wins() {
    let f = partita();
    // A common configuration in a reserved BAR (7) and an unknown
    // cfg_type (8, shared memory) in front: both ignored.
    f.cap_ptr(0xa0);
    f.vcap(0xa0, 0xb0, CAP_COMMON_CFG, 7, 0x100, 0x1000);
    f.vcap(0xb0, 0xc0, 8, 0, 0x0, 0x1000);
    // An ISR capability ahead of partita's own: the one used.
    f.vcap(0xc0, 0x40, CAP_ISR_CFG, 0, 0x1800, 1);
    let caps = caps::find(&f).expect("caps");
    assert_eq!(
        caps.isr,
        Region {
            bar: 0,
            offset: 0x1800,
            length: 1
        }
    );
    assert_eq!(caps.common.offset, 0);
    assert_eq!(caps.notify_off_multiplier, 4);
}

#[test]
fn malformed_capability_lists() {
    let f = partita();
    f.set(0x04, 0);
    assert_eq!(caps::find(&f), Err(CapError::NoList));

    let f = partita();
    f.vcap(0x84, 0x40, CAP_PCI_CFG, 0, 0, 0); // back to the first
    assert_eq!(caps::find(&f), Err(CapError::Loop));

    let f = partita();
    f.cap_ptr(0x20);
    assert_eq!(caps::find(&f), Err(CapError::BadPointer(0x20)));

    let f = partita();
    f.set(0x50, f.get(0x50) & !(0xff << 16) | 16 << 16); // notify cap_len 16
    assert_eq!(caps::find(&f), Err(CapError::Short { at: 0x50, len: 16 }));

    let f = partita();
    f.vcap(0x64, 0x74, 9, 0, 0x1000, 0x1000); // the ISR cap a vendor one
    assert_eq!(caps::find(&f), Err(CapError::Missing(CAP_ISR_CFG)));

    let f = partita();
    f.vcap(0x40, 0x50, CAP_COMMON_CFG, 0, 0, 0x20);
    assert_eq!(caps::find(&f), Err(CapError::TooSmall(CAP_COMMON_CFG)));
}

#[test]
fn identity_and_bar_errors() {
    let f = partita();
    f.set(0x00, 0x1057_1234);
    assert_eq!(probe(&f, &WINDOWS), Err(ProbeError::NotVirtio(0x1057_1234)));
    f.set(0x00, 0x1000_1af4);
    assert_eq!(probe(&f, &WINDOWS), Err(ProbeError::NotModern(0x1000)));

    // The device configuration runs past the 16 KiB BAR.
    let f = partita();
    f.vcap(0x74, 0x84, CAP_DEVICE_CFG, 0, 0x3800, 0x1000);
    assert_eq!(
        probe(&f, &WINDOWS),
        Err(ProbeError::Bar(BarError::RegionOutside {
            index: 0,
            end: 0x4800,
            size: 0x4000
        }))
    );

    // The structures in an I/O BAR, an unimplemented one, a reserved type.
    let mut f = partita();
    f.set(0x18, 1);
    f.bars[2] = Some(FakeBar {
        size: 0x100,
        mem64: false,
        pref: false,
    });
    f.vcap(0x40, 0x50, CAP_COMMON_CFG, 2, 0, 0x1000);
    assert_eq!(probe(&f, &WINDOWS), Err(ProbeError::Bar(BarError::Io(2))));
    f.set(0x18, 0);
    f.bars[2] = None;
    assert_eq!(
        probe(&f, &WINDOWS),
        Err(ProbeError::Bar(BarError::Absent(2)))
    );
    f.set(0x18, 2);
    assert_eq!(
        probe(&f, &WINDOWS),
        Err(ProbeError::Bar(BarError::ReservedType(2)))
    );

    // No window for QEMU's BAR.
    let f = qemu();
    let tiny = [Window {
        size: 0x2000,
        ..WINDOWS[1]
    }];
    assert_eq!(
        probe(&f, &tiny),
        Err(ProbeError::Bar(BarError::NoRoom {
            index: 4,
            size: 0x4000
        }))
    );
    assert!(probe(&f, &[]).is_err());
}

#[test]
fn placer_aligns_bumps_and_falls_back_below_4_gib() {
    let bar = |index, size, mem64| Bar {
        index,
        mem64,
        prefetchable: mem64,
        addr: 0,
        size,
    };
    let windows = [
        Window {
            cpu: 0x3000_0000,
            pci: 0x1000,
            size: 0x10_0000,
            mem64: false,
        },
        Window {
            cpu: 0x80_0000_0000,
            pci: 0x80_0000_0000,
            size: 0x8000,
            mem64: true,
        },
    ];
    let mut p = Placer::new(&windows);
    // 32-bit BARs go to the 32-bit window, aligned (its PCI start is not).
    assert_eq!(p.place(&bar(0, 0x1000, false)), Ok((0x1000, 0x3000_0000)));
    assert_eq!(p.place(&bar(1, 0x4000, false)), Ok((0x4000, 0x3000_3000)));
    // 64-bit BARs to the 64-bit window while it has room, then below 4 GiB.
    assert_eq!(
        p.place(&bar(2, 0x4000, true)),
        Ok((0x80_0000_0000, 0x80_0000_0000))
    );
    assert_eq!(
        p.place(&bar(3, 0x4000, true)),
        Ok((0x80_0000_4000, 0x80_0000_4000))
    );
    assert_eq!(p.place(&bar(4, 0x4000, true)), Ok((0x8000, 0x3000_7000)));
    assert_eq!(
        p.place(&bar(5, 0x10_0000, true)),
        Err(BarError::NoRoom {
            index: 5,
            size: 0x10_0000
        })
    );
    // A 32-bit BAR never goes to a 64-bit window, nor above 4 GiB.
    let high = [Window {
        cpu: 0xffff_f000,
        pci: 0xffff_f000,
        size: 0x10_0000,
        mem64: false,
    }];
    let mut p = Placer::new(&high[..]);
    assert_eq!(
        p.place(&bar(0, 0x1000, false)),
        Ok((0xffff_f000, 0xffff_f000))
    );
    assert!(p.place(&bar(1, 0x1000, false)).is_err());
    let mut p = Placer::new(&windows[1..]);
    assert!(p.place(&bar(0, 0x1000, false)).is_err());
}

#[test]
fn windows_hold_whole_bars_only() {
    let w = WINDOWS[1];
    assert_eq!(w.holds(0x80_0000_0000, 0x4000), Some(0x80_0000_0000));
    assert_eq!(w.holds(0xff_ffff_c000, 0x4000), Some(0xff_ffff_c000));
    assert_eq!(w.holds(0xff_ffff_e000, 0x4000), None);
    assert_eq!(w.holds(0, 0x4000), None);
    assert_eq!(w.holds(0x80_0000_0000, 0), None);
    assert_eq!(w.holds(u64::MAX, 2), None);
    assert_eq!(
        bars::cpu_addr(&WINDOWS, 0x1000_0000, 0x1000),
        Some(0x1000_0000)
    );
}

#[test]
fn errors_display() {
    let e = ProbeError::Caps(CapError::Missing(CAP_NOTIFY_CFG));
    assert_eq!(
        std::format!("{e}"),
        "capabilities: no usable virtio capability of cfg_type 2"
    );
    assert!(core::error::Error::source(&e).is_some());
}
