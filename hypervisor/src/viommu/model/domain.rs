//! A domain: its endpoints, its mappings (an ordered interval map keyed by
//! first IOVA, never overlapping) and the reserved regions of its
//! endpoints, which MAP requests must stay clear of.

use crate::viommu::backend::{IommuBackend, ResvRegion};
use crate::viommu::wire::request::MapFlags;
use alloc::collections::{BTreeMap, BTreeSet};
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

/// State of one domain.
pub(super) struct Domain {
    /// Identity through the guest's stage 2, never mapped.
    pub bypass: bool,
    /// Attached endpoints (never empty while the domain exists).
    pub endpoints: BTreeSet<u32>,
    /// Mappings by first IOVA.
    pub mappings: BTreeMap<u64, Mapping>,
    /// Reserved regions of all attached endpoints.
    pub resv: Vec<ResvRegion>,
}

impl Domain {
    /// An empty domain.
    pub fn new(bypass: bool) -> Self {
        Self {
            bypass,
            endpoints: BTreeSet::new(),
            mappings: BTreeMap::new(),
            resv: Vec::new(),
        }
    }

    /// Whether a mapping meets `[start, end]`. Mappings do not overlap, so
    /// only the last one starting at or before `end` can.
    pub fn overlaps(&self, start: u64, end: u64) -> bool {
        self.mappings
            .range(..=end)
            .next_back()
            .is_some_and(|(_, m)| m.end >= start)
    }

    /// Whether `[start, end]` meets a reserved region of an endpoint.
    pub fn overlaps_resv(&self, start: u64, end: u64) -> bool {
        self.resv.iter().any(|r| r.overlaps(start, end))
    }

    /// Whether unmapping `[start, end]` would split a mapping: one that
    /// starts before `start` and reaches it, or the last one starting
    /// inside that ends after `end` (those in between lie inside).
    pub fn unmap_splits(&self, start: u64, end: u64) -> bool {
        let before = self
            .mappings
            .range(..start)
            .next_back()
            .is_some_and(|(_, m)| m.end >= start);
        let after = self
            .mappings
            .range(start..=end)
            .next_back()
            .is_some_and(|(_, m)| m.end > end);
        before || after
    }

    /// The first mapping starting inside `[start, end]`.
    pub fn first_in(&self, start: u64, end: u64) -> Option<Mapping> {
        self.mappings.range(start..=end).next().map(|(_, m)| *m)
    }

    /// Recomputes the reserved regions from the attached endpoints.
    pub fn refresh_resv(&mut self, backend: &impl IommuBackend) {
        self.resv.clear();
        for &ep in &self.endpoints {
            self.resv.extend(backend.resv_regions(ep));
        }
    }
}
