//! The virtio-iommu's SMMU backend of a guest: VMIDs per domain, endpoint
//! streams bound and returned to abort, bypass switching, invalidation
//! batching, and SMMU faults forwarded to the guest.

use super::*;
use crate::arch::exit::Exit;
use crate::arch::fake::Op;
use crate::arch::frame::TrapFrame;
use crate::mm::heap_tables::HeapTables;
use crate::viommu::backend::{BackendError, IommuBackend, MapAttrs, Refusal};
use crate::vm::viommu::backend::SmmuBackend;
use crate::vm::viommu::vmids::unattached_vmid;

const EP: u32 = 0x08; // 00:01.0

fn backend(w: &World) -> (Guest, ById) {
    let g = w.guest(0, config("a", &[0], true));
    w.dma.take();
    let b = SmmuBackend::new(g.ram, g.dma.clone(), w.vmids.reserve(32), 32);
    (g, ById::new(b))
}

const RW: MapAttrs = MapAttrs::new(true, true, false);

#[test]
fn each_translating_domain_has_its_own_vmid_until_destroyed() {
    let w = World::new();
    let (_g, mut b) = backend(&w);
    b.domain_create(1, false).unwrap();
    b.domain_create(2, false).unwrap();
    assert_eq!(w.vmids.in_use(), 2);
    b.attach(EP, 1).unwrap();
    assert_eq!(w.dma.take(), [DmaCall::Bind(0, EP, 64)]);
    b.attach(EP, 2).unwrap();
    assert_eq!(w.dma.take(), [DmaCall::Bind(0, EP, 65)]);
    b.detach(EP).unwrap();
    assert_eq!(w.dma.take(), [DmaCall::Bind(0, EP, unattached_vmid(0))]);
    b.domain_destroy(1);
    assert_eq!(w.vmids.in_use(), 1);
    let issued = w.dma.take();
    assert!(
        matches!(&issued[..], [DmaCall::Issue(0, cmds)] if cmds.len() == 1),
        "its TLB entries are dropped before the VMID is reused: {issued:?}"
    );
    // The freed VMID is the next one handed out.
    b.domain_create(3, false).unwrap();
    b.attach(EP, 3).unwrap();
    assert_eq!(w.dma.take().last(), Some(&DmaCall::Bind(0, EP, 64)));
}

#[test]
fn vmids_run_out_cleanly() {
    let w = World {
        vmids: Arc::new(VmidPool::new(65)),
        ..World::new()
    };
    // The guest's own device takes no share: the pool is this backend's.
    let mut c = config("a", &[0], true);
    c.limits.domains = 0;
    let g = w.guest(0, c);
    w.dma.take();
    let mut b = ById::new(SmmuBackend::new(
        g.ram,
        g.dma.clone(),
        w.vmids.reserve(32),
        32,
    ));
    b.domain_create(1, false).unwrap();
    b.domain_create(2, false).unwrap();
    assert_eq!(b.domain_create(3, false), Err(BackendError::NoResources));
    // A bypass domain needs none: it is the guest's own stage 2.
    b.domain_create(4, true).unwrap();
    b.attach(EP, 4).unwrap();
    assert_eq!(w.dma.take(), [DmaCall::Bind(0, EP, 1)]);
}

#[test]
fn endpoints_are_the_guests_requester_ids() {
    let w = World::new();
    let (_g, b) = backend(&w);
    assert!(b.endpoint_known(EP));
    assert!(!b.endpoint_known(0x1_0000), "beyond any bus");
}

#[test]
fn only_the_guests_ram_may_be_mapped() {
    let w = World::new();
    let (g, mut b) = backend(&w);
    assert_eq!(
        b.translate(RAM_BASE + 0x1000, 0x1000, false),
        Ok(g.ram.to_pa(RAM_BASE + 0x1000).unwrap())
    );
    assert!(
        b.translate(RAM_BASE + RAM_SIZE - 0x1000, 0x2000, false)
            .is_err(),
        "runs past the end of RAM"
    );
    assert_eq!(
        b.translate(RAM_BASE, 0x1000, true),
        Err(Refusal::MemoryType)
    );
    // The UART is the guest's MMIO (identity-mapped); the GIC is not.
    assert_eq!(b.translate(0x0900_0000, 0x1000, true), Ok(0x0900_0000));
    assert_eq!(
        b.translate(0x0900_0000, 0x1000, false),
        Err(Refusal::MemoryType)
    );
    assert_eq!(
        b.translate(0x0800_0000, 0x1000, true),
        Err(Refusal::NotOwned)
    );
    assert_eq!(b.translate(u64::MAX - 1, 4, false), Err(Refusal::NotOwned));
}

#[test]
fn the_ram_check_is_both_ends_contained() {
    // `ram_offset` (one subtraction, two comparisons) against the two
    // `Region::contains` it replaces, at the edges and at random, regions
    // reaching the top of the address space included.
    use crate::mm::layout::Region;
    use crate::vm::viommu::backend::ram_offset;
    let mut rng = crate::test_rng::Rng(0x7a11_0ff5);
    let regions = [
        Region::new(RAM_BASE, RAM_SIZE),
        Region::new(0, 0x1000),
        Region::new(0x1000, 0),
        Region::new(u64::MAX - 0xffff, 0x1_0000),
        Region::new(u64::MAX - 0xffff, u64::MAX),
    ];
    for ram in regions {
        let mut points = alloc::vec![0, 1, u64::MAX, u64::MAX - 1];
        for p in [ram.base, ram.base.wrapping_add(ram.size)] {
            for d in [0u64, 1, 2, 0xfff, 0x1000] {
                points.push(p.wrapping_add(d));
                points.push(p.wrapping_sub(d));
            }
        }
        for _ in 0..2000 {
            let p = *points.get(rng.index(points.len())).unwrap_or(&0);
            points.push(p.wrapping_add(rng.below(1 << 20)));
        }
        for _ in 0..20_000 {
            let gpa = points[rng.index(points.len())];
            let Some(last) = gpa.checked_add(points[rng.index(points.len())] % (1 << 24)) else {
                continue;
            };
            let want = (ram.contains(gpa) && ram.contains(last)).then(|| gpa - ram.base);
            assert_eq!(
                ram_offset(ram, gpa, last),
                want,
                "{ram:?} {gpa:#x}..={last:#x}"
            );
        }
    }
}

#[test]
fn unmaps_are_invalidated_once_per_sync() {
    let w = World::new();
    let (_g, mut b) = backend(&w);
    b.domain_create(1, false).unwrap();
    b.map(1, 0x10_0000, RAM_BASE, 0x2000, RW).unwrap();
    b.map(1, 0x20_0000, RAM_BASE, 0x1000, RW).unwrap();
    b.unmap(1, 0x10_0000, 0x2000).unwrap();
    b.unmap(1, 0x20_0000, 0x1000).unwrap();
    assert!(w.dma.take().is_empty(), "nothing issued before the sync");
    b.sync().unwrap();
    let calls = w.dma.take();
    assert!(
        matches!(&calls[..], [DmaCall::Issue(0, cmds)] if cmds.len() >= 3),
        "one batch with both ranges: {calls:?}"
    );
    b.sync().unwrap();
    assert!(w.dma.take().is_empty(), "nothing left to issue");
}

#[test]
fn bypass_switching_changes_one_table_and_no_stream() {
    let w = World::new();
    let (g, mut b) = backend(&w);
    let u = unattached_vmid(0);
    b.domain_create(1, false).unwrap();
    b.attach(EP, 1).unwrap();
    w.dma.take();
    b.set_global_bypass(true).unwrap();
    assert_eq!(
        w.dma.take(),
        [DmaCall::Issue(0, vec![Cmd::tlbi_s12_vmall(u)])],
        "one invalidation of the unattached endpoints' VMID; no stream rebound"
    );
    let table = g
        .dma
        .unattached
        .as_ref()
        .expect("a table for unattached endpoints");
    let st2 = g.stage2.lock();
    assert_eq!(
        table.table.lock().table().translate(&st2.1, RAM_BASE),
        st2.0.translate(&st2.1, RAM_BASE),
        "unattached endpoints translate through the guest's stage 2"
    );
    drop(st2);
    b.set_global_bypass(true).unwrap();
    assert!(w.dma.take().is_empty(), "no change, nothing done");
    b.detach(EP).unwrap();
    assert_eq!(
        w.dma.take(),
        [DmaCall::Bind(0, EP, u)],
        "a detached endpoint goes to the table of unattached endpoints"
    );
    b.set_global_bypass(false).unwrap();
    assert_eq!(
        w.dma.take(),
        [DmaCall::Issue(0, vec![Cmd::tlbi_s12_vmall(u)])]
    );
    assert_eq!(
        table.table.lock().table().translate(&HeapTables, RAM_BASE),
        None
    );
}

#[test]
fn smmu_faults_are_counted_and_reported_to_the_guest() {
    let w = World::new();
    let a = w.guest(0, config("a", &[0], true));
    let b = w.guest(1, config("b", &[1], false));
    let m = w.machine(vec![a, b]);
    assert!(m.dma_fault(0, Some(EP), 0x1000, true, 3));
    assert!(
        !m.dma_fault(1, None, 0x1000, false, 1),
        "b has no virtio-iommu"
    );
    assert!(!m.dma_fault(7, Some(EP), 0, true, 1), "no such guest");
    let count = |i: usize| {
        m.guests()[i]
            .counters
            .dma_faults
            .load(core::sync::atomic::Ordering::Relaxed)
    };
    assert_eq!((count(0), count(1)), (3, 1));
    assert_eq!(m.owner_name(1), Some("b"));
    // The report is queued for the event queue, whose interrupt reaches
    // vCPU 0 of guest a when the driver has given the queue buffers; with
    // none yet, nothing is raised.
    fake::take_ops();
    m.handle_exit(&TrapFrame::default(), Exit::Wfx);
    assert!(
        !fake::take_ops()
            .iter()
            .any(|o| matches!(o, Op::WriteLr(..)))
    );
}

#[test]
fn an_unmapped_block_is_invalidated_by_one_tlbi_and_pages_by_their_range() {
    use crate::smmu::cmd::{Cmd, plan_s2_invalidation_into};
    use crate::smmu::driver::ProbeOptions;
    const MIB2: u64 = 2 << 20;
    let w = World::new();
    let (_g, mut b) = backend(&w);
    b.domain_create(1, false).unwrap();
    let vmid = 64;
    // A 2 MiB block (both sides 2 MiB aligned): one leaf, one TLBI by
    // address (what Linux's SMMUv3 driver issues per block).
    b.map(1, MIB2, RAM_BASE, MIB2, RW).unwrap();
    b.sync().unwrap();
    w.dma.take();
    b.unmap(1, MIB2, MIB2).unwrap();
    b.sync().unwrap();
    assert_eq!(
        w.dma.take(),
        [DmaCall::Issue(
            0,
            alloc::vec![Cmd::tlbi_s2_ipa(vmid, MIB2, true)]
        )]
    );
    // The same range as 512 pages (the output 4 KiB off a block's
    // alignment): the range's own plan, every page covered.
    b.map(1, MIB2, RAM_BASE + 0x1000, MIB2, RW).unwrap();
    b.sync().unwrap();
    w.dma.take();
    b.unmap(1, MIB2, MIB2).unwrap();
    b.sync().unwrap();
    let mut want = Vec::new();
    let limit = ProbeOptions::DEFAULT.tlbi_page_limit;
    plan_s2_invalidation_into(&mut want, vmid, MIB2, MIB2, true, false, limit).unwrap();
    assert_ne!(want, [Cmd::tlbi_s2_ipa(vmid, MIB2, true)]);
    let issued = w.dma.take();
    assert!(
        matches!(&issued[..], [DmaCall::Issue(0, cmds)] if cmds.starts_with(&want)),
        "{issued:?}"
    );
}

/// The SMMU backend's `translate_range` (the MAP's path: the range's end
/// proven not to wrap by its type) answers as `translate` of the same
/// bytes, on hostile ranges: around both ends of RAM, across it, over the
/// guest's own MMIO and what is not the guest's, near 2^64, both memory
/// types; and `GpaRange` refuses exactly the empty and the wrapping ones.
#[test]
fn translate_range_answers_as_translate() {
    use crate::viommu::backend::GpaRange;
    assert_eq!(GpaRange::new(5, 0), None);
    assert_eq!(GpaRange::new(u64::MAX, 2), None);
    assert_eq!(GpaRange::from_last_offset(1, u64::MAX), None);
    let r = GpaRange::new(u64::MAX, 1).expect("one byte");
    assert_eq!((r.start(), r.last()), (u64::MAX, u64::MAX));
    let r = GpaRange::from_last_offset(0, u64::MAX).expect("everything");
    assert_eq!((r.start(), r.last()), (0, u64::MAX));

    let w = World::new();
    let (g, mut b) = backend(&w);
    let mut rng = crate::test_rng::Rng(0x7a11_5eed_0bad_f00d);
    let starts = [
        0,
        RAM_BASE - 0x1000,
        RAM_BASE,
        RAM_BASE + RAM_SIZE / 2,
        RAM_BASE + RAM_SIZE - 0x1000,
        RAM_BASE + RAM_SIZE,
        0x0900_0000,
        0x0900_1000,
        0x8000_0000,
        u64::MAX - 0xfff,
    ];
    let lens = [1, 0x1000, 0x2000, RAM_SIZE, RAM_SIZE + 1, 2 << 20, u64::MAX];
    let mut seen = [0usize; 3];
    for i in 0..4000 {
        let start = rng.pick(&starts).wrapping_add(rng.below(3) * 0x1000);
        let start = start.wrapping_sub(rng.below(2) * 0x1000);
        let len = rng.pick(&lens).wrapping_add(rng.below(2) * 0x1000);
        let mmio = rng.chance(30);
        let Some(range) = GpaRange::new(start, len) else {
            // Wrapping (or nothing): `translate` refuses it as not the
            // guest's, the model never asks (RANGE before).
            assert_eq!(b.translate(start, len, mmio), Err(Refusal::NotOwned), "{i}");
            seen[2] += 1;
            continue;
        };
        let general = b.translate(start, len, mmio);
        b.sync().unwrap();
        let ranged = b.translate_range(range, mmio);
        b.sync().unwrap();
        assert_eq!(ranged, general, "{i}: {start:#x} +{len:#x} mmio {mmio}");
        // Both share the code: the RAM case against an oracle of its own
        // (`Region::contains` of both ends, the host address of the start).
        let ram = Region::new(RAM_BASE, RAM_SIZE);
        if ram.contains(range.start()) && ram.contains(range.last()) {
            let pa = g.ram.to_pa(start).expect("in RAM");
            let want = if mmio {
                Err(Refusal::MemoryType)
            } else {
                Ok(pa)
            };
            assert_eq!(ranged, want, "{i}: {start:#x} +{len:#x} in RAM");
        } else if ram.contains(range.start()) {
            assert!(ranged.is_err(), "{i}: {start:#x} +{len:#x} runs past RAM");
        }
        seen[usize::from(general.is_err())] += 1;
    }
    assert!(seen.iter().all(|&n| n > 100), "{seen:?}");
}
