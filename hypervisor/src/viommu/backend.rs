//! What the device model needs from the hardware side.
//!
//! In the hypervisor the backend is the SMMU: every domain is a stage-2 IO
//! page table with its own VMID, bound to the stream table entries of the
//! endpoints attached to it. Unattached endpoints abort, or go through the
//! guest's own stage 2 (identity IOVA = guest-physical) while the config
//! field `bypass` is 1; a bypass domain is the guest's stage 2 as well.
//!
//! The model validates every request before it calls the backend, and
//! calls it in an order that never leaves an endpoint bound to a destroyed
//! domain. Writes may be posted: the model calls [`IommuBackend::sync`]
//! once after every request of a notify, and the transport completes those
//! requests only after that.
//!
//! Fail closed: when [`IommuBackend::attach`], [`IommuBackend::detach`] or
//! [`IommuBackend::set_global_bypass`] fails, the backend has already made
//! the affected streams abort (and waited for the SMMU to confirm it), or,
//! when even that failed, remembers which domains those streams may still
//! reach and keeps their tables until a later confirmed change of the
//! streams: [`IommuBackend::domain_destroy`] never frees a table a stream
//! table entry may point at. The model then treats the endpoint as
//! unattached and answers the request with the error's status.

use super::wire::probe::ResvSubtype;
use super::wire::request::MapFlags;
use alloc::vec::Vec;

/// A reserved IOVA region of an endpoint (reported by PROBE; MAP requests
/// overlapping it are refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResvRegion {
    /// First IOVA.
    pub start: u64,
    /// Last IOVA (inclusive).
    pub end: u64,
    /// Reserved, or an MSI doorbell the backend keeps reachable as
    /// identity in every domain of the endpoint.
    pub kind: ResvSubtype,
}

impl ResvRegion {
    /// Whether the region meets `[start, end]`.
    pub fn overlaps(&self, start: u64, end: u64) -> bool {
        self.start <= end && start <= self.end
    }
}

/// Why [`IommuBackend::translate`] refused a guest-physical range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Some of the range is not the guest's RAM nor its own device MMIO.
    /// The model answers RANGE: the range is outside the guest-physical
    /// address space the host gave the guest (the spec asks MAP ranges to
    /// stay "within the guest-physical address space").
    NotOwned,
    /// The range is the guest's, but of the other memory type: RAM asked
    /// with the MMIO flag, or device MMIO without it. The model answers
    /// INVAL (flags inconsistent with the target).
    MemoryType,
    /// The range is the guest's, but its host-physical backing is not
    /// contiguous: only the first `run` bytes (granule aligned, non-zero)
    /// are. The model maps the range in pieces.
    Discontiguous {
        /// Bytes from the start that are host-contiguous.
        run: u64,
    },
    /// Checking the range would take more work than one request may
    /// (see docs/viommu.md, "Budgets and bounds"). The model answers NOMEM.
    TooLarge,
}

/// A guest-physical range proven not to wrap past 2^64: `[start, last]`
/// (inclusive, `start <= last`), so that a backend translating it needs
/// no overflow test of its own (the model has made it: a MAP's physical
/// range wrapping is RANGE before any translation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpaRange {
    start: u64,
    last: u64,
}

impl GpaRange {
    /// `[start, start + len)`; None when `len` is 0 or the range wraps.
    pub fn new(start: u64, len: u64) -> Option<Self> {
        Self::from_last_offset(start, len.checked_sub(1)?)
    }

    /// `[start, start + last_offset]`; None when it wraps.
    #[inline(always)]
    pub fn from_last_offset(start: u64, last_offset: u64) -> Option<Self> {
        Some(Self {
            start,
            last: start.checked_add(last_offset)?,
        })
    }

    /// The first address.
    #[inline(always)]
    pub fn start(self) -> u64 {
        self.start
    }

    /// The last address (inclusive, at least [`GpaRange::start`]).
    #[inline(always)]
    pub fn last(self) -> u64 {
        self.last
    }
}

/// A backend failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendError {
    /// Out of memory for page tables (the model answers NOMEM).
    NoMemory,
    /// Out of another resource, such as VMIDs (the model answers NOMEM).
    NoResources,
    /// The hardware failed: command error, sync timeout (DEVERR, or IOERR
    /// for requests waiting on a failed sync).
    Hardware,
}

impl core::fmt::Display for BackendError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            BackendError::NoMemory => "out of memory for IO page tables",
            BackendError::NoResources => "out of IOMMU resources (such as VMIDs)",
            BackendError::Hardware => "IOMMU hardware failure (command error or sync timeout)",
        })
    }
}

impl core::error::Error for BackendError {}

/// Permissions and memory type of one backend mapping: the bits of a MAP
/// request's flags READ (bit 0), WRITE (bit 1) and MMIO (bit 2), as the
/// wire has them, so that a backend encodes a mapping by one table lookup
/// ([`MapAttrs::index`]) instead of decoding three booleans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MapAttrs(u8);

impl MapAttrs {
    const READ: u8 = 1;
    const WRITE: u8 = 2;
    const MMIO: u8 = 4;

    /// Device reads allowed (`read`), writes allowed (`write`), and the
    /// target device MMIO (`mmio`: Device-nGnRE rather than Normal memory).
    pub const fn new(read: bool, write: bool, mmio: bool) -> Self {
        Self((read as u8 * Self::READ) | (write as u8 * Self::WRITE) | (mmio as u8 * Self::MMIO))
    }

    /// The attributes a MAP request's flags ask for (flags the device does
    /// not know are left out: the model refuses them before).
    #[inline(always)]
    pub const fn from_flags(flags: MapFlags) -> Self {
        // The wire's bits are these bits (virtio-iommu: READ 1 << 0,
        // WRITE 1 << 1, MMIO 1 << 2).
        const _: () = assert!(
            MapFlags::READ == MapAttrs::READ as u32
                && MapFlags::WRITE == MapAttrs::WRITE as u32
                && MapFlags::MMIO == MapAttrs::MMIO as u32
        );
        Self((flags.0 & MapFlags::MASK) as u8)
    }

    /// Device reads are allowed.
    pub const fn read(self) -> bool {
        self.0 & Self::READ != 0
    }

    /// Device writes are allowed.
    pub const fn write(self) -> bool {
        self.0 & Self::WRITE != 0
    }

    /// The target is device MMIO (Device-nGnRE rather than Normal memory).
    pub const fn mmio(self) -> bool {
        self.0 & Self::MMIO != 0
    }

    /// The attributes as a number below [`MapAttrs::COUNT`] (read, write
    /// and MMIO as bits 0, 1 and 2), for a table of encodings.
    #[inline(always)]
    pub const fn index(self) -> usize {
        (self.0 & 7) as usize
    }

    /// How many different attributes there are.
    pub const COUNT: usize = 8;

    /// The attributes of [`MapAttrs::index`] `i` (below [`MapAttrs::COUNT`]).
    pub const fn from_index(i: usize) -> Self {
        Self((i & 7) as u8)
    }
}

/// The hardware side of one guest's virtio-iommu.
pub trait IommuBackend {
    /// Whether `ep` is an endpoint ID of a device this guest owns.
    fn endpoint_known(&self, ep: u32) -> bool;

    /// Host-physical address of the guest-physical range `[gpa, gpa+len)`
    /// through the guest's stage 2. RAM is allowed without `mmio`, the
    /// guest's own device MMIO only with it; anything else is refused.
    /// Succeeds only when the whole range is host-contiguous.
    /// Work done here counts against the notify's allowance (hence
    /// `&mut`): a refusal with [`Refusal::TooLarge`] when it is spent.
    fn translate(&mut self, gpa: u64, len: u64, mmio: bool) -> Result<u64, Refusal>;

    /// [`IommuBackend::translate`] of a range whose end is known not to
    /// wrap (the same answers; a backend may skip its own test of it).
    fn translate_range(&mut self, range: GpaRange, mmio: bool) -> Result<u64, Refusal> {
        match (range.last() - range.start()).checked_add(1) {
            Some(len) => self.translate(range.start(), len, mmio),
            // 2^64 bytes: more than any guest owns.
            None => Err(Refusal::NotOwned),
        }
    }

    /// The backend's state of one domain (its page table, VMID, ...),
    /// returned by [`IommuBackend::domain_create`] and held by the model
    /// with its own state of the domain, so that the model's one lookup of
    /// a request's domain serves the backend too: [`IommuBackend::map`]
    /// and [`IommuBackend::unmap`] take it instead of an ID. Handed back
    /// to [`IommuBackend::domain_destroy`] by value, never dropped while
    /// the backend lives (a backend whose domain state owns memory may
    /// leak it when dropped, never free it under a stream). `Send`: the
    /// device moves between the vCPUs' threads with its backend.
    type Domain: Send;

    /// Creates an empty domain `domain` (`bypass`: identity through the
    /// guest's stage 2, never mapped) and returns its state. Out of the
    /// guest's domain budget or VMIDs: [`BackendError::NoResources`]; out
    /// of memory: [`BackendError::NoMemory`]; on error nothing is created.
    fn domain_create(&mut self, domain: u32, bypass: bool) -> Result<Self::Domain, BackendError>;

    /// Destroys a domain no endpoint is bound to, with all its mappings.
    /// Its TLB entries must be gone before its VMID is used again, and
    /// its tables are kept (out of the model's sight, still counted
    /// against the guest's budget) while a stream whose change was not
    /// confirmed may still reach them.
    fn domain_destroy(&mut self, domain: Self::Domain);

    /// Binds `ep` to an existing `domain`, replacing any earlier binding.
    /// On error `ep` is unattached and its stream aborts (see the module
    /// documentation: fail closed).
    fn attach(&mut self, ep: u32, domain: &Self::Domain) -> Result<(), BackendError>;

    /// Returns `ep` to the unattached state: no translation (a DMA is a
    /// fault reported to the guest, or an abort), or identity through the
    /// guest's stage 2 while global bypass is on. On error `ep` is
    /// unattached all the same, and its stream aborts or is remembered as
    /// possibly reaching its old domain.
    fn detach(&mut self, ep: u32) -> Result<(), BackendError>;

    /// Whether unattached endpoints bypass (config `bypass`). Attached
    /// endpoints are not affected. On error global bypass is off
    /// (unattached endpoints translate nothing).
    fn set_global_bypass(&mut self, on: bool) -> Result<(), BackendError>;

    /// Maps `[iova, iova+len)` of a translating domain to `pa` onwards.
    /// The range is granule aligned and free. On error nothing is mapped.
    fn map(
        &mut self,
        domain: &mut Self::Domain,
        iova: u64,
        pa: u64,
        len: u64,
        attrs: MapAttrs,
    ) -> Result<(), BackendError>;

    /// Clears `[iova, iova+len)`, a range made of whole earlier `map`
    /// calls; invalidation may wait for [`IommuBackend::sync`]. On error
    /// nothing is unmapped.
    fn unmap(&mut self, domain: &mut Self::Domain, iova: u64, len: u64)
    -> Result<(), BackendError>;

    /// Makes every earlier call visible to the hardware (barrier, STE and
    /// TLB invalidation, sync). Called once per notify.
    fn sync(&mut self) -> Result<(), BackendError>;

    /// Reserved regions of `ep` (for instance its MSI doorbell); may be
    /// empty. Must not change while the guest runs.
    fn resv_regions(&self, ep: u32) -> Vec<ResvRegion>;

    /// Counter ticks spent so far in [`map`](Self::map) and
    /// [`unmap`](Self::unmap) (page tables and invalidation planning), for
    /// the request profile; zeros from a backend that does not measure.
    fn table_ticks(&self) -> [u64; 2] {
        [0, 0]
    }
}
