//! Host tests of the virtio-iommu model over [`FakeBackend`]: one file per
//! area, shared helpers and the invariant check here.

mod attach;
mod batch;
mod errors;
mod fuzz;
mod idmap;
mod intervals;
mod map;
mod probe;
mod unmap;
mod wire;

use super::backend::ResvRegion;
use super::fake::{FakeBackend, MemKind, Region};
use super::model::{Viommu, ViommuConfig};
use super::wire::Status;
use super::wire::probe::ResvSubtype;
use super::wire::request::{Attach, Detach, Map, MapFlags, Request, Unmap};
use alloc::collections::BTreeSet;

/// Plain endpoints the guest owns.
pub const EP_A: u32 = 0x10;
pub const EP_B: u32 = 0x11;
/// An endpoint with an MSI doorbell and a reserved window.
pub const EP_MSI: u32 = 0x20;
/// An endpoint the guest does not own.
pub const EP_FOREIGN: u32 = 0x99;

/// Guest RAM: two IPA-adjacent 16 MiB regions on non-adjacent host memory.
pub const RAM0: u64 = 0x4000_0000;
pub const RAM1: u64 = 0x4100_0000;
pub const RAM_LEN: u64 = 0x100_0000;
pub const HOST0: u64 = 0x8_0000_0000;
pub const HOST1: u64 = 0x9_0000_0000;
/// The guest's own device registers (64 KiB, identity backed).
pub const DEV_MMIO: u64 = 0x0900_0000;
pub const DEV_LEN: u64 = 0x1_0000;
/// Reserved regions of `EP_MSI`.
pub const MSI_START: u64 = 0x0800_0000;
pub const MSI_END: u64 = 0x080f_ffff;
pub const RESV_START: u64 = 0xfee0_0000;
pub const RESV_END: u64 = 0xfeef_ffff;

pub const PAGE: u64 = 0x1000;
pub const RW: MapFlags = MapFlags(MapFlags::READ | MapFlags::WRITE);

/// The fake with the guest above.
pub fn fake() -> FakeBackend {
    let mut f = FakeBackend {
        endpoints: [EP_A, EP_B, EP_MSI].into_iter().collect(),
        regions: alloc::vec![
            Region {
                gpa: DEV_MMIO,
                len: DEV_LEN,
                host: DEV_MMIO,
                kind: MemKind::Mmio
            },
            Region {
                gpa: RAM0,
                len: RAM_LEN,
                host: HOST0,
                kind: MemKind::Ram
            },
            Region {
                gpa: RAM1,
                len: RAM_LEN,
                host: HOST1,
                kind: MemKind::Ram
            },
        ],
        ..FakeBackend::default()
    };
    f.resv.insert(
        EP_MSI,
        alloc::vec![
            ResvRegion {
                start: MSI_START,
                end: MSI_END,
                kind: ResvSubtype::Msi
            },
            ResvRegion {
                start: RESV_START,
                end: RESV_END,
                kind: ResvSubtype::Reserved
            },
        ],
    );
    f
}

/// A device with the default configuration over [`fake`].
pub fn device() -> Viommu<FakeBackend> {
    device_with(ViommuConfig::default())
}

/// A device with `cfg` over [`fake`].
pub fn device_with(cfg: ViommuConfig) -> Viommu<FakeBackend> {
    Viommu::new(fake(), cfg).expect("valid config")
}

/// Sends one request as its own batch (4-byte writable part) and returns
/// its status, checking the invariants afterwards.
pub fn send(v: &mut Viommu<FakeBackend>, req: Request) -> Status {
    let out = v.process_batch([(req.encode(), 4)]);
    check_invariants(v);
    let c = out.completions.first().expect("one completion");
    assert_eq!(c.response.used_len(), 4);
    c.response.status().expect("a status")
}

pub fn attach(domain: u32, endpoint: u32) -> Request {
    Request::Attach(Attach {
        domain,
        endpoint,
        flags: 0,
        reserved: [0; 4],
    })
}

pub fn attach_bypass(domain: u32, endpoint: u32) -> Request {
    Request::Attach(Attach {
        domain,
        endpoint,
        flags: 1,
        reserved: [0; 4],
    })
}

pub fn detach(domain: u32, endpoint: u32) -> Request {
    Request::Detach(Detach {
        domain,
        endpoint,
        reserved: [0; 8],
    })
}

pub fn map(domain: u32, start: u64, end: u64, phys: u64, flags: MapFlags) -> Request {
    Request::Map(Map {
        domain,
        virt_start: start,
        virt_end: end,
        phys_start: phys,
        flags,
    })
}

pub fn unmap(domain: u32, start: u64, end: u64) -> Request {
    Request::Unmap(Unmap {
        domain,
        virt_start: start,
        virt_end: end,
        reserved: [0; 4],
    })
}

/// The model and the fake agree, and every backend mapping stays inside
/// guest memory of its type:
/// - same domains, same bypass kinds, same endpoint bindings;
/// - each model mapping is exactly covered, in order, by backend chunks
///   whose host addresses are the guest's stage 2 of the mapping's
///   guest-physical addresses, with the mapping's permissions;
/// - every chunk lies in one guest region, MMIO only with the flag.
pub fn check_invariants(v: &Viommu<FakeBackend>) {
    let fake = v.backend();
    let ids: alloc::vec::Vec<u32> = v.domain_ids().collect();
    let fake_ids: alloc::vec::Vec<u32> = fake.domains.keys().copied().collect();
    assert_eq!(ids, fake_ids, "domain sets differ");
    let mut mappings = 0;
    for &id in &ids {
        let fd = &fake.domains[&id];
        assert_eq!(v.domain_is_bypass(id), Some(fd.bypass));
        let eps: BTreeSet<u32> = v.domain_endpoints(id).collect();
        assert!(!eps.is_empty(), "domain {id} exists without endpoints");
        for ep in &eps {
            assert_eq!(fake.bound.get(ep), Some(&id), "endpoint {ep:#x} binding");
            assert_eq!(v.domain_of(*ep), Some(id));
        }
        let mut chunks = fd.chunks.iter();
        for m in v.mappings(id) {
            mappings += 1;
            let mut at = u128::from(m.start);
            while at <= u128::from(m.end) {
                let (&iova, c) = chunks.next().expect("mapping without chunk");
                assert_eq!(u128::from(iova), at, "chunk start");
                let gpa = m.phys + (iova - m.start);
                assert_eq!(fake.host_of(gpa), Some(c.pa), "chunk host address");
                assert_eq!(c.attrs.read(), m.flags.read());
                assert_eq!(c.attrs.write(), m.flags.write());
                assert_eq!(c.attrs.mmio(), m.flags.mmio());
                at += u128::from(c.len);
            }
            assert_eq!(at, u128::from(m.end) + 1, "chunks overrun the mapping");
        }
        assert!(chunks.next().is_none(), "backend chunk without mapping");
    }
    for (ep, d) in &fake.bound {
        assert_eq!(
            v.domain_of(*ep),
            Some(*d),
            "backend binding unknown to the model"
        );
    }
    for d in fake.domains.values() {
        for c in d.chunks.values() {
            assert!(
                fake.owns_host(c.pa, c.len, c.attrs.mmio()),
                "chunk outside guest memory: {c:?}"
            );
        }
    }
    assert_eq!(v.mapping_count(), mappings);
}
