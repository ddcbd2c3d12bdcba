//! A domain: its endpoints, its mappings (never overlapping, in IOVA
//! order: [`Intervals`]) and the reserved regions of its endpoints, which
//! MAP requests must stay clear of.

use super::intervals::Intervals;
use crate::viommu::backend::{IommuBackend, ResvRegion};
use crate::viommu::wire::request::MapFlags;
use alloc::collections::BTreeSet;
use alloc::vec::Vec;

/// One mapping, as the guest created it with a single MAP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    /// First IOVA.
    pub start: u64,
    /// Last IOVA (inclusive).
    pub end: u64,
    /// Guest-physical address of `start`.
    pub phys: u64,
    /// Flags of the MAP request.
    pub flags: MapFlags,
}

/// State of one domain; `H` is the backend's state of it
/// ([`IommuBackend::Domain`]), held here so that the one lookup of a
/// request's domain serves the model and the backend.
pub(super) struct Domain<H> {
    /// Identity through the guest's stage 2, never mapped.
    pub bypass: bool,
    /// Attached endpoints (never empty while the domain exists).
    pub endpoints: BTreeSet<u32>,
    /// Mappings by first IOVA.
    pub mappings: Intervals,
    /// Reserved regions of all attached endpoints.
    pub resv: Vec<ResvRegion>,
    /// The backend's state of the domain (from
    /// [`IommuBackend::domain_create`], handed back to
    /// [`IommuBackend::domain_destroy`]).
    pub hw: H,
}

impl<H> Domain<H> {
    /// An empty domain over the backend's state `hw`.
    pub fn new(bypass: bool, hw: H) -> Self {
        Self {
            bypass,
            hw,
            endpoints: BTreeSet::new(),
            mappings: Intervals::new(),
            resv: Vec::new(),
        }
    }

    /// Whether a mapping meets `[start, end]`.
    pub fn overlaps(&self, start: u64, end: u64) -> bool {
        self.mappings.overlaps(start, end)
    }

    /// Whether `[start, end]` meets a reserved region of an endpoint.
    pub fn overlaps_resv(&self, start: u64, end: u64) -> bool {
        self.resv.iter().any(|r| r.overlaps(start, end))
    }

    /// Recomputes the reserved regions from the attached endpoints.
    pub fn refresh_resv(&mut self, backend: &impl IommuBackend) {
        self.resv.clear();
        for &ep in &self.endpoints {
            self.resv.extend(backend.resv_regions(ep));
        }
    }
}
