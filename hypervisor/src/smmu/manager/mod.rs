//! [`SmmuManager`]: the SMMUs of the machine as the hypervisor runs them.
//! Probed at boot (global bypass off, every stream aborting), each owner's
//! streams bound to its stage-2 table or left aborting, returned to abort
//! when the owner stops, and the event and error interrupts turned into
//! log lines and fault reports to a [`FaultSink`].
//!
//! Owners are opaque ([`OwnerId`], with a name for log lines): what an
//! owner has (its devices' streams, its stage-2 table and VMID) comes in as
//! arguments, from [`owner_streams`] over the host device tree. Nothing here
//! maps memory or registers interrupts: the caller maps the register blocks
//! before [`SmmuManager::probe`] and registers the INTIDs
//! [`SmmuManager::enable_irqs`] names.
//!
//! # Locks
//!
//! Each manager has one lock over the owner records (`owners`) and one per
//! SMMU instance over its driver (`driver`). They are taken in this order
//! only:
//!
//! 1. `owners`,
//! 2. the `driver` of one instance (never two drivers at once).
//!
//! A method may take a driver lock without `owners`, but never `owners`
//! while it holds a driver lock. The [`FaultSink`] is called with no lock of
//! the manager held (it may call back into the manager). Callers that hold
//! a lock of their own while calling in (a guest's stage-2 table) must
//! never take it from the sink.

mod devices;
mod error;
mod events;
mod owners;
mod probe;

pub use devices::{
    DeviceStreams, OwnerStreams, StreamProblem, endpoint_sid, owner_streams, owner_streams_within,
    sid_endpoint,
};
pub use error::{ManagerError, SyncFailed};
pub use events::{DmaFault, FaultHandled, FaultSink};
pub use owners::{HwQueue, KeptQueue, SyncQueue};
pub use probe::{Probed, SmmuInterrupt, SmmuIrq, SmmuParts};

use super::driver::Smmu;
use super::idregs::Features;
use super::streams::SidRange;
use crate::mm::pagetable::{PageTable, Stage2};
use alloc::string::String;
use alloc::vec::Vec;
use spin::{Mutex, Once};

/// Who owns streams: opaque to the SMMU layer (the VM layer uses the
/// guest's index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OwnerId(pub usize);

/// A stage-2 table to translate streams through, and the VMID that tags
/// its TLB entries.
#[derive(Clone, Copy)]
pub struct Stage2Table<'a> {
    /// The table (its root, input size and start level go into the STE).
    pub table: &'a PageTable<Stage2>,
    /// The VMID.
    pub vmid: u16,
    /// What the table is to its owner, for log lines ("its stage 2").
    pub label: &'static str,
}

/// One SMMU in use (public as the type a hot path keeps: see
/// [`KeptQueue`]; its fields are the manager's).
pub struct Instance<R, D, C> {
    /// Base address (for messages).
    base: u64,
    /// DT phandle (what `iommu-map` / `iommus` name).
    phandle: Option<u32>,
    /// Output-size encoding for S2PS: min(IDR5.OAS, CPU PARange).
    ps: u8,
    /// What it implements.
    features: Features,
    /// INTIDs of its event queue and global error interrupts.
    eventq: Option<u32>,
    gerror: Option<u32>,
    driver: Mutex<Smmu<R, D, C>>,
}

/// A stream range and its owner.
#[derive(Debug, Clone, Copy)]
struct Owned {
    smmu: usize,
    range: SidRange,
    owner: OwnerId,
}

/// What the manager knows about owners.
#[derive(Default)]
struct Owners {
    /// Stream ranges recorded by [`SmmuManager::attach`].
    ranges: Vec<Owned>,
    /// Owner names for log lines, as last given to [`SmmuManager::attach`].
    names: Vec<(OwnerId, String)>,
}

impl Owners {
    fn owner_of(&self, smmu: usize, sid: u32) -> Option<OwnerId> {
        self.ranges
            .iter()
            .find(|o| o.smmu == smmu && o.range.contains(sid))
            .map(|o| o.owner)
    }

    fn name(&self, owner: OwnerId) -> Option<&str> {
        self.names
            .iter()
            .find(|(o, _)| *o == owner)
            .map(|(_, n)| n.as_str())
    }
}

/// The SMMUv3 instances of a machine: drivers over registers `R`, DMA
/// memory `D` and cache operations `C` (see [`super::hw::HwSmmuManager`]
/// for the hardware's), and who owns which streams.
///
/// Instances are numbered from 0 in probe order, counting only those in
/// use ([`SmmuManager::count`]).
pub struct SmmuManager<R, D, C> {
    /// Every SMMU the probe read, in use or not.
    probed: Vec<Probed>,
    instances: Vec<Instance<R, D, C>>,
    /// Each instance's phandle (index = instance).
    phandles: Vec<Option<u32>>,
    owners: Mutex<Owners>,
    sink: Once<&'static dyn FaultSink>,
}

impl<R, D, C> SmmuManager<R, D, C> {
    /// A manager without SMMUs (no instance, nothing owned).
    pub const fn empty() -> Self {
        SmmuManager {
            probed: Vec::new(),
            instances: Vec::new(),
            phandles: Vec::new(),
            owners: Mutex::new(Owners {
                ranges: Vec::new(),
                names: Vec::new(),
            }),
            sink: Once::new(),
        }
    }

    /// Number of SMMU instances in use.
    pub fn count(&self) -> usize {
        self.instances.len()
    }

    /// Every SMMU the probe read (in use or refused), with its features.
    pub fn probed(&self) -> &[Probed] {
        &self.probed
    }

    /// The features of the SMMU at `base` as its ID registers read at
    /// probe, if the probe read them.
    pub fn features_at(&self, base: u64) -> Option<&Features> {
        self.probed
            .iter()
            .find(|p| p.base == base)
            .map(|p| &p.features)
    }

    /// Each instance's DT phandle (index = instance), for
    /// [`owner_streams`] and [`endpoint_sid`].
    pub fn phandles(&self) -> &[Option<u32>] {
        &self.phandles
    }

    /// The register base of instance `smmu`.
    pub fn base(&self, smmu: usize) -> Option<u64> {
        self.instances.get(smmu).map(|i| i.base)
    }

    /// What instance `smmu` implements.
    pub fn features(&self, smmu: usize) -> Option<&Features> {
        self.instances.get(smmu).map(|i| &i.features)
    }

    /// The largest VMID every instance in use accepts in an STE: 0xffff
    /// when all have IDR0.VMID16 (or there is none), else 0xff.
    pub fn max_vmid(&self) -> u16 {
        if self.instances.iter().all(|i| i.features.vmid16) {
            u16::MAX
        } else {
            0xff
        }
    }

    /// Whether instance `smmu` has range invalidation (IDR3.RIL).
    pub fn has_ril(&self, smmu: usize) -> bool {
        self.features(smmu).is_some_and(|f| f.ril)
    }

    /// Registers the sink that DMA faults on owned streams go to (once;
    /// later calls are ignored).
    pub fn set_fault_sink(&self, sink: &'static dyn FaultSink) {
        self.sink.call_once(|| sink);
    }

    /// The streams `owner` holds on instance `smmu`, in the order they
    /// were recorded.
    pub fn owned_streams(&self, owner: OwnerId, smmu: usize) -> Vec<SidRange> {
        self.owners
            .lock()
            .ranges
            .iter()
            .filter(|o| o.owner == owner && o.smmu == smmu)
            .map(|o| o.range)
            .collect()
    }

    /// The owner of stream `sid` of instance `smmu`, if any.
    pub fn owner_of(&self, smmu: usize, sid: u32) -> Option<OwnerId> {
        self.owners.lock().owner_of(smmu, sid)
    }

    fn instance(&self, smmu: usize) -> Result<&Instance<R, D, C>, ManagerError> {
        self.instances
            .get(smmu)
            .ok_or(ManagerError::NoSuchSmmu(smmu))
    }
}
