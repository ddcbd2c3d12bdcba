//! The SMMUs as the VM layer uses them: the [`DmaControl`] port (what the
//! vCPUs and a guest's virtio-iommu need), implemented over the SMMU
//! manager by [`SmmuPort`]; [`GuestDma`], one guest's share of it (its
//! owner identity, devices, stage 2 and VMID), used at boot, on reset and
//! power-off, and by its virtio-iommu backend; and [`FaultRouter`], the
//! manager's fault sink, which hands DMA faults to the machine.

use super::machine::Machine;
use crate::fdt::HostDt;
use crate::mm::pagetable::{PageTable, Stage2};
use crate::smmu::cmd::Cmd;
use crate::smmu::dma::{CacheOps, DmaMemory};
use crate::smmu::manager::{
    DmaFault, FaultSink, OwnerId, SmmuManager, Stage2Table as TableRef, endpoint_sid,
    owner_streams, sid_endpoint,
};
use crate::smmu::regs::SmmuRegs;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use spin::Mutex;

/// Why an SMMU operation asked by the VM layer failed (the manager's typed
/// error, unchanged).
pub type DmaError = crate::smmu::manager::ManagerError;

/// A guest as the SMMU side knows it.
pub struct DmaOwner<'a> {
    /// Owner identity (the guest's position in the bundle).
    pub index: usize,
    /// Its name, for messages.
    pub name: &'a str,
    /// Host DT paths of its passed-through devices.
    pub devices: &'a [String],
    /// Its stage-2 table (what its DMA translates through).
    pub stage2: &'a PageTable<Stage2>,
    /// Its VMID.
    pub vmid: u16,
}

/// Stream-table operations of every SMMU the hypervisor runs.
pub trait DmaControl: Sync {
    /// Records `owner` as the owner of its devices' streams and, with
    /// `translate`, binds them to its stage 2; without, they keep
    /// aborting (until its virtio-iommu attaches them).
    fn attach(&self, owner: &DmaOwner<'_>, translate: bool) -> Result<(), DmaError>;
    /// Returns `owner`'s streams to abort and invalidates its VMID. An
    /// error means the SMMU did not confirm it: a stream may still use its
    /// old configuration.
    fn detach(&self, owner: &DmaOwner<'_>) -> Result<(), DmaError>;
    /// The SMMU instance and stream ID of endpoint (requester ID) `ep`
    /// among `devices`, if one of them owns it.
    fn endpoint_stream(&self, devices: &[String], ep: u32) -> Option<(usize, u32)>;
    /// Points stream `sid` of instance `smmu` at a stage-2 table.
    fn bind_stream(
        &self,
        smmu: usize,
        sid: u32,
        table: &PageTable<Stage2>,
        vmid: u16,
    ) -> Result<(), DmaError>;
    /// Returns stream `sid` of instance `smmu` to abort.
    fn abort_stream(&self, smmu: usize, sid: u32) -> Result<(), DmaError>;
    /// Issues `cmds` and a CMD_SYNC on instance `smmu`, and waits.
    fn issue(&self, smmu: usize, cmds: &[Cmd]) -> Result<(), DmaError>;
    /// Whether instance `smmu` has range invalidation.
    fn has_ril(&self, smmu: usize) -> bool;
    /// Number of SMMU instances.
    fn count(&self) -> usize;
    /// Drains and reports every event queue.
    fn poll_events(&self);
}

/// A guest's stage-2 table and the pages it is built from.
pub type Stage2Table = (PageTable<Stage2>, crate::mm::heap_tables::HeapTables);

/// One guest's view of the SMMUs.
pub struct GuestDma {
    /// Owner identity.
    pub index: usize,
    /// Guest name.
    pub name: String,
    /// Passed-through devices (host DT paths).
    pub devices: Vec<String>,
    /// The guest's VMID.
    pub vmid: u16,
    /// The guest's stage 2 (shared with the guest).
    pub stage2: Arc<Mutex<Stage2Table>>,
    /// The SMMUs.
    pub smmus: &'static dyn DmaControl,
}

impl GuestDma {
    fn with_owner<R>(&self, f: impl FnOnce(&DmaOwner<'_>) -> R) -> R {
        let st2 = self.stage2.lock();
        f(&DmaOwner {
            index: self.index,
            name: &self.name,
            devices: &self.devices,
            stage2: &st2.0,
            vmid: self.vmid,
        })
    }

    /// Binds the guest's streams (see [`DmaControl::attach`]).
    pub fn attach(&self, translate: bool) -> Result<(), DmaError> {
        self.with_owner(|o| self.smmus.attach(o, translate))
    }

    /// Returns the guest's streams to abort (see [`DmaControl::detach`]).
    pub fn detach(&self) -> Result<(), DmaError> {
        self.with_owner(|o| self.smmus.detach(o))
    }

    /// Instance and stream of endpoint `ep`, if the guest owns it.
    pub fn endpoint_stream(&self, ep: u32) -> Option<(usize, u32)> {
        self.smmus.endpoint_stream(&self.devices, ep)
    }

    /// Points stream `sid` of `smmu` at the guest's own stage 2.
    pub fn bind_to_stage2(&self, smmu: usize, sid: u32) -> Result<(), DmaError> {
        let st2 = self.stage2.lock();
        self.smmus.bind_stream(smmu, sid, &st2.0, self.vmid)
    }
}

/// The SMMU manager as the VM layer's [`DmaControl`], with the host device
/// tree it finds the guests' streams in.
pub struct SmmuPort<R: 'static, D: 'static, C: 'static> {
    /// The host device tree.
    pub hw: &'static HostDt,
    /// The SMMUs.
    pub smmus: &'static SmmuManager<R, D, C>,
}

impl<R, D, C> DmaControl for SmmuPort<R, D, C>
where
    Self: Sync,
    R: SmmuRegs,
    D: DmaMemory,
    C: CacheOps + Clone,
{
    fn attach(&self, owner: &DmaOwner<'_>, translate: bool) -> Result<(), DmaError> {
        let streams = owner_streams(self.hw, owner.devices, self.smmus.phandles());
        let table = translate.then_some(TableRef {
            table: owner.stage2,
            vmid: owner.vmid,
        });
        self.smmus
            .attach(OwnerId(owner.index), owner.name, &streams, table)
    }
    fn detach(&self, owner: &DmaOwner<'_>) -> Result<(), DmaError> {
        // Errors are logged by the manager.
        self.smmus.detach(OwnerId(owner.index), owner.vmid)
    }
    fn endpoint_stream(&self, devices: &[String], ep: u32) -> Option<(usize, u32)> {
        endpoint_sid(self.hw, devices, self.smmus.phandles(), ep)
    }
    fn bind_stream(
        &self,
        smmu: usize,
        sid: u32,
        table: &PageTable<Stage2>,
        vmid: u16,
    ) -> Result<(), DmaError> {
        self.smmus.bind_stream(smmu, sid, TableRef { table, vmid })
    }
    fn abort_stream(&self, smmu: usize, sid: u32) -> Result<(), DmaError> {
        self.smmus.abort_stream(smmu, sid)
    }
    fn issue(&self, smmu: usize, cmds: &[Cmd]) -> Result<(), DmaError> {
        self.smmus.issue(smmu, cmds)
    }
    fn has_ril(&self, smmu: usize) -> bool {
        self.smmus.has_ril(smmu)
    }
    fn count(&self) -> usize {
        self.smmus.count()
    }
    fn poll_events(&self) {
        self.smmus.poll_events()
    }
}

/// The manager's [`FaultSink`]: a DMA fault on a guest's stream is counted
/// for the guest and, for a translation fault on one of its PCIe
/// endpoints, reported to its virtio-iommu.
pub struct FaultRouter {
    /// The host device tree (stream to endpoint through `iommu-map`).
    pub hw: &'static HostDt,
    /// The guests.
    pub machine: &'static Machine,
}

impl FaultSink for FaultRouter {
    fn dma_fault(&self, fault: &DmaFault<'_>) -> bool {
        let owner = fault.owner.0;
        let Some(g) = self.machine.guest_by_owner(owner) else {
            return false;
        };
        let ev = fault.event;
        let ep = match (ev.is_translation_fault(), fault.smmu_phandle) {
            (true, Some(phandle)) => sid_endpoint(self.hw, &g.config.devices, phandle, ev.sid),
            _ => None,
        };
        self.machine
            .dma_fault(owner, ep, ev.input_addr, ev.read, fault.repeats)
    }
}
