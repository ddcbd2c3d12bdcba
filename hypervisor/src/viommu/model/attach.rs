//! ATTACH and DETACH.
//!
//! ATTACH behaves as DETACH followed by ATTACH (spec; Linux re-attaches
//! without DETACH and counts on it): when the endpoint was the last one of
//! its old domain, that domain ceases to exist with its mappings, even
//! when it is the domain named again, so Linux's replay of its mappings
//! on the first attach finds an empty domain. Every check comes before any
//! change, so a refused ATTACH leaves the endpoint where it was.
//!
//! Backend order: a new domain is created before the endpoint is rebound
//! to it, and an old domain is destroyed only after its last endpoint was
//! rebound or detached.
//!
//! Fail closed: when the backend cannot bind or detach the endpoint, it
//! leaves the endpoint's stream aborting (or keeps every table the stream
//! may still reach, see [`crate::viommu::backend`]); the model then takes
//! the endpoint out of its domain, destroys the domains left empty (the
//! one created for this request included) and answers with the error's
//! status (DEVERR for the hardware, NOMEM for memory or VMIDs).

use super::{Domain, Viommu, backend_status};
use crate::viommu::backend::{BackendError, IommuBackend};
use crate::viommu::wire::Status;
use crate::viommu::wire::request::{ATTACH_F_BYPASS, ATTACH_F_MASK, Attach, Detach};

impl<B: IommuBackend> Viommu<B> {
    /// ATTACH: reserved bytes or unknown flags -> INVAL; unknown endpoint
    /// -> NOENT; domain outside `domain_range` -> RANGE; an existing
    /// domain (one that survives the implicit detach) of the other bypass
    /// kind -> INVAL, or with a mapping over a reserved region of the
    /// endpoint -> UNSUPP (incompatible properties); a new domain beyond
    /// the guest's domain budget, or the backend out of memory or VMIDs
    /// -> NOMEM (nothing changes); the backend failing to bind -> its
    /// status, the endpoint left unattached (fail closed).
    pub(super) fn attach(&mut self, req: &Attach) -> Status {
        if req.reserved != [0; 4] || req.flags & !ATTACH_F_MASK != 0 {
            return Status::Inval;
        }
        let (ep, id) = (req.endpoint, req.domain);
        if !self.backend.endpoint_known(ep) {
            return Status::Noent;
        }
        if !self.domain_in_range(id) {
            return Status::Range;
        }
        let bypass = req.flags & ATTACH_F_BYPASS != 0;
        let survivor = self
            .domains
            .get(id)
            .filter(|d| d.endpoints.iter().any(|&other| other != ep));
        if let Some(domain) = survivor {
            if domain.bypass != bypass {
                return Status::Inval;
            }
            let resv = self.backend.resv_regions(ep);
            if !bypass && resv.iter().any(|r| domain.overlaps(r.start, r.end)) {
                return Status::Unsupp;
            }
        }
        let survives = survivor.is_some();

        // Sole endpoint of the named domain: that domain goes first.
        if self.domain_of(ep) == Some(id) && !survives {
            let detached = self.backend.detach(ep);
            self.leave(ep);
            if let Err(e) = detached {
                return backend_status(e);
            }
        }
        if !self.domains.contains_key(id) {
            match self.backend.domain_create(id, bypass) {
                Ok(hw) => {
                    self.domains.insert(id, Domain::new(bypass, hw));
                }
                Err(e) => return backend_status(e),
            }
        }
        let bound = match self.domains.get(id) {
            Some(domain) => self.backend.attach(ep, &domain.hw),
            // Created or found above: never here (as a backend refusing
            // a missing domain: fail closed).
            None => Err(BackendError::Hardware),
        };
        if let Err(e) = bound {
            // The stream aborts (or its tables are kept): ep is unattached.
            self.leave(ep);
            self.destroy_if_empty(id);
            return backend_status(e);
        }
        if self.domain_of(ep) != Some(id) {
            self.leave(ep);
        }
        if let Some(domain) = self.domains.get_mut(id) {
            domain.endpoints.insert(ep);
            domain.refresh_resv(&self.backend);
        }
        self.attached.insert(ep, id);
        Status::Ok
    }

    /// DETACH (reserved bytes ignored, as the spec requires): unknown
    /// endpoint -> NOENT; domain outside `domain_range` -> RANGE; endpoint
    /// not attached to that domain (or no such domain) -> INVAL; the
    /// backend failing -> its status, the endpoint detached all the same
    /// (fail closed).
    pub(super) fn detach(&mut self, req: &Detach) -> Status {
        let (ep, id) = (req.endpoint, req.domain);
        if !self.backend.endpoint_known(ep) {
            return Status::Noent;
        }
        if !self.domain_in_range(id) {
            return Status::Range;
        }
        if self.domain_of(ep) != Some(id) {
            return Status::Inval;
        }
        let result = self.backend.detach(ep);
        self.leave(ep);
        match result {
            Ok(()) => Status::Ok,
            Err(e) => backend_status(e),
        }
    }

    /// Destroys domain `id` if no endpoint is attached to it (one created
    /// for an ATTACH that then failed).
    fn destroy_if_empty(&mut self, id: u32) {
        if self.domains.get(id).is_some_and(|d| d.endpoints.is_empty())
            && let Some(gone) = self.domains.remove(id)
        {
            self.mapping_count = self.mapping_count.saturating_sub(gone.mappings.len());
            self.backend.domain_destroy(gone.hw);
        }
    }

    /// Takes `ep` out of its domain in the model; a domain left without
    /// endpoints is destroyed in the backend with all its mappings. The
    /// caller has already rebound or detached `ep` in the backend.
    fn leave(&mut self, ep: u32) {
        let Some(id) = self.attached.remove(&ep) else {
            return;
        };
        let Some(domain) = self.domains.get_mut(id) else {
            return;
        };
        domain.endpoints.remove(&ep);
        if !domain.endpoints.is_empty() {
            domain.refresh_resv(&self.backend);
            return;
        }
        if let Some(gone) = self.domains.remove(id) {
            self.mapping_count = self.mapping_count.saturating_sub(gone.mappings.len());
            self.backend.domain_destroy(gone.hw);
        }
    }
}
