//! Hardware-linked interrupts: where their state lives, and the one
//! definition of the pending and active state the guest sees of them
//! (docs/gic.md tells the whole story).
//!
//! An interrupt the guest owns (a passed-through device's SPI, a timer PPI)
//! is forwarded: the hypervisor acknowledges it at EL2 (priority drop only,
//! EOImode = 1), queues a copy for the vCPU (`vm/irq.rs`) and puts it in a
//! list register with HW = 1 and pINTID = vINTID, so that the guest's
//! deactivation deactivates the physical interrupt. From that acknowledge
//! to the guest's deactivation the physical GIC holds the interrupt active
//! on the guest's behalf. So, for one interrupt:
//!
//! - with no copy on the CPU, the physical GIC holds the whole state, and
//!   the guest sees its pending and active bits as they are;
//! - a *waiting* copy (queued, or pending in a list register) is pending
//!   and not active (the physical active bit is the hypervisor's
//!   acknowledge, not the guest's);
//! - a copy active in a list register is active, and pending when the
//!   physical GIC has it pending again (a level line still high, a new
//!   edge): a list register with HW = 1 cannot hold both states, the
//!   physical GIC keeps the pending one and signals it after the guest's
//!   deactivation.
//!
//! A level-triggered interrupt is pending only while its line is high, or
//! until the guest takes it when the guest made it pending itself (a
//! write to ISPENDR: the copy is *latched*; the physical GIC's own latch
//! ends at the hypervisor's acknowledge, so the vGIC keeps it, then the
//! copy). A waiting copy, not latched, whose line has dropped (the physical
//! pending bit is clear while the interrupt is active) is withdrawn: taken
//! out of the queue or the list register, and the physical interrupt
//! deactivated, so that it fires again when the line rises. The line is sampled only where it
//! matters, never on the common exit path: when the guest reads or writes
//! these registers, before a deferred request takes a list register, and at
//! the guest's first access to its CPU interface (normally its acknowledge)
//! after such an interrupt was put in a list register while the guest had
//! IRQs masked (the handler that deactivates before it clears its device).
//!
//! The copies of a vCPU live on its physical CPU (its list registers and
//! its queue) and are visible only there: an access from another vCPU sees
//! the physical GIC's bits.

use super::SPI_BASE;
use super::dist::VGic;
use super::pending::{PendingQueue, lr_intid};
use crate::arch::{Arch, Cpu};
use crate::gic::PhysGic;
use core::cell::RefCell;

#[cfg(test)]
mod tests;

/// List register bits: HW (61), pending (62), active (63).
const LR_HW: u64 = 1 << 61;
const LR_PENDING: u64 = 1 << 62;
const LR_ACTIVE: u64 = 1 << 63;
/// Most list registers an implementation has.
const MAX_LRS: usize = 16;

/// The queue of the vCPU running on this CPU, reached from the register
/// emulation. The machine implements it over its per-CPU queue; host tests
/// over a [`RefCell`].
pub trait LocalQueue {
    /// Runs `f` on the queue.
    fn with_queue(&self, f: &mut dyn FnMut(&mut PendingQueue));
    /// SGIs raised for the vCPU running here that wait outside the queue
    /// (one bit per SGI: disabled ones, or raised since its last exit).
    fn raised_sgis(&self) -> u32 {
        0
    }
}

impl LocalQueue for RefCell<PendingQueue> {
    fn with_queue(&self, f: &mut dyn FnMut(&mut PendingQueue)) {
        f(&mut self.borrow_mut());
    }
}

/// What the guest's GIC devices reach besides the vGIC: the physical GIC
/// and the queue of the vCPU running on this CPU. The machine implements
/// it (one trait object in [`crate::devices::AccessCtx`]).
pub trait GicPort: LocalQueue {
    /// The physical GIC.
    fn phys(&self) -> &dyn PhysGic;
}

/// The physical GIC with no vCPU running here (an empty queue): device
/// resets, and tests that program the vGIC outside an exit.
pub struct NoVcpu<'a>(pub &'a dyn PhysGic);

impl LocalQueue for NoVcpu<'_> {
    fn with_queue(&self, f: &mut dyn FnMut(&mut PendingQueue)) {
        f(&mut PendingQueue::new());
    }
}

impl GicPort for NoVcpu<'_> {
    fn phys(&self) -> &dyn PhysGic {
        self.0
    }
}

/// What an access to the vGIC's registers reaches besides its tables: the
/// physical GIC, and the vCPU making the access with this CPU's copies of
/// its interrupts (its list registers, through [`Cpu`], and its queue).
pub struct RegCtx<'a> {
    /// The physical GIC.
    pub phys: &'a dyn PhysGic,
    /// The vCPU making the access, running on this CPU.
    pub vcpu: usize,
    /// Its queue.
    pub queue: &'a dyn LocalQueue,
}

impl RegCtx<'_> {
    fn unqueue(&self, intid: u32) {
        self.queue.with_queue(&mut |q| {
            q.remove(intid);
        });
    }
}

/// Where this CPU holds the guest's copy of a hardware-linked interrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// No copy here: the physical GIC holds the whole state (or the copy
    /// belongs to a vCPU on another CPU, where this one cannot see it).
    None,
    /// Acknowledged at EL2, waiting in the queue for a list register;
    /// latched or not.
    Queued(bool),
    /// Pending in list register `lr`: the guest has not acknowledged it.
    Pending {
        /// The list register.
        lr: usize,
        /// Made pending by the guest.
        latched: bool,
    },
    /// Active in list register `n`: the guest acknowledged it and has not
    /// deactivated it.
    Active(usize),
}

impl Held {
    /// Where this CPU's copy of `intid` is.
    pub fn find(ctx: &RegCtx<'_>, intid: u32) -> Held {
        let mut queued = None;
        let mut latched_lrs = 0;
        ctx.queue.with_queue(&mut |q| {
            queued = q.contains(intid).then(|| q.latched(intid));
            latched_lrs = q.latched_lrs();
        });
        let empty = Cpu::empty_lrs();
        for n in 0..Cpu::lr_count().min(MAX_LRS) {
            if empty & (1 << n) != 0 {
                continue;
            }
            let lr = Cpu::read_lr(n);
            if lr & LR_HW != 0 && lr_intid(lr) == Some(intid) {
                return if lr & LR_ACTIVE != 0 {
                    Held::Active(n)
                } else {
                    Held::Pending {
                        lr: n,
                        latched: latched_lrs & (1 << n) != 0,
                    }
                };
            }
        }
        queued.map_or(Held::None, Held::Queued)
    }

    /// Queued or pending in a list register: not yet taken by the guest.
    pub fn waiting(self) -> bool {
        matches!(self, Held::Queued(_) | Held::Pending { .. })
    }

    /// A waiting copy the guest made pending itself.
    pub fn latched(self) -> bool {
        matches!(
            self,
            Held::Queued(true) | Held::Pending { latched: true, .. }
        )
    }

    /// The pending state the guest sees, given the physical GIC's pending
    /// bit (already resampled: a waiting level copy's line is high, or it
    /// is latched).
    pub fn pending(self, phys_pending: bool) -> bool {
        self.waiting() || phys_pending
    }

    /// The active state the guest sees, given the physical GIC's active bit
    /// (read only when there is no copy: `phys_active` is called then).
    pub fn active(self, phys_active: impl FnOnce() -> bool) -> bool {
        match self {
            Held::Active(_) => true,
            Held::Queued(_) | Held::Pending { .. } => false,
            Held::None => phys_active(),
        }
    }

    /// Takes the copy away (out of the queue, or its list register
    /// emptied); the physical interrupt stays as it is.
    fn drop_copy(self, ctx: &RegCtx<'_>, intid: u32) {
        match self {
            Held::Queued(_) => ctx.unqueue(intid),
            Held::Pending { lr: n, .. } | Held::Active(n) => Cpu::write_lr(n, 0),
            Held::None => {}
        }
    }
}

/// The (pending, active) state of virtual interrupt `intid` on this CPU:
/// raised (an SGI waiting to be queued), queued, or in a list register
/// (not hardware-linked) as pending and/or active.
fn virtual_state(ctx: &RegCtx<'_>, intid: u32) -> (bool, bool) {
    let mut queued = intid < 16 && ctx.queue.raised_sgis() & (1 << intid) != 0;
    ctx.queue.with_queue(&mut |q| queued |= q.contains(intid));
    let (mut pending, mut active) = (queued, false);
    let empty = Cpu::empty_lrs();
    for n in 0..Cpu::lr_count().min(MAX_LRS) {
        if empty & (1 << n) != 0 {
            continue;
        }
        let lr = Cpu::read_lr(n);
        if lr & LR_HW == 0 && lr_intid(lr) == Some(intid) {
            pending |= lr & LR_PENDING != 0;
            active |= lr & LR_ACTIVE != 0;
        }
    }
    (pending, active)
}

/// One hardware-linked interrupt as a register access sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HwIrq {
    /// Its INTID (virtual = physical).
    pub intid: u32,
    /// The physical CPU it is routed to (whose redistributor has a PPI).
    pub pcpu: usize,
    /// Edge-triggered.
    pub edge: bool,
    /// Its copies live on this CPU (the accessing vCPU is its target).
    pub local: bool,
}

impl HwIrq {
    /// Where its copy is, as far as this CPU can see.
    pub fn copy(&self, ctx: &RegCtx<'_>) -> Held {
        if self.local {
            Held::find(ctx, self.intid)
        } else {
            Held::None
        }
    }

    /// Withdraws a waiting copy: taken away and the physical interrupt
    /// (acknowledged on this CPU) deactivated. The physical GIC holds the
    /// whole state again, and signals the interrupt when it is pending.
    fn withdraw(&self, ctx: &RegCtx<'_>, copy: Held) {
        if copy.waiting() {
            copy.drop_copy(ctx, self.intid);
            Cpu::gic_deactivate(self.intid);
        }
    }

    /// The copy after sampling the line of a level-triggered interrupt
    /// whose copy waits, not latched: withdrawn ([`Held::None`]) when the
    /// line dropped. `phys_pending` is the physical pending bit.
    fn resample(&self, ctx: &RegCtx<'_>, copy: Held, phys_pending: bool) -> Held {
        if !self.edge && copy.waiting() && !copy.latched() && !phys_pending {
            self.withdraw(ctx, copy);
            return Held::None;
        }
        copy
    }

    /// GICD_ISPENDR / GICR_ISPENDR0 (and the ICPENDR reads).
    pub fn read_pending(&self, ctx: &RegCtx<'_>) -> bool {
        let phys = ctx.phys.pending(self.intid, self.pcpu);
        let copy = self.resample(ctx, self.copy(ctx), phys);
        copy.pending(phys)
    }

    /// GICD_ISACTIVER / GICR_ISACTIVER0 (and the ICACTIVER reads).
    pub fn read_active(&self, ctx: &RegCtx<'_>) -> bool {
        self.copy(ctx)
            .active(|| ctx.phys.active(self.intid, self.pcpu))
    }

    /// A write of one to its ISPENDR bit: pending on the physical GIC,
    /// which signals it (when enabled and not active) like a device would.
    /// A waiting copy is pending already (a level one is latched now).
    /// Returns whether the vGIC must latch a level interrupt until the
    /// hypervisor acknowledges it.
    pub fn set_pending(&self, ctx: &RegCtx<'_>) -> bool {
        let copy = self.copy(ctx);
        if copy.waiting() {
            if !self.edge {
                let lr = match copy {
                    Held::Pending { lr, .. } => Some(lr),
                    _ => None,
                };
                ctx.queue.with_queue(&mut |q| q.latch(self.intid, lr));
            }
            return false;
        }
        ctx.phys.set_pending(self.intid, self.pcpu, true);
        !self.edge
    }

    /// A write of one to its ICPENDR bit: the physical pending state is
    /// cleared and a waiting copy withdrawn. (A level interrupt whose line
    /// is still high stays pending: the physical GIC signals it again.)
    pub fn clear_pending(&self, ctx: &RegCtx<'_>) {
        ctx.phys.set_pending(self.intid, self.pcpu, false);
        self.withdraw(ctx, self.copy(ctx));
    }

    /// A write of one to its ISACTIVER bit: active on the physical GIC. A
    /// waiting copy is handed back to it (an edge or a latched level one
    /// set pending there; a level line is pending by itself), so that the
    /// physical GIC holds the active and pending state until the guest
    /// clears the active one. Returns whether the vGIC must latch a level
    /// interrupt again (the latched copy's).
    pub fn set_active(&self, ctx: &RegCtx<'_>) -> bool {
        let copy = self.copy(ctx);
        let mut latch = false;
        match copy {
            Held::Active(_) => return false,
            Held::Queued(_) | Held::Pending { .. } => {
                copy.drop_copy(ctx, self.intid);
                latch = copy.latched();
                if self.edge || latch {
                    ctx.phys.set_pending(self.intid, self.pcpu, true);
                }
            }
            Held::None => {}
        }
        ctx.phys.set_active(self.intid, self.pcpu, true);
        latch
    }

    /// A write of one to its ICACTIVER bit: an active copy leaves its list
    /// register and the physical interrupt is deactivated. A waiting copy
    /// is not active: nothing changes (the physical active bit is the
    /// hypervisor's acknowledge).
    pub fn clear_active(&self, ctx: &RegCtx<'_>) {
        let copy = self.copy(ctx);
        if copy.waiting() {
            return;
        }
        copy.drop_copy(ctx, self.intid);
        ctx.phys.set_active(self.intid, self.pcpu, false);
    }
}

/// Which of the four state registers an access is to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateReg {
    /// ISPENDR.
    SetPending,
    /// ICPENDR.
    ClearPending,
    /// ISACTIVER.
    SetActive,
    /// ICACTIVER.
    ClearActive,
}

impl VGic {
    /// Owned `intid` as an access by `ctx.vcpu` sees it: a PPI in the
    /// redistributor of vCPU `frame`, an SPI in the distributor (`frame`
    /// None). None for an interrupt the guest does not own.
    pub fn hw_irq(&self, ctx: &RegCtx<'_>, frame: Option<usize>, intid: u32) -> Option<HwIrq> {
        match frame {
            Some(w) if intid < SPI_BASE => {
                let s = self.private.get(w)?.get(intid as usize)?;
                s.owned.then(|| HwIrq {
                    intid,
                    pcpu: self.pcpus[w],
                    edge: s.edge,
                    local: w == ctx.vcpu,
                })
            }
            None if intid >= SPI_BASE => {
                let s = self.spi(intid)?;
                s.owned.then(|| HwIrq {
                    intid,
                    pcpu: self.pcpus.get(s.target).copied().unwrap_or(0),
                    edge: s.edge,
                    local: s.target == ctx.vcpu,
                })
            }
            _ => None,
        }
    }

    /// A read of a pending or active register: one bit per INTID among
    /// the 32 from `first`. An owned (hardware-linked) one reads as
    /// [`HwIrq`] says; a virtual one (an SGI, an emulated SPI) as its copy
    /// for the accessing vCPU is: pending while queued or pending in a list
    /// register, active while active in one. A virtual interrupt of
    /// another vCPU reads as zero (its copies are on another CPU).
    pub(crate) fn state_read(
        &self,
        ctx: &RegCtx<'_>,
        frame: Option<usize>,
        first: u32,
        reg: StateReg,
    ) -> u32 {
        let pending = matches!(reg, StateReg::SetPending | StateReg::ClearPending);
        (0..32).fold(0, |acc, b| {
            let intid = first + b;
            let set = match self.hw_irq(ctx, frame, intid) {
                Some(irq) if pending => irq.read_pending(ctx),
                Some(irq) => irq.read_active(ctx),
                None if self.is_local_virtual(ctx, frame, intid) => {
                    let (p, a) = virtual_state(ctx, intid);
                    if pending { p } else { a }
                }
                None => false,
            };
            acc | u32::from(set) << b
        })
    }

    /// Whether `intid`, seen through `frame` (a redistributor, or the
    /// distributor with None), is a virtual interrupt whose copies are the
    /// accessing vCPU's: an SGI or non-owned PPI in its own redistributor,
    /// or a non-owned SPI targeting it.
    fn is_local_virtual(&self, ctx: &RegCtx<'_>, frame: Option<usize>, intid: u32) -> bool {
        match frame {
            Some(w) if intid < SPI_BASE => w == ctx.vcpu,
            None if intid >= SPI_BASE => self
                .spi(intid)
                .is_some_and(|s| !s.owned && s.target == ctx.vcpu),
            _ => false,
        }
    }

    /// A write of `value` to a pending or active register for the 32
    /// INTIDs from `first`: each bit set acts on an owned INTID (others are
    /// ignored).
    pub(crate) fn state_write(
        &mut self,
        ctx: &RegCtx<'_>,
        frame: Option<usize>,
        first: u32,
        value: u32,
        reg: StateReg,
    ) {
        for b in (0..32).filter(|b| value & (1 << b) != 0) {
            let Some(irq) = self.hw_irq(ctx, frame, first + b) else {
                continue;
            };
            // The vGIC's latch: set when a level interrupt is made (or
            // handed back) pending on the physical GIC by the guest,
            // cleared by a clear-pending.
            let latch = match reg {
                StateReg::SetPending => irq.set_pending(ctx).then_some(true),
                StateReg::ClearPending => {
                    irq.clear_pending(ctx);
                    Some(false)
                }
                StateReg::SetActive => irq.set_active(ctx).then_some(true),
                StateReg::ClearActive => {
                    irq.clear_active(ctx);
                    None
                }
            };
            if let Some(latch) = latch
                && let Some(s) = self.irq_mut(frame.unwrap_or(0), irq.intid)
            {
                s.latched = latch;
            }
        }
    }

    /// Samples again the line of each level-triggered hardware-linked
    /// interrupt whose copy waits on this CPU (in a list register or the
    /// queue) for vCPU `ctx.vcpu`, not latched, and withdraws those whose
    /// line dropped.
    pub fn resample_waiting(&self, ctx: &RegCtx<'_>) {
        let mut latched_lrs = 0;
        ctx.queue.with_queue(&mut |q| latched_lrs = q.latched_lrs());
        let empty = Cpu::empty_lrs();
        for n in 0..Cpu::lr_count().min(MAX_LRS) {
            if empty & (1 << n) != 0 {
                continue;
            }
            let lr = Cpu::read_lr(n);
            if lr & (LR_HW | LR_PENDING | LR_ACTIVE) != LR_HW | LR_PENDING
                || latched_lrs & (1 << n) != 0
            {
                continue;
            }
            let intid = lr as u32;
            let frame = (intid < SPI_BASE).then_some(ctx.vcpu);
            if let Some(irq) = self.hw_irq(ctx, frame, intid)
                && !irq.edge
            {
                let phys = ctx.phys.pending(intid, irq.pcpu);
                irq.resample(
                    ctx,
                    Held::Pending {
                        lr: n,
                        latched: false,
                    },
                    phys,
                );
            }
        }
        ctx.queue.with_queue(&mut |q| {
            q.retain(|r| {
                let frame = (r.intid < SPI_BASE).then_some(ctx.vcpu);
                let dropped = r.level
                    && !r.latched
                    && self
                        .hw_irq(ctx, frame, r.intid)
                        .is_some_and(|irq| !ctx.phys.pending(r.intid, irq.pcpu));
                if dropped {
                    Cpu::gic_deactivate(r.intid);
                }
                !dropped
            });
        });
    }
}
