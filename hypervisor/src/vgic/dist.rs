//! The emulated distributor (GICD) and the per-interrupt state it shares
//! with the redistributors.

use super::hw::{RegCtx, StateReg};
use super::{IrqState, SPI_BASE, merge};
use crate::gic::PhysGic;
use alloc::vec;
use alloc::vec::Vec;

const CTLR: u64 = 0x0000;
const TYPER: u64 = 0x0004;
const IIDR: u64 = 0x0008;
const TYPER2: u64 = 0x000c;
const STATUSR: u64 = 0x0010;
const IGROUPR: u64 = 0x0080;
const ISENABLER: u64 = 0x0100;
const ICENABLER: u64 = 0x0180;
const ISPENDR: u64 = 0x0200;
const ICACTIVER: u64 = 0x0380;
const IPRIORITYR: u64 = 0x0400;
const ICFGR: u64 = 0x0c00;
const IROUTER: u64 = 0x6000;
const PIDR2: u64 = 0xffe8;

/// ICTLR bits the guest may set: EnableGrp0, EnableGrp1; ARE reads as one.
const CTLR_ARE: u32 = 1 << 4;
const CTLR_ENABLES: u32 = 0b11;
/// Implementer: Arm-style JEP106 0x43B, product 'P' for partita.
const IIDR_VALUE: u32 = 0x5000_043b;

/// The whole virtual GIC state of one guest (distributor and
/// redistributors), behind the guest's lock.
pub struct VGic {
    /// Number of SPIs the guest sees (a multiple of 32, at most 988).
    pub nr_spis: u32,
    /// Physical CPU of each vCPU.
    pub pcpus: Vec<usize>,
    /// GICD_CTLR enables.
    pub ctlr: u32,
    /// SPI state, index = INTID - 32.
    pub spis: Vec<IrqState>,
    /// SGI/PPI state per vCPU.
    pub private: Vec<[IrqState; 32]>,
    /// GICR_WAKER.ProcessorSleep per vCPU.
    pub sleeping: Vec<bool>,
}

impl VGic {
    /// A GIC for vCPUs running on `pcpus`, exposing `nr_spis` SPIs, with
    /// the guest owning `owned` INTIDs (SPIs and PPIs).
    pub fn new(pcpus: Vec<usize>, nr_spis: u32, owned: &[u32]) -> VGic {
        let nr_spis = nr_spis.min(988).next_multiple_of(32);
        let mut g = VGic {
            nr_spis,
            private: vec![[IrqState::default(); 32]; pcpus.len()],
            sleeping: vec![true; pcpus.len()],
            pcpus,
            ctlr: 0,
            spis: vec![IrqState::default(); nr_spis as usize],
        };
        for p in g.private.iter_mut() {
            for (i, s) in p.iter_mut().enumerate() {
                s.edge = i < 16; // SGIs are edge-triggered
            }
        }
        for &intid in owned {
            g.set_owned(intid);
        }
        g
    }

    fn set_owned(&mut self, intid: u32) {
        if (16..32).contains(&intid) {
            for p in self.private.iter_mut() {
                p[intid as usize].owned = true;
            }
        } else if let Some(s) = self.spi_mut(intid) {
            s.owned = true;
        }
    }

    /// Number of vCPUs.
    pub fn vcpus(&self) -> usize {
        self.pcpus.len()
    }

    /// State of SPI `intid`, if the guest has it.
    pub fn spi(&self, intid: u32) -> Option<&IrqState> {
        intid
            .checked_sub(SPI_BASE)
            .and_then(|i| self.spis.get(i as usize))
    }

    fn spi_mut(&mut self, intid: u32) -> Option<&mut IrqState> {
        intid
            .checked_sub(SPI_BASE)
            .and_then(|i| self.spis.get_mut(i as usize))
    }

    /// State of `intid` as seen from `vcpu` (private for SGIs/PPIs).
    pub fn irq(&self, vcpu: usize, intid: u32) -> Option<&IrqState> {
        if intid < SPI_BASE {
            self.private.get(vcpu).map(|p| &p[intid as usize])
        } else {
            self.spi(intid)
        }
    }

    /// Mutable state of `intid` as seen from `vcpu`.
    pub fn irq_mut(&mut self, vcpu: usize, intid: u32) -> Option<&mut IrqState> {
        if intid < SPI_BASE {
            self.private.get_mut(vcpu).map(|p| &mut p[intid as usize])
        } else {
            self.spi_mut(intid)
        }
    }

    /// Which vCPU an owned hardware interrupt `intid` arriving on physical
    /// CPU `pcpu` is for: the vCPU on that CPU for PPIs, the target for SPIs.
    pub fn hw_target(&self, intid: u32, pcpu: usize) -> Option<usize> {
        let vcpu_here = self.pcpus.iter().position(|&p| p == pcpu)?;
        let s = self.irq(vcpu_here, intid)?;
        if !s.owned {
            return None;
        }
        Some(if intid < SPI_BASE {
            vcpu_here
        } else {
            s.target
        })
    }

    /// Whether the distributor forwards group-1 interrupts.
    pub fn group1_enabled(&self) -> bool {
        self.ctlr & 0b10 != 0
    }

    /// Reads a distributor register (width 1, 2, 4 or 8 bytes) for the
    /// access `ctx`.
    pub fn dist_read(&self, ctx: &RegCtx<'_>, offset: u64, width: usize) -> u64 {
        let reg = offset & !3;
        let word: u64 = match reg {
            CTLR => (self.ctlr | CTLR_ARE) as u64,
            TYPER => {
                // ITLinesNumber, IDbits = 9 (10 INTID bits), no LPIs/MBIS.
                let lines = (self.nr_spis + 32) / 32 - 1;
                ((9 << 19) | lines) as u64
            }
            IIDR => IIDR_VALUE as u64,
            TYPER2 | STATUSR => 0,
            r if (IGROUPR..IGROUPR + 0x80).contains(&r) => self.bits(r - IGROUPR, |_| true) as u64,
            r if (ISENABLER..ISENABLER + 0x80).contains(&r) => {
                self.bits(r - ISENABLER, |s| s.enabled) as u64
            }
            r if (ICENABLER..ICENABLER + 0x80).contains(&r) => {
                self.bits(r - ICENABLER, |s| s.enabled) as u64
            }
            r if (ISPENDR..ICACTIVER + 0x80).contains(&r) => {
                let (reg, bank) = state_reg(r);
                self.state_read(ctx, None, ((r - bank) * 8) as u32, reg) as u64
            }
            r if (IPRIORITYR..IPRIORITYR + 0x400).contains(&r) => {
                return self.bytes(offset - IPRIORITYR, width, |s| s.priority);
            }
            r if (ICFGR..ICFGR + 0x100).contains(&r) => self.cfg_word(r - ICFGR) as u64,
            r if (IROUTER..IROUTER + 0x2000).contains(&r) => {
                let intid = ((offset - IROUTER) / 8) as u32;
                return match self.spi(intid) {
                    Some(s) if intid >= SPI_BASE && offset.is_multiple_of(8) => s.target as u64,
                    _ => 0,
                };
            }
            PIDR2 => 0x3b, // GICv3, Arm-style
            _ => 0,        // ITARGETSR, IGRPMODR, NSACR, SGIR...
        };
        extract(word, offset, width)
    }

    /// Writes a distributor register for the access `ctx`.
    pub fn dist_write(&mut self, ctx: &RegCtx<'_>, offset: u64, width: usize, value: u64) {
        let phys = ctx.phys;
        let reg = offset & !3;
        match reg {
            CTLR => self.ctlr = merge(self.ctlr, offset, width, value) & CTLR_ENABLES,
            r if (ISENABLER..ISENABLER + 0x80).contains(&r) => {
                self.set_enables(phys, None, r - ISENABLER, value as u32, true)
            }
            r if (ICENABLER..ICENABLER + 0x80).contains(&r) => {
                self.set_enables(phys, None, r - ICENABLER, value as u32, false)
            }
            r if (ISPENDR..ICACTIVER + 0x80).contains(&r) => {
                let (sr, bank) = state_reg(r);
                self.state_write(ctx, None, ((r - bank) * 8) as u32, value as u32, sr);
            }
            r if (IPRIORITYR..IPRIORITYR + 0x400).contains(&r) => {
                for i in 0..width as u64 {
                    let intid = (offset - IPRIORITYR + i) as u32;
                    if intid >= SPI_BASE
                        && let Some(s) = self.spi_mut(intid)
                    {
                        s.priority = (value >> (8 * i)) as u8;
                    }
                }
            }
            r if (ICFGR..ICFGR + 0x100).contains(&r) => {
                let first = ((r - ICFGR) * 4) as u32;
                if first >= SPI_BASE {
                    let word = merge(self.cfg_word(r - ICFGR), offset, width, value);
                    for i in 0..16 {
                        let intid = first + i;
                        let edge = word & (2 << (2 * i)) != 0;
                        let pcpu = self.pcpu_of_spi(intid);
                        if let Some(s) = self.spi_mut(intid) {
                            s.edge = edge;
                            if s.owned {
                                phys.set_edge(intid, pcpu, edge);
                            }
                        }
                    }
                }
            }
            r if (IROUTER..IROUTER + 0x2000).contains(&r) => {
                if !offset.is_multiple_of(8) {
                    return; // the upper half (Aff3) is ignored
                }
                let intid = ((offset - IROUTER) / 8) as u32;
                let vcpus = self.vcpus();
                // IRM (bit 31: any CPU) is treated as vCPU 0.
                let target = if value & (1 << 31) != 0 {
                    0
                } else {
                    (value & 0xff) as usize
                };
                if intid >= SPI_BASE && target < vcpus {
                    let pcpu = self.pcpus[target];
                    if let Some(s) = self.spi_mut(intid) {
                        s.target = target;
                        if s.owned {
                            phys.route_spi(intid, pcpu);
                        }
                    }
                }
            }
            _ => {} // RO, RAZ/WI (groups, ITARGETSR, IGRPMODR)
        }
    }

    fn pcpu_of_spi(&self, intid: u32) -> usize {
        let target = self.spi(intid).map(|s| s.target).unwrap_or(0);
        self.pcpus.get(target).copied().unwrap_or(0)
    }

    /// Applies a set/clear-enable write for 32 INTIDs starting at
    /// `reg_off * 8`; `vcpu` is given for the redistributor's SGI/PPI copy.
    pub(crate) fn set_enables(
        &mut self,
        phys: &dyn PhysGic,
        vcpu: Option<usize>,
        reg_off: u64,
        value: u32,
        enable: bool,
    ) {
        let first = (reg_off * 8) as u32;
        for bit in 0..32 {
            if value & (1 << bit) == 0 {
                continue;
            }
            let intid = first + bit;
            match vcpu {
                Some(v) if intid < SPI_BASE => {
                    let pcpu = self.pcpus[v];
                    let s = &mut self.private[v][intid as usize];
                    s.enabled = enable;
                    if s.owned {
                        phys.set_enabled(intid, pcpu, enable);
                    }
                }
                None if intid >= SPI_BASE => {
                    let pcpu = self.pcpu_of_spi(intid);
                    if let Some(s) = self.spi_mut(intid) {
                        s.enabled = enable;
                        if s.owned {
                            phys.route_spi(intid, pcpu);
                            phys.set_enabled(intid, pcpu, enable);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// One bit per INTID for the 32 INTIDs of register `reg_off / 4`.
    fn bits(&self, reg_off: u64, f: impl Fn(&IrqState) -> bool) -> u32 {
        let first = (reg_off * 8) as u32;
        (0..32)
            .filter(|&b| {
                let intid = first + b;
                intid >= SPI_BASE && self.spi(intid).is_some_and(&f)
            })
            .fold(0, |acc, b| acc | 1 << b)
    }

    fn bytes(&self, off: u64, width: usize, f: impl Fn(&IrqState) -> u8) -> u64 {
        (0..width as u64).fold(0, |acc, i| {
            let intid = (off + i) as u32;
            let v = if intid >= SPI_BASE {
                self.spi(intid).map(&f).unwrap_or(0)
            } else {
                0
            };
            acc | (v as u64) << (8 * i)
        })
    }

    fn cfg_word(&self, reg_off: u64) -> u32 {
        let first = (reg_off * 4) as u32;
        (0..16).fold(0, |acc, i| {
            let intid = first + i;
            let edge = intid >= SPI_BASE && self.spi(intid).is_some_and(|s| s.edge);
            acc | if edge { 2 << (2 * i) } else { 0 }
        })
    }
}

/// Which state register bank `reg` (an offset in the ISPENDR..ICACTIVER
/// range, the same in the distributor and the SGI frame) is in, and the
/// bank's offset.
pub(crate) fn state_reg(reg: u64) -> (StateReg, u64) {
    match reg & 0x380 {
        0x200 => (StateReg::SetPending, reg & !0x7f),
        0x280 => (StateReg::ClearPending, reg & !0x7f),
        0x300 => (StateReg::SetActive, reg & !0x7f),
        _ => (StateReg::ClearActive, reg & !0x7f),
    }
}

/// The `width` bytes at `offset` of a 32-bit register value.
pub(crate) fn extract(word: u64, offset: u64, width: usize) -> u64 {
    let shifted = word >> ((offset % 4) * 8);
    if width >= 8 {
        shifted
    } else {
        shifted & ((1u64 << (width * 8)) - 1)
    }
}
