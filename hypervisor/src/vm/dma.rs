//! The SMMUs as the VM layer uses them: [`DmaControl`], implemented over
//! the SMMU manager where the machine is built (the VM layer does not name
//! the driver), and [`GuestDma`], one guest's share of it (its owner
//! identity, devices, stage 2 and VMID), used at boot, on reset and
//! power-off, and by its virtio-iommu backend.

use crate::mm::pagetable::{PageTable, Stage2};
use crate::smmu::SmmuError;
use crate::smmu::cmd::Cmd;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use spin::Mutex;

/// Why an SMMU operation asked by the VM layer failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmaError {
    /// No SMMU instance with this index.
    NoSuchSmmu(usize),
    /// The SMMU driver failed.
    Smmu(SmmuError),
}

impl core::fmt::Display for DmaError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DmaError::NoSuchSmmu(i) => write!(f, "no SMMU instance {i}"),
            DmaError::Smmu(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for DmaError {}

impl From<SmmuError> for DmaError {
    fn from(e: SmmuError) -> Self {
        DmaError::Smmu(e)
    }
}

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
    /// Returns `owner`'s streams to abort and invalidates its VMID.
    fn detach(&self, owner: &DmaOwner<'_>);
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

    /// Returns the guest's streams to abort.
    pub fn detach(&self) {
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
