//! What a guest sees of the configuration space of a physical function
//! assigned to it ([`FunctionView`]): the hypervisor's filter between the
//! guest's config accesses and the function.
//!
//! | offset | the guest reads | the guest's writes |
//! |---|---|---|
//! | IDs, class, revision, subsystem | the function's | ignored |
//! | command | the function's | memory decode, bus master and INTx disable only (never I/O) |
//! | status | the function's, capability-list bit from the filtered list | ignored (its error bits are not cleared by the guest) |
//! | header type | the function's, without the multi-function bit | ignored |
//! | BARs | the address the hypervisor placed, with the type bits; the size mask after an all-ones write (sizing) | all ones starts sizing, anything else ends it; the address never changes (the guest DT says `linux,pci-probe-only`) |
//! | expansion ROM, CardBus CIS | 0 | ignored |
//! | capabilities pointer | the first capability kept | ignored |
//! | interrupt line / pin | a scratch byte / the function's pin | line: kept for the guest |
//! | a kept capability (PM, PCIe, vendor-specific, ...) | the function's, with `next` linking kept ones only | passed through (the header bytes excepted) |
//! | a hidden capability (MSI, MSI-X: guests have no ITS yet) | 0 | ignored |
//! | extended space (0x100 up: AER, ACS, ATS, SR-IOV, PRI, PASID, ...) | 0 (no extended capability) | ignored |
//!
//! Every access is naturally aligned, of 1, 2 or 4 bytes, below 4 KiB;
//! anything else reads all ones and writes nothing.

use super::config::{Bdf, ConfigAccess, command, reg};
use super::enumerate::{BarKind, Function};
use alloc::vec::Vec;

/// Capability IDs hidden from guests: MSI and MSI-X (no ITS for guests
/// yet), and the Enhanced Allocation capability (BAR placement is the
/// hypervisor's).
const HIDDEN_CAPS: [u8; 3] = [0x05, 0x11, 0x14];

/// Command bits a guest may set.
const GUEST_COMMAND: u32 = command::MEMORY | command::BUS_MASTER | command::INTX_DISABLE;

/// Status register (upper half of the command dword): capabilities list.
const STATUS_CAP_LIST: u32 = 1 << (16 + 4);

/// Most capabilities followed in the standard list (it holds at most 48
/// in 192 bytes; a looping list stops here).
const MAX_CAPS: usize = 48;

/// One BAR as the guest sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct BarView {
    /// Register value: address and type bits (0: no BAR here).
    value: u32,
    /// Size mask read back while sizing (0: no BAR here).
    mask: u32,
    /// Sizing: the guest wrote all ones and has not written since.
    sizing: bool,
}

/// A capability of the standard list: its offset and whether it is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cap {
    offset: u8,
    kept: bool,
}

/// The guest's view of one physical function (see the module doc).
#[derive(Clone, Debug)]
pub struct FunctionView {
    /// The physical function.
    bdf: Bdf,
    bars: [BarView; 6],
    /// Capabilities by ascending offset.
    caps: Vec<Cap>,
    /// The guest's interrupt line byte.
    line: u8,
    /// The bridge above the function when it is alone below it (its
    /// reset of last resort: `pci::reset`).
    alone_below: Option<Bdf>,
}

impl FunctionView {
    /// The view of endpoint `f` (enumerated, its BARs placed), its
    /// capability list read through `cfg`.
    pub fn new(cfg: &(impl ConfigAccess + ?Sized), f: &Function) -> Self {
        let mut bars = [BarView::default(); 6];
        for bar in &f.bars {
            let Some((pci, _)) = bar.placed else {
                continue;
            };
            let i = usize::from(bar.index);
            let size_mask = !(bar.size - 1);
            match bar.kind {
                BarKind::Mem32 => {
                    let flags = if bar.prefetchable { 0x8 } else { 0 };
                    bars[i] = BarView {
                        value: pci as u32 | flags,
                        mask: size_mask as u32 | flags,
                        sizing: false,
                    };
                }
                BarKind::Mem64 if i < 5 => {
                    let flags = 0x4 | if bar.prefetchable { 0x8 } else { 0 };
                    bars[i] = BarView {
                        value: pci as u32 | flags,
                        mask: size_mask as u32 | flags,
                        sizing: false,
                    };
                    bars[i + 1] = BarView {
                        value: (pci >> 32) as u32,
                        mask: (size_mask >> 32) as u32,
                        sizing: false,
                    };
                }
                _ => {}
            }
        }
        FunctionView {
            bdf: f.bdf,
            bars,
            caps: read_caps(cfg, f.bdf),
            line: 0,
            alone_below: None,
        }
    }

    /// The view, knowing that `bridge` is above the function with nothing
    /// else below it (`Topology::alone_below`).
    pub fn with_bridge_above(mut self, bridge: Option<Bdf>) -> Self {
        self.alone_below = bridge;
        self
    }

    /// The bridge above the function when it is alone below it.
    pub fn alone_below(&self) -> Option<Bdf> {
        self.alone_below
    }

    /// The physical function behind the view.
    pub fn bdf(&self) -> Bdf {
        self.bdf
    }

    /// The function's BAR registers as the hypervisor placed them
    /// (offset, value), to write back after a reset clears them.
    pub fn placed_bars(&self) -> impl Iterator<Item = (u16, u32)> + '_ {
        self.bars
            .iter()
            .enumerate()
            .filter(|(_, b)| b.mask != 0)
            .map(|(i, b)| (reg::BAR0 + 4 * i as u16, b.value))
    }

    /// The first kept capability at or after list position `i`.
    fn next_kept(&self, i: usize) -> u8 {
        self.caps[i..]
            .iter()
            .find(|c| c.kept)
            .map_or(0, |c| c.offset)
    }

    /// The capability `off` lies in (the one at the largest offset not
    /// above it), by list position.
    fn cap_at(&self, off: u16) -> Option<usize> {
        self.caps.iter().rposition(|c| u16::from(c.offset) <= off)
    }

    /// The 32-bit register at `aligned` (a multiple of 4) as the guest
    /// reads it.
    fn read_reg(&self, cfg: &(impl ConfigAccess + ?Sized), aligned: u16) -> u32 {
        let phys = || cfg.read32(self.bdf, aligned);
        match aligned {
            reg::ID | reg::CLASS | 0x2c => phys(),
            reg::COMMAND => {
                let v = phys() & !STATUS_CAP_LIST;
                if self.caps.iter().any(|c| c.kept) {
                    v | STATUS_CAP_LIST
                } else {
                    v
                }
            }
            // Header type without the multi-function bit; BIST none.
            reg::HEADER => phys() & 0x007f_ffff,
            0x10..=0x24 => {
                let b = self.bars[usize::from((aligned - reg::BAR0) / 4)];
                if b.sizing { b.mask } else { b.value }
            }
            0x34 => u32::from(self.next_kept(0)),
            reg::INTERRUPT => phys() & 0xff00 | u32::from(self.line),
            0x40..=0xff => match self.cap_at(aligned) {
                Some(i) if self.caps[i].kept => {
                    let v = phys();
                    if aligned == u16::from(self.caps[i].offset) {
                        // Its `next` byte links kept capabilities only.
                        v & !0xff00 | u32::from(self.next_kept(i + 1)) << 8
                    } else {
                        v
                    }
                }
                Some(_) => 0,
                // Device-specific registers before the first capability.
                None => phys(),
            },
            // ROM, CardBus CIS, reserved, extended space.
            _ => 0,
        }
    }

    /// A guest read of `width` bytes at `off`.
    pub fn read(&self, cfg: &(impl ConfigAccess + ?Sized), off: u16, width: u8) -> u32 {
        if !valid(off, width) {
            return u32::MAX;
        }
        let v = self.read_reg(cfg, off & !3) >> (u32::from(off & 3) * 8);
        match width {
            1 => v & 0xff,
            2 => v & 0xffff,
            _ => v,
        }
    }

    /// A guest write of `width` bytes of `value` at `off`.
    pub fn write(
        &mut self,
        cfg: &mut (impl ConfigAccess + ?Sized),
        off: u16,
        width: u8,
        value: u32,
    ) {
        if !valid(off, width) {
            return;
        }
        let aligned = off & !3;
        let shift = u32::from(off & 3) * 8;
        match aligned {
            reg::COMMAND if off < reg::COMMAND + 2 => {
                // The command half only: the status half's error bits
                // are write-one-to-clear and stay the function's.
                let cmd = cfg.read32(self.bdf, reg::COMMAND) & 0xffff;
                // Only the bits of the bytes written (a byte write of the
                // upper half leaves memory and bus master as they are).
                let bytes = match width {
                    1 => 0xff,
                    _ => 0xffff,
                } << shift;
                let new = (value << shift) & 0xffff;
                let mask = GUEST_COMMAND & bytes;
                let cmd = cmd & !mask | new & mask;
                cfg.write(self.bdf, reg::COMMAND, 2, cmd & !command::IO);
            }
            0x10..=0x24 if shift == 0 && width == 4 => {
                let b = &mut self.bars[usize::from((aligned - reg::BAR0) / 4)];
                b.sizing = value == u32::MAX && b.mask != 0;
            }
            0x10..=0x24 => {
                // A partial write of a BAR ends sizing, changes nothing.
                self.bars[usize::from((aligned - reg::BAR0) / 4)].sizing = false;
            }
            reg::INTERRUPT if off == reg::INTERRUPT => self.line = value as u8,
            0x40..=0xff => match self.cap_at(aligned) {
                // Not the capability's own id/next bytes.
                Some(i) if self.caps[i].kept && off >= u16::from(self.caps[i].offset) + 2 => {
                    cfg.write(self.bdf, off, width, value);
                }
                _ => {}
            },
            _ => {}
        }
    }
}

/// Whether an access of `width` bytes at `off` is one the filter serves.
fn valid(off: u16, width: u8) -> bool {
    matches!(width, 1 | 2 | 4) && off < 4096 && off.is_multiple_of(u16::from(width))
}

/// The standard capability list of `bdf`, by ascending offset, each marked
/// kept or hidden. A malformed list (a pointer into the header, a loop)
/// ends where it goes wrong.
fn read_caps(cfg: &(impl ConfigAccess + ?Sized), bdf: Bdf) -> Vec<Cap> {
    let mut caps: Vec<Cap> = Vec::new();
    if cfg.read32(bdf, reg::COMMAND) & STATUS_CAP_LIST == 0 {
        return caps;
    }
    let mut at = (cfg.read32(bdf, 0x34) & 0xfc) as u8;
    while at >= 0x40 && caps.len() < MAX_CAPS && !caps.iter().any(|c| c.offset == at) {
        let header = cfg.read32(bdf, u16::from(at));
        let id = header as u8;
        caps.push(Cap {
            offset: at,
            kept: !HIDDEN_CAPS.contains(&id),
        });
        at = ((header >> 8) & 0xfc) as u8;
    }
    caps.sort_by_key(|c| c.offset);
    caps
}
