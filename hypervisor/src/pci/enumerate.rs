//! Boot-time enumeration of one host bridge: every function on its bus
//! range (bus 0 and behind PCI-to-PCI bridges, which get bus numbers
//! depth first), every memory BAR sized and placed inside the bridge's
//! `ranges` windows (naturally aligned, largest first, each in pages of its
//! own; the windows of the
//! bridges in between set to cover their subtree), expansion ROMs off, and
//! every endpoint left with memory and I/O decoding and bus mastering off
//! and its INTx disabled (a function no guest owns cannot assert a line a
//! guest's function shares; a guest's driver enabling its function clears
//! the bit, as Linux's `pci_enable_device` does). Bridges decode memory and
//! master, so that a function a guest enables later works through them.
//!
//! I/O BARs are sized and listed but not placed (arm64 guests do not use
//! port I/O). A BAR that fits no window is listed as unplaced with the
//! reason; the function stays disabled.

use super::config::{Bdf, ConfigAccess, command, reg};
use crate::fdt::host::{PciRange, PciSpace, PcieHost};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Bridge windows are in 1 MiB units.
const BRIDGE_ALIGN: u64 = 1 << 20;

/// Every BAR gets whole pages of its own (aligned and sized up to 4 KiB):
/// stage 2 maps pages, so two functions' BARs never share one and each
/// can go to a different guest.
const BAR_MIN: u64 = 4096;

/// What a BAR decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarKind {
    /// 32-bit memory.
    Mem32,
    /// 64-bit memory (two BAR registers).
    Mem64,
    /// I/O space.
    Io,
}

/// One BAR of a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bar {
    /// BAR register index (0-5; a 64-bit BAR takes this one and the next).
    pub index: u8,
    /// What it decodes.
    pub kind: BarKind,
    /// Prefetchable memory.
    pub prefetchable: bool,
    /// Size in bytes (a power of two).
    pub size: u64,
    /// Where it was placed: PCI bus address and CPU physical address
    /// (`None`: not placed, see the topology's problems).
    pub placed: Option<(u64, u64)>,
}

/// One function found on the bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Function {
    /// Its address.
    pub bdf: Bdf,
    /// Vendor ID.
    pub vendor: u16,
    /// Device ID.
    pub device: u16,
    /// Class code (base class, subclass, programming interface).
    pub class: u32,
    /// A PCI-to-PCI bridge (header type 1).
    pub bridge: bool,
    /// Its BARs.
    pub bars: Vec<Bar>,
    /// INTx pin: 0 none, 1-4 INTA-INTD.
    pub intx_pin: u8,
    /// The PCI-to-PCI bridge whose secondary bus it is on (`None`: the
    /// host bridge's own bus).
    pub upstream: Option<Bdf>,
}

/// Something the enumeration could not do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnumProblem {
    /// A BAR fits no window of the bridge's `ranges`.
    NoRoom {
        /// The function.
        bdf: Bdf,
        /// The BAR index.
        bar: u8,
        /// Its size.
        size: u64,
    },
    /// A PCI-to-PCI bridge found no bus number left in the bus range:
    /// what is behind it is not enumerated.
    NoBusNumber {
        /// The bridge.
        bdf: Bdf,
    },
}

impl fmt::Display for EnumProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnumProblem::NoRoom { bdf, bar, size } => write!(
                f,
                "{bdf} BAR {bar} ({size:#x} bytes) fits no window of the bridge's ranges: the function stays disabled"
            ),
            EnumProblem::NoBusNumber { bdf } => write!(
                f,
                "bridge {bdf}: no bus number left in the bus range; what is behind it is not enumerated"
            ),
        }
    }
}

impl core::error::Error for EnumProblem {}

impl fmt::Display for Function {
    /// `00:02.0 1b36:0010 class 010802, bar0 mem64 0x8000000000+0x4000,
    /// INTA` (a bridge says so; an unplaced BAR says `unplaced`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:04x}:{:04x} class {:06x}",
            self.bdf, self.vendor, self.device, self.class
        )?;
        if self.bridge {
            f.write_str(" (bridge)")?;
        }
        for bar in &self.bars {
            let kind = match bar.kind {
                BarKind::Mem32 => "mem32",
                BarKind::Mem64 => "mem64",
                BarKind::Io => "io",
            };
            let pref = if bar.prefetchable { " pref" } else { "" };
            match bar.placed {
                Some((_, cpu)) => write!(
                    f,
                    ", bar{} {kind}{pref} {cpu:#x}+{:#x}",
                    bar.index, bar.size
                )?,
                None => write!(
                    f,
                    ", bar{} {kind}{pref} {:#x} bytes unplaced",
                    bar.index, bar.size
                )?,
            }
        }
        match self.intx_pin {
            1..=4 => write!(f, ", INT{}", char::from(b'A' + self.intx_pin - 1)),
            _ => Ok(()),
        }
    }
}

/// One host bridge after enumeration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Topology {
    /// The bridge's DT path.
    pub path: String,
    /// Every function, in bus, device, function order of discovery.
    pub functions: Vec<Function>,
    /// What could not be done.
    pub problems: Vec<EnumProblem>,
}

impl Topology {
    /// The function at `bdf`.
    pub fn function(&self, bdf: Bdf) -> Option<&Function> {
        self.functions.iter().find(|f| f.bdf == bdf)
    }

    /// The bridge above `bdf` when `bdf` is the only function below it
    /// (an endpoint alone on the bridge's secondary bus, nothing behind
    /// it): a secondary bus reset of that bridge resets this function and
    /// nothing else.
    pub fn alone_below(&self, bdf: Bdf) -> Option<Bdf> {
        let f = self.function(bdf)?;
        let up = f.upstream?;
        let others = self
            .functions
            .iter()
            .any(|g| g.bdf != bdf && g.upstream == Some(up));
        (!f.bridge && !others).then_some(up)
    }

    /// The highest bus a function was found on (None: no function).
    pub fn last_bus(&self) -> Option<u8> {
        self.functions.iter().map(|f| f.bdf.bus).max()
    }
}

/// A window of the bridge's `ranges`, handed out from `next` upwards.
#[derive(Clone, Copy, Debug)]
struct Window {
    range: PciRange,
    next: u64,
}

impl Window {
    fn new(range: PciRange) -> Self {
        Window {
            range,
            next: range.pci_addr,
        }
    }

    /// `size` bytes aligned to `align`: (PCI, CPU) addresses.
    fn take(&mut self, size: u64, align: u64) -> Option<(u64, u64)> {
        let at = self.next.checked_next_multiple_of(align)?;
        let end = at.checked_add(size)?;
        if end > self.range.pci_addr + self.range.size {
            return None;
        }
        self.next = end;
        Some((at, at - self.range.pci_addr + self.range.cpu_addr))
    }

    fn align_to(&mut self, align: u64) {
        let limit = self.range.pci_addr + self.range.size;
        self.next = self
            .next
            .checked_next_multiple_of(align)
            .unwrap_or(limit)
            .min(limit);
    }
}

/// The windows BARs are placed in: 32-bit memory and 64-bit memory.
struct Windows {
    mem32: Option<Window>,
    mem64: Option<Window>,
}

impl Windows {
    fn of(host: &PcieHost) -> Self {
        let find = |space| host.ranges.iter().find(|r| r.space == space).copied();
        let mem32 = find(PciSpace::Mem32).map(Window::new);
        // A 64-bit window that lies wholly below 4 GiB serves as either.
        let mem64 = find(PciSpace::Mem64).map(Window::new);
        Windows { mem32, mem64 }
    }
}

/// State of one enumeration.
struct Walk<'a, C: ConfigAccess> {
    cfg: &'a mut C,
    windows: Windows,
    next_bus: u16,
    last_bus: u8,
    topo: Topology,
}

/// Enumerates host bridge `host` through `cfg`, sizing and placing BARs
/// and leaving endpoints disabled (see the module documentation).
pub fn enumerate<C: ConfigAccess>(cfg: &mut C, host: &PcieHost) -> Topology {
    let first = host.bus_range.0.min(255) as u8;
    let last = host.bus_range.1.min(255) as u8;
    let mut w = Walk {
        cfg,
        windows: Windows::of(host),
        next_bus: u16::from(first) + 1,
        last_bus: last,
        topo: Topology {
            path: host.path.clone(),
            ..Topology::default()
        },
    };
    w.bus(first, true, None);
    w.topo
}

impl<C: ConfigAccess> Walk<'_, C> {
    /// Enumerates bus `bus` and what is behind its bridges; places the
    /// BARs of its endpoints (`root`: the host bridge's own bus, where
    /// 64-bit BARs may use the 64-bit window whether prefetchable or not).
    fn bus(&mut self, bus: u8, root: bool, upstream: Option<Bdf>) {
        // Functions whose BARs are decoded on this bus (a bridge's own
        // BARs included), placed once what is behind the bridges is.
        let mut on_bus = Vec::new();
        for dev in 0..32 {
            let f0 = Bdf::new(bus, dev, 0);
            if self.cfg.read32(f0, reg::ID) & 0xffff == 0xffff {
                continue;
            }
            let multi = self.cfg.read32(f0, reg::HEADER) >> 23 & 1 == 1;
            for func in 0..if multi { 8 } else { 1 } {
                let bdf = Bdf::new(bus, dev, func);
                let id = self.cfg.read32(bdf, reg::ID);
                if id & 0xffff == 0xffff {
                    continue;
                }
                let header = (self.cfg.read32(bdf, reg::HEADER) >> 16) & 0x7f;
                let bridge = header == 1;
                let f = Function {
                    bdf,
                    vendor: id as u16,
                    device: (id >> 16) as u16,
                    class: self.cfg.read32(bdf, reg::CLASS) >> 8,
                    bridge,
                    bars: self.size_bars(bdf, if bridge { 2 } else { 6 }),
                    intx_pin: (self.cfg.read32(bdf, reg::INTERRUPT) >> 8) as u8,
                    upstream,
                };
                let rom = if bridge { reg::ROM1 } else { reg::ROM0 };
                self.cfg.write32(bdf, rom, 0);
                let index = self.topo.functions.len();
                self.topo.functions.push(f);
                if bridge {
                    self.bridge(index);
                }
                on_bus.push(index);
            }
        }
        self.place(&on_bus, root);
    }

    /// Sizes the first `count` BARs of `bdf` (decoding off meanwhile, and
    /// left off, its INTx disabled).
    fn size_bars(&mut self, bdf: Bdf, count: u8) -> Vec<Bar> {
        let cmd = self.cfg.read32(bdf, reg::COMMAND);
        let off =
            cmd & !(command::MEMORY | command::IO | command::BUS_MASTER) | command::INTX_DISABLE;
        self.cfg.write32(bdf, reg::COMMAND, off & 0xffff);
        let mut bars = Vec::new();
        let mut i = 0;
        while i < count {
            let at = reg::BAR0 + 4 * u16::from(i);
            let old = self.cfg.read32(bdf, at);
            self.cfg.write32(bdf, at, u32::MAX);
            let mask = self.cfg.read32(bdf, at);
            self.cfg.write32(bdf, at, old);
            if mask == 0 || mask == u32::MAX && old == u32::MAX {
                i += 1;
                continue;
            }
            if mask & 1 == 1 {
                let size = u64::from(!(mask & !0x3)).wrapping_add(1) & 0xffff_ffff;
                if size != 0 {
                    bars.push(Bar {
                        index: i,
                        kind: BarKind::Io,
                        prefetchable: false,
                        size,
                        placed: None,
                    });
                }
                i += 1;
                continue;
            }
            let prefetchable = mask & 0x8 != 0;
            let (kind, full) = if (mask >> 1) & 3 == 2 && i + 1 < count {
                let hi_at = at + 4;
                let hi_old = self.cfg.read32(bdf, hi_at);
                self.cfg.write32(bdf, hi_at, u32::MAX);
                let hi = self.cfg.read32(bdf, hi_at);
                self.cfg.write32(bdf, hi_at, hi_old);
                (BarKind::Mem64, u64::from(hi) << 32 | u64::from(mask & !0xf))
            } else {
                (
                    BarKind::Mem32,
                    0xffff_ffff_0000_0000 | u64::from(mask & !0xf),
                )
            };
            let size = (!full).wrapping_add(1);
            if size.is_power_of_two() {
                bars.push(Bar {
                    index: i,
                    kind,
                    prefetchable,
                    size,
                    placed: None,
                });
            }
            i += if kind == BarKind::Mem64 { 2 } else { 1 };
        }
        bars
    }

    /// Gives the bridge at `topo.functions[index]` the next bus number,
    /// enumerates behind it and opens its windows over what was placed
    /// there.
    fn bridge(&mut self, index: usize) {
        let bdf = self.topo.functions[index].bdf;
        if self.next_bus > u16::from(self.last_bus) {
            self.topo.problems.push(EnumProblem::NoBusNumber { bdf });
            return;
        }
        let secondary = self.next_bus as u8;
        self.next_bus += 1;
        let buses = |sub: u8| u32::from(bdf.bus) | u32::from(secondary) << 8 | u32::from(sub) << 16;
        self.cfg
            .write32(bdf, reg::BUS_NUMBERS, buses(self.last_bus));
        for w in [&mut self.windows.mem32, &mut self.windows.mem64]
            .into_iter()
            .flatten()
        {
            w.align_to(BRIDGE_ALIGN);
        }
        let start = (self.next32(), self.next64());
        self.bus(secondary, false, Some(bdf));
        for w in [&mut self.windows.mem32, &mut self.windows.mem64]
            .into_iter()
            .flatten()
        {
            w.align_to(BRIDGE_ALIGN);
        }
        let end = (self.next32(), self.next64());
        let subordinate = (self.next_bus - 1) as u8;
        self.cfg.write32(bdf, reg::BUS_NUMBERS, buses(subordinate));
        // Closed windows have base above limit.
        let (base, limit) = if end.0 > start.0 {
            (start.0, end.0 - 1)
        } else {
            (0xfff0_0000, 0)
        };
        let window = |base: u64, limit: u64| {
            ((base >> 16) as u32 & 0xfff0) | ((limit >> 16) as u32 & 0xfff0) << 16
        };
        self.cfg
            .write32(bdf, reg::MEMORY_WINDOW, window(base, limit));
        let (base, limit) = if end.1 > start.1 {
            (start.1, end.1 - 1)
        } else {
            (0xfff0_0000, 0)
        };
        self.cfg
            .write32(bdf, reg::PREF_WINDOW, window(base, limit) | 1 | 1 << 16);
        self.cfg
            .write32(bdf, reg::PREF_BASE_UPPER, (base >> 32) as u32);
        self.cfg
            .write32(bdf, reg::PREF_LIMIT_UPPER, (limit >> 32) as u32);
        let cmd = self.cfg.read32(bdf, reg::COMMAND) & 0xffff;
        self.cfg.write32(
            bdf,
            reg::COMMAND,
            cmd | command::MEMORY | command::BUS_MASTER,
        );
    }

    fn next32(&self) -> u64 {
        self.windows.mem32.map_or(0, |w| w.next)
    }

    fn next64(&self) -> u64 {
        self.windows.mem64.map_or(0, |w| w.next)
    }

    /// Places the memory BARs of the functions `indices`, largest first,
    /// and writes them; an endpoint's decoding stays off.
    fn place(&mut self, indices: &[usize], root: bool) {
        let mut todo: Vec<(usize, usize)> = indices
            .iter()
            .flat_map(|&f| (0..self.topo.functions[f].bars.len()).map(move |b| (f, b)))
            .filter(|&(f, b)| self.topo.functions[f].bars[b].kind != BarKind::Io)
            .collect();
        todo.sort_by_key(|&(f, b)| core::cmp::Reverse(self.topo.functions[f].bars[b].size));
        for (f, b) in todo {
            let bdf = self.topo.functions[f].bdf;
            let bar = self.topo.functions[f].bars[b];
            // 64-bit BARs: the 64-bit window where the path allows it
            // (the root bus, or prefetchable behind bridges), else below
            // 4 GiB.
            let wide = bar.kind == BarKind::Mem64 && (root || bar.prefetchable);
            let first = if wide {
                self.windows.mem64.as_mut()
            } else {
                self.windows.mem32.as_mut()
            };
            let span = bar.size.max(BAR_MIN);
            let placed = first
                .and_then(|w| w.take(span, span))
                .or_else(|| match wide {
                    // A 64-bit BAR that did not fit above may go below.
                    true => self.windows.mem32.as_mut()?.take(span, span),
                    false => None,
                });
            match placed {
                Some((pci, cpu)) => {
                    let at = reg::BAR0 + 4 * u16::from(bar.index);
                    let flags = self.cfg.read32(bdf, at) & 0xf;
                    self.cfg.write32(bdf, at, pci as u32 & !0xf | flags);
                    if bar.kind == BarKind::Mem64 {
                        self.cfg.write32(bdf, at + 4, (pci >> 32) as u32);
                    }
                    self.topo.functions[f].bars[b].placed = Some((pci, cpu));
                }
                None => self.topo.problems.push(EnumProblem::NoRoom {
                    bdf,
                    bar: bar.index,
                    size: bar.size,
                }),
            }
        }
    }
}
