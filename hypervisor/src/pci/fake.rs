//! A fake ECAM for host tests: functions with the configuration registers
//! the enumeration touches, BARs that answer sizing as hardware does
//! (writable bits set by a size mask, read-only type bits), and a log of
//! writes.

use super::config::{Bdf, ConfigAccess, reg};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// Header type of an endpoint.
pub const ENDPOINT: u8 = 0;
/// Header type of a PCI-to-PCI bridge.
pub const BRIDGE: u8 = 1;
/// Header type bit: a multi-function device.
pub const MULTI: u8 = 0x80;

/// One BAR of a fake function.
#[derive(Clone, Copy, Debug)]
pub enum FakeBar {
    /// 32-bit memory of this size.
    Mem32(u64),
    /// 64-bit memory of this size, prefetchable or not.
    Mem64(u64, bool),
    /// I/O of this size.
    Io(u32),
}

/// One fake function: its registers (dwords) and which bits of each BAR
/// register are writable.
#[derive(Clone, Debug)]
pub struct FakeFunction {
    /// Registers 0x00..0x100.
    pub regs: [u32; 64],
    /// Writable-bit mask of BAR registers 0-5 (0: no BAR).
    writable: [u32; 6],
}

/// The fake configuration space.
#[derive(Default)]
pub struct FakeEcam {
    /// Functions by address.
    pub functions: BTreeMap<Bdf, FakeFunction>,
    /// Every write: (function, offset, value).
    pub writes: Vec<(Bdf, u16, u32)>,
}

impl FakeEcam {
    /// Adds a function with header `header` ([`ENDPOINT`] or [`BRIDGE`],
    /// a bridge having at most two BARs, either with [`MULTI`] on function
    /// 0 of a device with more functions), `bars` from BAR 0 on and INTx
    /// pin `pin`.
    pub fn add(
        &mut self,
        bdf: Bdf,
        id: (u16, u16),
        class: u32,
        header: u8,
        bars: &[FakeBar],
        pin: u8,
    ) {
        let bridge = header & 0x7f == BRIDGE;
        let multi = header & MULTI != 0;
        let mut regs = [0u32; 64];
        regs[0] = u32::from(id.1) << 16 | u32::from(id.0);
        regs[2] = class << 8 | 1;
        regs[3] = (u32::from(bridge) | u32::from(multi) << 7) << 16;
        regs[15] = u32::from(pin) << 8;
        let mut writable = [0u32; 6];
        let mut i = 0;
        for bar in bars {
            match *bar {
                FakeBar::Mem32(size) => {
                    writable[i] = !(size as u32 - 1);
                    regs[4 + i] = 0;
                    i += 1;
                }
                FakeBar::Mem64(size, pref) => {
                    let mask = !(size - 1);
                    writable[i] = mask as u32 & !0xf;
                    writable[i + 1] = (mask >> 32) as u32;
                    regs[4 + i] = 0x4 | if pref { 0x8 } else { 0 };
                    i += 2;
                }
                FakeBar::Io(size) => {
                    writable[i] = !(size - 1) & !0x3;
                    regs[4 + i] = 1;
                    i += 1;
                }
            }
        }
        self.functions.insert(bdf, FakeFunction { regs, writable });
    }

    /// Sets register `off` of `bdf` as the device itself would (no write
    /// logged, no writable mask).
    pub fn write32_raw(&mut self, bdf: Bdf, off: u16, value: u32) {
        if let Some(f) = self.functions.get_mut(&bdf) {
            f.regs[usize::from(off / 4)] = value;
        }
    }

    /// Register `off` of `bdf` (all ones if there is no such function).
    pub fn reg(&self, bdf: Bdf, off: u16) -> u32 {
        self.read32(bdf, off)
    }

    /// The 64-bit address in BARs `index` and `index + 1` of `bdf`.
    pub fn bar64(&self, bdf: Bdf, index: u16) -> u64 {
        let at = reg::BAR0 + 4 * index;
        u64::from(self.reg(bdf, at + 4)) << 32 | u64::from(self.reg(bdf, at) & !0xf)
    }
}

impl ConfigAccess for FakeEcam {
    fn read32(&self, bdf: Bdf, off: u16) -> u32 {
        self.functions
            .get(&bdf)
            .and_then(|f| f.regs.get(usize::from(off / 4)))
            .copied()
            .unwrap_or(u32::MAX)
    }

    fn write32(&mut self, bdf: Bdf, off: u16, value: u32) {
        self.writes.push((bdf, off, value));
        let Some(f) = self.functions.get_mut(&bdf) else {
            return;
        };
        let i = usize::from(off / 4);
        let bars = if f.regs[3] >> 16 & 0x7f == 1 { 2 } else { 6 };
        match i {
            4..=9 if i - 4 < bars => {
                let w = f.writable[i - 4];
                f.regs[i] = f.regs[i] & !w | value & w;
            }
            // Header type, ID and class are read-only.
            0 | 2 | 3 => {}
            // Status: read-only, its error bits (24, 27-31) write-one-to-
            // clear.
            1 => {
                let status = f.regs[1] & 0xffff_0000 & !(value & 0xf900_0000);
                f.regs[1] = status | value & 0xffff;
            }
            _ if i < 64 => f.regs[i] = value,
            _ => {}
        }
    }
}
