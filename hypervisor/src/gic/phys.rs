//! MMIO driver for the physical GICv3 distributor and redistributors.

use super::{KICK_SGI, MAINTENANCE_PPI};
use crate::arch::aarch64::{cpu, gicv3};
use crate::fdt::Gic;
use crate::mm::el2map;
use crate::vgic::{PHYS_PRIORITY, PhysGic};
use core::sync::atomic::{AtomicU64, Ordering};
use spin::{Mutex, Once};

/// Most CPUs the hypervisor handles.
pub const MAX_CPUS: usize = 64;

const GICD_CTLR: usize = 0x0;
const GICD_TYPER: usize = 0x4;
const GICD_IGROUPR: usize = 0x80;
const GICD_ISENABLER: usize = 0x100;
const GICD_ICENABLER: usize = 0x180;
const GICD_ICPENDR: usize = 0x280;
const GICD_IPRIORITYR: usize = 0x400;
const GICD_ICFGR: usize = 0xc00;
const GICD_IROUTER: usize = 0x6000;
const CTLR_RWP: u32 = 1 << 31;

const GICR_TYPER: usize = 0x8;
const GICR_WAKER: usize = 0x14;
const SGI: usize = 0x1_0000;
const GICR_IGROUPR0: usize = SGI + 0x80;
const GICR_ISENABLER0: usize = SGI + 0x100;
const GICR_ICENABLER0: usize = SGI + 0x180;
const GICR_ICPENDR0: usize = SGI + 0x280;
const GICR_IPRIORITYR: usize = SGI + 0x400;
const GICR_ICFGR1: usize = SGI + 0xc04;

/// The physical GIC.
pub struct PhysGicDriver {
    dist: usize,
    nr_spis: u32,
    redist: [AtomicU64; MAX_CPUS],
    mpidr: [AtomicU64; MAX_CPUS],
    rmw: Mutex<()>,
}

static GIC: Once<PhysGicDriver> = Once::new();

/// Why the GIC could not be set up.
#[derive(Debug)]
pub enum GicError {
    /// The DT names no GICv3.
    Missing,
    /// Mapping its registers failed.
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

fn rd(addr: usize) -> u32 {
    // SAFETY: every address passed here lies in a GIC frame mapped as device
    // memory by `init_distributor`.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

fn wr(addr: usize, v: u32) {
    // SAFETY: as in `rd`.
    unsafe { core::ptr::write_volatile(addr as *mut u32, v) }
}

fn rd64(addr: usize) -> u64 {
    // SAFETY: as in `rd`.
    unsafe { core::ptr::read_volatile(addr as *const u64) }
}

fn wr64(addr: usize, v: u64) {
    // SAFETY: as in `rd`.
    unsafe { core::ptr::write_volatile(addr as *mut u64, v) }
}

/// The driver, once the distributor is set up.
pub fn get() -> Option<&'static PhysGicDriver> {
    GIC.get()
}

/// Maps the GIC and resets the distributor: all SPIs disabled, group 1,
/// priority [`PHYS_PRIORITY`], routed to the boot CPU, affinity routing on.
pub fn init_distributor(gic: &Gic) -> Result<&'static PhysGicDriver, GicError> {
    el2map::map_device(gic.dist.base, gic.dist.size.max(0x1_0000)).map_err(GicError::Map)?;
    for r in &gic.redists {
        el2map::map_device(r.base, r.size).map_err(GicError::Map)?;
    }
    let d = gic.dist.base as usize;
    let lines = (rd(d + GICD_TYPER) & 0x1f) + 1;
    let nr_spis = (lines * 32).min(1020) - 32;
    wr(d + GICD_CTLR, 0);
    wait_rwp(d);
    for i in 1..lines as usize {
        wr(d + GICD_ICENABLER + 4 * i, u32::MAX);
        wr(d + GICD_ICPENDR + 4 * i, u32::MAX);
        wr(d + GICD_IGROUPR + 4 * i, u32::MAX);
    }
    let prio = u32::from_ne_bytes([PHYS_PRIORITY; 4]);
    for i in 8..(lines as usize * 8) {
        wr(d + GICD_IPRIORITYR + 4 * i, prio);
    }
    let boot = cpu::mpidr();
    for intid in 32..(32 + nr_spis as usize) {
        wr64(d + GICD_IROUTER + 8 * intid, affinity(boot));
    }
    // ARE (ARE_NS) and both group enables, in either security view.
    wr(d + GICD_CTLR, (1 << 4) | 0b11);
    wait_rwp(d);
    let drv = GIC.call_once(|| PhysGicDriver {
        dist: d,
        nr_spis,
        redist: [const { AtomicU64::new(0) }; MAX_CPUS],
        mpidr: [const { AtomicU64::new(0) }; MAX_CPUS],
        rmw: Mutex::new(()),
    });
    drv.find_redistributors(gic);
    Ok(drv)
}

fn wait_rwp(d: usize) {
    let mut n = 0;
    while rd(d + GICD_CTLR) & CTLR_RWP != 0 && n < 1_000_000 {
        n += 1;
        core::hint::spin_loop();
    }
}

/// IROUTER / GICR_TYPER affinity packing of an MPIDR.
fn affinity(mpidr: u64) -> u64 {
    mpidr & 0xff_00ff_ffff
}

impl PhysGicDriver {
    /// SPIs the distributor implements.
    pub fn nr_spis(&self) -> u32 {
        self.nr_spis
    }

    fn find_redistributors(&self, gic: &Gic) {
        let mut slot = 0;
        for r in &gic.redists {
            let mut frame = r.base as usize;
            let end = r.end() as usize;
            while frame + 0x2_0000 <= end && slot < MAX_CPUS {
                let typer = rd64(frame + GICR_TYPER);
                self.redist[slot].store(frame as u64, Ordering::Relaxed);
                // Store the affinity in GICR_TYPER's packing: Aff3.Aff2.Aff1.Aff0.
                let a = typer >> 32;
                let mpidr = (a & 0xff_ffff) | ((a >> 24) & 0xff) << 32;
                self.mpidr[slot].store(mpidr, Ordering::Relaxed);
                slot += 1;
                let stride = if typer & (1 << 1) != 0 {
                    0x4_0000
                } else {
                    0x2_0000
                };
                if typer & (1 << 4) != 0 {
                    break; // Last
                }
                frame += stride;
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
        CPU_MPIDR[pcpu % MAX_CPUS].load(Ordering::Relaxed)
    }

    /// Wakes this CPU's redistributor, resets its SGIs/PPIs (group 1,
    /// disabled) and enables the kick SGI and the maintenance interrupt,
    /// then the CPU interface.
    pub fn init_cpu(&self) -> Result<(), GicError> {
        let me = cpu::mpidr();
        CPU_MPIDR[cpu::cpu_index() % MAX_CPUS].store(me, Ordering::Relaxed);
        let r = self.redist_of(me).ok_or(GicError::NoRedistributor(me))?;
        wr(r + GICR_WAKER, rd(r + GICR_WAKER) & !(1 << 1));
        let mut n = 0;
        while rd(r + GICR_WAKER) & (1 << 2) != 0 && n < 1_000_000 {
            n += 1;
            core::hint::spin_loop();
        }
        wr(r + GICR_ICENABLER0, u32::MAX);
        wr(r + GICR_ICPENDR0, u32::MAX);
        wr(r + GICR_IGROUPR0, u32::MAX);
        let prio = u32::from_ne_bytes([PHYS_PRIORITY; 4]);
        for i in 0..8 {
            wr(r + GICR_IPRIORITYR + 4 * i, prio);
        }
        wr(
            r + GICR_ISENABLER0,
            (1 << KICK_SGI) | (1 << MAINTENANCE_PPI),
        );
        gicv3::init_cpu_interface();
        Ok(())
    }

    fn pcpu_redist(&self, pcpu: usize) -> Option<usize> {
        self.redist_of(self.cpu_mpidr(pcpu))
    }
}

/// MPIDR of each logical CPU, filled as CPUs initialise their interface.
static CPU_MPIDR: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

impl PhysGic for PhysGicDriver {
    fn set_enabled(&self, intid: u32, pcpu: usize, enabled: bool) {
        let reg = if enabled {
            GICD_ISENABLER
        } else {
            GICD_ICENABLER
        };
        let bit = 1u32 << (intid % 32);
        if intid < 32 {
            if let Some(r) = self.pcpu_redist(pcpu) {
                let reg = if enabled {
                    GICR_ISENABLER0
                } else {
                    GICR_ICENABLER0
                };
                wr(r + reg, bit);
            }
        } else if intid < 32 + self.nr_spis {
            wr(self.dist + reg + 4 * (intid as usize / 32), bit);
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
        } else if intid < 32 + self.nr_spis {
            self.dist + GICD_ICFGR + 4 * (intid as usize / 16)
        } else {
            return;
        };
        let v = rd(addr);
        wr(addr, if edge { v | field } else { v & !field });
    }

    fn route_spi(&self, intid: u32, pcpu: usize) {
        if (32..32 + self.nr_spis).contains(&intid) {
            wr64(
                self.dist + GICD_IROUTER + 8 * intid as usize,
                affinity(self.cpu_mpidr(pcpu)),
            );
        }
    }

    fn clear_pending(&self, intid: u32, pcpu: usize) {
        let bit = 1u32 << (intid % 32);
        if intid < 32 {
            if let Some(r) = self.pcpu_redist(pcpu) {
                wr(r + GICR_ICPENDR0, bit);
            }
        } else if intid < 32 + self.nr_spis {
            wr(self.dist + GICD_ICPENDR + 4 * (intid as usize / 32), bit);
        }
    }

    fn nr_spis(&self) -> u32 {
        self.nr_spis
    }

    fn cpu_mpidr(&self, pcpu: usize) -> u64 {
        CPU_MPIDR[pcpu % MAX_CPUS].load(Ordering::Relaxed)
    }
}
