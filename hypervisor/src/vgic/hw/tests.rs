//! The state of hardware-linked interrupts over the fakes: the list
//! registers of the fake CPU (`arch::fake`), a queue, and the recording
//! physical GIC holding the physical pending and active bits.

use super::*;
use crate::arch::fake::{self, Op};
use crate::gic::recorder::{GicOp, RecordingGic as Recorder};
use crate::vgic::pending::VirqRequest;
use alloc::vec;
use alloc::vec::Vec;

/// Distributor and SGI-frame offsets of the state registers.
const GICD_ISPENDR1: u64 = 0x204;
const GICD_ICPENDR1: u64 = 0x284;
const GICD_ISACTIVER1: u64 = 0x304;
const GICD_ICACTIVER1: u64 = 0x384;
const GICR_ISPENDR0: u64 = 0x1_0200;
const GICR_ISACTIVER0: u64 = 0x1_0300;

/// The guest's interrupts: SPI 33 (level, a device), SPI 34 (edge), SPI 35
/// (level), PPI 27 (virtual timer, level).
const LEVEL: u32 = 33;
const EDGE: u32 = 34;
const LEVEL2: u32 = 35;
const TIMER: u32 = 27;
/// vCPU 0 runs on physical CPU 2 (this one), vCPU 1 on CPU 3.
const HERE: usize = 2;

/// The world of one test: the vGIC, the physical GIC, vCPU 0's queue.
struct T {
    vgic: VGic,
    phys: Recorder,
    queue: RefCell<PendingQueue>,
}

impl T {
    fn new() -> T {
        fake::reset();
        fake::with(|s| s.cpu = HERE);
        let mut t = T {
            vgic: VGic::new(vec![2, 3], 256, &[LEVEL, EDGE, LEVEL2, TIMER]),
            phys: Recorder::default(),
            queue: RefCell::default(),
        };
        // ICFGR2: INTID 34 (field 2) edge-triggered.
        t.write(0xc08, 8, 2 << 4);
        t.phys.take();
        fake::take_ops();
        t
    }

    /// An access by vCPU `vcpu` (whose queue is vCPU 0's: the tests run
    /// it on this CPU).
    fn ctx(&self, vcpu: usize) -> RegCtx<'_> {
        RegCtx {
            phys: &self.phys,
            vcpu,
            queue: &self.queue,
        }
    }

    /// Bit `intid % 32` of the distributor register at `offset`.
    fn dist_bit(&self, offset: u64, intid: u32) -> bool {
        self.vgic.dist_read(&self.ctx(0), offset, 4) & (1 << (intid % 32)) != 0
    }

    /// Bit `intid` of vCPU `frame`'s SGI-frame register at `offset`, read
    /// by vCPU 0.
    fn redist_bit(&self, frame: usize, offset: u64, intid: u32) -> bool {
        self.vgic.redist_read(&self.ctx(0), frame, offset, 4) & (1 << intid) != 0
    }

    /// A distributor write of `width` bytes by vCPU 0.
    fn write(&mut self, offset: u64, width: usize, value: u64) {
        let ctx = RegCtx {
            phys: &self.phys,
            vcpu: 0,
            queue: &self.queue,
        };
        self.vgic.dist_write(&ctx, offset, width, value);
    }

    /// A write of `intid`'s bit to the distributor register at `offset`.
    fn dist_write(&mut self, offset: u64, intid: u32) {
        self.write(offset, 4, 1 << (intid % 32));
    }

    /// Queues the hypervisor's copy of `intid` (acknowledged at EL2).
    fn queue(&self, intid: u32, level: bool) {
        assert!(self.queue.borrow_mut().push(request(intid, level)));
    }

    fn queued(&self, intid: u32) -> bool {
        self.queue.borrow().contains(intid)
    }

    /// The writes to the physical GIC since the last call (reads dropped).
    fn phys_writes(&self) -> Vec<GicOp> {
        let mut ops = self.phys.take();
        ops.retain(|o| !o.0.ends_with('?'));
        ops
    }
}

fn request(intid: u32, level: bool) -> VirqRequest {
    VirqRequest {
        intid,
        priority: 0x80,
        hw: true,
        level,
        latched: false,
    }
}

/// A list register holding the copy of hardware interrupt `intid`,
/// pending (the guest has not taken it) or active.
fn lr(intid: u32, active: bool) -> u64 {
    let pending = request(intid, false).list_register();
    if active {
        pending & !LR_PENDING | LR_ACTIVE
    } else {
        pending
    }
}

fn set_lr(n: usize, value: u64) {
    fake::with(|s| s.lrs[n] = value);
}

fn get_lr(n: usize) -> u64 {
    fake::with(|s| s.lrs[n])
}

#[test]
fn a_copy_is_found_in_the_list_registers_then_in_the_queue() {
    let t = T::new();
    set_lr(1, lr(LEVEL, false));
    set_lr(2, lr(TIMER, true));
    // A software interrupt of the same number is not a hardware copy.
    set_lr(3, request(EDGE, false).list_register() & !LR_HW);
    t.queue(LEVEL2, true);
    let ctx = t.ctx(0);
    assert_eq!(
        Held::find(&ctx, LEVEL),
        Held::Pending {
            lr: 1,
            latched: false
        }
    );
    assert_eq!(Held::find(&ctx, TIMER), Held::Active(2));
    assert_eq!(Held::find(&ctx, LEVEL2), Held::Queued(false));
    assert_eq!(Held::find(&ctx, EDGE), Held::None);
}

#[test]
fn with_no_copy_the_guest_sees_the_physical_bits() {
    let t = T::new();
    // Pending and disabled on the physical GIC: the guest polls it.
    t.phys.set_state(LEVEL, HERE, true, false);
    assert!(t.dist_bit(GICD_ISPENDR1, LEVEL));
    assert!(t.dist_bit(GICD_ICPENDR1, LEVEL), "ICPENDR reads the same");
    assert!(!t.dist_bit(GICD_ISACTIVER1, LEVEL));
    t.phys.set_state(EDGE, HERE, false, true);
    assert!(!t.dist_bit(GICD_ISPENDR1, EDGE));
    assert!(t.dist_bit(GICD_ICACTIVER1, EDGE));
    // The timer PPI in vCPU 0's redistributor: its CPU's physical bits.
    t.phys.set_state(TIMER, HERE, true, true);
    assert!(t.redist_bit(0, GICR_ISPENDR0, TIMER));
    assert!(t.redist_bit(0, GICR_ISACTIVER0, TIMER));
    // Interrupts the guest does not own read as zero.
    t.phys.set_state(36, HERE, true, true);
    assert!(!t.dist_bit(GICD_ISPENDR1, 36));
    assert!(!t.dist_bit(GICD_ISACTIVER1, 36));
    assert_eq!(t.vgic.dist_read(&t.ctx(0), 0x200, 4), 0, "SGIs, PPIs");
}

#[test]
fn a_waiting_copy_is_pending_and_not_active() {
    let t = T::new();
    // Acknowledged at EL2 (active on the physical GIC), line still high.
    t.phys.set_state(LEVEL, HERE, true, true);
    t.queue(LEVEL, true);
    assert!(t.dist_bit(GICD_ISPENDR1, LEVEL));
    assert!(!t.dist_bit(GICD_ISACTIVER1, LEVEL));
    // The same once in a list register.
    t.queue.borrow_mut().remove(LEVEL);
    set_lr(0, lr(LEVEL, false));
    assert!(t.dist_bit(GICD_ISPENDR1, LEVEL));
    assert!(!t.dist_bit(GICD_ISACTIVER1, LEVEL));
    assert_eq!(get_lr(0), lr(LEVEL, false));
}

#[test]
fn an_active_copy_is_active_and_pending_while_the_physical_gic_says_so() {
    let t = T::new();
    set_lr(0, lr(TIMER, true));
    t.phys.set_state(TIMER, HERE, true, true);
    assert!(t.redist_bit(0, GICR_ISACTIVER0, TIMER));
    assert!(t.redist_bit(0, GICR_ISPENDR0, TIMER), "line still high");
    t.phys.set_state(TIMER, HERE, false, true);
    assert!(!t.redist_bit(0, GICR_ISPENDR0, TIMER));
    assert!(t.redist_bit(0, GICR_ISACTIVER0, TIMER));
    assert_eq!(get_lr(0), lr(TIMER, true), "an active copy stays");
    assert!(!fake::take_ops().contains(&Op::Deactivate(TIMER)));
}

#[test]
fn a_waiting_level_copy_whose_line_dropped_is_withdrawn() {
    let t = T::new();
    set_lr(0, lr(LEVEL, false));
    t.phys.set_state(LEVEL, HERE, false, true);
    assert!(!t.dist_bit(GICD_ISPENDR1, LEVEL));
    assert_eq!(get_lr(0), 0, "taken out of its list register");
    assert_eq!(fake::take_ops(), [Op::WriteLr(0, 0), Op::Deactivate(LEVEL)]);
    // Queued: taken out of the queue.
    t.queue(LEVEL2, true);
    t.phys.set_state(LEVEL2, HERE, false, true);
    assert!(!t.dist_bit(GICD_ISPENDR1, LEVEL2));
    assert!(!t.queued(LEVEL2));
    assert_eq!(fake::take_ops(), [Op::Deactivate(LEVEL2)]);
}

#[test]
fn a_waiting_edge_copy_stays_pending_without_the_physical_bit() {
    let t = T::new();
    set_lr(0, lr(EDGE, false));
    t.phys.set_state(EDGE, HERE, false, true);
    assert!(t.dist_bit(GICD_ISPENDR1, EDGE));
    assert_eq!(get_lr(0), lr(EDGE, false));
    assert!(fake::take_ops().is_empty());
}

#[test]
fn another_vcpus_interrupts_are_read_from_the_physical_gic() {
    let mut t = T::new();
    // SPI 33 routed to vCPU 1 (physical CPU 3); vCPU 0 reads it.
    t.write(0x6000 + 8 * u64::from(LEVEL), 8, 1);
    // A copy of the same INTID here is not vCPU 1's: not consulted.
    set_lr(0, lr(LEVEL, false));
    t.phys.set_state(LEVEL, HERE, false, true);
    assert!(!t.dist_bit(GICD_ISPENDR1, LEVEL));
    assert!(t.dist_bit(GICD_ISACTIVER1, LEVEL));
    assert_eq!(get_lr(0), lr(LEVEL, false));
    // vCPU 1's timer: CPU 3's redistributor.
    t.phys.set_state(TIMER, 3, true, false);
    assert!(t.redist_bit(1, GICR_ISPENDR0, TIMER));
    assert!(!t.redist_bit(0, GICR_ISPENDR0, TIMER));
    let reads: Vec<_> = t.phys.take().into_iter().map(|o| (o.0, o.1, o.2)).collect();
    assert!(reads.contains(&("pending?", TIMER, 3)));
    assert!(reads.contains(&("pending?", TIMER, HERE)));
}

#[test]
fn set_pending_reaches_the_physical_gic_unless_a_copy_waits() {
    let mut t = T::new();
    t.dist_write(0x204, LEVEL);
    assert_eq!(t.phys_writes(), [("pending", LEVEL, HERE, true)]);
    assert!(t.dist_bit(GICD_ISPENDR1, LEVEL));
    // An active copy: pending on the physical GIC, which signals it after
    // the guest's deactivation.
    set_lr(0, lr(EDGE, true));
    t.dist_write(0x204, EDGE);
    assert_eq!(t.phys_writes(), [("pending", EDGE, HERE, true)]);
    // A waiting copy is pending already.
    t.queue(LEVEL2, true);
    t.phys.set_state(LEVEL2, HERE, true, true);
    t.dist_write(0x204, LEVEL2);
    assert!(t.phys_writes().is_empty());
    assert!(t.queued(LEVEL2));
}

#[test]
fn clear_pending_clears_the_physical_bit_and_withdraws_a_waiting_copy() {
    let mut t = T::new();
    t.phys.set_state(LEVEL, HERE, true, false);
    t.dist_write(0x284, LEVEL);
    assert_eq!(t.phys_writes(), [("pending", LEVEL, HERE, false)]);
    assert!(fake::take_ops().is_empty());
    // An edge copy waiting in a list register: withdrawn.
    set_lr(1, lr(EDGE, false));
    t.phys.set_state(EDGE, HERE, false, true);
    t.dist_write(0x284, EDGE);
    assert_eq!(get_lr(1), 0);
    assert_eq!(fake::take_ops(), [Op::WriteLr(1, 0), Op::Deactivate(EDGE)]);
    assert!(!t.dist_bit(GICD_ISPENDR1, EDGE));
    // An active copy stays active.
    set_lr(1, lr(EDGE, true));
    t.dist_write(0x284, EDGE);
    assert_eq!(get_lr(1), lr(EDGE, true));
}

#[test]
fn set_active_hands_a_waiting_copy_back_to_the_physical_gic() {
    let mut t = T::new();
    // An edge copy queued: its pending state goes back to the physical
    // GIC, which holds it active and pending.
    t.phys.set_state(EDGE, HERE, false, true);
    t.queue(EDGE, false);
    t.dist_write(0x304, EDGE);
    assert!(!t.queued(EDGE));
    assert_eq!(
        t.phys_writes(),
        [("pending", EDGE, HERE, true), ("active", EDGE, HERE, true)]
    );
    assert!(t.dist_bit(GICD_ISPENDR1, EDGE) && t.dist_bit(GICD_ISACTIVER1, EDGE));
    assert!(
        !fake::take_ops().contains(&Op::Deactivate(EDGE)),
        "stays active"
    );
    // A level copy in a list register: its line is its pending state.
    set_lr(2, lr(LEVEL, false));
    t.phys.set_state(LEVEL, HERE, true, true);
    t.dist_write(0x304, LEVEL);
    assert_eq!(get_lr(2), 0);
    assert_eq!(t.phys_writes(), [("active", LEVEL, HERE, true)]);
    // No copy: set on the physical GIC; an active copy: nothing to do.
    t.dist_write(0x304, LEVEL2);
    assert_eq!(t.phys_writes(), [("active", LEVEL2, HERE, true)]);
    set_lr(3, lr(LEVEL2, true));
    t.dist_write(0x304, LEVEL2);
    assert!(t.phys_writes().is_empty());
}

#[test]
fn clear_active_ends_an_active_copy_and_leaves_a_waiting_one() {
    let mut t = T::new();
    set_lr(0, lr(LEVEL, true));
    t.phys.set_state(LEVEL, HERE, false, true);
    t.dist_write(0x384, LEVEL);
    assert_eq!(get_lr(0), 0);
    assert_eq!(t.phys_writes(), [("active", LEVEL, HERE, false)]);
    assert!(!t.dist_bit(GICD_ISACTIVER1, LEVEL));
    // A waiting copy is not active: the physical active bit is the
    // hypervisor's acknowledge and stays.
    set_lr(0, lr(LEVEL, false));
    t.phys.set_state(LEVEL, HERE, true, true);
    t.dist_write(0x384, LEVEL);
    assert_eq!(get_lr(0), lr(LEVEL, false));
    assert!(t.phys_writes().is_empty());
    // No copy: cleared on the physical GIC.
    t.dist_write(0x384, LEVEL2);
    assert_eq!(t.phys_writes(), [("active", LEVEL2, HERE, false)]);
}

#[test]
fn resampling_withdraws_only_waiting_level_copies_whose_line_dropped() {
    let t = T::new();
    set_lr(0, lr(LEVEL, false)); // line dropped: withdrawn
    set_lr(1, lr(TIMER, false)); // line high: stays
    set_lr(2, lr(EDGE, false)); // edge: stays
    set_lr(3, request(5, false).list_register() & !LR_HW); // an SGI
    t.phys.set_state(LEVEL, HERE, false, true);
    t.phys.set_state(TIMER, HERE, true, true);
    t.phys.set_state(EDGE, HERE, false, true);
    t.queue(LEVEL2, true); // queued, line dropped: withdrawn
    t.queue(40, false); // a software SPI
    t.phys.set_state(LEVEL2, HERE, false, true);
    t.vgic.resample_waiting(&t.ctx(0));
    assert_eq!(get_lr(0), 0);
    assert_eq!(get_lr(1), lr(TIMER, false));
    assert_eq!(get_lr(2), lr(EDGE, false));
    assert_ne!(get_lr(3), 0);
    assert!(!t.queued(LEVEL2) && t.queued(40));
    assert_eq!(
        fake::take_ops(),
        [
            Op::WriteLr(0, 0),
            Op::Deactivate(LEVEL),
            Op::Deactivate(LEVEL2)
        ]
    );
    // Only the lines of the waiting level copies were read.
    let reads: Vec<u32> = t.phys.take().into_iter().map(|o| o.1).collect();
    assert_eq!(reads, [LEVEL, TIMER, LEVEL2]);
}

#[test]
fn a_level_interrupt_the_guest_made_pending_stays_pending_until_taken() {
    let mut t = T::new();
    // No copy: pending on the physical GIC, latched in the vGIC until the
    // hypervisor acknowledges it (`vm/irq.rs` moves the latch to the copy).
    t.dist_write(0x204, LEVEL);
    assert_eq!(t.phys_writes(), [("pending", LEVEL, HERE, true)]);
    assert!(t.vgic.spi(LEVEL).unwrap().latched);
    t.dist_write(0x284, LEVEL);
    assert!(!t.vgic.spi(LEVEL).unwrap().latched, "cleared by ICPENDR");
    assert_eq!(t.phys_writes(), [("pending", LEVEL, HERE, false)]);
    // A copy waiting in a list register is latched: its line may drop.
    set_lr(0, lr(LEVEL, false));
    t.phys.set_state(LEVEL, HERE, true, true);
    t.dist_write(0x204, LEVEL);
    assert!(t.phys_writes().is_empty());
    assert_eq!(
        Held::find(&t.ctx(0), LEVEL),
        Held::Pending {
            lr: 0,
            latched: true
        }
    );
    t.phys.set_state(LEVEL, HERE, false, true);
    assert!(t.dist_bit(GICD_ISPENDR1, LEVEL));
    t.vgic.resample_waiting(&t.ctx(0));
    assert_eq!(get_lr(0), lr(LEVEL, false));
    assert!(!fake::take_ops().contains(&Op::Deactivate(LEVEL)));
    // The same for a queued copy; a clear-pending withdraws either.
    t.queue(LEVEL2, true);
    t.phys.set_state(LEVEL2, HERE, false, true);
    t.dist_write(0x204, LEVEL2);
    assert!(t.dist_bit(GICD_ISPENDR1, LEVEL2));
    assert!(t.queued(LEVEL2));
    t.dist_write(0x284, LEVEL2);
    assert!(!t.queued(LEVEL2));
    assert!(!t.dist_bit(GICD_ISPENDR1, LEVEL2));
    // A latched copy handed back by a set-active keeps its latch: pending
    // on the physical GIC and in the vGIC.
    t.phys_writes();
    t.dist_write(0x304, LEVEL);
    assert_eq!(get_lr(0), 0);
    assert_eq!(
        t.phys_writes(),
        [
            ("pending", LEVEL, HERE, true),
            ("active", LEVEL, HERE, true)
        ]
    );
    assert!(t.vgic.spi(LEVEL).unwrap().latched);
}
