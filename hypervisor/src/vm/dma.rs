//! The SMMUs as the VM layer uses them: the [`DmaControl`] port (what the
//! vCPUs and a guest's virtio-iommu need), implemented over the SMMU
//! manager by [`SmmuPort`]; [`GuestDma`], one guest's share of it (its
//! owner identity, devices, stage 2 and VMID), used at boot, on reset and
//! power-off, and by its virtio-iommu backend; and [`FaultRouter`], the
//! manager's fault sink, which hands DMA faults to the machine.

use super::machine::Machine;
use crate::fdt::HostDt;
use crate::fdt::PcieHost;
use crate::mm::heap_tables::HeapTables;
use crate::mm::mirror::MirrorTable;
use crate::mm::pagetable::{MapError, PageTable, Stage2};
use crate::pci::host::PciHost;
use crate::smmu::cmd::Cmd;
use crate::smmu::dma::{CacheOps, DmaMemory};
use crate::smmu::manager::{
    DeviceStreams, DmaFault, FaultHandled, FaultSink, KeptQueue, OwnerId, SmmuManager,
    StreamProblem, SyncFailed, endpoint_sid, owner_streams_within, sid_endpoint,
};
use crate::smmu::regs::SmmuRegs;
use crate::smmu::streams::pcie_rid_streams;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use spin::Mutex;

/// A stage-2 table to bind streams to, its VMID and what it is (the
/// manager's type).
pub use crate::smmu::manager::Stage2Table as TableRef;

/// Why an SMMU operation asked by the VM layer failed (the manager's typed
/// error, unchanged).
pub type DmaError = crate::smmu::manager::ManagerError;

/// Why [`GuestDma::set_unattached_bypass`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BypassError {
    /// The guest has no [`Unattached`] table (no virtio-iommu).
    NoTable,
    /// The table could not mirror the guest's stage 2.
    Table(MapError),
    /// An SMMU did not confirm the invalidation.
    Smmu(DmaError),
}

impl core::fmt::Display for BypassError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BypassError::NoTable => f.write_str("no table for unattached endpoints"),
            BypassError::Table(e) => write!(f, "table for unattached endpoints: {e}"),
            BypassError::Smmu(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for BypassError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            BypassError::NoTable => None,
            BypassError::Table(e) => Some(e),
            BypassError::Smmu(e) => Some(e),
        }
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
    /// Single PCI functions given to it: host bridge path, requester ID.
    pub functions: &'a [(String, u16)],
    /// Its VMID.
    pub vmid: u16,
}

/// Stream-table operations of every SMMU the hypervisor runs.
pub trait DmaControl: Sync {
    /// Records `owner` as the owner of its devices' streams and binds
    /// them to `table` (a stage-2 table, the VMID tagging its TLB entries
    /// and what it is, for log lines); without one they abort.
    fn attach(&self, owner: &DmaOwner<'_>, table: Option<TableRef<'_>>) -> Result<(), DmaError>;
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
    /// [`DmaControl::issue`] for a hot path (a guest's invalidations): a
    /// failure is logged where it happens and answered as [`SyncFailed`]
    /// (in a register, not an error value through memory).
    fn sync_cmds(&self, smmu: usize, cmds: &[Cmd]) -> Result<(), SyncFailed> {
        self.issue(smmu, cmds).map_err(|e| {
            log::error!("{e}");
            SyncFailed
        })
    }
    /// Instance `smmu`'s command queue, for a hot path to keep: its
    /// [`SyncQueue::sync_cmds`] is [`DmaControl::sync_cmds`] on `smmu`
    /// (the same commands, checks and answers), one call with no port or
    /// instance lookup between (on the target a direct call: see
    /// [`KeptQueue`]). None (the default) when there is no such
    /// instance or the port offers none: the caller uses `sync_cmds`.
    ///
    /// [`SyncQueue::sync_cmds`]: crate::smmu::manager::SyncQueue::sync_cmds
    fn queue(&'static self, smmu: usize) -> Option<KeptQueue> {
        let _ = smmu;
        None
    }
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
    /// Single PCI functions given to it (host bridge path, requester ID).
    pub functions: Vec<(String, u16)>,
    /// The guest's VMID.
    pub vmid: u16,
    /// The guest's stage 2 (shared with the guest).
    pub stage2: Arc<Mutex<Stage2Table>>,
    /// With a virtio-iommu: the table its endpoints that no domain holds
    /// are bound to (see [`Unattached`]).
    pub unattached: Option<Unattached>,
    /// The SMMUs.
    pub smmus: &'static dyn DmaControl,
}

/// Where the streams of a guest's virtio-iommu endpoints that no domain
/// holds translate: a [`MirrorTable`] with a VMID of its own, empty while
/// the configuration's `bypass` is off (a DMA is a translation fault the
/// SMMU reports, which reaches the guest as a DOMAIN fault) and repeating
/// the guest's stage 2 while it is on. Taken after the guest's `stage2`
/// lock (lock order in `vm/machine.rs`).
pub struct Unattached {
    /// The table.
    pub table: Mutex<MirrorTable>,
    /// Its VMID ([`super::viommu::vmids::unattached_vmid`]).
    pub vmid: u16,
}

impl Unattached {
    /// An empty table shaped like `stage2`, from the heap (a fixed cost of
    /// the guest, paid at build), tagged with `vmid`.
    pub fn new(stage2: &PageTable<Stage2>, vmid: u16) -> Result<Self, MapError> {
        Ok(Unattached {
            table: Mutex::new(MirrorTable::new(&mut HeapTables, stage2)?),
            vmid,
        })
    }
}

impl GuestDma {
    fn owner(&self) -> DmaOwner<'_> {
        DmaOwner {
            index: self.index,
            name: &self.name,
            devices: &self.devices,
            functions: &self.functions,
            vmid: self.vmid,
        }
    }

    /// Records the guest's streams and binds them: with `translate` to its
    /// stage 2, else to its [`Unattached`] table (or to abort, without a
    /// virtio-iommu).
    pub fn attach(&self, translate: bool) -> Result<(), DmaError> {
        if translate {
            let st2 = self.stage2.lock();
            let table = TableRef {
                table: &st2.0,
                vmid: self.vmid,
                label: "its stage 2",
            };
            return self.smmus.attach(&self.owner(), Some(table));
        }
        match &self.unattached {
            Some(u) => {
                let t = u.table.lock();
                let table = TableRef {
                    table: t.table(),
                    vmid: u.vmid,
                    label: "the table of its unattached virtio-iommu endpoints",
                };
                self.smmus.attach(&self.owner(), Some(table))
            }
            None => self.smmus.attach(&self.owner(), None),
        }
    }

    /// Returns the guest's streams to abort and invalidates its VMIDs
    /// (see [`DmaControl::detach`]); goes on past a failure and returns
    /// the first.
    pub fn detach(&self) -> Result<(), DmaError> {
        let mut result = self.smmus.detach(&self.owner());
        if let Some(u) = &self.unattached {
            for inst in 0..self.smmus.count() {
                let r = self.smmus.issue(inst, &[Cmd::tlbi_s12_vmall(u.vmid)]);
                result = result.and(r);
            }
        }
        result
    }

    /// Instance and stream of endpoint `ep`, if the guest owns it. For a
    /// guest given single PCI functions, endpoints are requester IDs on its
    /// virtual bus (function `n` at `n << 3`), mapped to the host function.
    pub fn endpoint_stream(&self, ep: u32) -> Option<(usize, u32)> {
        if self.functions.is_empty() {
            return self.smmus.endpoint_stream(&self.devices, ep);
        }
        if ep & 0xff07 != 0 {
            return None;
        }
        let (path, rid) = self.functions.get((ep >> 3) as usize)?;
        self.smmus
            .endpoint_stream(core::slice::from_ref(path), u32::from(*rid))
    }

    /// The endpoint of stream `sid` on SMMU instance `smmu` among the
    /// guest's single PCI functions (its requester ID on the virtual bus).
    pub fn function_endpoint(&self, smmu: usize, sid: u32) -> Option<u32> {
        (0..self.functions.len() as u32)
            .map(|n| n << 3)
            .find(|&ep| self.endpoint_stream(ep) == Some((smmu, sid)))
    }

    /// Points stream `sid` of `smmu` at the guest's own stage 2.
    pub fn bind_to_stage2(&self, smmu: usize, sid: u32) -> Result<(), DmaError> {
        let st2 = self.stage2.lock();
        self.smmus.bind_stream(smmu, sid, &st2.0, self.vmid)
    }

    /// Points stream `sid` of `smmu` at the [`Unattached`] table (to abort
    /// when the guest has none).
    pub fn bind_unattached(&self, smmu: usize, sid: u32) -> Result<(), DmaError> {
        match &self.unattached {
            Some(u) => {
                let t = u.table.lock();
                self.smmus.bind_stream(smmu, sid, t.table(), u.vmid)
            }
            None => self.smmus.abort_stream(smmu, sid),
        }
    }

    /// Makes the [`Unattached`] table repeat the guest's stage 2 (`on`)
    /// or translate nothing, and invalidates its VMID on every SMMU, each
    /// waited for: bounded work (one root, one command per SMMU), however
    /// many streams the guest owns. Without the table (no virtio-iommu)
    /// there is nothing to switch: `on` is refused.
    pub fn set_unattached_bypass(&self, on: bool) -> Result<(), BypassError> {
        let Some(u) = &self.unattached else {
            return if on {
                Err(BypassError::NoTable)
            } else {
                Ok(())
            };
        };
        {
            let st2 = self.stage2.lock();
            let mut t = u.table.lock();
            if on {
                t.mirror(&HeapTables, &st2.0, &st2.1)
                    .map_err(BypassError::Table)?;
            } else {
                t.clear(&HeapTables);
            }
        }
        let mut result = Ok(());
        for inst in 0..self.smmus.count() {
            result = result.and(self.smmus.issue(inst, &[Cmd::tlbi_s12_vmall(u.vmid)]));
        }
        result.map_err(BypassError::Smmu)
    }
}

/// The SMMU manager as the VM layer's [`DmaControl`], with the host device
/// tree it finds the guests' streams in.
pub struct SmmuPort<R: 'static, D: 'static, C: 'static> {
    /// The host device tree.
    pub hw: &'static HostDt,
    /// The host bridges as enumerated at boot (which buses are in use).
    pub pci: &'static [PciHost],
    /// The SMMUs.
    pub smmus: &'static SmmuManager<R, D, C>,
}

impl<R, D, C> DmaControl for SmmuPort<R, D, C>
where
    Self: Sync,
    R: SmmuRegs + Send,
    D: DmaMemory + Send,
    C: CacheOps + Clone + Send,
{
    fn attach(&self, owner: &DmaOwner<'_>, table: Option<TableRef<'_>>) -> Result<(), DmaError> {
        // A host bridge's streams on the buses enumeration found in use
        // (all of its bus range if it was not enumerated): a stream table
        // level-2 table (16 KiB) per bus, not per bus of the range.
        let buses = |p: &PcieHost| match self.pci.iter().find(|h| h.path == p.path) {
            Some(h) => (
                p.bus_range.0,
                h.topology.last_bus().map_or(p.bus_range.0, u32::from),
            ),
            None => p.bus_range,
        };
        let mut streams =
            owner_streams_within(self.hw, owner.devices, self.smmus.phandles(), &buses);
        // Each single PCI function: the stream of its requester ID.
        for (path, rid) in owner.functions {
            let Some(p) = self.hw.pcie.iter().find(|p| p.path == *path) else {
                continue;
            };
            let rid = u32::from(*rid);
            for s in pcie_rid_streams(p, rid..=rid) {
                match self
                    .smmus
                    .phandles()
                    .iter()
                    .position(|ph| *ph == Some(s.smmu_phandle))
                {
                    Some(smmu) => streams.devices.push(DeviceStreams {
                        path: alloc::format!(
                            "{path} {:02x}:{:02x}.{}",
                            rid >> 8,
                            (rid >> 3) & 0x1f,
                            rid & 7
                        ),
                        smmu,
                        streams: s,
                    }),
                    None => streams
                        .problems
                        .push(StreamProblem::SmmuNotRun { path: path.clone() }),
                }
            }
        }
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
        let label = "a virtio-iommu table";
        self.smmus
            .bind_stream(smmu, sid, TableRef { table, vmid, label })
    }
    fn abort_stream(&self, smmu: usize, sid: u32) -> Result<(), DmaError> {
        self.smmus.abort_stream(smmu, sid)
    }
    fn issue(&self, smmu: usize, cmds: &[Cmd]) -> Result<(), DmaError> {
        self.smmus.issue(smmu, cmds)
    }
    fn sync_cmds(&self, smmu: usize, cmds: &[Cmd]) -> Result<(), SyncFailed> {
        self.smmus.sync_cmds(smmu, cmds)
    }
    fn queue(&'static self, smmu: usize) -> Option<KeptQueue> {
        self.smmus.kept(smmu)
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
    fn dma_fault(&self, fault: &DmaFault<'_>) -> FaultHandled {
        let owner = fault.owner.0;
        let Some(g) = self.machine.guest_by_owner(owner) else {
            return FaultHandled {
                reported: false,
                log: Some(0),
            };
        };
        let ev = fault.event;
        let ep = match (ev.is_translation_fault(), fault.smmu_phandle) {
            (true, _) if !g.dma.functions.is_empty() => g.dma.function_endpoint(fault.smmu, ev.sid),
            (true, Some(phandle)) => sid_endpoint(self.hw, &g.config.devices, phandle, ev.sid),
            _ => None,
        };
        FaultHandled {
            reported: self
                .machine
                .dma_fault(owner, ep, ev.input_addr, ev.read, fault.repeats),
            log: g.log_budget.take(),
        }
    }
}
