//! MAP and UNMAP.
//!
//! A MAP is checked whole, then translated through the guest's stage 2
//! and written to the backend, in host-contiguous pieces when the guest's
//! memory is backed by several host chunks. If a piece fails, the pieces
//! already written are unmapped again and nothing is recorded. UNMAP works
//! on whole mappings only, one backend call per mapping.

use super::{Mapping, Viommu, backend_status, refusal_status};
use crate::viommu::backend::{GpaRange, IommuBackend, MapAttrs, Refusal};
use crate::viommu::wire::Status;
use crate::viommu::wire::request::{Map, Unmap};

/// Most host-contiguous pieces one MAP may take (bounds the work a single
/// request costs; a guest has a handful of memory regions).
const MAX_MAP_PIECES: usize = 64;

impl<B: IommuBackend> Viommu<B> {
    /// MAP, checks in this order: unknown flags -> INVAL; domain outside
    /// `domain_range` -> RANGE; no such domain -> NOENT; bypass domain ->
    /// INVAL; `virt_end < virt_start` -> INVAL; `virt_start`, `phys_start`
    /// or `virt_end + 1` off the granule -> RANGE; outside `input_range`
    /// or a physical range wrapping past 2^64 -> RANGE; overlap with a
    /// mapping or a reserved region -> INVAL; mapping limit -> NOMEM;
    /// physical range not the guest's -> RANGE, of the other memory type
    /// -> INVAL; backend out of memory -> NOMEM, hardware -> DEVERR.
    pub(super) fn map(&mut self, req: &Map) -> Status {
        if !req.flags.is_known() {
            return Status::Inval;
        }
        // The one lookup of the domain (the fields used below are
        // disjoint), before its range check: a domain that exists is in
        // range (`Viommu::domains`), so only a miss asks which status.
        let Some(domain) = self.domains.get_mut(req.domain) else {
            return self.missing_domain(req.domain);
        };
        if domain.bypass || req.virt_end < req.virt_start {
            return Status::Inval;
        }
        let (start, end, phys) = (req.virt_start, req.virt_end, req.phys_start);
        let g = self.granule;
        // The granule is a power of two (the lowest bit of page_size_mask).
        let off_granule = g - 1;
        if (start | phys | end.wrapping_add(1)) & off_granule != 0 {
            return Status::Range;
        }
        if start < self.config.input_start || end > self.config.input_end {
            return Status::Range;
        }
        let last = end - start;
        let (Some(len), Some(range)) =
            (last.checked_add(1), GpaRange::from_last_offset(phys, last))
        else {
            return Status::Range;
        };
        let Some(slot) = domain.mappings.free_slot(start, end) else {
            return Status::Inval;
        };
        if domain.overlaps_resv(start, end) {
            return Status::Inval;
        }
        if self.mapping_count >= self.max_mappings || domain.mappings.reserve().is_err() {
            return Status::Nomem;
        }
        let attrs = MapAttrs::from_flags(req.flags);
        let backend = &mut self.backend;
        // The usual MAP: the whole range host-contiguous, one backend call.
        let (done, status) = match backend.translate_range(range, attrs.mmio()) {
            Ok(pa) if pa & off_granule == 0 => {
                match backend.map(&mut domain.hw, start, pa, len, attrs) {
                    Ok(()) => (len, Status::Ok),
                    Err(e) => (0, backend_status(e)),
                }
            }
            Ok(_) => (0, Status::Deverr),
            Err(first) => map_pieces(backend, g, (&mut domain.hw, start), phys, len, attrs, first),
        };
        if status == Status::Ok {
            // The usual outcome, on its own path: the whole range mapped.
            domain.mappings.insert(
                slot,
                Mapping {
                    start,
                    end,
                    phys,
                    flags: req.flags,
                },
            );
            self.mapping_count += 1;
            return Status::Ok;
        }
        if done == 0 || backend.unmap(&mut domain.hw, start, done).is_ok() {
            return status;
        }
        // The pieces could not be taken back: keep them as a mapping of
        // their own so the model still matches the backend.
        let mapping = Mapping {
            start,
            end: start + (done - 1),
            phys,
            flags: req.flags,
        };
        domain.mappings.insert(slot, mapping);
        self.mapping_count += 1;
        Status::Deverr
    }

    /// UNMAP: reserved bytes -> INVAL (allowed by the spec; nothing is
    /// unmapped); domain outside `domain_range` -> RANGE; no such domain
    /// -> NOENT; bypass domain or `virt_end < virt_start` -> INVAL; a
    /// mapping crossing either end of the range -> RANGE, nothing removed;
    /// otherwise every mapping inside goes (holes are fine). A backend
    /// failure stops there: NOMEM or DEVERR, earlier mappings gone.
    pub(super) fn unmap(&mut self, req: &Unmap) -> Status {
        if req.reserved != [0; 4] {
            return Status::Inval;
        }
        // As MAP: a domain found is in range.
        let Some(domain) = self.domains.get_mut(req.domain) else {
            return self.missing_domain(req.domain);
        };
        let (start, end) = (req.virt_start, req.virt_end);
        if domain.bypass || end < start {
            return Status::Inval;
        }
        // The common case: the range is exactly one mapping (drivers unmap
        // what they mapped). Mappings do not overlap, so nothing else can
        // meet the range: one lookup instead of the range queries below.
        if let Some(slot) = domain.mappings.exact(start, end) {
            let Some(len) = (end - start).checked_add(1) else {
                return Status::Deverr;
            };
            if let Err(e) = self.backend.unmap(&mut domain.hw, start, len) {
                return backend_status(e);
            }
            domain.mappings.remove(slot);
            // At least this mapping was counted (`mapping_count` is the
            // mappings of every domain); were it not, wrapping would
            // refuse every later MAP (NOMEM), never allow more.
            self.mapping_count = self.mapping_count.wrapping_sub(1);
            return Status::Ok;
        }
        if domain.mappings.unmap_splits(start, end) {
            return Status::Range;
        }
        while let Some((slot, m)) = domain.mappings.first_in(start, end) {
            let Some(len) = (m.end - m.start).checked_add(1) else {
                return Status::Deverr;
            };
            if let Err(e) = self.backend.unmap(&mut domain.hw, m.start, len) {
                return backend_status(e);
            }
            domain.mappings.remove(slot);
            self.mapping_count = self.mapping_count.saturating_sub(1);
        }
        Status::Ok
    }
}

/// Maps `len` bytes at `gpa` to `iova` of `domain` (the backend's state
/// of it) in host-contiguous
/// pieces, after the translation of the whole range was refused with
/// `first`; returns how many bytes were mapped and the outcome.
#[inline(never)]
fn map_pieces<B: IommuBackend>(
    backend: &mut B,
    granule: u64,
    (domain, iova): (&mut B::Domain, u64),
    gpa: u64,
    len: u64,
    attrs: MapAttrs,
    first: Refusal,
) -> (u64, Status) {
    let mut first = Some(Err(first));
    let mut done = 0;
    for _ in 0..MAX_MAP_PIECES {
        let rest = len - done;
        let at = gpa + done;
        let translated = match first.take() {
            Some(t) => t,
            None => backend.translate(at, rest, attrs.mmio()),
        };
        let (pa, piece) = match translated {
            Ok(pa) => (pa, rest),
            Err(Refusal::Discontiguous { run }) if run > 0 && run < rest && run % granule == 0 => {
                match backend.translate(at, run, attrs.mmio()) {
                    Ok(pa) => (pa, run),
                    Err(r) => return (done, refusal_status(r)),
                }
            }
            Err(r) => return (done, refusal_status(r)),
        };
        if pa % granule != 0 {
            return (done, Status::Deverr);
        }
        if let Err(e) = backend.map(domain, iova + done, pa, piece, attrs) {
            return (done, backend_status(e));
        }
        done += piece;
        if done == len {
            return (done, Status::Ok);
        }
    }
    (done, Status::Deverr)
}
