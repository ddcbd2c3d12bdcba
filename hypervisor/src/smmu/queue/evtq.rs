//! The event queue, produced by the SMMU and drained by the CPU; an
//! overflow toggles EVTQ_PROD.OVFLG and is acknowledged by copying it to
//! EVTQ_CONS.OVACKFLG.

use alloc::vec::Vec;

use super::{QueueMemory, Ring};
use crate::smmu::event::{EVT_DWORDS, Event};
use crate::smmu::regs::{EVTQ_CONS, EVTQ_PROD, Q_OVF, SmmuRegs};

/// What one [`EventQueue::drain`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventBatch {
    /// Events in queue order.
    pub events: Vec<Event>,
    /// The SMMU reported an overflow: events were lost.
    pub overflow: bool,
}

/// The event queue (single consumer).
#[derive(Debug)]
pub struct EventQueue<M> {
    mem: M,
    ring: Ring,
    /// Position, wrap and OVACKFLG as last written to EVTQ_CONS.
    cons: u32,
}

impl<M: QueueMemory> EventQueue<M> {
    /// An empty queue of `1 << log2` records in `mem`; EVTQ_PROD and
    /// EVTQ_CONS must be 0.
    pub fn new(mem: M, log2: u32) -> Self {
        Self {
            mem,
            ring: Ring::new(log2),
            cons: 0,
        }
    }

    /// The ring arithmetic.
    pub fn ring(&self) -> Ring {
        self.ring
    }

    /// The EVTQ_CONS value last written.
    pub fn cons(&self) -> u32 {
        self.cons
    }

    /// Reads every record between EVTQ_CONS and EVTQ_PROD, advancing
    /// EVTQ_CONS (and acknowledging an overflow) as it goes, until the
    /// queue is empty or four queues' worth was read (an event storm
    /// cannot keep the caller here). An inconsistent EVTQ_PROD (more than
    /// a queue ahead) ends the drain.
    pub fn drain(&mut self, regs: &mut impl SmmuRegs) -> EventBatch {
        let ring = self.ring;
        let budget = ring.size().saturating_mul(4);
        let mut batch = EventBatch::default();
        let mut taken = 0u32;
        while taken < budget {
            let raw = regs.read32(EVTQ_PROD);
            let ovf = raw & Q_OVF;
            if ovf != self.cons & Q_OVF {
                batch.overflow = true;
            }
            let cons = self.cons & ring.mask();
            let avail = ring.used(raw, cons);
            let n = if avail > ring.size() {
                0
            } else {
                avail.min(budget - taken)
            };
            self.mem.to_cpu(cons, n);
            for k in 0..n {
                let mut rec = [0; EVT_DWORDS];
                self.mem.read_entry(ring.add(cons, k), &mut rec);
                batch.events.push(Event::decode(rec));
            }
            let next = ring.add(cons, n) | ovf;
            if next != self.cons {
                self.cons = next;
                regs.write32(EVTQ_CONS, next);
            }
            taken += n;
            if n == 0 {
                break;
            }
        }
        batch
    }
}
