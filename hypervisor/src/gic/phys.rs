//! Driver for the physical GICv3 distributor and redistributors.
//!
//! [`PhysGicDriver`] is plain logic over [`GicRegs`], tested on the host
//! with a recording register file; the CPU's own side (its affinity, its
//! index, the CPU interface's system registers) is reached through
//! [`Arch`]. The hypervisor's one driver, [`get`], uses [`Mmio`]: the
//! caller of [`init_distributor`] maps the GIC's [`frames`] first.

use super::regs::{GicRegs, Mmio};
use super::{KICK_SGI, maintenance_ppi};
use super::{PHYS_PRIORITY, PhysGic};
use crate::arch::{Arch, Cpu};
use crate::fdt::Gic;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::{Mutex, Once};

#[cfg(test)]
mod tests;

/// Most CPUs the hypervisor handles.
pub const MAX_CPUS: usize = 64;

const GICD_CTLR: usize = 0x0;
const GICD_TYPER: usize = 0x4;
const GICD_IGROUPR: usize = 0x80;
const GICD_ISENABLER: usize = 0x100;
const GICD_ICENABLER: usize = 0x180;
const GICD_ISPENDR: usize = 0x200;
const GICD_ICPENDR: usize = 0x280;
const GICD_ISACTIVER: usize = 0x300;
const GICD_ICACTIVER: usize = 0x380;
const GICD_IPRIORITYR: usize = 0x400;
const GICD_ICFGR: usize = 0xc00;
const GICD_IROUTER: usize = 0x6000;
/// GICD_CTLR.RWP: a register write is still taking effect.
const CTLR_RWP: u32 = 1 << 31;
/// GICD_CTLR: ARE_NS (affinity routing) and both group enables.
const CTLR_ENABLE: u32 = (1 << 4) | 0b11;

const GICR_TYPER: usize = 0x8;
const GICR_WAKER: usize = 0x14;
/// GICR_WAKER.ProcessorSleep.
const WAKER_SLEEP: u32 = 1 << 1;
/// GICR_WAKER.ChildrenAsleep.
const WAKER_ASLEEP: u32 = 1 << 2;
/// GICR_TYPER.VLPIS: the redistributor has the two extra VLPI frames.
const TYPER_VLPIS: u64 = 1 << 1;
/// GICR_TYPER.Last: the last redistributor of its region.
const TYPER_LAST: u64 = 1 << 4;
const SGI: usize = 0x1_0000;
const GICR_IGROUPR0: usize = SGI + 0x80;
const GICR_ISENABLER0: usize = SGI + 0x100;
const GICR_ICENABLER0: usize = SGI + 0x180;
const GICR_ISPENDR0: usize = SGI + 0x200;
const GICR_ICPENDR0: usize = SGI + 0x280;
const GICR_ISACTIVER0: usize = SGI + 0x300;
const GICR_ICACTIVER0: usize = SGI + 0x380;
const GICR_IPRIORITYR: usize = SGI + 0x400;
const GICR_ICFGR1: usize = SGI + 0xc04;

/// Size of one redistributor without and with the VLPI frames.
const REDIST_SIZE: usize = 0x2_0000;
const REDIST_SIZE_VLPIS: usize = 0x4_0000;
/// Size of the distributor frame the driver uses.
const DIST_SIZE: u64 = 0x1_0000;
/// Polls of a busy bit before giving up on it.
const MAX_POLLS: u32 = 1_000_000;

/// The physical GIC: its distributor, the redistributors found in its
/// regions, and the affinity of each logical CPU that set itself up.
pub struct PhysGicDriver<R: GicRegs = Mmio> {
    regs: R,
    dist: usize,
    nr_spis: u32,
    /// Per redistributor slot: its frame (0: none) and its affinity.
    redist: [AtomicU64; MAX_CPUS],
    mpidr: [AtomicU64; MAX_CPUS],
    /// MPIDR of each logical CPU, filled as CPUs initialise their interface.
    cpu_mpidr: [AtomicU64; MAX_CPUS],
    /// Serialises read-modify-write sequences (ICFGR).
    rmw: Mutex<()>,
}

static GIC: Once<PhysGicDriver> = Once::new();

/// Why the GIC could not be set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GicError {
    /// The DT names no GICv3.
    Missing,
    /// Mapping its registers failed (the caller's mapping of [`frames`]).
    Map(crate::mm::pagetable::MapError),
    /// No redistributor matches this CPU's MPIDR.
    NoRedistributor(u64),
}

impl core::fmt::Display for GicError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            GicError::Missing => write!(f, "no GICv3 in the device tree"),
            GicError::Map(e) => write!(f, "cannot map GIC registers: {e}"),
            GicError::NoRedistributor(m) => write!(f, "no redistributor for mpidr {m:#x}"),
        }
    }
}

impl core::error::Error for GicError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            GicError::Map(e) => Some(e),
            GicError::Missing | GicError::NoRedistributor(_) => None,
        }
    }
}

/// The driver, once the distributor is set up.
pub fn get() -> Option<&'static PhysGicDriver> {
    GIC.get()
}

/// The register frames of `gic` the driver uses, as `(base, size)`: the
/// distributor (at least its 64 KiB) and every redistributor region. Map
/// them as device memory before [`init_distributor`].
pub fn frames(gic: &Gic) -> impl Iterator<Item = (u64, u64)> + '_ {
    core::iter::once((gic.dist.base, gic.dist.size.max(DIST_SIZE)))
        .chain(gic.redists.iter().map(|r| (r.base, r.size)))
}

/// Resets the distributor of `gic` ([`PhysGicDriver::new`]) and makes it
/// the driver [`get`] returns; a second call returns the first driver.
///
/// # Safety
/// Every frame of [`frames`]`(gic)` must be mapped as device memory and
/// used by nothing else.
pub unsafe fn init_distributor(gic: &Gic) -> &'static PhysGicDriver {
    GIC.call_once(|| {
        // SAFETY: the caller mapped the frames the driver accesses.
        PhysGicDriver::new(unsafe { Mmio::new() }, gic)
    })
}

/// IROUTER / GICR_TYPER affinity packing of an MPIDR.
fn affinity(mpidr: u64) -> u64 {
    mpidr & 0xff_00ff_ffff
}

impl<R: GicRegs> PhysGicDriver<R> {
    /// Resets the distributor of `gic` through `regs`: all SPIs disabled,
    /// not pending, group 1, priority [`PHYS_PRIORITY`], routed to this
    /// CPU, affinity routing on; then finds the redistributors.
    pub fn new(regs: R, gic: &Gic) -> Self {
        let d = gic.dist.base as usize;
        let lines = (regs.read32(d + GICD_TYPER) & 0x1f) + 1;
        let drv = PhysGicDriver {
            regs,
            dist: d,
            nr_spis: (lines * 32).min(1020) - 32,
            redist: [const { AtomicU64::new(0) }; MAX_CPUS],
            mpidr: [const { AtomicU64::new(0) }; MAX_CPUS],
            cpu_mpidr: [const { AtomicU64::new(0) }; MAX_CPUS],
            rmw: Mutex::new(()),
        };
        drv.reset_distributor(lines as usize);
        drv.find_redistributors(gic);
        drv
    }

    fn reset_distributor(&self, lines: usize) {
        let (d, r) = (self.dist, &self.regs);
        r.write32(d + GICD_CTLR, 0);
        self.wait_rwp();
        for i in 1..lines {
            r.write32(d + GICD_ICENABLER + 4 * i, u32::MAX);
            r.write32(d + GICD_ICPENDR + 4 * i, u32::MAX);
            r.write32(d + GICD_IGROUPR + 4 * i, u32::MAX);
        }
        let prio = u32::from_ne_bytes([PHYS_PRIORITY; 4]);
        for i in 8..(lines * 8) {
            r.write32(d + GICD_IPRIORITYR + 4 * i, prio);
        }
        let boot = affinity(Cpu::mpidr());
        for intid in 32..(32 + self.nr_spis as usize) {
            r.write64(d + GICD_IROUTER + 8 * intid, boot);
        }
        // ARE (ARE_NS) and both group enables, in either security view.
        r.write32(d + GICD_CTLR, CTLR_ENABLE);
        self.wait_rwp();
    }

    fn wait_rwp(&self) {
        let mut n = 0;
        while self.regs.read32(self.dist + GICD_CTLR) & CTLR_RWP != 0 && n < MAX_POLLS {
            n += 1;
            core::hint::spin_loop();
        }
    }

    /// SPIs the distributor implements.
    pub fn nr_spis(&self) -> u32 {
        self.nr_spis
    }

    /// Walks each redistributor region frame by frame (a stride of two or,
    /// with VLPIS, four 64 KiB frames) up to its end or the frame with
    /// GICR_TYPER.Last, recording each frame and its affinity.
    fn find_redistributors(&self, gic: &Gic) {
        let mut slot = 0;
        for r in &gic.redists {
            let mut frame = r.base as usize;
            let end = r.end() as usize;
            while frame + REDIST_SIZE <= end && slot < MAX_CPUS {
                let typer = self.regs.read64(frame + GICR_TYPER);
                self.redist[slot].store(frame as u64, Ordering::Relaxed);
                // Store the affinity in MPIDR's packing: Aff3 in 39:32,
                // Aff2..Aff0 in 23:0 (GICR_TYPER has Aff3.Aff2.Aff1.Aff0).
                let a = typer >> 32;
                let mpidr = (a & 0xff_ffff) | ((a >> 24) & 0xff) << 32;
                self.mpidr[slot].store(mpidr, Ordering::Relaxed);
                slot += 1;
                if typer & TYPER_LAST != 0 {
                    break;
                }
                frame += if typer & TYPER_VLPIS != 0 {
                    REDIST_SIZE_VLPIS
                } else {
                    REDIST_SIZE
                };
            }
        }
    }

    fn redist_of(&self, mpidr: u64) -> Option<usize> {
        (0..MAX_CPUS)
            .find(|&i| {
                self.redist[i].load(Ordering::Relaxed) != 0
                    && self.mpidr[i].load(Ordering::Relaxed) == affinity(mpidr)
            })
            .map(|i| self.redist[i].load(Ordering::Relaxed) as usize)
    }

    /// MPIDR of logical CPU `pcpu` (set by [`PhysGicDriver::init_cpu`]).
    pub fn cpu_mpidr(&self, pcpu: usize) -> u64 {
        self.cpu_mpidr[pcpu % MAX_CPUS].load(Ordering::Relaxed)
    }

    /// Wakes this CPU's redistributor, resets its SGIs/PPIs (group 1,
    /// disabled, not pending, priority [`PHYS_PRIORITY`]) and enables the
    /// kick SGI and the maintenance interrupt, then the CPU interface.
    pub fn init_cpu(&self) -> Result<(), GicError> {
        let me = Cpu::mpidr();
        self.cpu_mpidr[Cpu::cpu_index() % MAX_CPUS].store(me, Ordering::Relaxed);
        let rd = self.redist_of(me).ok_or(GicError::NoRedistributor(me))?;
        let r = &self.regs;
        r.write32(rd + GICR_WAKER, r.read32(rd + GICR_WAKER) & !WAKER_SLEEP);
        let mut n = 0;
        while r.read32(rd + GICR_WAKER) & WAKER_ASLEEP != 0 && n < MAX_POLLS {
            n += 1;
            core::hint::spin_loop();
        }
        r.write32(rd + GICR_ICENABLER0, u32::MAX);
        r.write32(rd + GICR_ICPENDR0, u32::MAX);
        r.write32(rd + GICR_IGROUPR0, u32::MAX);
        let prio = u32::from_ne_bytes([PHYS_PRIORITY; 4]);
        for i in 0..8 {
            r.write32(rd + GICR_IPRIORITYR + 4 * i, prio);
        }
        r.write32(
            rd + GICR_ISENABLER0,
            (1 << KICK_SGI) | (1 << maintenance_ppi()),
        );
        Cpu::gic_init_cpu_interface();
        Ok(())
    }

    fn pcpu_redist(&self, pcpu: usize) -> Option<usize> {
        self.redist_of(self.cpu_mpidr(pcpu))
    }

    fn is_spi(&self, intid: u32) -> bool {
        (32..32 + self.nr_spis).contains(&intid)
    }

    /// The register holding `intid`'s bit in a one-bit-per-INTID bank
    /// (at `dist_bank` in the distributor for SPIs, at `redist_bank` in
    /// `pcpu`'s redistributor for SGIs and PPIs), and the bit; None for an
    /// INTID the GIC does not have.
    fn bit(
        &self,
        intid: u32,
        pcpu: usize,
        dist_bank: usize,
        redist_bank: usize,
    ) -> Option<(usize, u32)> {
        let bit = 1u32 << (intid % 32);
        if intid < 32 {
            self.pcpu_redist(pcpu).map(|r| (r + redist_bank, bit))
        } else if self.is_spi(intid) {
            Some((self.dist + dist_bank + 4 * (intid as usize / 32), bit))
        } else {
            None
        }
    }

    /// Whether `intid`'s bit is set in the bank (a set-register read).
    fn test_bit(&self, intid: u32, pcpu: usize, dist_bank: usize, redist_bank: usize) -> bool {
        self.bit(intid, pcpu, dist_bank, redist_bank)
            .is_some_and(|(addr, bit)| self.regs.read32(addr) & bit != 0)
    }

    /// Writes `intid`'s bit to the bank (a set or clear register).
    fn write_bit(&self, intid: u32, pcpu: usize, dist_bank: usize, redist_bank: usize) {
        if let Some((addr, bit)) = self.bit(intid, pcpu, dist_bank, redist_bank) {
            self.regs.write32(addr, bit);
        }
    }
}

impl<R: GicRegs> PhysGic for PhysGicDriver<R> {
    fn set_enabled(&self, intid: u32, pcpu: usize, enabled: bool) {
        if enabled {
            self.write_bit(intid, pcpu, GICD_ISENABLER, GICR_ISENABLER0);
        } else {
            self.write_bit(intid, pcpu, GICD_ICENABLER, GICR_ICENABLER0);
        }
    }

    fn set_edge(&self, intid: u32, pcpu: usize, edge: bool) {
        let _guard = self.rmw.lock();
        let field = 2u32 << (2 * (intid % 16));
        let addr = if intid < 32 {
            match self.pcpu_redist(pcpu) {
                Some(r) if intid >= 16 => r + GICR_ICFGR1,
                _ => return,
            }
        } else if self.is_spi(intid) {
            self.dist + GICD_ICFGR + 4 * (intid as usize / 16)
        } else {
            return;
        };
        let v = self.regs.read32(addr);
        self.regs
            .write32(addr, if edge { v | field } else { v & !field });
    }

    fn route_spi(&self, intid: u32, pcpu: usize) {
        if self.is_spi(intid) {
            self.regs.write64(
                self.dist + GICD_IROUTER + 8 * intid as usize,
                affinity(self.cpu_mpidr(pcpu)),
            );
        }
    }

    fn pending(&self, intid: u32, pcpu: usize) -> bool {
        self.test_bit(intid, pcpu, GICD_ISPENDR, GICR_ISPENDR0)
    }

    fn active(&self, intid: u32, pcpu: usize) -> bool {
        self.test_bit(intid, pcpu, GICD_ISACTIVER, GICR_ISACTIVER0)
    }

    fn set_pending(&self, intid: u32, pcpu: usize, pending: bool) {
        if pending {
            self.write_bit(intid, pcpu, GICD_ISPENDR, GICR_ISPENDR0);
        } else {
            self.write_bit(intid, pcpu, GICD_ICPENDR, GICR_ICPENDR0);
        }
    }

    fn set_active(&self, intid: u32, pcpu: usize, active: bool) {
        if active {
            self.write_bit(intid, pcpu, GICD_ISACTIVER, GICR_ISACTIVER0);
        } else {
            self.write_bit(intid, pcpu, GICD_ICACTIVER, GICR_ICACTIVER0);
        }
    }

    fn nr_spis(&self) -> u32 {
        self.nr_spis
    }

    fn cpu_mpidr(&self, pcpu: usize) -> u64 {
        PhysGicDriver::cpu_mpidr(self, pcpu)
    }
}
