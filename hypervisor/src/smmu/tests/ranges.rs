//! Attach, detach and abort over stream ranges: the work and the memory
//! follow the stream table entries that exist (the level-2 tables in
//! use), never the size of the range; nothing is materialised per
//! StreamID.

use super::fake::{FakeSmmu, QEMU_S2};
use super::heapcount::peak_during;
use super::{probe, s2};
use crate::smmu::SmmuError;
use crate::smmu::cmd::Cmd;
use crate::smmu::driver::CFGI_STE_LIMIT;
use crate::smmu::ste::{Ste, SteConfig};
use crate::smmu::streams::SidRange;

/// Every requester ID of a PCIe host: what a guest owning QEMU's bridge
/// gives back when it stops.
const ALL: SidRange = SidRange {
    first: 0,
    last: 0xffff,
};

/// Bytes one call may allocate whatever the size of its ranges: the
/// merged ranges and a VMID set (the old detach took ~700 KB for ALL).
const SMALL: usize = 1024;

const L2_TABLE_BYTES: u64 = 256 * 64;

fn non_coherent() -> FakeSmmu {
    let mut idr = QEMU_S2;
    idr[0] &= !(1 << 4); // no COHACC: every STE write is cleaned, and seen
    FakeSmmu::new(idr)
}

#[test]
fn detaching_a_whole_bus_range_visits_only_existing_tables() {
    let fake = non_coherent();
    let mut smmu = probe(&fake);
    smmu.attach_stage2([0x10, 0x11], &s2(3)).expect("attach");
    smmu.attach_stage2([0x2345], &s2(4)).expect("attach");
    // A level-2 table whose streams all abort again.
    smmu.attach_stage2([0x4500], &s2(5)).expect("attach");
    smmu.detach([0x4500]).expect("detach");
    let dma = fake.state().dma_used();
    {
        let mut s = fake.state();
        s.consumed.clear();
        s.cleans.clear();
    }

    let (res, peak) = peak_during(|| smmu.detach([ALL]));
    res.expect("detach");
    assert!(
        peak < SMALL,
        "detaching 65536 streams allocated {peak} bytes"
    );

    let s = fake.state();
    // Only the streams that had a live entry: abort is what the SMMU
    // fetches at their CFGI_STE, then their VMIDs' TLBs go, after a sync.
    assert_eq!(
        s.cmds(),
        [
            Cmd::cfgi_ste(0x10, true),
            Cmd::cfgi_ste(0x11, true),
            Cmd::cfgi_ste(0x2345, true),
            Cmd::sync(),
            Cmd::tlbi_s12_vmall(3),
            Cmd::tlbi_s12_vmall(4),
            Cmd::sync(),
        ]
    );
    assert!(s.consumed[..3].iter().all(|c| c.ste == Some(Ste::ABORT)));
    // Two STE writes (word 0, then words 1-7) per stream that changed,
    // none for the 65533 others.
    let sizes: Vec<usize> = s.table_cleans().iter().map(|c| c.1).collect();
    assert_eq!(sizes, [8, 56, 8, 56, 8, 56]);
    // No level-2 table was allocated: streams without one still have
    // none (they keep aborting with C_BAD_STREAMID).
    assert_eq!(s.dma_used(), dma);
    for sid in [0x100, 0x2200, 0x4600, 0xffff] {
        assert_eq!(s.walk_ste(sid), None, "sid {sid:#x}");
    }
    // Every stream of the tables that exist aborts.
    for sid in (0..0x100).chain(0x2300..0x2400).chain(0x4500..0x4600) {
        assert_eq!(s.walk_ste(sid), Some(Ste::ABORT), "sid {sid:#x}");
    }
    drop(s);

    // Again: nothing left to do, nothing issued or written.
    {
        let mut s = fake.state();
        s.consumed.clear();
        s.cleans.clear();
    }
    smmu.detach([ALL]).expect("detach");
    assert!(fake.state().consumed.is_empty());
    assert!(fake.state().table_cleans().is_empty());
}

#[test]
fn detaching_many_live_streams_takes_one_cfgi_all() {
    let fake = FakeSmmu::new(QEMU_S2);
    let mut smmu = probe(&fake);
    smmu.attach_stage2([0x100..=0x1ff], &s2(7)).expect("attach");
    smmu.attach_stage2([0x300], &s2(8)).expect("attach");
    fake.state().consumed.clear();
    // Overlapping and unsorted ranges are merged first.
    let (res, peak) = peak_during(|| smmu.detach([SidRange::one(0x300), ALL, ALL]));
    res.expect("detach");
    assert!(peak < SMALL, "{peak} bytes");
    let s = fake.state();
    assert_eq!(
        s.cmds(),
        [
            Cmd::cfgi_all(),
            Cmd::sync(),
            Cmd::tlbi_s12_vmall(7),
            Cmd::tlbi_s12_vmall(8),
            Cmd::sync(),
        ]
    );
    for sid in (0x100..0x200).chain([0x300]) {
        assert_eq!(s.walk_ste(sid), Some(Ste::ABORT), "sid {sid:#x}");
    }
}

#[test]
fn the_cfgi_limit_is_per_step() {
    let fake = FakeSmmu::new(QEMU_S2);
    let mut smmu = probe(&fake);
    let n = CFGI_STE_LIMIT as u32;
    smmu.attach_stage2([0..=n], &s2(1)).expect("attach");
    // Exactly the limit: one CFGI_STE each.
    fake.state().consumed.clear();
    smmu.detach([1..=n]).expect("detach");
    let cmds = fake.state().cmds();
    assert_eq!(cmds.len(), CFGI_STE_LIMIT + 3);
    assert_eq!(cmds[..CFGI_STE_LIMIT].last(), Some(&Cmd::cfgi_ste(n, true)));
    // One more: CFGI_ALL.
    smmu.attach_stage2([0..=n], &s2(1)).expect("attach");
    fake.state().consumed.clear();
    smmu.detach([0..=n]).expect("detach");
    assert_eq!(
        fake.state().cmds(),
        [
            Cmd::cfgi_all(),
            Cmd::sync(),
            Cmd::tlbi_s12_vmall(1),
            Cmd::sync()
        ]
    );
}

#[test]
fn attaching_a_whole_bus_range_allocates_its_tables_and_little_else() {
    let fake = FakeSmmu::new(QEMU_S2);
    let mut smmu = probe(&fake);
    fake.state().consumed.clear();
    let dma = fake.state().dma_used();
    let cfg = s2(2);
    let (res, peak) = peak_during(|| smmu.attach_stage2([ALL], &cfg));
    res.expect("attach");
    // What stays: the index of the 256 level-2 tables (a BTreeMap); what
    // goes: the ranges and the list of tables created.
    assert!(
        peak < 32 * 1024,
        "attaching 65536 streams allocated {peak} bytes"
    );
    // 256 level-2 tables (the first one aligned to its size).
    let used = fake.state().dma_used() - dma;
    assert!((256 * L2_TABLE_BYTES..257 * L2_TABLE_BYTES).contains(&used));
    assert_eq!(
        fake.state().cmds(),
        [Cmd::cfgi_all(), Cmd::sync(), Cmd::cfgi_all(), Cmd::sync()]
    );
    let want = Ste::stage2(&cfg, smmu.ste_options());
    {
        let s = fake.state();
        assert!((0..=0xffff).all(|sid| s.walk_ste(sid) == Some(want)));
    }
    // The same again: nothing to do.
    fake.state().consumed.clear();
    smmu.attach_stage2([ALL], &cfg).expect("attach");
    assert!(fake.state().consumed.is_empty());
    // Moving them all to another VMID: offline, words, word 0.
    smmu.attach_stage2([ALL], &s2(6)).expect("attach");
    let cmds = fake.state().cmds();
    assert_eq!(cmds, [Cmd::cfgi_all(), Cmd::sync()].repeat(3));
    // And back to abort, with one CFGI_ALL.
    fake.state().consumed.clear();
    let (res, peak) = peak_during(|| smmu.detach([ALL]));
    res.expect("detach");
    assert!(peak < SMALL, "{peak} bytes");
    assert_eq!(
        fake.state().cmds(),
        [
            Cmd::cfgi_all(),
            Cmd::sync(),
            Cmd::tlbi_s12_vmall(6),
            Cmd::sync()
        ]
    );
    let s = fake.state();
    assert!((0..=0xffff).all(|sid| s.walk_ste(sid) == Some(Ste::ABORT)));
}

#[test]
fn aborting_one_stream_leaves_its_neighbours() {
    let fake = FakeSmmu::new(QEMU_S2);
    let mut smmu = probe(&fake);
    smmu.attach_stage2([0x10, 0x11], &s2(3)).expect("attach");
    fake.state().consumed.clear();
    smmu.detach([SidRange::one(0x11)]).expect("detach");
    let s = fake.state();
    assert_eq!(
        s.cmds(),
        [
            Cmd::cfgi_ste(0x11, true),
            Cmd::sync(),
            Cmd::tlbi_s12_vmall(3),
            Cmd::sync()
        ]
    );
    assert_eq!(s.walk_ste(0x11), Some(Ste::ABORT));
    assert_eq!(
        s.walk_ste(0x10).map(|e| e.config()),
        Some(SteConfig::Stage2)
    );
}

#[test]
fn ranges_are_checked_before_anything_changes() {
    let mut idr = QEMU_S2;
    idr[1] = (idr[1] & !0x3f) | 10; // 1024 StreamIDs: a linear table
    let fake = FakeSmmu::new(idr);
    let mut smmu = probe(&fake);
    smmu.attach_stage2([0..=5], &s2(1)).expect("attach");
    fake.state().consumed.clear();
    let writes = fake.state().writes.len();
    let beyond = SidRange {
        first: 0,
        last: 0x5ff,
    };
    let refused = Err(SmmuError::BadStreamId {
        sid: 0x400,
        limit: 0x400,
    });
    assert_eq!(smmu.detach([beyond]), refused);
    assert_eq!(
        smmu.attach_stage2([SidRange::one(7), beyond], &s2(2)),
        refused
    );
    assert!(fake.state().consumed.is_empty());
    assert_eq!(fake.state().writes.len(), writes);
    let live = Ste::stage2(&s2(1), smmu.ste_options());
    assert!((0..=5).all(|sid| smmu.ste(sid) == Ok(Some(live))));
    // An empty range is nothing; a linear table's entries all exist.
    smmu.detach([SidRange { first: 5, last: 2 }])
        .expect("empty");
    assert!(fake.state().consumed.is_empty());
    smmu.detach([0..=0x3ff]).expect("detach");
    assert_eq!(fake.state().cmds().len(), 6 + 3);
    assert!((0..0x400).all(|sid| smmu.ste(sid) == Ok(Some(Ste::ABORT))));
}
