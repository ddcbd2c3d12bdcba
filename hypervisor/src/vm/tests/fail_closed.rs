//! The virtio-iommu fails closed (issue 12, items 2 and 5), reproduced
//! against the real code: the model over [`SmmuBackend`] over the SMMU
//! manager and the fake SMMU (`smmu/tests/fake.rs`).
//!
//! - A bind the SMMU refuses (a VMID above 255 on an SMMU without VMID16,
//!   as a pool sized from the CPU alone hands out) or cannot complete (a
//!   hung command queue) leaves the stream aborting, or keeps the tables it
//!   may still reach; the guest gets DEVERR; no stream table entry, in
//!   memory or as the SMMU last fetched it, points at freed tables.
//! - VMIDs above the narrowest translator's limit are never handed out.
//! - One guest's domains cannot exhaust another's: each holds its budget.

use super::smmu::{Real, real_with, unattached_root};
use super::*;
use crate::smmu::cmd::op;
use crate::smmu::ste::{Ste, SteConfig};
use crate::smmu::tests::fake::{Consume, QEMU_S2};
use crate::viommu::model::{Viommu, ViommuConfig as ModelConfig};
use crate::viommu::wire::Status;
use crate::viommu::wire::request::{Attach, Map, MapFlags, Request};
use crate::vm::viommu::backend::{IOVA_BITS, SmmuBackend};
use crate::vm::viommu::vmids::unattached_vmid;
use crate::vm::viommu::vmids::{MAX_VMID8, VmidPool};

/// Requester ID 00:01.0 (SID = RID on QEMU virt).
const EP: u32 = 0x08;

/// QEMU's stage-2 SMMU without IDR0.VMID16.
fn no_vmid16() -> [u32; 6] {
    let mut idr = QEMU_S2;
    idr[0] &= !(1 << 18);
    idr
}

/// The model of guest `g` over a backend with `budget` domains and a share
/// of `pool`.
fn device(g: &Guest, pool: &Arc<VmidPool>, budget: usize) -> Viommu<SmmuBackend> {
    let backend = SmmuBackend::new(g.ram, g.dma.clone(), pool.reserve(budget), budget);
    let cfg = ModelConfig {
        input_end: (1u64 << IOVA_BITS) - 1,
        ..ModelConfig::default()
    };
    Viommu::new(backend, cfg).expect("valid config")
}

/// Sends `req` as its own notify and returns its status.
fn send(v: &mut Viommu<SmmuBackend>, req: Request) -> Status {
    let out = v.process_batch([(req.encode(), 4)]);
    out.completions[0].response.status().expect("a status")
}

fn attach(domain: u32, endpoint: u32) -> Request {
    Request::Attach(Attach {
        domain,
        endpoint,
        flags: 0,
        reserved: [0; 4],
    })
}

fn map(domain: u32, iova: u64, gpa: u64) -> Request {
    Request::Map(Map {
        domain,
        virt_start: iova,
        virt_end: iova + 0xfff,
        phys_start: gpa,
        flags: MapFlags(MapFlags::READ | MapFlags::WRITE),
    })
}

/// The STE the SMMU last fetched for `sid` (the snapshot of its last
/// consumed CFGI_STE): what a cached copy may still hold.
fn fetched(r: &Real, sid: u32) -> Option<Ste> {
    let s = r.fake.state();
    s.consumed
        .iter()
        .rev()
        .find(|c| c.cmd.opcode() == op::CFGI_STE && c.cmd.sid() == sid)
        .and_then(|c| c.ste)
}

/// No entry of `sids`, in memory or as last fetched, translates through a
/// table other than `live` (tables not freed) or the guest's stage 2.
fn assert_no_dangling_ste(r: &Real, g: &Guest, v: &Viommu<SmmuBackend>, sids: &[u32]) {
    let mut live = v.backend().live_roots();
    live.push(g.stage2.lock().0.root());
    live.push(unattached_root(g));
    for &sid in sids {
        let in_memory = r.fake.state().walk_ste(sid);
        for ste in [in_memory, fetched(r, sid)].into_iter().flatten() {
            if let Some(cfg) = ste.s2_config() {
                assert!(
                    live.contains(&cfg.root),
                    "sid {sid:#x} points at freed tables {:#x} (live: {live:x?})",
                    cfg.root
                );
            }
        }
    }
}

fn aborts(ste: Option<Ste>) -> bool {
    ste.is_none_or(|s| matches!(s.config(), SteConfig::Abort | SteConfig::Invalid))
}

#[test]
fn a_bind_the_smmu_refuses_aborts_the_stream_before_the_old_tables_go() {
    // The pool sized from the CPU alone (VMID16) over an SMMU without it:
    // the attack of issue 12 item 2.
    let r = real_with(no_vmid16());
    let g = r.guest(0, config("a", &[0], true));
    let pool = Arc::new(VmidPool::for_cpu(true));
    let mut v = device(&g, &pool, 1000);
    assert_eq!(send(&mut v, attach(1, EP)), Status::Ok);
    assert_eq!(send(&mut v, map(1, 0x10_0000, RAM_BASE)), Status::Ok);
    let old_root = v.backend().domain_root(1).expect("translating");
    assert_eq!(r.ste(EP), Some((64, old_root)));
    // Someone holds 65..=255: the next domain gets VMID 256.
    let mut hog = pool.reserve(191);
    while hog.alloc().is_some() {}
    assert_eq!(pool.in_use(), 192);

    assert_eq!(send(&mut v, attach(2, EP)), Status::Deverr);
    assert_eq!(v.domain_of(EP), None, "the endpoint is unattached");
    assert_eq!(v.domain_ids().count(), 0, "both domains are gone");
    assert_eq!(r.ste(EP), None, "its stream aborts");
    assert!(aborts(fetched(&r, EP)), "and the SMMU fetched the abort");
    assert_no_dangling_ste(&r, &g, &v, &[EP]);
    assert_eq!(v.backend().kept_domains(), 0, "the abort was confirmed");
    assert_eq!(v.backend().vmids().held(), 0, "VMIDs 64 and 256 are back");
    // The machine's pool would never have handed out 256.
    let sized = VmidPool::for_machine(true, r.port.smmus.max_vmid());
    assert_eq!(sized.max(), MAX_VMID8);
}

#[test]
fn a_hung_command_queue_keeps_every_table_the_stream_may_reach() {
    let r = real_with(QEMU_S2);
    let g = r.guest(0, config("a", &[0], true));
    let pool = Arc::new(VmidPool::for_machine(true, r.port.smmus.max_vmid()));
    let mut v = device(&g, &pool, 32);
    assert_eq!(send(&mut v, attach(1, EP)), Status::Ok);
    assert_eq!(send(&mut v, map(1, 0x10_0000, RAM_BASE)), Status::Ok);
    let old_root = v.backend().domain_root(1).expect("translating");

    // The SMMU stops consuming commands: no change can be confirmed.
    r.fake.state().consume = Consume::Never;
    assert_eq!(send(&mut v, attach(2, EP)), Status::Deverr);
    assert_eq!(v.domain_of(EP), None);
    assert_eq!(v.domain_ids().count(), 0, "the model let both domains go");
    assert_eq!(v.backend().unconfirmed_endpoints(), 1);
    assert_eq!(v.backend().kept_domains(), 2, "their tables are kept");
    assert!(v.backend().live_roots().contains(&old_root));
    assert_eq!(
        fetched(&r, EP).and_then(|s| s.s2_config()).map(|c| c.root),
        Some(old_root)
    );
    assert_no_dangling_ste(&r, &g, &v, &[EP]);
    // Kept tables count against the budget.
    assert_eq!(v.backend().vmids().held(), 2);

    // The SMMU recovers; the next confirmed change of the stream frees them.
    r.fake.state().consume = Consume::OnProd;
    assert_eq!(send(&mut v, attach(3, EP)), Status::Ok);
    assert_eq!(v.backend().unconfirmed_endpoints(), 0);
    assert_eq!(v.backend().kept_domains(), 0);
    assert_eq!(v.backend().vmids().held(), 1, "only domain 3's VMID");
    assert_no_dangling_ste(&r, &g, &v, &[EP]);
    let root3 = v.backend().domain_root(3).expect("translating");
    assert_eq!(r.ste(EP).map(|(_, root)| root), Some(root3));
}

#[test]
fn a_failed_detach_or_reset_never_frees_tables_under_a_stream() {
    let r = real_with(QEMU_S2);
    let g = r.guest(0, config("a", &[0], true));
    let pool = Arc::new(VmidPool::for_machine(true, r.port.smmus.max_vmid()));
    let mut v = device(&g, &pool, 32);
    assert_eq!(send(&mut v, attach(1, EP)), Status::Ok);
    assert_eq!(send(&mut v, attach(1, EP + 1)), Status::Ok);
    r.fake.state().consume = Consume::Never;
    let detach = Request::Detach(crate::viommu::wire::request::Detach {
        domain: 1,
        endpoint: EP,
        reserved: [0; 8],
    });
    assert_eq!(send(&mut v, detach), Status::Deverr);
    assert_eq!(v.domain_of(EP), None);
    assert!(v.reset().is_err(), "the reset cannot be confirmed either");
    assert_eq!(v.domain_ids().count(), 0);
    assert_eq!(v.backend().kept_domains(), 1, "domain 1's tables are kept");
    assert_no_dangling_ste(&r, &g, &v, &[EP, EP + 1]);
}

#[test]
fn vmids_above_the_smmus_limit_are_never_handed_out() {
    // A VMID16 CPU, an SMMU without: 8-bit VMIDs, 64..=255.
    let r = real_with(no_vmid16());
    let g = r.guest(0, config("a", &[0], true));
    let pool = Arc::new(VmidPool::for_machine(true, r.port.smmus.max_vmid()));
    let mut v = device(&g, &pool, 1023);
    let mut granted = 0;
    for i in 0..300u32 {
        match send(&mut v, attach(i + 1, 0x100 + i)) {
            Status::Ok => granted += 1,
            Status::Nomem => break,
            other => panic!("attach {i}: {other:?}"),
        }
    }
    assert_eq!(granted, 192, "every 8-bit domain VMID, then NOMEM");
    for i in 0..granted {
        let (vmid, _) = r.ste(0x100 + i).expect("translates");
        assert!((64..=255).contains(&vmid), "vmid {vmid}");
    }
    let over = 0x100 + granted;
    assert_eq!(
        r.ste(over).map(|(vmid, _)| vmid),
        Some(unattached_vmid(0)),
        "the refused endpoint stays unattached"
    );
    assert_eq!(v.domain_of(over), None);
}

#[test]
fn one_guests_domains_cannot_exhaust_anothers() {
    let r = real_with(QEMU_S2);
    let a = r.guest(0, config("a", &[0], true));
    let b = r.guest(1, config("b", &[1], true));
    // Both guests' devices share the machine's pool, 8-bit (192 VMIDs).
    let pool = Arc::new(VmidPool::new(MAX_VMID8));
    let mut va = device(&a, &pool, 32);
    let mut vb = device(&b, &pool, 32);
    // Guest a asks for as many domains as it can name endpoints for.
    let mut statuses = Vec::new();
    for i in 0..200u32 {
        statuses.push(send(&mut va, attach(i + 1, 0x100 + i)));
    }
    assert!(statuses[..32].iter().all(|s| *s == Status::Ok));
    assert!(statuses[32..].iter().all(|s| *s == Status::Nomem));
    assert_eq!(va.domain_ids().count(), 32);
    // Over budget nothing changes: an attached endpoint stays where it is.
    assert_eq!(send(&mut va, attach(500, 0x100)), Status::Nomem);
    assert_eq!(va.domain_of(0x100), Some(1));
    assert_eq!(va.domain_ids().count(), 32);
    // Guest b still gets its whole budget.
    for i in 0..32u32 {
        assert_eq!(
            send(&mut vb, attach(i + 1, 0x800 + i)),
            Status::Ok,
            "b's domain {i}"
        );
    }
    assert_eq!(send(&mut vb, attach(33, 0x900)), Status::Nomem);
    assert_eq!(pool.in_use(), 64);
}

#[test]
fn random_requests_and_smmu_failures_never_leave_a_stream_on_freed_tables() {
    use super::io_budget::{Rng, random_request};
    // Random requests on two endpoints, `bypass` writes, and an SMMU that
    // now and then stops consuming commands or consumes them slowly: after
    // every batch no stream table entry (nor the SMMU's fetched copy)
    // points at freed tables, and the domains stay within the budget.
    let iterations: u64 = std::env::var("PARTITA_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(300);
    let seed: u64 = std::env::var("PARTITA_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_fa11_c105_0002);
    let r = real_with(QEMU_S2);
    let g = r.guest(0, config("a", &[0], true));
    let pool = Arc::new(VmidPool::for_machine(true, r.port.smmus.max_vmid()));
    let budget = 8;
    let mut v = device(&g, &pool, budget);
    let mut rng = Rng(seed);
    let (mut failed, mut ok) = (0, 0);
    for step in 0..iterations {
        r.fake.state().consume = match rng.below(12) {
            0 => Consume::Never,
            1 => Consume::PerConsRead(1),
            _ => Consume::OnProd,
        };
        if rng.below(16) == 0 {
            let _ = v.set_config(0x24, 1, rng.below(2));
        }
        let n = 1 + rng.below(4);
        let batch: Vec<(Vec<u8>, usize)> = (0..n)
            .map(|_| (random_request(&mut rng).encode(), 4))
            .collect();
        let out = v.process_batch(batch);
        for c in &out.completions {
            match c.response.status() {
                Some(Status::Ok) => ok += 1,
                Some(Status::Deverr) => failed += 1,
                _ => {}
            }
        }
        assert_no_dangling_ste(&r, &g, &v, &[EP, EP + 1]);
        let b = v.backend();
        assert!(
            b.vmids().held() <= budget,
            "step {step} (seed {seed:#x}): {} VMIDs held",
            b.vmids().held()
        );
        assert!(
            v.domain_ids().count() + b.kept_domains() <= budget,
            "step {step} (seed {seed:#x}): over the domain budget"
        );
    }
    assert!(ok > 0 && failed > 0, "ok {ok}, failed {failed}");
    // A working SMMU and a reset: every table and VMID comes back.
    r.fake.state().consume = Consume::OnProd;
    let _ = v.reset();
    assert_eq!(send(&mut v, attach(1, EP)), Status::Ok, "confirms EP");
    assert_eq!(
        send(&mut v, attach(1, EP + 1)),
        Status::Ok,
        "confirms EP + 1"
    );
    v.reset().unwrap();
    assert_eq!(v.backend().kept_domains(), 0);
    assert_eq!(v.backend().vmids().held(), 0);
    assert_no_dangling_ste(&r, &g, &v, &[EP, EP + 1]);
}
