//! A hostile guest against its virtio-iommu's SMMU backend (issue 12,
//! items 1 and 4): IO page tables within the guest's budget, emptied
//! tables freed after the batch's sync, a bounded cost for every MAP and
//! notify whatever its size, and a randomized request sequence through the
//! real model and backend with the invariants checked after every batch.

use super::*;
use crate::mm::budget_tables::BudgetTables;
use crate::mm::budget_tables::POOL_PAGES;
use crate::smmu::cmd::Cmd;
use crate::viommu::backend::{BackendError, IommuBackend, MapAttrs, Refusal};
use crate::viommu::model::{Viommu, ViommuConfig};
use crate::viommu::wire::Status;
use crate::viommu::wire::request::{Attach, Detach, Map, MapFlags, Request, Unmap};
use crate::vm::viommu::backend::{
    IOVA_BITS, MAX_MAP_PTES, MAX_NOTIFY_WORK, MAX_TRANSLATE_WALKS, SmmuBackend,
};

const EP: u32 = 0x08; // 00:01.0
const GIB: u64 = 1 << 30;
const MIB2: u64 = 2 << 20;

const RW: MapAttrs = MapAttrs::new(true, true, false);

fn backend(w: &World, table_pages: usize) -> (Guest, ById) {
    let g = w.guest(0, config("a", &[0], true));
    w.dma.take();
    let b =
        SmmuBackend::with_table_limit(g.ram, g.dma.clone(), w.vmids.reserve(32), 32, table_pages);
    (g, ById::new(b))
}

/// Every leaf of every domain of `b`: (domain, iova, pa, size).
fn leaves(b: &ById) -> Vec<(u32, u64, u64, u64)> {
    leaves_in(b, b.tables())
}

/// Every leaf of the domains' tables `d`, in `mem`.
fn leaves_in(d: &impl DomainTables, mem: &BudgetTables) -> Vec<(u32, u64, u64, u64)> {
    let mut out = Vec::new();
    for (id, t) in d.domain_tables() {
        t.for_each_leaf(mem, |va, pa, size, _| out.push((id, va, pa, size)));
    }
    out
}

/// Table pages linked in the domains' tables.
fn linked(b: &ById) -> usize {
    linked_in(b, b.tables())
}

/// Table pages linked in the domains' tables `d`, in `mem`.
fn linked_in(d: &impl DomainTables, mem: &BudgetTables) -> usize {
    d.domain_tables()
        .into_iter()
        .map(|(_, t)| t.for_each_leaf(mem, |_, _, _, _| {}))
        .sum()
}

#[test]
fn a_map_unmap_loop_at_fresh_iovas_holds_steady_memory() {
    // The attack: 8 192 MAP+UNMAP pairs of 4 KiB at fresh 2 MiB-aligned
    // IOVAs used to leave 32 MiB of emptied tables held.
    let w = World::new();
    let (g, mut b) = backend(&w, 2048);
    b.domain_create(1, false).unwrap();
    b.attach(EP, 1).unwrap();
    let pa = g.ram.to_pa(RAM_BASE).unwrap();
    let start = b.tables().held();
    for i in 0..8192u64 {
        let iova = i * MIB2;
        b.map(1, iova, pa, 0x1000, RW).unwrap();
        b.unmap(1, iova, 0x1000).unwrap();
        b.sync().unwrap();
        assert_eq!(b.tables().retired(), 0, "freed by the sync");
        assert!(b.tables().held() <= start + 2 + POOL_PAGES, "pair {i}");
        // At most the spare (the last emptied L3) and its L2 stay linked.
        assert!(b.tables().linked() <= start + 2, "pair {i}");
        if i % 512 == 1 {
            let calls = w.dma.take();
            // The retired spare's walk caches went with the batch.
            assert!(
                calls.iter().any(|c| matches!(c, DmaCall::Issue(0, cmds)
                    if cmds.contains(&Cmd::tlbi_s12_vmall(64)))),
                "{calls:?}"
            );
        }
    }
    assert!(linked(&b) <= start + 2);
    assert!(b.tables().peak() <= start + 6);
}

#[test]
fn emptied_tables_are_not_freed_before_the_sync() {
    let w = World::new();
    let (g, mut b) = backend(&w, 2048);
    b.domain_create(1, false).unwrap();
    let pa = g.ram.to_pa(RAM_BASE).unwrap();
    let start = b.tables().held();
    b.map(1, 0x20_0000, pa, 0x1000, RW).unwrap();
    b.unmap(1, 0x20_0000, 0x1000).unwrap();
    assert_eq!(
        b.tables().retired(),
        0,
        "the emptied L3 is kept as the spare"
    );
    // A table emptied in another GiB retires the spare and its L2.
    b.map(1, GIB, pa, 0x1000, RW).unwrap();
    b.unmap(1, GIB, 0x1000).unwrap();
    assert_eq!(b.tables().retired(), 2, "L3 and L2, unlinked");
    assert_eq!(b.tables().held(), start + 4, "still held until the sync");
    assert!(w.dma.take().is_empty(), "nothing issued yet");
    b.sync().unwrap();
    assert_eq!(b.tables().retired(), 0);
    assert_eq!(b.tables().linked(), start + 2, "the new spare and its L2");
}

#[test]
fn a_gib_map_at_a_misaligned_iova_is_refused_whole() {
    // The attack: one 40-byte MAP of 1 GiB at IOVA 0x1000 wrote 262 144
    // PTEs into 515 tables.
    let w = World::new();
    let (g, mut b) = backend(&w, 2048);
    b.domain_create(1, false).unwrap();
    let pa = g.ram.to_pa(RAM_BASE).unwrap();
    let start = b.tables().held();
    assert_eq!(
        b.map(1, 0x1000, pa, GIB, RW),
        Err(BackendError::NoResources)
    );
    assert_eq!(b.tables().held(), start, "no table allocated");
    assert!(leaves(&b).is_empty());
    // The largest allowed MAP of pages goes through; one page more does not.
    let most = MAX_MAP_PTES * 0x1000;
    b.map(1, 0x1000, pa, most, RW).unwrap();
    assert_eq!(leaves(&b).len() as u64, MAX_MAP_PTES);
    assert_eq!(
        b.map(1, 8 * GIB + 0x1000, pa, most + 0x1000, RW),
        Err(BackendError::NoResources)
    );
}

#[test]
fn the_maps_of_one_notify_are_bounded() {
    let w = World::new();
    let (g, mut b) = backend(&w, 2048);
    b.domain_create(1, false).unwrap();
    let pa = g.ram.to_pa(RAM_BASE).unwrap();
    let most = MAX_MAP_PTES * 0x1000;
    let per_notify = MAX_NOTIFY_WORK / MAX_MAP_PTES;
    for i in 0..per_notify {
        b.map(1, 0x1000 + i * 2 * most, pa, most, RW).unwrap();
    }
    let next = 0x1000 + per_notify * 2 * most;
    assert_eq!(
        b.map(1, next, pa, 0x1000, RW),
        Err(BackendError::NoResources),
        "the notify's allowance is spent"
    );
    b.sync().unwrap();
    b.map(1, next, pa, 0x1000, RW).unwrap();
}

#[test]
fn an_mmio_map_over_the_pcie_window_costs_a_bounded_number_of_walks() {
    // The attack: an MMIO-flag MAP over the 512 GiB PCIe high window at a
    // misaligned IOVA walked stage 2 2^27 times, then needed 1 GiB of
    // tables.
    let w = World::new();
    let (_g, mut b) = backend(&w, 2048);
    b.domain_create(1, false).unwrap();
    let (base, size) = (0x80_0000_0000u64, 0x80_0000_0000u64);
    let t0 = std::time::Instant::now();
    assert_eq!(
        b.translate(base, size, true),
        Ok(base),
        "one walk per block"
    );
    assert!(t0.elapsed() < std::time::Duration::from_millis(500));
    let mmio = MapAttrs::new(true, true, true);
    let start = b.tables().held();
    assert_eq!(
        b.map(1, 0x1000, base, size, mmio),
        Err(BackendError::NoResources)
    );
    assert_eq!(b.tables().held(), start);
    // Aligned, the same window is 512 blocks of 1 GiB.
    b.map(1, size, base, size, mmio).unwrap();
    assert_eq!(leaves(&b).len(), 512);
}

#[test]
fn the_walks_of_one_notify_are_bounded() {
    // 256 MAPs of one notify each checking 512 GiB of MMIO at 4 KiB steps
    // would be 2^28 walks; each walk counts against the notify's
    // allowance, shared with the descriptors its MAPs write.
    let w = World::new();
    let (_g, mut b) = backend(&w, 2048);
    let (base, size) = (0x80_0000_0000u64, 0x80_0000_0000u64);
    let walks = size / GIB; // one per 1 GiB block of the guest's stage 2
    assert!(walks <= MAX_TRANSLATE_WALKS);
    for i in 0..MAX_NOTIFY_WORK / walks {
        assert_eq!(b.translate(base, size, true), Ok(base), "check {i}");
    }
    assert_eq!(
        b.translate(base, size, true),
        Err(Refusal::TooLarge),
        "the notify's allowance is spent"
    );
    assert_eq!(
        b.translate(RAM_BASE, 0x1000, false).map(|_| ()),
        Ok(()),
        "RAM needs no walk"
    );
    b.sync().unwrap();
    assert_eq!(b.translate(base, size, true), Ok(base), "a new notify");
}

#[test]
fn the_table_budget_refuses_maps_and_changes_nothing() {
    let w = World::new();
    // A root (two pages) and one L2 + L3 pair.
    let (g, mut b) = backend(&w, 4);
    b.domain_create(1, false).unwrap();
    let pa = g.ram.to_pa(RAM_BASE).unwrap();
    b.map(1, 0, pa, 0x1000, RW).unwrap();
    assert_eq!(b.tables().held(), 4);
    assert_eq!(
        b.domain_create(2, false),
        Err(BackendError::NoMemory),
        "no room for a second root"
    );
    assert_eq!(w.vmids.in_use(), 1, "its VMID given back");
    assert_eq!(b.map(1, GIB, pa, 0x1000, RW), Err(BackendError::NoMemory));
    // Pages in a new 2 MiB region of the same GiB: an L3 is missing.
    assert_eq!(
        b.map(1, MIB2 - 0x1000, pa, 0x2000, RW),
        Err(BackendError::NoMemory)
    );
    b.sync().unwrap();
    assert_eq!(leaves(&b), [(1, 0, pa, 0x1000)], "nothing partial left");
    assert_eq!(b.tables().held(), 4);
    b.unmap(1, 0, 0x1000).unwrap();
    b.sync().unwrap();
    b.map(1, GIB, pa, 0x1000, RW).unwrap();
}

/// A small xorshift generator: reproducible sequences without a crate.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub(super) fn random_request(rng: &mut Rng) -> Request {
    let domain = 1 + rng.below(4) as u32;
    let endpoint = EP + rng.below(2) as u32;
    match rng.below(12) {
        0 | 1 => Request::Attach(Attach {
            domain,
            endpoint,
            flags: 0,
            reserved: [0; 4],
        }),
        2 => Request::Detach(Detach {
            domain,
            endpoint,
            reserved: [0; 8],
        }),
        3..=9 => {
            // Pages or a 2 MiB block of guest RAM (sometimes past its end,
            // sometimes the UART with the MMIO flag), anywhere in 64 GiB.
            let (size, phys, flags) = match rng.below(8) {
                0 => (MIB2, RAM_BASE + MIB2 * rng.below(3), 3),
                1 => (0x1000, 0x0900_0000, 3 | MapFlags::MMIO),
                2 => (0x1000 * (1 + rng.below(2048)), RAM_BASE, 3),
                _ => (
                    0x1000 * (1 + rng.below(8)),
                    RAM_BASE + 0x1000 * rng.below(1024),
                    3,
                ),
            };
            let start = if size == MIB2 {
                rng.below(32 * 1024) * MIB2
            } else {
                rng.below(16 << 20) << 12
            };
            Request::Map(Map {
                domain,
                virt_start: start,
                virt_end: start + size - 1,
                phys_start: phys,
                flags: MapFlags(flags),
            })
        }
        _ => {
            let start = rng.below(16 << 20) << 12;
            let end = if rng.below(16) == 0 {
                (1 << IOVA_BITS) - 1
            } else {
                start + (rng.below(4096) << 12) + 0xfff
            };
            Request::Unmap(Unmap {
                domain,
                virt_start: if rng.below(16) == 0 { 0 } else { start },
                virt_end: end,
                reserved: [0; 4],
            })
        }
    }
}

#[test]
fn random_requests_keep_mappings_owned_and_tables_within_budget() {
    let iterations: u64 = std::env::var("PARTITA_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1500);
    let seed: u64 = std::env::var("PARTITA_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_abcd_0001);
    let limit = 24;
    let w = World::new();
    let (g, b) = backend(&w, limit);
    let ram_pa = g.ram.to_pa(RAM_BASE).unwrap();
    let cfg = ViommuConfig {
        input_end: (1 << IOVA_BITS) - 1,
        max_mappings: 512,
        ..ViommuConfig::default()
    };
    let mut v = Viommu::new(b.b, cfg).unwrap();
    let mut rng = Rng(seed);
    let mut statuses = [0u32; 16];
    for step in 0..iterations {
        let n = 1 + rng.below(4);
        let batch: Vec<(Vec<u8>, usize)> = (0..n)
            .map(|_| (random_request(&mut rng).encode(), 4))
            .collect();
        let out = v.process_batch(batch);
        assert_eq!(out.sync, Ok(()), "step {step} (seed {seed:#x})");
        for c in &out.completions {
            if let Some(s) = c.response.status() {
                statuses[s as usize] += 1;
            }
        }
        let b = v.backend();
        for (d, iova, pa, size) in leaves_in(&v, b.tables()) {
            let in_ram = pa >= ram_pa && pa + size <= ram_pa + RAM_SIZE;
            let uart = pa == 0x0900_0000 && size == 0x1000;
            assert!(
                in_ram || uart,
                "step {step}: domain {d} IOVA {iova:#x} -> {pa:#x} (+{size:#x}) outside the guest"
            );
        }
        let t = b.tables();
        assert!(t.held() <= limit, "step {step}: {} pages held", t.held());
        assert_eq!(
            t.retired(),
            0,
            "step {step}: retired tables freed by the sync"
        );
        assert_eq!(
            t.linked(),
            linked_in(&v, b.tables()),
            "step {step}: every held page linked or pooled"
        );
        w.dma.take();
    }
    // The sequence reaches the interesting outcomes.
    assert!(statuses[Status::Ok as usize] > 0);
    assert!(statuses[Status::Nomem as usize] > 0, "{statuses:?}");
    // Everything goes away with a reset; the pages come back.
    v.reset().unwrap();
    let t = v.backend().tables();
    assert_eq!((t.linked(), t.retired()), (0, 0));
}

/// One request in a batch of its own: its status.
fn send_one(v: &mut Viommu<SmmuBackend>, req: Request) -> Status {
    let out = v.process_batch([(req.encode(), 4)]);
    out.completions[0].response.status().expect("a status")
}

/// A guest whose virtio-iommu may hold 32 domains over the whole 40-bit
/// input range, its SMMU calls taken so far dropped; the guest is kept
/// alive beside its model.
fn many_domains(w: &World) -> (Guest, Viommu<SmmuBackend>) {
    let g = w.guest(0, config("a", &[0], true));
    w.dma.take();
    let b = SmmuBackend::with_table_limit(g.ram, g.dma.clone(), w.vmids.reserve(32), 32, 2048);
    let cfg = ViommuConfig {
        input_end: (1u64 << IOVA_BITS) - 1,
        ..ViommuConfig::default()
    };
    (g, Viommu::new(b, cfg).expect("valid config"))
}

/// ATTACH of endpoint `EP + k` to domain `1 + k`.
fn attach_k(k: u32) -> Request {
    Request::Attach(Attach {
        domain: 1 + k,
        endpoint: EP + k,
        flags: 0,
        reserved: [0; 4],
    })
}

#[test]
fn heap_per_mapping_is_within_its_allowance() {
    use crate::config::limits::HEAP_PER_IO_MAPPING;
    use crate::smmu::tests::heapcount::peak_during;
    // The boot plan commits HEAP_PER_IO_MAPPING bytes of heap per allowed
    // mapping (config::GuestLimits::viommu_heap): measure what the model
    // and backend hold per mapping, ascending IOVAs (B-tree nodes split
    // half full, the worst fill), its IO page tables left out.
    const N: u64 = 4096;
    let w = World::new();
    let (_g, b) = backend(&w, 2048);
    let cfg = ViommuConfig {
        input_end: (1u64 << IOVA_BITS) - 1,
        max_mappings: N as usize,
        ..ViommuConfig::default()
    };
    let mut v = Viommu::new(b.b, cfg).expect("valid config");
    let attach = Request::Attach(Attach {
        domain: 1,
        endpoint: EP,
        flags: 0,
        reserved: [0; 4],
    });
    assert_eq!(send_one(&mut v, attach), Status::Ok);
    let tables_before = v.backend().tables().held();
    let (_, peak) = peak_during(|| {
        for k in 0..N {
            let map = Request::Map(Map {
                domain: 1,
                virt_start: k * 0x2000,
                virt_end: k * 0x2000 + 0xfff,
                phys_start: RAM_BASE + (k % 16) * 0x1000,
                flags: MapFlags(MapFlags::READ | MapFlags::WRITE),
            });
            assert_eq!(send_one(&mut v, map), Status::Ok, "map {k}");
        }
    });
    let tables = (v.backend().tables().held() - tables_before) * 4096;
    let per_mapping = (peak - tables) as u64 / N;
    assert!(
        per_mapping <= HEAP_PER_IO_MAPPING,
        "{per_mapping} bytes of heap per mapping (peak {peak}, of it {tables} of tables)"
    );
}

#[test]
fn heap_per_domain_is_within_its_allowance() {
    use crate::config::limits::{HEAP_PER_DOMAIN, HEAP_PER_IO_MAPPING};
    use crate::smmu::tests::heapcount::peak_during;
    // The boot plan commits HEAP_PER_DOMAIN bytes per allowed domain:
    // measure what the model and backend hold per domain (the domain
    // tables' vector entries, endpoint sets, a mapping ring at its
    // smallest kept size) with one mapping each, tables left out.
    const N: u32 = 24;
    let w = World::new();
    let (_g, mut v) = many_domains(&w);
    let tables_before = v.backend().tables().held();
    let (_, peak) = peak_during(|| {
        for k in 0..N {
            assert_eq!(send_one(&mut v, attach_k(k)), Status::Ok, "attach {k}");
            let map = Request::Map(Map {
                domain: 1 + k,
                virt_start: 0x10_0000,
                virt_end: 0x10_0fff,
                phys_start: RAM_BASE,
                flags: MapFlags(MapFlags::READ | MapFlags::WRITE),
            });
            assert_eq!(send_one(&mut v, map), Status::Ok, "map {k}");
        }
    });
    let tables = (v.backend().tables().held() - tables_before) * 4096;
    let per_domain = (peak - tables) as u64 / u64::from(N);
    assert!(
        per_domain <= HEAP_PER_DOMAIN + HEAP_PER_IO_MAPPING,
        "{per_domain} bytes of heap per domain with one mapping (peak {peak}, of it {tables} of tables)"
    );
}

#[test]
fn heap_a_domain_keeps_after_a_batch_is_within_its_allowance() {
    use crate::config::limits::{HEAP_PER_DOMAIN, HEAP_PER_IO_MAPPING};
    use crate::smmu::tests::heapcount::held_after;
    use crate::viommu::model::intervals::MIN_CAPACITY;
    // Each domain's mapping ring grows to MIN_CAPACITY with a batch of
    // MAPs and keeps that room when the batch is unmapped again (all but
    // one mapping, so its IO page table stays): what stays per domain is
    // within the per-domain allowance plus its one mapping's.
    const N: u32 = 16;
    let w = World::new();
    let (_g, mut v) = many_domains(&w);
    let tables_before = v.backend().tables().held();
    let (_, held) = held_after(|| {
        for k in 0..N {
            assert_eq!(send_one(&mut v, attach_k(k)), Status::Ok, "attach {k}");
            let page = |i: u64| (0x10_0000 + i * 0x1000, 0x10_0fff + i * 0x1000);
            for i in 0..MIN_CAPACITY as u64 {
                let (virt_start, virt_end) = page(i);
                let map = Request::Map(Map {
                    domain: 1 + k,
                    virt_start,
                    virt_end,
                    phys_start: RAM_BASE,
                    flags: MapFlags(MapFlags::READ | MapFlags::WRITE),
                });
                assert_eq!(send_one(&mut v, map), Status::Ok, "map {k}/{i}");
            }
            for i in 1..MIN_CAPACITY as u64 {
                let (virt_start, virt_end) = page(i);
                let unmap = Request::Unmap(Unmap {
                    domain: 1 + k,
                    virt_start,
                    virt_end,
                    reserved: [0; 4],
                });
                assert_eq!(send_one(&mut v, unmap), Status::Ok, "unmap {k}/{i}");
            }
            // The test world's log of the commands issued is not the
            // hypervisor's heap.
            drop(w.dma.take());
        }
    });
    assert_eq!(v.mapping_count(), N as usize);
    let tables = (v.backend().tables().held() - tables_before) as isize * 4096;
    let per_domain = (held - tables) / N as isize;
    // The ring's kept room is most of it: at least that much stays.
    assert!(per_domain >= (MIN_CAPACITY * 32) as isize, "{per_domain}");
    assert!(
        per_domain as u64 <= HEAP_PER_DOMAIN + HEAP_PER_IO_MAPPING,
        "{per_domain} bytes of heap kept per domain (held {held}, of it {tables} of tables)"
    );
}

#[test]
fn a_sync_with_nothing_queued_issues_nothing_and_resets_the_allowance() {
    // The sync of a notify of MAPs (nothing queued, nothing retired) has
    // its own short path: the same state as the general one.
    let w = World::new();
    let (g, mut b) = backend(&w, 2048);
    b.domain_create(1, false).unwrap();
    let pa = g.ram.to_pa(RAM_BASE).unwrap();
    let most = MAX_MAP_PTES * 0x1000;
    let per_notify = MAX_NOTIFY_WORK / MAX_MAP_PTES;
    let held = b.tables().held();
    w.dma.take();
    for round in 0..3u64 {
        let base = 0x1000 + round * per_notify * 2 * most;
        for i in 0..per_notify {
            b.map(1, base + i * 2 * most, pa, most, RW).unwrap();
        }
        let next = base + per_notify * 2 * most;
        assert_eq!(
            b.map(1, next, pa, 0x1000, RW),
            Err(BackendError::NoResources)
        );
        assert_eq!(b.tables().retired(), 0);
        b.sync().unwrap();
        assert!(
            !w.dma.take().iter().any(|c| matches!(c, DmaCall::Issue(..))),
            "nothing to invalidate: no command, no CMD_SYNC"
        );
        assert_eq!(b.tables().retired(), 0);
        // The allowance is whole again, as after any sync.
        b.map(1, next, pa, 0x1000, RW).unwrap();
        b.unmap(1, next, 0x1000).unwrap();
        // An UNMAP's sync still issues its invalidation.
        b.sync().unwrap();
        assert!(
            w.dma
                .take()
                .iter()
                .any(|c| matches!(c, DmaCall::Issue(0, cmds)
            if !cmds.is_empty()))
        );
    }
    assert!(b.tables().held() > held);
}
