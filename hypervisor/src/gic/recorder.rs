//! A physical GIC that records what it is asked to do, for host tests of
//! everything that drives one (the virtual GIC, the hypervisor's interrupt
//! table, the machine). It also holds a pending and an active bit per
//! interrupt, which the test sets as the hardware would
//! ([`RecordingGic::set_state`]) and the set/clear operations change.

use super::PhysGic;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use spin::Mutex;

/// One recorded operation: (what, INTID, physical CPU, flag). Writes are
/// `"enable"`, `"edge"`, `"route"`, `"pending"` and `"active"` (the flag is
/// the value set); reads are `"pending?"` and `"active?"` (the flag is the
/// value returned).
pub type GicOp = (&'static str, u32, usize, bool);

/// The recording GIC: 256 SPIs; logical CPU `n` has affinity `0x100 + n`.
#[derive(Default)]
pub struct RecordingGic {
    ops: Mutex<Vec<GicOp>>,
    /// (pending, active) by (INTID, CPU for SGIs and PPIs, 0 for SPIs).
    state: Mutex<BTreeMap<(u32, usize), (bool, bool)>>,
}

/// Key of an interrupt's state: SGIs and PPIs are per CPU.
fn key(intid: u32, pcpu: usize) -> (u32, usize) {
    (intid, if intid < 32 { pcpu } else { 0 })
}

impl RecordingGic {
    /// Takes the operations recorded so far, in order.
    pub fn take(&self) -> Vec<GicOp> {
        core::mem::take(&mut self.ops.lock())
    }

    /// Sets what the hardware holds for `intid` (on `pcpu` for a PPI), as
    /// an acknowledge, a deactivation or a device's line would (not
    /// recorded).
    pub fn set_state(&self, intid: u32, pcpu: usize, pending: bool, active: bool) {
        self.state
            .lock()
            .insert(key(intid, pcpu), (pending, active));
    }

    /// (pending, active) of `intid` now (not recorded).
    pub fn state(&self, intid: u32, pcpu: usize) -> (bool, bool) {
        self.state
            .lock()
            .get(&key(intid, pcpu))
            .copied()
            .unwrap_or_default()
    }

    fn record(&self, op: GicOp) {
        self.ops.lock().push(op);
    }

    fn update(&self, intid: u32, pcpu: usize, f: impl FnOnce(&mut (bool, bool))) {
        f(self.state.lock().entry(key(intid, pcpu)).or_default());
    }
}

impl PhysGic for RecordingGic {
    fn set_enabled(&self, intid: u32, pcpu: usize, enabled: bool) {
        self.record(("enable", intid, pcpu, enabled));
    }
    fn set_edge(&self, intid: u32, pcpu: usize, edge: bool) {
        self.record(("edge", intid, pcpu, edge));
    }
    fn route_spi(&self, intid: u32, pcpu: usize) {
        self.record(("route", intid, pcpu, true));
    }
    fn pending(&self, intid: u32, pcpu: usize) -> bool {
        let p = self.state(intid, pcpu).0;
        self.record(("pending?", intid, pcpu, p));
        p
    }
    fn active(&self, intid: u32, pcpu: usize) -> bool {
        let a = self.state(intid, pcpu).1;
        self.record(("active?", intid, pcpu, a));
        a
    }
    fn set_pending(&self, intid: u32, pcpu: usize, pending: bool) {
        self.update(intid, pcpu, |s| s.0 = pending);
        self.record(("pending", intid, pcpu, pending));
    }
    fn set_active(&self, intid: u32, pcpu: usize, active: bool) {
        self.update(intid, pcpu, |s| s.1 = active);
        self.record(("active", intid, pcpu, active));
    }
    fn nr_spis(&self) -> u32 {
        256
    }
    fn cpu_mpidr(&self, pcpu: usize) -> u64 {
        0x100 + pcpu as u64
    }
}
