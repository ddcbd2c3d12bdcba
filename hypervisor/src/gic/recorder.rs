//! A physical GIC that records what it is asked to do, for host tests of
//! everything that drives one (the virtual GIC, the hypervisor's interrupt
//! table, the machine).

use super::PhysGic;
use alloc::vec::Vec;
use spin::Mutex;

/// One recorded operation: (what, INTID, physical CPU, flag).
pub type GicOp = (&'static str, u32, usize, bool);

/// The recording GIC: 256 SPIs; logical CPU `n` has affinity `0x100 + n`.
#[derive(Default)]
pub struct RecordingGic {
    ops: Mutex<Vec<GicOp>>,
}

impl RecordingGic {
    /// Takes the operations recorded so far, in order.
    pub fn take(&self) -> Vec<GicOp> {
        core::mem::take(&mut self.ops.lock())
    }

    fn record(&self, op: GicOp) {
        self.ops.lock().push(op);
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
    fn clear_pending(&self, intid: u32, pcpu: usize) {
        self.record(("clear", intid, pcpu, true));
    }
    fn nr_spis(&self) -> u32 {
        256
    }
    fn cpu_mpidr(&self, pcpu: usize) -> u64 {
        0x100 + pcpu as u64
    }
}
