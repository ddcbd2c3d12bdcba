//! A GICv3 driver for the guest: distributor and redistributors found
//! through the DT, group-1 interrupts only, the CPU interface through the
//! ICC_* system registers (the virtual one under partita, the physical one
//! on bare QEMU: the guest cannot tell).

use crate::cpu::{CPUS, Shared, cpu, isb, mrs, msr};
use core::ptr::{read_volatile, write_volatile};

/// Distributor registers.
pub mod gicd {
    pub const CTLR: usize = 0x0000;
    pub const TYPER: usize = 0x0004;
    pub const IGROUPR: usize = 0x0080;
    pub const ISENABLER: usize = 0x0100;
    pub const ICENABLER: usize = 0x0180;
    pub const ISPENDR: usize = 0x0200;
    pub const ICPENDR: usize = 0x0280;
    pub const ISACTIVER: usize = 0x0300;
    pub const ICACTIVER: usize = 0x0380;
    pub const IPRIORITYR: usize = 0x0400;
    pub const ICFGR: usize = 0x0c00;
    pub const IROUTER: usize = 0x6000;
}

/// Redistributor registers (SGI_base frame, 64 KiB above RD_base).
pub mod gicr {
    pub const TYPER: usize = 0x0008;
    pub const WAKER: usize = 0x0014;
    pub const SGI: usize = 0x1_0000;
    pub const IGROUPR0: usize = SGI + 0x080;
    pub const ISENABLER0: usize = SGI + 0x100;
    pub const ICENABLER0: usize = SGI + 0x180;
    pub const ISPENDR0: usize = SGI + 0x200;
    pub const ICPENDR0: usize = SGI + 0x280;
    pub const ISACTIVER0: usize = SGI + 0x300;
    pub const ICACTIVER0: usize = SGI + 0x380;
    pub const IPRIORITYR: usize = SGI + 0x400;
}

/// The priority every interrupt gets unless a check says otherwise.
pub const DEFAULT_PRIORITY: u8 = 0xa0;

static GICD: Shared<usize> = Shared::new(0);
static GICR: [Shared<usize>; CPUS] = [const { Shared::new(0) }; CPUS];
static EOIMODE1: [Shared<bool>; CPUS] = [const { Shared::new(false) }; CPUS];

fn rd32(a: usize) -> u32 {
    // SAFETY: a GIC register the DT names.
    unsafe { read_volatile(a as *const u32) }
}

fn wr32(a: usize, v: u32) {
    // SAFETY: a GIC register the DT names.
    unsafe { write_volatile(a as *mut u32, v) }
}

fn rd64(a: usize) -> u64 {
    // SAFETY: a GIC register the DT names.
    unsafe { read_volatile(a as *const u64) }
}

fn wr8(a: usize, v: u8) {
    // SAFETY: a byte-accessible GIC register (IPRIORITYR).
    unsafe { write_volatile(a as *mut u8, v) }
}

/// A distributor register.
pub fn dist(off: usize) -> u32 {
    rd32(GICD.get() + off)
}

/// Writes a distributor register.
pub fn set_dist(off: usize, v: u32) {
    wr32(GICD.get() + off, v)
}

/// Writes a register of this CPU's redistributor.
pub fn set_redist(off: usize, v: u32) {
    wr32(GICR[cpu()].get() + off, v)
}

fn wait_rwp() {
    for _ in 0..100_000 {
        if dist(gicd::CTLR) & (1 << 31) == 0 {
            return;
        }
    }
}

/// Sets up the distributor (vCPU 0, once): every SPI group 1, disabled,
/// not pending, routed to vCPU 0; affinity routing and group 1 on.
pub fn init_dist(base: usize) {
    GICD.set(base);
    set_dist(gicd::CTLR, 0);
    wait_rwp();
    let lines = ((dist(gicd::TYPER) & 0x1f) + 1) as usize; // 32 INTIDs each
    for n in 1..lines {
        set_dist(gicd::IGROUPR + 4 * n, !0);
        set_dist(gicd::ICENABLER + 4 * n, !0);
        set_dist(gicd::ICPENDR + 4 * n, !0);
        set_dist(gicd::ICACTIVER + 4 * n, !0);
    }
    set_dist(gicd::CTLR, 1 << 4 | 1 << 1); // ARE, EnableGrp1
    wait_rwp();
}

/// Sets up this CPU's redistributor (found by affinity below `rd_base`)
/// and its CPU interface: awake, SGIs and PPIs group 1 and disabled,
/// priority mask open, EOImode 0, group 1 on. False when no frame of the
/// region has this CPU's affinity.
pub fn init_cpu(rd_base: usize) -> bool {
    let me = mrs!("mpidr_el1") & 0xff;
    let mut frame = None;
    for i in 0..16 {
        let base = rd_base + i * 0x2_0000;
        let typer = rd64(base + gicr::TYPER);
        if (typer >> 32) & 0xff == me {
            frame = Some(base);
            break;
        }
        if typer & (1 << 4) != 0 {
            break; // Last
        }
    }
    let Some(base) = frame else { return false };
    GICR[cpu()].set(base);
    wr32(base + gicr::WAKER, rd32(base + gicr::WAKER) & !(1 << 1));
    for _ in 0..100_000 {
        if rd32(base + gicr::WAKER) & (1 << 2) == 0 {
            break;
        }
    }
    set_redist(gicr::IGROUPR0, !0);
    set_redist(gicr::ICENABLER0, !0);
    set_redist(gicr::ICPENDR0, !0);
    set_redist(gicr::ICACTIVER0, !0);
    for intid in 0..32 {
        set_priority(intid, DEFAULT_PRIORITY);
    }
    msr!("icc_sre_el1", mrs!("icc_sre_el1") | 1);
    isb();
    set_pmr(0xff);
    msr!("icc_bpr1_el1", 0);
    set_eoimode1(false);
    msr!("icc_igrpen1_el1", 1);
    isb();
    true
}

/// Acknowledges the highest-priority pending group-1 interrupt.
pub fn ack() -> u32 {
    let v = mrs!("icc_iar1_el1") as u32;
    isb();
    v
}

/// Ends `intid` completely: EOIR, and DIR too when EOImode is 1.
pub fn eoi(intid: u32) {
    eoir(intid);
    if EOIMODE1[cpu()].get() {
        dir(intid);
    }
}

/// ICC_EOIR1_EL1: priority drop (and deactivation with EOImode 0).
pub fn eoir(intid: u32) {
    msr!("icc_eoir1_el1", intid as u64);
    isb();
}

/// ICC_DIR_EL1: deactivation (EOImode 1).
pub fn dir(intid: u32) {
    msr!("icc_dir_el1", intid as u64);
    isb();
}

/// ICC_PMR_EL1.
pub fn set_pmr(v: u8) {
    msr!("icc_pmr_el1", v as u64);
    isb();
}

/// ICC_CTLR_EL1.EOImode.
pub fn set_eoimode1(on: bool) {
    let ctlr = mrs!("icc_ctlr_el1") & !(1 << 1);
    msr!("icc_ctlr_el1", ctlr | if on { 1 << 1 } else { 0 });
    isb();
    EOIMODE1[cpu()].set(on);
}

/// Sends SGI `intid` to the vCPUs of `targets` (bit n: Aff0 = n).
pub fn send_sgi(intid: u32, targets: u16) {
    cpu_dsb();
    msr!("icc_sgi1r_el1", (intid as u64 & 0xf) << 24 | targets as u64);
    isb();
}

/// Sends SGI `intid` to every vCPU but this one (IRM).
pub fn broadcast_sgi(intid: u32) {
    cpu_dsb();
    msr!("icc_sgi1r_el1", (intid as u64 & 0xf) << 24 | 1 << 40);
    isb();
}

fn cpu_dsb() {
    // SAFETY: a barrier.
    unsafe { core::arch::asm!("dsb sy", options(nostack)) };
}

/// The register and bit of `intid` in a one-bit-per-INTID bank, on this
/// CPU's redistributor (SGI/PPI) or the distributor (SPI).
fn bank(intid: u32, dist_off: usize, redist_off: usize) -> (usize, u32) {
    let bit = 1 << (intid % 32);
    if intid < 32 {
        (GICR[cpu()].get() + redist_off, bit)
    } else {
        (GICD.get() + dist_off + 4 * (intid as usize / 32), bit)
    }
}

/// Enables or disables `intid` (SGI/PPI: on this CPU).
pub fn enable(intid: u32, on: bool) {
    let (a, bit) = if on {
        bank(intid, gicd::ISENABLER, gicr::ISENABLER0)
    } else {
        bank(intid, gicd::ICENABLER, gicr::ICENABLER0)
    };
    wr32(a, bit);
    if intid >= 32 {
        wait_rwp();
    }
}

/// Whether `intid` reads as pending (ISPENDR).
pub fn is_pending(intid: u32) -> bool {
    let (a, bit) = bank(intid, gicd::ISPENDR, gicr::ISPENDR0);
    rd32(a) & bit != 0
}

/// Whether `intid` reads as active (ISACTIVER).
pub fn is_active(intid: u32) -> bool {
    let (a, bit) = bank(intid, gicd::ISACTIVER, gicr::ISACTIVER0);
    rd32(a) & bit != 0
}

/// Sets (ISPENDR) or clears (ICPENDR) the pending state of `intid`.
pub fn set_pending(intid: u32, on: bool) {
    let (a, bit) = if on {
        bank(intid, gicd::ISPENDR, gicr::ISPENDR0)
    } else {
        bank(intid, gicd::ICPENDR, gicr::ICPENDR0)
    };
    wr32(a, bit);
}

/// Sets the priority of `intid` (SGI/PPI: on this CPU).
pub fn set_priority(intid: u32, prio: u8) {
    let a = if intid < 32 {
        GICR[cpu()].get() + gicr::IPRIORITYR + intid as usize
    } else {
        GICD.get() + gicd::IPRIORITYR + intid as usize
    };
    wr8(a, prio);
}

/// Configures SPI `intid` as edge- (true) or level-triggered.
pub fn set_edge(intid: u32, edge: bool) {
    let a = GICD.get() + gicd::ICFGR + 4 * (intid as usize / 16);
    let bit = 2 << (2 * (intid % 16));
    let v = rd32(a);
    wr32(a, if edge { v | bit } else { v & !bit });
}

/// Routes SPI `intid` to the vCPU with Aff0 = `aff0`.
pub fn route(intid: u32, aff0: u64) {
    let a = GICD.get() + gicd::IROUTER + 8 * intid as usize;
    wr32(a, aff0 as u32);
    wr32(a + 4, 0);
}
