//! Stream table format selection, layout and lazy level-2 tables.

use super::fake::{FakeSmmu, QEMU_S2};
use super::s2;
use crate::smmu::SmmuError;
use crate::smmu::dma::{CacheSync, NoCacheOps};
use crate::smmu::idregs::StreamTableLevels::{Linear, TwoLevel};
use crate::smmu::regs::{STRTAB_BASE_ADDR_MASK, genmask};
use crate::smmu::ste::{Ste, SteOptions};
use crate::smmu::streams::SidRange;
use crate::smmu::streamtable::{StreamTable, StreamTableFormat as F, choose_format};

#[test]
fn format_choice() {
    assert_eq!(choose_format(0, TwoLevel), (F::Linear, 0));
    assert_eq!(choose_format(6, TwoLevel), (F::Linear, 6));
    // 1024 STEs are exactly 64 KiB.
    assert_eq!(choose_format(10, TwoLevel), (F::Linear, 10));
    assert_eq!(choose_format(11, TwoLevel), (F::TwoLevel, 11));
    assert_eq!(choose_format(16, TwoLevel), (F::TwoLevel, 16));
    assert_eq!(choose_format(32, TwoLevel), (F::TwoLevel, 24));
    assert_eq!(choose_format(16, Linear), (F::Linear, 16));
    assert_eq!(choose_format(20, Linear), (F::Linear, 16));
    assert_eq!(choose_format(63, Linear), (F::Linear, 16));
}

fn sync() -> CacheSync<NoCacheOps> {
    CacheSync::new(NoCacheOps, true)
}

#[test]
fn linear_table_is_aligned_and_aborts() {
    let mut mem = FakeSmmu::new(QEMU_S2);
    // Misalign the allocator first.
    crate::smmu::dma::DmaMemory::alloc_zeroed(&mut mem, 8, 8);
    let t = StreamTable::new(&mut mem, &sync(), 10, TwoLevel).expect("table");
    assert_eq!(t.format(), F::Linear);
    assert_eq!(t.base_cfg_reg(), 10);
    assert_eq!((t.base_reg() & STRTAB_BASE_ADDR_MASK) % (64 * 1024), 0);
    for sid in [0, 1, 1023] {
        assert_eq!(t.ste(sid), Ok(Some(Ste::ABORT)));
    }
    assert_eq!(
        t.ste(1024),
        Err(SmmuError::BadStreamId {
            sid: 1024,
            limit: 1024
        })
    );
}

#[test]
fn two_level_tables_appear_on_demand() {
    let mut mem = FakeSmmu::new(QEMU_S2);
    let sync = sync();
    let mut t = StreamTable::new(&mut mem, &sync, 11, TwoLevel).expect("table");
    assert_eq!(t.format(), F::TwoLevel);
    // FMT 2-level, SPLIT 8, LOG2SIZE 11.
    assert_eq!(t.base_cfg_reg(), 1 << 16 | 8 << 6 | 11);
    assert_eq!(t.ste(0x305), Ok(None));
    let ste = Ste::stage2(&s2(3), SteOptions::default());
    t.set_ste(&mut mem, &sync, 0x305, &ste).expect("set");
    assert_eq!(t.ste(0x305), Ok(Some(ste)));
    assert_eq!(t.ste(0x300), Ok(Some(Ste::ABORT)));
    assert_eq!(t.ste(0x3ff), Ok(Some(Ste::ABORT)));
    assert_eq!(t.ste(0x405), Ok(None));
    // The level-1 descriptor: Span 9 (256 STEs), L2Ptr 16 KiB aligned.
    let s = mem.state();
    let l1 = t.base_reg() & STRTAB_BASE_ADDR_MASK;
    let desc = s.read64(l1 + 3 * 8).expect("l1");
    assert_eq!(desc & 0x1f, 9);
    assert_eq!((desc & genmask(51, 6)) % 16384, 0);
    assert_eq!(s.read64(l1 + 2 * 8), Some(0));
    drop(s);
    // A second stream in the same range reuses the table.
    let slot = t.slot(&mut mem, &sync, 0x306).expect("slot");
    assert!(!slot.new_l2);
    assert_eq!(slot.phys, (desc & genmask(51, 6)) + 6 * 64);
    let slot = t.slot(&mut mem, &sync, 0x7ff).expect("slot");
    assert!(slot.new_l2);
    assert!(matches!(
        t.slot(&mut mem, &sync, 0x800),
        Err(SmmuError::BadStreamId { .. })
    ));
}

#[test]
fn linear_only_smmu_is_capped() {
    let mut mem = FakeSmmu::new(QEMU_S2);
    let t = StreamTable::new(&mut mem, &sync(), 20, Linear).expect("table");
    assert_eq!(
        (t.format(), t.log2size(), t.sid_limit()),
        (F::Linear, 16, 1 << 16)
    );
    assert_eq!(t.ste(0xffff), Ok(Some(Ste::ABORT)));
    assert!(t.check_sid(0x1_0000).is_err());
}

#[test]
fn out_of_memory_for_a_level2_table() {
    let mut mem = FakeSmmu::new(QEMU_S2);
    let sync = sync();
    let mut t = StreamTable::new(&mut mem, &sync, 16, TwoLevel).expect("table");
    // The 2 KiB level-1 table sits in the first page; leave 4 KiB.
    let left = super::fake::MEM_BYTES - 8192;
    crate::smmu::dma::DmaMemory::alloc_zeroed(&mut mem, left, 4096).expect("fill");
    assert_eq!(
        t.set_ste(&mut mem, &sync, 5, &Ste::ABORT),
        Err(SmmuError::NoMemory {
            what: "level-2 stream table"
        })
    );
    assert_eq!(t.ste(5), Ok(None));
}

#[test]
fn entries_walk_only_allocated_level2_tables() {
    let mut mem = FakeSmmu::new(QEMU_S2);
    let sync = sync();
    let mut t = StreamTable::new(&mut mem, &sync, 16, TwoLevel).expect("table");
    let all = SidRange {
        first: 0,
        last: 0xffff,
    };
    assert_eq!(t.entries(all).count(), 0);
    let ste = Ste::stage2(&s2(3), SteOptions::default());
    t.set_ste(&mut mem, &sync, 0x305, &ste).expect("set");
    t.set_ste(&mut mem, &sync, 0x1200, &Ste::ABORT)
        .expect("set");
    let sids: Vec<u32> = t.entries(all).map(|e| e.sid).collect();
    let want: Vec<u32> = (0x300..0x400).chain(0x1200..0x1300).collect();
    assert_eq!(sids, want);
    // Read and written in place.
    let e = t.entries(SidRange::one(0x305)).next().expect("entry");
    assert_eq!((e.read(), e.word0()), (ste, ste.0[0]));
    e.write(&sync, &Ste::ABORT, 0..1);
    let mut offline = ste;
    offline.0[0] = Ste::ABORT.0[0];
    assert_eq!(t.ste(0x305), Ok(Some(offline)));
    // Partial spans, a range past the table (clamped), empty ranges.
    let part = SidRange {
        first: 0x3f0,
        last: 0x1210,
    };
    assert_eq!(t.entries(part).count(), 16 + 17);
    let past = SidRange {
        first: 0x12ff,
        last: u32::MAX,
    };
    assert_eq!(t.entries(past).map(|e| e.sid).collect::<Vec<_>>(), [0x12ff]);
    let empty = SidRange { first: 9, last: 2 };
    assert_eq!(t.entries(empty).count(), 0);
    assert_eq!(t.entries(SidRange::one(0x1_0000)).count(), 0);
}

#[test]
fn populate_allocates_missing_level2_tables_in_order() {
    let mut mem = FakeSmmu::new(QEMU_S2);
    let sync = sync();
    let mut t = StreamTable::new(&mut mem, &sync, 16, TwoLevel).expect("table");
    t.set_ste(&mut mem, &sync, 0x305, &Ste::ABORT).expect("set");
    let mut created = Vec::new();
    let r = SidRange {
        first: 0x2f0,
        last: 0x410,
    };
    t.populate(&mut mem, &sync, r, &mut created)
        .expect("populate");
    assert_eq!(created, [2, 4]);
    assert_eq!(t.entries(r).count(), 0x410 - 0x2f0 + 1);
    assert!(t.entries(r).all(|e| e.read() == Ste::ABORT));
    created.clear();
    t.populate(&mut mem, &sync, r, &mut created).expect("again");
    assert!(created.is_empty());
    assert_eq!(
        t.populate(
            &mut mem,
            &sync,
            SidRange {
                first: 0xff00,
                last: 0x1_0005
            },
            &mut created
        ),
        Err(SmmuError::BadStreamId {
            sid: 0x1_0000,
            limit: 0x1_0000
        })
    );
    assert!(created.is_empty());
    // A linear table has every entry already.
    let mut lin = StreamTable::new(&mut mem, &sync, 10, TwoLevel).expect("table");
    lin.populate(
        &mut mem,
        &sync,
        SidRange {
            first: 0,
            last: 0x3ff,
        },
        &mut created,
    )
    .expect("linear");
    assert!(created.is_empty());
    assert_eq!(
        lin.entries(SidRange {
            first: 0,
            last: u32::MAX
        })
        .count(),
        0x400
    );
}
