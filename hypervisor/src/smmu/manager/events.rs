//! Events and global errors: [`SmmuManager::poll_events`] drains the event
//! queues into log lines, one per run of identical events, and hands DMA
//! faults on owned streams to the [`FaultSink`].

use super::{Instance, OwnerId, SmmuManager};
use crate::smmu::dma::{CacheOps, DmaMemory};
use crate::smmu::event::Event;
use crate::smmu::regs::SmmuRegs;
use alloc::format;
use alloc::string::String;
use log::{error, warn};

/// A run of identical events (one kind, one stream, one direction) on a
/// stream an owner holds.
#[derive(Debug, Clone, Copy)]
pub struct DmaFault<'a> {
    /// The stream's owner.
    pub owner: OwnerId,
    /// The SMMU instance.
    pub smmu: usize,
    /// The instance's DT phandle (to map the stream back to an endpoint
    /// with [`super::sid_endpoint`]).
    pub smmu_phandle: Option<u32>,
    /// The first event of the run.
    pub event: &'a Event,
    /// How many events the run has (at least 1).
    pub repeats: usize,
}

/// What a [`FaultSink`] did with a run of faults, and whether the manager
/// logs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultHandled {
    /// Reported to the owner's virtio-iommu (the log line says so).
    pub reported: bool,
    /// Log the run: `Some(n)`, `n` being the lines of this owner left out
    /// since the last one logged; `None`: over the owner's log budget.
    pub log: Option<u64>,
}

/// Where DMA faults on owned streams go (the VM layer: a per-guest count,
/// the guest's virtio-iommu and its log budget).
pub trait FaultSink: Sync {
    /// Takes one run of faults. Called with no lock of the manager held.
    fn dma_fault(&self, fault: &DmaFault<'_>) -> FaultHandled;
}

impl<R: SmmuRegs, D: DmaMemory, C: CacheOps + Clone> SmmuManager<R, D, C> {
    /// Drains and reports the event queue of every instance.
    pub fn poll_events(&self) {
        for smmu in 0..self.instances.len() {
            self.drain(smmu);
        }
    }

    /// The event queue interrupt `intid` fired: drains the instances that
    /// use it.
    pub fn handle_event_irq(&self, intid: u32) {
        for (smmu, inst) in self.instances.iter().enumerate() {
            if inst.eventq == Some(intid) {
                self.drain(smmu);
            }
        }
    }

    /// The global error interrupt `intid` fired: handles and logs the
    /// global errors of the instances that use it.
    pub fn handle_gerror_irq(&self, intid: u32) {
        for inst in self.instances.iter().filter(|i| i.gerror == Some(intid)) {
            let report = inst.driver.lock().handle_gerror();
            if !report.is_empty() {
                error!("smmuv3 {:#x}: global error: {report:?}", inst.base);
            }
        }
    }

    fn drain(&self, smmu: usize) {
        let Some(inst) = self.instances.get(smmu) else {
            return;
        };
        let batch = inst.driver.lock().drain_events();
        if batch.overflow {
            warn!(
                "smmuv3 {:#x}: event queue overflowed: events were lost",
                inst.base
            );
        }
        // Consecutive events of one kind on one stream (a device retrying,
        // or one DMA burst faulting word by word) make one line.
        let mut i = 0;
        while i < batch.events.len() {
            let ev = &batch.events[i];
            let same = batch.events[i..]
                .iter()
                .take_while(|e| e.sid == ev.sid && e.id == ev.id && e.read == ev.read)
                .count();
            self.report(smmu, inst, ev, same);
            i += same;
        }
    }

    /// Logs one run of `repeats` events like `ev` and hands it to the sink.
    fn report(&self, smmu: usize, inst: &Instance<R, D, C>, ev: &Event, repeats: usize) {
        let (owner, name) = {
            let owners = self.owners.lock();
            let owner = owners.owner_of(smmu, ev.sid);
            let name = owner.map(|o| match owners.name(o) {
                Some(n) => format!("guest '{n}'"),
                None => format!("owner {}", o.0),
            });
            (owner, name.unwrap_or_else(|| String::from("no guest")))
        };
        let handled = match (owner, self.sink.get()) {
            (Some(owner), Some(sink)) => sink.dma_fault(&DmaFault {
                owner,
                smmu,
                smmu_phandle: inst.phandle,
                event: ev,
                repeats,
            }),
            _ => FaultHandled {
                reported: false,
                log: Some(0),
            },
        };
        // A guest's DMA storm is its to pay for: its lines are limited.
        let Some(left_out) = handled.log else {
            return;
        };
        if left_out > 0 {
            warn!(
                "smmuv3 {:#x}: {left_out} more DMA fault line(s) of {name} left out",
                inst.base
            );
        }
        let forwarded = if handled.reported {
            ", reported to its virtio-iommu"
        } else {
            ""
        };
        let more = if repeats > 1 {
            format!(" (and {} more like it)", repeats - 1)
        } else {
            String::new()
        };
        warn!(
            "smmuv3 {:#x}: {} DMA blocked: {ev} ({name}{forwarded}){more}",
            inst.base,
            if ev.read { "read" } else { "write" }
        );
    }
}
