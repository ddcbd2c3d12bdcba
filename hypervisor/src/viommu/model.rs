//! [`Viommu`]: the virtio-iommu device state and its request handling.
//!
//! The transport hands the model the device-readable bytes of each request
//! and the size of its device-writable part; the model answers with the
//! bytes to write there ([`Response::Written`], exactly that long, status
//! in the last four bytes) or with [`Response::Nothing`] (write nothing,
//! used length 0). After the last request of a notify the transport calls
//! [`Viommu::finish_batch`] (one backend sync) and only then completes the
//! requests; [`Viommu::process_batch`] does both.
//!
//! Buffer rules (spec: a device that cannot find the tail writes nothing):
//! - writable part shorter than the tail, or longer than
//!   [`MAX_RESPONSE_LEN`]: `Nothing` (the driver reads a failure either way,
//!   and the device never allocates what the guest asks for);
//! - unknown type, or PROBE while PROBE is not offered: `Nothing`;
//! - readable part shorter than the head or than its type's layout: IOERR
//!   (the buffers do not match the type: a communication error, not a bad
//!   parameter); extra readable bytes are ignored;
//! - the tail is always the last four writable bytes, the rest zero (for
//!   PROBE the properties come first).

mod attach;
mod domain;
pub(crate) mod intervals;
mod map;
mod probe;

pub use domain::Mapping;

use super::backend::{BackendError, IommuBackend, Refusal};
use super::counters::Counters;
use super::events::EventQueue;
use super::idmap::IdMap;
use super::wire::config::ConfigSpace;
use super::wire::probe::{FAULT_LEN, Fault, FaultReason};
use super::wire::request::{MAP_LEN, Map, ParseError, Request, UNMAP_LEN, Unmap, Words, type_byte};
use super::wire::{Feature, RequestType, Status, TAIL_LEN};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use domain::Domain;

/// Largest PROBE properties buffer the device offers.
pub const MAX_PROBE_SIZE: u32 = 4096;
/// Largest device-writable part the device fills; longer ones get nothing.
pub const MAX_RESPONSE_LEN: usize = MAX_PROBE_SIZE as usize + TAIL_LEN;
/// Default `page_size_mask`: 4 KiB granule, 2 MiB and 1 GiB blocks.
pub const DEFAULT_PAGE_SIZE_MASK: u64 = 0x4020_1000;
/// Default bound on the mappings of one device (all domains).
pub const DEFAULT_MAX_MAPPINGS: usize = 1 << 16;

/// Parameters of one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViommuConfig {
    /// Page sizes; the lowest set bit is the granule.
    pub page_size_mask: u64,
    /// First IOVA the device translates.
    pub input_start: u64,
    /// Last IOVA the device translates (inclusive).
    pub input_end: u64,
    /// First valid domain ID (Linux uses it for its identity domain when
    /// BYPASS_CONFIG is negotiated).
    pub domain_start: u32,
    /// Last valid domain ID (inclusive).
    pub domain_end: u32,
    /// PROBE buffer size; 0 leaves PROBE out of the features.
    pub probe_size: u32,
    /// Initial config `bypass` (kept across device resets).
    pub bypass: bool,
    /// Most mappings the device keeps; more MAPs get NOMEM.
    pub max_mappings: usize,
}

impl Default for ViommuConfig {
    /// 4K|2M|1G pages, the full 64-bit input range, domains 1..=1023 (0
    /// stays invalid, so a zeroed request never names a domain), 512-byte
    /// PROBE buffers, bypass off.
    fn default() -> Self {
        Self {
            page_size_mask: DEFAULT_PAGE_SIZE_MASK,
            input_start: 0,
            input_end: u64::MAX,
            domain_start: 1,
            domain_end: 1023,
            probe_size: 512,
            bypass: false,
            max_mappings: DEFAULT_MAX_MAPPINGS,
        }
    }
}

/// Why a [`ViommuConfig`] was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// `page_size_mask` is 0 (Linux refuses such a device).
    NoPageSize,
    /// `input_start > input_end`.
    EmptyInputRange,
    /// `domain_start > domain_end`.
    EmptyDomainRange,
    /// `probe_size` above [`MAX_PROBE_SIZE`].
    ProbeSizeTooLarge,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConfigError::NoPageSize => f.write_str("page_size_mask is 0 (no page size offered)"),
            ConfigError::EmptyInputRange => {
                f.write_str("empty input range (input_start above input_end)")
            }
            ConfigError::EmptyDomainRange => {
                f.write_str("empty domain range (domain_start above domain_end)")
            }
            ConfigError::ProbeSizeTooLarge => {
                write!(f, "probe_size above the {MAX_PROBE_SIZE}-byte maximum")
            }
        }
    }
}

impl core::error::Error for ConfigError {}

/// What to write into a request's device-writable part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `len` bytes (the writable length): zeros, then `status` in the
    /// tail. Every request but a successful PROBE; nothing is allocated.
    Status {
        /// Bytes to write; at least the tail.
        len: usize,
        /// The status in the first tail byte.
        status: Status,
    },
    /// These bytes (exactly the writable length), status in the tail: a
    /// PROBE's properties.
    Written(Vec<u8>),
    /// Write nothing; used length 0.
    Nothing,
}

impl Response {
    /// A zero-filled response of `len` bytes (at least [`TAIL_LEN`]) ending
    /// with `status`.
    pub(crate) fn with_status(len: usize, status: Status) -> Self {
        Response::Status {
            len: len.max(TAIL_LEN),
            status,
        }
    }

    /// The used length to report.
    pub fn used_len(&self) -> usize {
        match self {
            Response::Status { len, .. } => *len,
            Response::Written(bytes) => bytes.len(),
            Response::Nothing => 0,
        }
    }

    /// The bytes to write, materialised (empty for `Nothing`); the device
    /// writes a [`Response::Status`] without building it.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Response::Status { len, status } => {
                let mut bytes = alloc::vec![0u8; (*len).max(TAIL_LEN)];
                let at = bytes.len() - TAIL_LEN;
                bytes[at] = *status as u8;
                bytes
            }
            Response::Written(bytes) => bytes.clone(),
            Response::Nothing => Vec::new(),
        }
    }

    /// The status in the tail, if anything is written.
    pub fn status(&self) -> Option<Status> {
        match self {
            Response::Status { status, .. } => Some(*status),
            Response::Written(bytes) => {
                let at = bytes.len().checked_sub(TAIL_LEN)?;
                bytes.get(at).copied().and_then(Status::from_u8)
            }
            Response::Nothing => None,
        }
    }

    fn set_status(&mut self, new: Status) {
        match self {
            Response::Status { status, .. } => *status = new,
            Response::Written(bytes) => {
                if let Some(at) = bytes.len().checked_sub(TAIL_LEN)
                    && let Some(tail) = bytes.get_mut(at)
                {
                    *tail = new as u8;
                }
            }
            Response::Nothing => {}
        }
    }
}

/// One handled request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The request's type, when its head named a known one.
    pub kind: Option<RequestType>,
    /// What to write back.
    pub response: Response,
}

/// The outcome of [`Viommu::process_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchResult {
    /// One completion per request, in order.
    pub completions: Vec<Completion>,
    /// The backend sync; on error the device should ask for a reset.
    pub sync: Result<(), BackendError>,
}

/// One guest's virtio-iommu device.
pub struct Viommu<B: IommuBackend> {
    backend: B,
    config: ConfigSpace,
    granule: u64,
    max_mappings: usize,
    /// The domains by ID: only ever IDs inside the config's domain
    /// range (ATTACH creates a domain after its range check, and the range
    /// never changes), which MAP and UNMAP rely on.
    domains: IdMap<Domain<B::Domain>>,
    /// Endpoint -> the domain it is attached to.
    attached: BTreeMap<u32, u32>,
    mapping_count: usize,
    events: EventQueue,
    counters: Counters,
}

impl<B: IommuBackend> Viommu<B> {
    /// A device in reset state over `backend`, which is told the initial
    /// `bypass` (no sync: the guest does not run yet).
    pub fn new(mut backend: B, cfg: ViommuConfig) -> Result<Self, ConfigError> {
        if cfg.page_size_mask == 0 {
            return Err(ConfigError::NoPageSize);
        }
        if cfg.input_start > cfg.input_end {
            return Err(ConfigError::EmptyInputRange);
        }
        if cfg.domain_start > cfg.domain_end {
            return Err(ConfigError::EmptyDomainRange);
        }
        if cfg.probe_size > MAX_PROBE_SIZE {
            return Err(ConfigError::ProbeSizeTooLarge);
        }
        // The guest does not run yet: a failure leaves bypass off (every
        // stream aborting), which the config space then shows.
        let bypass = backend.set_global_bypass(cfg.bypass).is_ok() && cfg.bypass;
        Ok(Self {
            backend,
            config: ConfigSpace {
                page_size_mask: cfg.page_size_mask,
                input_start: cfg.input_start,
                input_end: cfg.input_end,
                domain_start: cfg.domain_start,
                domain_end: cfg.domain_end,
                probe_size: cfg.probe_size,
                bypass,
            },
            granule: 1 << cfg.page_size_mask.trailing_zeros(),
            max_mappings: cfg.max_mappings,
            domains: IdMap::new(),
            attached: BTreeMap::new(),
            mapping_count: 0,
            events: EventQueue::new(),
            counters: Counters::default(),
        })
    }

    /// Feature bits the device offers: VERSION_1, INPUT_RANGE,
    /// DOMAIN_RANGE, MAP_UNMAP, MMIO, BYPASS_CONFIG and, with a non-zero
    /// `probe_size`, PROBE. Never the legacy BYPASS.
    pub fn device_features(&self) -> u64 {
        let mut f = Feature::Version1.mask()
            | Feature::InputRange.mask()
            | Feature::DomainRange.mask()
            | Feature::MapUnmap.mask()
            | Feature::Mmio.mask()
            | Feature::BypassConfig.mask();
        if self.probe_offered() {
            f |= Feature::Probe.mask();
        }
        f
    }

    /// Reads the configuration space (see [`ConfigSpace::read`]).
    pub fn read_config(&self, offset: usize, width: usize) -> u64 {
        self.config.read(offset, width)
    }

    /// Writes the configuration space: a change of `bypass` goes to the
    /// backend and is synced at once; every other write is ignored. If the
    /// backend fails, bypass is off (the config space reads 0); attached
    /// endpoints stay in their domains.
    pub fn set_config(
        &mut self,
        offset: usize,
        width: usize,
        value: u64,
    ) -> Result<(), BackendError> {
        let Some(on) = self.config.write(offset, width, value) else {
            return Ok(());
        };
        if let Err(e) = self.backend.set_global_bypass(on) {
            self.config.bypass = false;
            let _ = self.sync_backend();
            return Err(e);
        }
        self.sync_backend()
    }

    /// Handles one request: `req` is its device-readable part, `resp_len`
    /// the size of its device-writable part. The backend is not synced.
    pub fn handle_request(&mut self, req: &[u8], resp_len: usize) -> Completion {
        let (kind, response) = self.respond(req, resp_len);
        Completion { kind, response }
    }

    /// [`Viommu::handle_request`] of the common shape: a MAP or UNMAP whose
    /// device-writable part is the tail alone (`resp_len` [`TAIL_LEN`],
    /// which the caller has checked), read from the request's first bytes
    /// as words `req` (the request is `len` bytes long; the words past it
    /// are junk no field read takes) as typed fields, and
    /// answered with a status. `None` when the request is not that shape:
    /// nothing done and nothing counted, the general entry answers it.
    ///
    /// The same checks and results as the general entry: the response
    /// length is in range ([`TAIL_LEN`]); the type is MAP or UNMAP and the
    /// request at least its layout's length (any other type, or a shorter
    /// request, takes the general entry: nothing written or IOERR); the
    /// fields are those `Request::parse` reads, the reserved ones too;
    /// counted once, as `decided` counts.
    #[inline(always)]
    pub fn respond_tail(&mut self, req: Words, len: usize) -> Option<(RequestType, Status)> {
        // Counted in each arm, where its counter's row is a constant.
        match type_byte(&req) {
            RequestType::MAP if len >= MAP_LEN => {
                let status = self.map(&Map::from_words(&req));
                self.counters.record(Some(RequestType::Map), Some(status));
                Some((RequestType::Map, status))
            }
            RequestType::UNMAP if len >= UNMAP_LEN => {
                let status = self.unmap(&Unmap::from_words(&req));
                self.counters.record(Some(RequestType::Unmap), Some(status));
                Some((RequestType::Unmap, status))
            }
            _ => None,
        }
    }

    /// Ends a batch: one backend sync for every request handled since the
    /// last one. If it fails, the hardware may still use what ATTACH,
    /// DETACH and UNMAP took away, so their successes in `batch` turn into
    /// IOERR (the model keeps the new state: the tables hold it). MAP and
    /// PROBE keep their status: a failed sync cannot widen their access.
    pub fn finish_batch(&mut self, batch: &mut [Completion]) -> Result<(), BackendError> {
        let result = self.sync_batch();
        if result.is_err() {
            for c in batch.iter_mut() {
                if let Some(kind) = c.kind
                    && kind.revocable()
                    && c.response.status() == Some(Status::Ok)
                {
                    c.response.set_status(Status::Ioerr);
                    self.revoke(kind);
                }
            }
        }
        result
    }

    /// [`Viommu::finish_batch`] for a caller that keeps its own record of
    /// the batch's revocable successes (the device: where each status was
    /// written, and its kind): the batch's one backend sync. If it fails,
    /// the caller turns each success of a [`RequestType::revocable`] kind
    /// into IOERR and calls [`Viommu::revoke`] once for each.
    #[inline]
    pub fn sync_batch(&mut self) -> Result<(), BackendError> {
        self.sync_backend()
    }

    /// After a failed [`Viommu::sync_batch`]: one success of `kind` (a
    /// revocable one) is now IOERR; the counters say so.
    #[cold]
    pub fn revoke(&mut self, kind: RequestType) {
        self.counters.restate(Some(kind), Status::Ok, Status::Ioerr);
    }

    /// Handles every request of one notify (readable bytes, writable
    /// length), then [`Viommu::finish_batch`].
    pub fn process_batch<I, R>(&mut self, requests: I) -> BatchResult
    where
        I: IntoIterator<Item = (R, usize)>,
        R: AsRef<[u8]>,
    {
        let mut completions: Vec<Completion> = requests
            .into_iter()
            .map(|(req, len)| self.handle_request(req.as_ref(), len))
            .collect();
        let sync = self.finish_batch(&mut completions);
        BatchResult { completions, sync }
    }

    /// Device reset: every endpoint detached, every domain destroyed,
    /// pending events dropped; `bypass` and the counters survive. Returns
    /// the first backend error (the reset completes regardless: a stream
    /// the backend could not detach keeps its tables alive there, see
    /// [`IommuBackend::domain_destroy`]).
    pub fn reset(&mut self) -> Result<(), BackendError> {
        let mut result = Ok(());
        for &ep in self.attached.keys() {
            if let Err(e) = self.backend.detach(ep) {
                result = result.and(Err(e));
            }
        }
        for domain in self.domains.drain_values() {
            self.backend.domain_destroy(domain.hw);
        }
        self.attached.clear();
        self.mapping_count = 0;
        self.events.clear();
        self.counters.resets += 1;
        let sync = self.sync_backend();
        result.and(sync)
    }

    /// Queues a fault report for the eventq (dropped, and counted, when
    /// [`super::events::EVENT_QUEUE_DEPTH`] reports already wait).
    pub fn report_fault(
        &mut self,
        ep: u32,
        iova: u64,
        read: bool,
        write: bool,
        reason: FaultReason,
    ) {
        let fault = Fault {
            reason,
            endpoint: ep,
            read,
            write,
            address: Some(iova),
        };
        if self.events.push(fault) {
            self.counters.faults_reported += 1;
        } else {
            self.counters.faults_dropped += 1;
        }
    }

    /// Queues the report of a DMA fault the SMMU saw on endpoint `ep`:
    /// reason DOMAIN when `ep` is attached to no domain (its stream
    /// translates through the empty table of unattached endpoints),
    /// MAPPING when its domain does not map `iova` for the access.
    pub fn report_dma_fault(&mut self, ep: u32, iova: u64, read: bool) {
        let reason = match self.attached.contains_key(&ep) {
            true => FaultReason::Mapping,
            false => FaultReason::Domain,
        };
        self.report_fault(ep, iova, read, !read, reason);
    }

    /// The oldest queued fault report, for an eventq buffer.
    pub fn next_event(&mut self) -> Option<[u8; FAULT_LEN]> {
        self.events.pop()
    }

    /// How many fault reports wait for eventq buffers.
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// Request and event counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The configuration space.
    pub fn config(&self) -> &ConfigSpace {
        &self.config
    }

    /// The mapping granule (lowest page size).
    pub fn granule(&self) -> u64 {
        self.granule
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The backend, mutably (for the hypervisor's own bookkeeping; changing
    /// what the model created behind its back breaks its invariants).
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// The domain `ep` is attached to.
    pub fn domain_of(&self, ep: u32) -> Option<u32> {
        self.attached.get(&ep).copied()
    }

    /// IDs of the existing domains, ascending.
    pub fn domain_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.domains.keys()
    }

    /// Whether domain `id` is a bypass domain (`None`: no such domain).
    pub fn domain_is_bypass(&self, id: u32) -> Option<bool> {
        self.domains.get(id).map(|d| d.bypass)
    }

    /// The backend's state of domain `id` (for checks and reports).
    pub fn backend_domain(&self, id: u32) -> Option<&B::Domain> {
        self.domains.get(id).map(|d| &d.hw)
    }

    /// Endpoints attached to domain `id`, ascending.
    pub fn domain_endpoints(&self, id: u32) -> impl Iterator<Item = u32> + '_ {
        self.domains
            .get(id)
            .into_iter()
            .flat_map(|d| d.endpoints.iter().copied())
    }

    /// Mappings of domain `id`, by IOVA.
    pub fn mappings(&self, id: u32) -> impl Iterator<Item = Mapping> + '_ {
        self.domains
            .get(id)
            .into_iter()
            .flat_map(|d| d.mappings.iter())
    }

    /// Mappings of all domains.
    pub fn mapping_count(&self) -> usize {
        self.mapping_count
    }

    fn probe_offered(&self) -> bool {
        self.config.probe_size != 0
    }

    fn domain_in_range(&self, id: u32) -> bool {
        (self.config.domain_start..=self.config.domain_end).contains(&id)
    }

    /// The status of a MAP or UNMAP naming domain `id`, which does not
    /// exist: RANGE outside `domain_range`, else NOENT. A domain that
    /// exists is always in range (see `domains`), so a MAP or UNMAP looks
    /// its domain up first and asks this only on a miss: the statuses of
    /// the spec's order (range, then existence) with one test less.
    #[cold]
    #[inline(never)]
    fn missing_domain(&self, id: u32) -> Status {
        if self.domain_in_range(id) {
            Status::Noent
        } else {
            Status::Range
        }
    }

    fn sync_backend(&mut self) -> Result<(), BackendError> {
        let result = self.backend.sync();
        if result.is_err() {
            self.counters.sync_failures += 1;
        }
        result
    }

    /// The request's type (`None`: unknown, or no type byte; decoded once,
    /// by the parse, on the way) and the response to it.
    /// Counted (the counters' one record of the request).
    fn respond(&mut self, req: &[u8], resp_len: usize) -> (Option<RequestType>, Response) {
        if !(TAIL_LEN..=MAX_RESPONSE_LEN).contains(&resp_len) {
            return self.counted(first_type(req), Response::Nothing);
        }
        let request = match Request::parse(req) {
            Ok(request) => request,
            Err(e) => {
                let (kind, response) = self.refuse_unparsed(req, e, resp_len);
                return self.counted(kind, response);
            }
        };
        match request {
            Request::Attach(r) => {
                let status = self.attach(&r);
                self.decided(RequestType::Attach, status, resp_len)
            }
            Request::Detach(r) => {
                let status = self.detach(&r);
                self.decided(RequestType::Detach, status, resp_len)
            }
            Request::Map(r) => {
                let status = self.map(&r);
                self.decided(RequestType::Map, status, resp_len)
            }
            Request::Unmap(r) => {
                let status = self.unmap(&r);
                self.decided(RequestType::Unmap, status, resp_len)
            }
            Request::Probe(r) => {
                let response = self.probe(&r, resp_len);
                self.counted(Some(RequestType::Probe), response)
            }
        }
    }

    /// A request of `kind` whose status the model decided: counted as is
    /// (what `Response::status` of its response gives; inlined in each
    /// arm, so its counter's row is a constant there) and answered with
    /// `resp_len`, at least TAIL_LEN (checked by `respond`: the length
    /// `with_status` gives).
    #[inline(always)]
    fn decided(
        &mut self,
        kind: RequestType,
        status: Status,
        resp_len: usize,
    ) -> (Option<RequestType>, Response) {
        self.counters.record(Some(kind), Some(status));
        (
            Some(kind),
            Response::Status {
                len: resp_len,
                status,
            },
        )
    }

    /// Counts `response` to a request of `kind`; returns both.
    fn counted(
        &mut self,
        kind: Option<RequestType>,
        response: Response,
    ) -> (Option<RequestType>, Response) {
        self.counters.record(kind, response.status());
        (kind, response)
    }

    /// [`Viommu::respond`] to a request that did not parse: its type as
    /// the first byte gives it, and nothing (an unknown type, or a PROBE
    /// truncated when PROBE is not offered) or IOERR.
    #[cold]
    #[inline(never)]
    fn refuse_unparsed(
        &self,
        req: &[u8],
        e: ParseError,
        resp_len: usize,
    ) -> (Option<RequestType>, Response) {
        let response = match e {
            ParseError::UnknownType(_) => Response::Nothing,
            ParseError::Truncated(RequestType::Probe) if !self.probe_offered() => Response::Nothing,
            ParseError::NoHead | ParseError::Truncated(_) => {
                Response::with_status(resp_len, Status::Ioerr)
            }
        };
        (first_type(req), response)
    }
}

/// The request type the first byte of `req` names (what a request is
/// counted as, whatever else is wrong with it).
fn first_type(req: &[u8]) -> Option<RequestType> {
    req.first().copied().and_then(RequestType::from_u8)
}

/// The status a backend error turns into.
fn backend_status(e: BackendError) -> Status {
    match e {
        BackendError::NoMemory | BackendError::NoResources => Status::Nomem,
        BackendError::Hardware => Status::Deverr,
    }
}

/// The status a translate refusal turns into.
fn refusal_status(r: Refusal) -> Status {
    match r {
        Refusal::NotOwned => Status::Range,
        Refusal::MemoryType => Status::Inval,
        // Only reached when the backend reported an unusable run.
        Refusal::Discontiguous { .. } => Status::Deverr,
        Refusal::TooLarge => Status::Nomem,
    }
}
