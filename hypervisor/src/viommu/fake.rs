//! A host fake of [`IommuBackend`] for the tests: it records every call,
//! keeps one table of host-physical chunks per domain, owns a small guest
//! memory map, can be told to fail, and asserts its side of the contract
//! (the model never maps over a chunk, unmaps part of one, or destroys a
//! domain an endpoint is still bound to).

use super::backend::{BackendError, IommuBackend, MapAttrs, Refusal, ResvRegion};
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

/// Memory type of a guest region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemKind {
    /// RAM (mapped without the MMIO flag).
    Ram,
    /// The guest's own device registers (mapped only with the MMIO flag).
    Mmio,
}

/// A guest-physical region and its host-physical backing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Guest-physical start.
    pub gpa: u64,
    /// Size in bytes.
    pub len: u64,
    /// Host-physical start.
    pub host: u64,
    /// Memory type.
    pub kind: MemKind,
}

/// A backend call, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `domain_create(domain, bypass)`.
    Create(u32, bool),
    /// `domain_destroy(domain)`.
    Destroy(u32),
    /// `attach(ep, domain)`.
    Attach(u32, u32),
    /// `detach(ep)`.
    Detach(u32),
    /// `set_global_bypass(on)`.
    GlobalBypass(bool),
    /// `map(domain, iova, pa, len, attrs)`.
    Map(u32, u64, u64, u64, MapAttrs),
    /// `unmap(domain, iova, len)`.
    Unmap(u32, u64, u64),
    /// `sync()`.
    Sync,
}

/// One backend mapping: host-physical start, length, attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Host-physical start.
    pub pa: u64,
    /// Length in bytes.
    pub len: u64,
    /// Attributes.
    pub attrs: MapAttrs,
}

/// A domain's table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeDomain {
    /// Identity domain.
    pub bypass: bool,
    /// Chunks by IOVA.
    pub chunks: BTreeMap<u64, Chunk>,
}

/// The fake.
#[derive(Debug, Clone, Default)]
pub struct FakeBackend {
    /// Endpoint IDs the guest owns.
    pub endpoints: BTreeSet<u32>,
    /// Guest memory map, sorted by `gpa`, non-overlapping.
    pub regions: Vec<Region>,
    /// Reserved regions by endpoint.
    pub resv: BTreeMap<u32, Vec<ResvRegion>>,
    /// Domain tables.
    pub domains: BTreeMap<u32, FakeDomain>,
    /// Endpoint -> domain bindings.
    pub bound: BTreeMap<u32, u32>,
    /// Global bypass.
    pub global_bypass: bool,
    /// Every call.
    pub calls: Vec<Call>,
    /// Make the next `domain_create` fail.
    pub fail_create: Option<BackendError>,
    /// Make the `map` call after `map_ok_before` more successes fail.
    pub fail_map: Option<BackendError>,
    /// Successful maps still allowed before `fail_map` strikes.
    pub map_ok_before: usize,
    /// Make the next `unmap` fail.
    pub fail_unmap: Option<BackendError>,
    /// Make the next `sync` fail.
    pub fail_sync: Option<BackendError>,
    /// Make the next `attach` fail (the endpoint ends unbound, as the
    /// real backend leaves its stream aborting).
    pub fail_attach: Option<BackendError>,
    /// Make the next `detach` fail (the endpoint ends unbound all the
    /// same).
    pub fail_detach: Option<BackendError>,
    /// Make the next `set_global_bypass` fail (global bypass ends off).
    pub fail_bypass: Option<BackendError>,
}

impl FakeBackend {
    /// Host address of `gpa`, if the guest owns it.
    pub fn host_of(&self, gpa: u64) -> Option<u64> {
        let r = self.region_at(gpa)?;
        Some(r.host + (gpa - r.gpa))
    }

    /// Whether `[pa, pa+len)` lies in the host backing of one guest region
    /// of the given type.
    pub fn owns_host(&self, pa: u64, len: u64, mmio: bool) -> bool {
        self.regions.iter().any(|r| {
            (r.kind == MemKind::Mmio) == mmio
                && pa >= r.host
                && u128::from(pa) + u128::from(len) <= u128::from(r.host) + u128::from(r.len)
        })
    }

    /// Calls of one kind, counted.
    pub fn count(&self, pred: impl Fn(&Call) -> bool) -> usize {
        self.calls.iter().filter(|c| pred(c)).count()
    }

    fn region_at(&self, gpa: u64) -> Option<&Region> {
        self.regions
            .iter()
            .find(|r| gpa >= r.gpa && u128::from(gpa) < u128::from(r.gpa) + u128::from(r.len))
    }
}

impl IommuBackend for FakeBackend {
    /// The domain's ID: the fake looks its table up in
    /// [`FakeBackend::domains`] on every call, so that a model handing it
    /// the wrong domain's state fails its assertions.
    type Domain = u32;

    fn endpoint_known(&self, ep: u32) -> bool {
        self.endpoints.contains(&ep)
    }

    fn translate(&mut self, gpa: u64, len: u64, mmio: bool) -> Result<u64, Refusal> {
        let end = u128::from(gpa) + u128::from(len);
        let first = self.region_at(gpa).ok_or(Refusal::NotOwned)?;
        let pa = first.host + (gpa - first.gpa);
        // Walk the regions covering [gpa, end): owned, one type, and the
        // length of the host-contiguous run from gpa.
        let (mut at, mut host_next, mut run, mut contiguous) =
            (u128::from(gpa), u128::from(pa), 0u128, true);
        let mut kind_ok = true;
        while at < end {
            let r = u64::try_from(at)
                .ok()
                .and_then(|a| self.region_at(a))
                .ok_or(Refusal::NotOwned)?;
            kind_ok &= (r.kind == MemKind::Mmio) == mmio;
            let host_at = u128::from(r.host) + (at - u128::from(r.gpa));
            let r_end = (u128::from(r.gpa) + u128::from(r.len)).min(end);
            if contiguous && host_at == host_next {
                run += r_end - at;
                host_next = host_at + (r_end - at);
            } else {
                contiguous = false;
            }
            at = r_end;
        }
        if !kind_ok {
            return Err(Refusal::MemoryType);
        }
        if run < u128::from(len) {
            return Err(Refusal::Discontiguous { run: run as u64 });
        }
        Ok(pa)
    }

    fn domain_create(&mut self, domain: u32, bypass: bool) -> Result<u32, BackendError> {
        self.calls.push(Call::Create(domain, bypass));
        if let Some(e) = self.fail_create.take() {
            return Err(e);
        }
        let fresh = FakeDomain {
            bypass,
            chunks: BTreeMap::new(),
        };
        assert!(
            self.domains.insert(domain, fresh).is_none(),
            "domain {domain} created twice"
        );
        Ok(domain)
    }

    fn domain_destroy(&mut self, domain: u32) {
        self.calls.push(Call::Destroy(domain));
        assert!(
            !self.bound.values().any(|&d| d == domain),
            "domain {domain} destroyed while bound"
        );
        assert!(
            self.domains.remove(&domain).is_some(),
            "no domain {domain} to destroy"
        );
    }

    fn attach(&mut self, ep: u32, domain: &u32) -> Result<(), BackendError> {
        let domain = *domain;
        self.calls.push(Call::Attach(ep, domain));
        assert!(
            self.domains.contains_key(&domain),
            "attach to missing domain {domain}"
        );
        if let Some(e) = self.fail_attach.take() {
            self.bound.remove(&ep);
            return Err(e);
        }
        self.bound.insert(ep, domain);
        Ok(())
    }

    fn detach(&mut self, ep: u32) -> Result<(), BackendError> {
        self.calls.push(Call::Detach(ep));
        self.bound.remove(&ep);
        match self.fail_detach.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn set_global_bypass(&mut self, on: bool) -> Result<(), BackendError> {
        self.calls.push(Call::GlobalBypass(on));
        if let Some(e) = self.fail_bypass.take() {
            self.global_bypass = false;
            return Err(e);
        }
        self.global_bypass = on;
        Ok(())
    }

    fn map(
        &mut self,
        domain: &mut u32,
        iova: u64,
        pa: u64,
        len: u64,
        attrs: MapAttrs,
    ) -> Result<(), BackendError> {
        let domain = *domain;
        self.calls.push(Call::Map(domain, iova, pa, len, attrs));
        if self.fail_map.is_some() {
            if self.map_ok_before == 0 {
                return Err(self.fail_map.take().unwrap_or(BackendError::Hardware));
            }
            self.map_ok_before -= 1;
        }
        let d = self
            .domains
            .get_mut(&domain)
            .expect("map into a missing domain");
        assert!(!d.bypass, "map into bypass domain {domain}");
        assert!(
            len > 0 && iova.checked_add(len - 1).is_some(),
            "bad map length"
        );
        let last = iova + (len - 1);
        let clash = d
            .chunks
            .range(..=last)
            .next_back()
            .is_some_and(|(&s, c)| s + (c.len - 1) >= iova);
        assert!(!clash, "map over an existing chunk at {iova:#x}");
        d.chunks.insert(iova, Chunk { pa, len, attrs });
        Ok(())
    }

    fn unmap(&mut self, domain: &mut u32, iova: u64, len: u64) -> Result<(), BackendError> {
        let domain = *domain;
        self.calls.push(Call::Unmap(domain, iova, len));
        if let Some(e) = self.fail_unmap.take() {
            return Err(e);
        }
        let d = self
            .domains
            .get_mut(&domain)
            .expect("unmap in a missing domain");
        let last = iova + (len - 1);
        if let Some((&s, c)) = d.chunks.range(..iova).next_back() {
            assert!(s + (c.len - 1) < iova, "unmap splits the chunk at {s:#x}");
        }
        let inside: Vec<u64> = d.chunks.range(iova..=last).map(|(&s, _)| s).collect();
        for s in inside {
            let c = d.chunks.remove(&s).unwrap_or(Chunk {
                pa: 0,
                len: 1,
                attrs: MapAttrs::default(),
            });
            assert!(s + (c.len - 1) <= last, "unmap splits the chunk at {s:#x}");
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), BackendError> {
        self.calls.push(Call::Sync);
        match self.fail_sync.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn resv_regions(&self, ep: u32) -> Vec<ResvRegion> {
        self.resv.get(&ep).cloned().unwrap_or_default()
    }
}
