//! Memory BARs: decoded and sized (all ones written with memory decoding
//! off, the mask read back, the value restored), kept where they are when
//! they already sit in one of the host bridge's memory windows, otherwise
//! placed in one ([`Placer`]: naturally aligned, bumping up from each
//! window's start); memory decoding and bus mastering turned on
//! ([`enable`]).
//!
//! The placer is for a bus nobody enumerated (QEMU `virt` without
//! firmware): it knows nothing of other functions' BARs, which on such a
//! bus are unassigned and not decoding. Under partita every BAR is already
//! placed (the guest's bridge is probe-only) and is never moved.

use crate::{ConfigSpace, header};
use core::fmt;

/// Windows a [`Placer`] uses (the rest are ignored).
pub const MAX_WINDOWS: usize = 4;

/// One memory window of a host bridge (an entry of its DT `ranges`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// CPU (guest-physical) address.
    pub cpu: u64,
    /// PCI bus address (what a BAR holds).
    pub pci: u64,
    /// Bytes (0: no window).
    pub size: u64,
    /// 64-bit memory space (`ranges` space code 0b11), else 32-bit.
    pub mem64: bool,
}

impl Window {
    /// The CPU address of `[pci, pci + size)` if the window holds it whole.
    pub fn holds(&self, pci: u64, size: u64) -> Option<u64> {
        let end = pci.checked_add(size)?;
        (size != 0 && pci >= self.pci && end <= self.pci.checked_add(self.size)?)
            .then(|| self.cpu + (pci - self.pci))
    }
}

/// A memory BAR as probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bar {
    /// Its index (0 to 5).
    pub index: u8,
    /// A 64-bit BAR (it takes index + 1 too).
    pub mem64: bool,
    /// Prefetchable.
    pub prefetchable: bool,
    /// The PCI address it holds.
    pub addr: u64,
    /// Its size (a power of two).
    pub size: u64,
}

/// Why a BAR cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarError {
    /// No such BAR (above 5, or a 64-bit one at 5).
    BadIndex(u8),
    /// An I/O BAR.
    Io(u8),
    /// A memory BAR of the reserved type 0b01 or 0b11.
    ReservedType(u8),
    /// The BAR is not implemented (sizing reads back 0).
    Absent(u8),
    /// No window has room for it.
    NoRoom {
        /// The BAR.
        index: u8,
        /// Its size.
        size: u64,
    },
    /// A capability's structure ends past the BAR.
    RegionOutside {
        /// The BAR.
        index: u8,
        /// Where the structure ends (offset + length).
        end: u64,
        /// The BAR's size.
        size: u64,
    },
}

impl fmt::Display for BarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadIndex(i) => write!(f, "BAR {i} does not exist"),
            Self::Io(i) => write!(f, "BAR {i} is an I/O BAR"),
            Self::ReservedType(i) => write!(f, "BAR {i} has a reserved memory type"),
            Self::Absent(i) => write!(f, "BAR {i} is not implemented"),
            Self::NoRoom { index, size } => {
                write!(
                    f,
                    "BAR {index} ({size:#x} bytes) fits in no window of the bridge"
                )
            }
            Self::RegionOutside { index, end, size } => write!(
                f,
                "a structure in BAR {index} ends at {end:#x}, past its {size:#x} bytes"
            ),
        }
    }
}

impl core::error::Error for BarError {}

fn bar_reg(index: u8) -> u16 {
    header::BAR0 + 4 * u16::from(index)
}

/// Decodes and sizes BAR `index` of `cfg`; memory decoding is off while
/// the BAR reads its size mask, then the command register is restored.
pub fn probe(cfg: &impl ConfigSpace, index: u8) -> Result<Bar, BarError> {
    if index > 5 {
        return Err(BarError::BadIndex(index));
    }
    let reg = bar_reg(index);
    let lo = cfg.read32(reg);
    if lo & 1 != 0 {
        return Err(BarError::Io(index));
    }
    let mem64 = match (lo >> 1) & 3 {
        0 => false,
        2 if index < 5 => true,
        2 => return Err(BarError::BadIndex(index)),
        _ => return Err(BarError::ReservedType(index)),
    };
    let cmd = cfg.read32(header::COMMAND) & 0xffff;
    cfg.write32(header::COMMAND, cmd & !header::CMD_MEMORY);
    let size_of = |r: u16, v: u32| {
        cfg.write32(r, u32::MAX);
        let mask = cfg.read32(r);
        cfg.write32(r, v);
        mask
    };
    let lo_mask = size_of(reg, lo) & !0xf;
    let (hi, hi_mask) = if mem64 {
        let hi = cfg.read32(reg + 4);
        (hi, size_of(reg + 4, hi))
    } else {
        (0, u32::MAX)
    };
    cfg.write32(header::COMMAND, cmd);
    let mask = u64::from(hi_mask) << 32 | u64::from(lo_mask);
    if lo_mask == 0 && (!mem64 || hi_mask == 0) {
        return Err(BarError::Absent(index));
    }
    Ok(Bar {
        index,
        mem64,
        prefetchable: lo & 8 != 0,
        addr: u64::from(hi) << 32 | u64::from(lo & !0xf),
        size: (!mask).wrapping_add(1),
    })
}

/// The CPU address of a BAR at PCI address `pci` of `size` bytes if a
/// window holds it whole.
pub fn cpu_addr(windows: &[Window], pci: u64, size: u64) -> Option<u64> {
    windows.iter().find_map(|w| w.holds(pci, size))
}

/// Hands out naturally aligned room in a bridge's windows.
#[derive(Debug)]
pub struct Placer<'w> {
    windows: &'w [Window],
    /// Next free PCI address of each window (0: its start).
    next: [u64; MAX_WINDOWS],
}

impl<'w> Placer<'w> {
    /// A placer over `windows`, all of them free.
    pub fn new(windows: &'w [Window]) -> Self {
        Placer {
            windows,
            next: [0; MAX_WINDOWS],
        }
    }

    /// Room for `bar`: a 64-bit BAR in a 64-bit window if one has room,
    /// else (as a 32-bit one) below 4 GiB in a 32-bit window. Returns
    /// (PCI address, CPU address).
    pub fn place(&mut self, bar: &Bar) -> Result<(u64, u64), BarError> {
        let no_room = BarError::NoRoom {
            index: bar.index,
            size: bar.size,
        };
        if bar.size == 0 || !bar.size.is_power_of_two() {
            return Err(no_room);
        }
        let passes: &[bool] = if bar.mem64 { &[true, false] } else { &[false] };
        for &wide in passes {
            for (i, w) in self.windows.iter().enumerate().take(MAX_WINDOWS) {
                if w.mem64 != wide || w.size == 0 {
                    continue;
                }
                let Some(at) = self.fit(i, w, bar.size, wide) else {
                    continue;
                };
                self.next[i] = at + bar.size;
                return Ok((at, w.cpu + (at - w.pci)));
            }
        }
        Err(no_room)
    }

    /// The first aligned PCI address for `size` bytes in window `i`
    /// (below 4 GiB unless `wide`).
    fn fit(&self, i: usize, w: &Window, size: u64, wide: bool) -> Option<u64> {
        let from = self.next[i].max(w.pci);
        let at = from.checked_add(size - 1)? & !(size - 1);
        let end = at.checked_add(size)?;
        let limit = w.pci.checked_add(w.size)?;
        let limit = if wide { limit } else { limit.min(1 << 32) };
        (end <= limit).then_some(at)
    }
}

/// Writes `pci` into `bar` (both halves of a 64-bit one).
pub fn program(cfg: &impl ConfigSpace, bar: &Bar, pci: u64) {
    let reg = bar_reg(bar.index);
    cfg.write32(reg, pci as u32);
    if bar.mem64 {
        cfg.write32(reg + 4, (pci >> 32) as u32);
    }
}

/// Turns on memory decoding and bus mastering (the status half of the
/// register is written 0: its error bits are write-one-to-clear).
pub fn enable(cfg: &impl ConfigSpace) {
    let cmd = cfg.read32(header::COMMAND) & 0xffff;
    cfg.write32(
        header::COMMAND,
        cmd | header::CMD_MEMORY | header::CMD_BUS_MASTER,
    );
}
