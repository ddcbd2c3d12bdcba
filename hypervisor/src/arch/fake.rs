//! The recording fake of [`Arch`] used on the host: per-thread state (so
//! tests run in parallel), a log of every operation with a visible effect,
//! and knobs for what the hardware would answer (the CPU index, pending
//! physical interrupts, list registers, the clock).
//!
//! ```ignore
//! fake::reset();
//! fake::with(|s| s.cpu = 1);
//! /* run code under test */
//! assert!(fake::take_ops().contains(&Op::SendSgi { sgi: 7, mpidr: 0 }));
//! ```

extern crate std;

use super::frame::TrapFrame;
use super::{Arch, El2Access};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::vec::Vec;

/// Operations with an effect the fake records, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// GIC CPU interface initialised.
    GicInitCpu,
    /// Priority drop of an INTID.
    PriorityDrop(u32),
    /// Deactivation of an INTID.
    Deactivate(u32),
    /// A physical SGI sent.
    SendSgi {
        /// SGI number.
        sgi: u32,
        /// Target affinity.
        mpidr: u64,
    },
    /// A list register written.
    WriteLr(usize, u64),
    /// ICH_HCR_EL2 written.
    SetIchHcr(u64),
    /// Virtual interface reset and enabled.
    EnableVirtualInterface(u64),
    /// CPU configured for a guest.
    ConfigureGuest {
        /// VTTBR_EL2.
        vttbr: u64,
        /// VTCR_EL2.
        vtcr: u64,
        /// vCPU index (VMPIDR).
        vcpu: usize,
    },
    /// A synchronous exception injected.
    InjectSync {
        /// ESR_EL1.
        esr: u64,
        /// FAR_EL1.
        far: u64,
    },
    /// A virtual SError made pending.
    InjectSError,
    /// Guest memory published.
    Publish {
        /// Start.
        pa: u64,
        /// Length.
        len: usize,
    },
    /// Cache clean.
    Clean(u64, usize),
    /// Cache clean and invalidate.
    CleanInvalidate(u64, usize),
    /// WFI.
    Wfi,
    /// New EL2 page-table entries published to the walker.
    El2Publish,
}

/// The state of the fake CPU (one per test thread).
#[derive(Debug, Clone)]
pub struct State {
    /// Logical index of the CPU the code "runs" on.
    pub cpu: usize,
    /// MPIDR of each logical CPU (index = cpu); missing ones read cpu.
    pub mpidrs: Vec<u64>,
    /// Current time in microseconds.
    pub now_us: u64,
    /// Added to the time at every read (so that waits end).
    pub tick_us: u64,
    /// Interrupts the next acknowledges return, in order.
    pub pending_irqs: VecDeque<u32>,
    /// The list registers (their count is the length).
    pub lrs: Vec<u64>,
    /// ICH_HCR_EL2.
    pub ich_hcr: u64,
    /// HCR_EL2.VI.
    pub virq_line: bool,
    /// `partita.virq=hcr` (per thread here, global on hardware).
    pub virq_via_hcr: bool,
    /// VBAR_EL1 of the guest (where injected exceptions go).
    pub vbar_el1: u64,
    /// ESR_EL1, FAR_EL1, ELR_EL1, SPSR_EL1 as the last injection set them.
    pub el1: [u64; 4],
    /// PARange field.
    pub pa_bits_field: u64,
    /// 16-bit VMIDs.
    pub vmid16: bool,
    /// What the EL2 translation allows, by range `[start, end)`; an
    /// address outside them reads as unmapped.
    pub el2_access: Vec<(u64, u64, El2Access)>,
    /// SCTLR_EL2.WXN.
    pub el2_wxn: bool,
    /// What happened, in order.
    pub ops: Vec<Op>,
}

impl Default for State {
    fn default() -> Self {
        State {
            cpu: 0,
            mpidrs: Vec::new(),
            now_us: 0,
            tick_us: 1,
            pending_irqs: VecDeque::new(),
            lrs: alloc::vec![0; 4],
            ich_hcr: 0,
            virq_line: false,
            virq_via_hcr: false,
            vbar_el1: 0,
            el1: [0; 4],
            pa_bits_field: 2, // 40 bits
            vmid16: true,
            el2_access: Vec::new(),
            el2_wxn: true,
            ops: Vec::new(),
        }
    }
}

std::thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

/// Runs `f` on this thread's fake CPU state.
pub fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|s| f(&mut s.borrow_mut()))
}

/// Puts this thread's fake CPU back to its power-on state.
pub fn reset() {
    with(|s| *s = State::default());
}

/// Takes the operations recorded so far.
pub fn take_ops() -> Vec<Op> {
    with(|s| core::mem::take(&mut s.ops))
}

fn record(op: Op) {
    with(|s| s.ops.push(op));
}

/// The fake CPU.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fake;

impl Arch for Fake {
    fn cpu_index() -> usize {
        with(|s| s.cpu)
    }
    fn mpidr() -> u64 {
        with(|s| s.mpidrs.get(s.cpu).copied().unwrap_or(s.cpu as u64))
    }
    fn uptime_us() -> u64 {
        with(|s| {
            s.now_us += s.tick_us;
            s.now_us
        })
    }
    fn counter_ticks() -> u64 {
        Self::uptime_us()
    }
    fn counter_frequency() -> u64 {
        1_000_000
    }
    fn wait_for_interrupt() {
        record(Op::Wfi);
    }
    fn pa_bits_field() -> u64 {
        with(|s| s.pa_bits_field)
    }
    fn has_vmid16() -> bool {
        with(|s| s.vmid16)
    }

    fn gic_init_cpu_interface() {
        record(Op::GicInitCpu);
    }
    fn gic_ack() -> u32 {
        with(|s| s.pending_irqs.pop_front().unwrap_or(1023))
    }
    fn gic_priority_drop(intid: u32) {
        record(Op::PriorityDrop(intid));
    }
    fn gic_deactivate(intid: u32) {
        record(Op::Deactivate(intid));
    }
    fn gic_send_sgi(sgi: u32, mpidr: u64) {
        record(Op::SendSgi { sgi, mpidr });
    }

    fn lr_count() -> usize {
        with(|s| s.lrs.len())
    }
    fn read_lr(n: usize) -> u64 {
        with(|s| s.lrs.get(n).copied().unwrap_or(0))
    }
    fn write_lr(n: usize, value: u64) {
        with(|s| {
            if let Some(lr) = s.lrs.get_mut(n) {
                *lr = value;
            }
            s.ops.push(Op::WriteLr(n, value));
        });
    }
    fn empty_lrs() -> u64 {
        with(|s| {
            s.lrs
                .iter()
                .enumerate()
                .filter(|(_, lr)| *lr >> 62 == 0)
                .fold(0, |m, (i, _)| m | 1 << i)
        })
    }
    fn set_ich_hcr(value: u64) {
        with(|s| {
            s.ich_hcr = value;
            s.ops.push(Op::SetIchHcr(value));
        });
    }
    fn ich_hcr() -> u64 {
        with(|s| s.ich_hcr)
    }
    fn set_virtual_irq_line(pending: bool) {
        with(|s| s.virq_line = pending);
    }
    fn virq_via_hcr() -> bool {
        with(|s| s.virq_via_hcr)
    }
    fn set_virq_via_hcr(on: bool) {
        with(|s| s.virq_via_hcr = on);
    }
    fn enable_virtual_interface(ich_hcr: u64) {
        with(|s| {
            s.lrs.iter_mut().for_each(|lr| *lr = 0);
            s.ich_hcr = ich_hcr;
            s.ops.push(Op::EnableVirtualInterface(ich_hcr));
        });
    }

    fn vtcr(ipa_bits: u32, start_level: usize) -> u64 {
        (start_level as u64) << 6 | (64 - ipa_bits as u64)
    }
    fn configure_guest(vttbr: u64, vtcr: u64, vcpu: usize) {
        record(Op::ConfigureGuest { vttbr, vtcr, vcpu });
    }
    fn inject_sync_exception(frame: &mut TrapFrame, esr: u64, far: u64) {
        with(|s| {
            s.el1 = [esr, far, frame.elr, frame.spsr];
            s.ops.push(Op::InjectSync { esr, far });
            frame.elr = s.vbar_el1 + 0x200;
            frame.spsr = 0x3c5;
        });
    }
    fn inject_virtual_serror() {
        record(Op::InjectSError);
    }
    fn publish_guest_image(pa: u64, len: usize) {
        record(Op::Publish { pa, len });
    }

    fn clean_to_poc(addr: u64, len: usize) {
        record(Op::Clean(addr, len));
    }
    fn clean_invalidate_to_poc(addr: u64, len: usize) {
        record(Op::CleanInvalidate(addr, len));
    }
    fn write_barrier() {}
    fn read_barrier() {}
    fn dmb_ish() {}
    fn dmb_ishld() {}

    fn el2_publish_new_entries() {
        record(Op::El2Publish);
    }
    fn el2_access(va: u64) -> El2Access {
        with(|s| {
            s.el2_access
                .iter()
                .find(|(start, end, _)| (*start..*end).contains(&va))
                .map(|(_, _, a)| *a)
                .unwrap_or_default()
        })
    }
    fn el2_wxn() -> bool {
        with(|s| s.el2_wxn)
    }
}
