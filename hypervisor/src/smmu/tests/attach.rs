//! Attach and detach: STE contents as the SMMU would fetch them, the
//! commands issued and their order, the two-write sequence with word 0
//! last, and invalidation of ranges and VMIDs.

use alloc::vec::Vec;

use super::fake::{FakeSmmu, QEMU_S2};
use super::{probe, s2};
use crate::smmu::SmmuError;
use crate::smmu::cmd::{Cmd, op};
use crate::smmu::driver::CFGI_STE_LIMIT;
use crate::smmu::ste::{Ste, SteConfig};

#[test]
fn attach_writes_words_then_word0() {
    let fake = FakeSmmu::new(QEMU_S2);
    let mut smmu = probe(&fake);
    fake.state().consumed.clear();
    let cfg = s2(7);
    smmu.attach_stage2([0x10, 0x11], &cfg).expect("attach");
    let want = Ste::stage2(&cfg, smmu.ste_options());
    let s = fake.state();
    // 0x10 created the level-2 table: its CFGI_STE is non-leaf (the
    // level-1 descriptor may be cached); 0x11 shares that descriptor.
    assert_eq!(
        s.cmds(),
        [
            Cmd::cfgi_ste(0x10, false),
            Cmd::cfgi_ste(0x11, true),
            Cmd::sync(),
            Cmd::cfgi_ste(0x10, false),
            Cmd::cfgi_ste(0x11, true),
            Cmd::sync(),
        ]
    );
    // At the first CFGI the SMMU sees word 0 still abort, words 1-7 new.
    let first = s.consumed[0].ste.expect("reachable");
    assert_eq!(first.config(), SteConfig::Abort);
    assert_eq!(&first.0[1..], &want.0[1..]);
    // At the last one, the complete entry.
    let last = s.consumed[4].ste.expect("reachable");
    assert_eq!(last, want);
    assert_eq!(s.walk_ste(0x10), Some(want));
    assert_eq!(s.walk_ste(0x11), Some(want));
    // Neighbours in the same level-2 table abort.
    assert_eq!(s.walk_ste(0x12), Some(Ste::ABORT));
    assert_eq!(s.walk_ste(0x110), None);
    assert_eq!(smmu.ste(0x10), Ok(Some(want)));
    assert_eq!(want.s2_config(), Some(cfg));
}

#[test]
fn reattach_takes_the_live_entry_offline_first() {
    let fake = FakeSmmu::new(QEMU_S2);
    let mut smmu = probe(&fake);
    smmu.attach_stage2([3], &s2(1)).expect("attach");
    // Same config again: nothing to do.
    fake.state().consumed.clear();
    smmu.attach_stage2([3], &s2(1)).expect("attach");
    assert!(fake.state().consumed.is_empty());

    smmu.attach_stage2([3], &s2(2)).expect("attach");
    let old = Ste::stage2(&s2(1), smmu.ste_options());
    let new = Ste::stage2(&s2(2), smmu.ste_options());
    let s = fake.state();
    let leaf = Cmd::cfgi_ste(3, true);
    assert_eq!(
        s.cmds(),
        [leaf, Cmd::sync(), leaf, Cmd::sync(), leaf, Cmd::sync()]
    );
    // 1: word 0 abort, old words still there.
    let a = s.consumed[0].ste.expect("ste");
    assert_eq!(a.config(), SteConfig::Abort);
    assert_eq!(&a.0[1..], &old.0[1..]);
    // 2: new words, word 0 still abort.
    let b = s.consumed[2].ste.expect("ste");
    assert_eq!(b.config(), SteConfig::Abort);
    assert_eq!(&b.0[1..], &new.0[1..]);
    // 3: live with the new VMID.
    assert_eq!(s.consumed[4].ste, Some(new));
}

#[test]
fn detach_aborts_and_invalidates_the_vmid() {
    let fake = FakeSmmu::new(QEMU_S2);
    let mut smmu = probe(&fake);
    smmu.attach_stage2([0x100, 0x101], &s2(5)).expect("attach");
    smmu.attach_stage2([0x200], &s2(6)).expect("attach");
    fake.state().consumed.clear();
    // 0x300 has no level-2 table and 0x102 already aborts: skipped.
    smmu.detach([0x100, 0x101, 0x200, 0x300, 0x102])
        .expect("detach");
    let s = fake.state();
    assert_eq!(
        s.cmds(),
        [
            Cmd::cfgi_ste(0x100, true),
            Cmd::cfgi_ste(0x101, true),
            Cmd::cfgi_ste(0x200, true),
            Cmd::sync(),
            Cmd::tlbi_s12_vmall(5),
            Cmd::tlbi_s12_vmall(6),
            Cmd::sync(),
        ]
    );
    for sid in [0x100, 0x101, 0x200] {
        // The SMMU already saw the abort entry at the CFGI.
        assert_eq!(s.walk_ste(sid), Some(Ste::ABORT));
    }
    assert!(s.consumed[..3].iter().all(|c| c.ste == Some(Ste::ABORT)));
    drop(s);
    fake.state().consumed.clear();
    smmu.detach([0x100]).expect("detach");
    assert!(fake.state().consumed.is_empty(), "already detached");
}

#[test]
fn refusals_change_nothing() {
    let mut idr = QEMU_S2;
    idr[1] = (idr[1] & !0x3f) | 6; // 64 StreamIDs
    let fake = FakeSmmu::new(idr);
    let mut smmu = probe(&fake);
    fake.state().consumed.clear();
    let writes = fake.state().writes.len();
    assert_eq!(
        smmu.attach_stage2([1, 64], &s2(1)),
        Err(SmmuError::BadStreamId { sid: 64, limit: 64 })
    );
    assert_eq!(smmu.ste(1), Ok(Some(Ste::ABORT)));
    let bad = crate::smmu::ste::S2Config { sl0: 3, ..s2(1) };
    assert!(matches!(
        smmu.attach_stage2([1], &bad),
        Err(SmmuError::BadConfig(_))
    ));
    assert_eq!(
        smmu.detach([u32::MAX]),
        Err(SmmuError::BadStreamId {
            sid: u32::MAX,
            limit: 64
        })
    );
    assert!(fake.state().consumed.is_empty());
    assert_eq!(fake.state().writes.len(), writes);
}

#[test]
fn many_streams_at_once() {
    let fake = FakeSmmu::new(QEMU_S2);
    let mut smmu = probe(&fake);
    fake.state().consumed.clear();
    // A whole bus and one more, StreamID by StreamID: two level-2 tables,
    // more streams than CFGI_STE_LIMIT, so each step is one CFGI_ALL.
    smmu.attach_stage2(0..=0x100, &s2(9)).expect("attach");
    let want = Ste::stage2(&s2(9), smmu.ste_options());
    let s = fake.state();
    for sid in 0..=0x100 {
        assert_eq!(s.walk_ste(sid), Some(want));
    }
    assert_eq!(
        s.cmds(),
        [Cmd::cfgi_all(), Cmd::sync(), Cmd::cfgi_all(), Cmd::sync()]
    );
    drop(s);
    // Up to the limit, one CFGI_STE per stream.
    fake.state().consumed.clear();
    let n = CFGI_STE_LIMIT as u32;
    smmu.attach_stage2([0x200..=0x200 + n - 1], &s2(9))
        .expect("attach");
    let cmds = fake.state().cmds();
    assert_eq!(cmds.len(), 2 * (CFGI_STE_LIMIT + 1));
    assert_eq!(cmds[0], Cmd::cfgi_ste(0x200, false), "new level-2 table");
    assert!(
        cmds[1..CFGI_STE_LIMIT]
            .iter()
            .all(|c| c.opcode() == op::CFGI_STE && c.leaf())
    );
    assert_eq!(cmds[CFGI_STE_LIMIT], Cmd::sync());
}

#[test]
fn invalidate_range_uses_range_commands_then_syncs() {
    let fake = FakeSmmu::new(QEMU_S2);
    let mut smmu = probe(&fake);
    fake.state().consumed.clear();
    smmu.invalidate_range(4, 0x4000_0000, 0x2_0000)
        .expect("tlbi");
    let cmds = fake.state().cmds();
    assert_eq!(cmds.len(), 2);
    assert_eq!(cmds[0].opcode(), op::TLBI_S2_IPA);
    assert_eq!(
        (cmds[0].vmid(), cmds[0].ipa(), cmds[0].leaf()),
        (4, 0x4000_0000, true)
    );
    assert_eq!(cmds[0].tlbi_pages(), 32);
    assert_eq!(cmds[1], Cmd::sync());
    fake.state().consumed.clear();
    smmu.invalidate_range(4, 0, 0).expect("empty");
    assert!(fake.state().consumed.is_empty());
    assert_eq!(
        smmu.invalidate_range(4, u64::MAX, 2),
        Err(SmmuError::BadRange)
    );
    smmu.invalidate_vmid(4).expect("vmall");
    assert_eq!(fake.state().cmds(), [Cmd::tlbi_s12_vmall(4), Cmd::sync()]);
}

#[test]
fn invalidate_without_ril_or_vmid16() {
    let mut idr = QEMU_S2;
    idr[3] &= !(1 << 10); // no RIL
    idr[0] &= !(1 << 18); // no VMID16
    let fake = FakeSmmu::new(idr);
    let mut smmu = probe(&fake);
    fake.state().consumed.clear();
    smmu.invalidate_range(4, 0x1000, 0x3000).expect("tlbi");
    let ipas: Vec<u64> = fake.state().cmds().iter().map(|c| c.ipa()).collect();
    assert_eq!(ipas, [0x1000, 0x2000, 0x3000, 0]);
    fake.state().consumed.clear();
    smmu.invalidate_range(4, 0, 1 << 30).expect("tlbi");
    assert_eq!(fake.state().cmds(), [Cmd::tlbi_s12_vmall(4), Cmd::sync()]);
    assert!(matches!(
        smmu.invalidate_vmid(256),
        Err(SmmuError::BadConfig(_))
    ));
    assert!(matches!(
        smmu.attach_stage2([1], &s2(256)),
        Err(SmmuError::BadConfig(_))
    ));
}

#[test]
fn non_coherent_ste_writes_are_cleaned_in_order() {
    let mut idr = QEMU_S2;
    idr[0] &= !(1 << 4);
    let fake = FakeSmmu::new(idr);
    let mut smmu = probe(&fake);
    fake.state().cleans.clear();
    smmu.attach_stage2([0x20], &s2(1)).expect("attach");
    let s = fake.state();
    // Level-2 table (16 KiB), level-1 descriptor, words 1-7, word 0; the
    // command batches in between, each command cleaned with its CMD_SYNC
    // (published together).
    let sizes: Vec<usize> = s.cleans.iter().map(|c| c.1).collect();
    assert_eq!(sizes, [16384, 8, 56, 32, 8, 32]);
    let ste = s.cleans[2].0 - 8;
    assert_eq!(s.cleans[4].0, ste);
    assert_eq!(Ste::stage2(&s2(1), smmu.ste_options()).s2_fields().ir0, 0);
}
