//! Host tests of the page-table code over a fake physical memory.

use super::*;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

/// Fake physical memory: each allocation is one contiguous boxed block
/// (as real table pages are), keyed by a made-up physical address from 1 GiB
/// up.
#[derive(Default)]
pub(crate) struct FakeMem {
    blocks: BTreeMap<u64, Box<[u64]>>,
    next: u64,
    pub limit: Option<usize>,
    /// Unlink emptied tables (and collect them in `retired`).
    pub retire: bool,
    /// Tables handed back by the page-table code, not yet freed.
    pub retired: Vec<u64>,
}

impl FakeMem {
    /// Table pages currently allocated.
    pub fn live(&self) -> usize {
        self.blocks.values().map(|b| b.len() / 512).sum()
    }

    /// A memory that retires emptied tables.
    pub fn retiring() -> Self {
        FakeMem {
            retire: true,
            ..FakeMem::default()
        }
    }

    /// Frees the retired tables (as after an invalidation), checking each
    /// is all zeros.
    pub fn reclaim(&mut self) -> usize {
        let retired = core::mem::take(&mut self.retired);
        for &pa in &retired {
            let block = self.blocks.get(&pa).expect("retired an unknown table");
            assert!(block.iter().all(|&d| d == 0), "retired table not empty");
            self.free_tables(pa, 1);
        }
        retired.len()
    }
}

impl TableMemory for FakeMem {
    fn alloc_tables(&mut self, pages: usize) -> Option<u64> {
        if self.limit.is_some_and(|l| self.live() + pages > l) {
            return None;
        }
        let align = pages as u64 * PAGE_SIZE;
        let base = (0x4000_0000 + self.next).next_multiple_of(align);
        self.blocks
            .insert(base, vec![0u64; 512 * pages].into_boxed_slice());
        self.next = base + align - 0x4000_0000;
        Some(base)
    }
    fn free_tables(&mut self, pa: u64, pages: usize) {
        let block = self.blocks.remove(&pa).expect("freeing an unknown block");
        assert_eq!(block.len(), 512 * pages, "freed with another size");
    }
    fn table_ptr(&self, pa: u64) -> *mut u64 {
        let (base, block) = self.blocks.range(..=pa).next_back().expect("unknown table");
        let off = ((pa - base) / 8) as usize;
        assert!(off < block.len(), "table outside its block");
        // SAFETY: in bounds of the block, as just checked.
        unsafe { (block.as_ptr() as *mut u64).add(off) }
    }
    fn retires(&self) -> bool {
        self.retire
    }
    fn retire_table(&mut self, pa: u64) {
        assert!(!self.retired.contains(&pa), "retired twice");
        self.retired.push(pa);
    }
}

const GIB: u64 = 1 << 30;
const MIB2: u64 = 2 << 20;

fn s1(mem: &mut FakeMem) -> PageTable<Stage1El2> {
    PageTable::new(mem, 48, 0).unwrap()
}

#[test]
fn maps_and_translates_pages_and_blocks() {
    let mut m = FakeMem::default();
    let mut pt = s1(&mut m);
    pt.map(&mut m, 0x4000_0000, 0x4000_0000, GIB, Attrs::RWX)
        .unwrap();
    pt.map(&mut m, 0x900_0000, 0x900_0000, PAGE_SIZE, Attrs::DEVICE)
        .unwrap();
    // 1 GiB block: root + L1 only; the page needs L1 (shared), L2, L3.
    assert_eq!(m.live(), 4);
    assert_eq!(
        pt.translate(&m, 0x4123_4567),
        Some((0x4123_4567, Attrs::RWX))
    );
    let (pa, a) = pt.translate(&m, 0x900_0010).unwrap();
    assert_eq!(pa, 0x900_0010);
    assert_eq!(a.mem, MemType::Device);
    assert!(!a.exec);
    assert_eq!(pt.translate(&m, 0x900_1000), None);
}

#[test]
fn refuses_overlap_without_changing_anything() {
    let mut m = FakeMem::default();
    let mut pt = s1(&mut m);
    pt.map(&mut m, 0x20_0000, 0x8000_0000, PAGE_SIZE, Attrs::RW)
        .unwrap();
    let before = m.live();
    assert_eq!(
        pt.map(&mut m, MIB2, 0x1_0000_0000, MIB2, Attrs::RW),
        Err(MapError::AlreadyMapped)
    );
    assert_eq!(
        pt.map(&mut m, 0x1f_f000, 0, 2 * PAGE_SIZE, Attrs::RW),
        Err(MapError::AlreadyMapped)
    );
    assert_eq!(m.live(), before);
    assert_eq!(pt.translate(&m, 0x1f_f000), None);
}

#[test]
fn rejects_misaligned_and_out_of_range() {
    let mut m = FakeMem::default();
    let mut pt: PageTable<Stage2> = PageTable::new(&mut m, 40, 1).unwrap();
    assert_eq!(
        pt.map(&mut m, 0x1001, 0, PAGE_SIZE, Attrs::RW),
        Err(MapError::Misaligned)
    );
    assert_eq!(
        pt.map(&mut m, 0, 0x10, PAGE_SIZE, Attrs::RW),
        Err(MapError::Misaligned)
    );
    assert_eq!(
        pt.map(&mut m, 0, 0, 0, Attrs::RW),
        Err(MapError::Misaligned)
    );
    assert_eq!(
        pt.map(&mut m, (1 << 40) - PAGE_SIZE, 0, 2 * PAGE_SIZE, Attrs::RW),
        Err(MapError::OutOfRange)
    );
    assert_eq!(
        pt.map(&mut m, u64::MAX - 0xfff, 0, PAGE_SIZE, Attrs::RW),
        Err(MapError::OutOfRange)
    );
    assert_eq!(
        pt.map(&mut m, 0, 1 << 48, PAGE_SIZE, Attrs::RW),
        Err(MapError::OutOfRange)
    );
}

#[test]
fn stage2_concatenated_root() {
    let mut m = FakeMem::default();
    // 40-bit IPA starting at level 1 needs 1024 root entries: two pages.
    let mut pt: PageTable<Stage2> = PageTable::new(&mut m, 40, 1).unwrap();
    assert_eq!(pt.root() % (2 * PAGE_SIZE), 0);
    assert_eq!(m.live(), 2);
    let high = (1 << 40) - GIB;
    pt.map(&mut m, high, 0x4000_0000, GIB, Attrs::RW).unwrap();
    assert_eq!(pt.translate(&m, high + 5), Some((0x4000_0005, Attrs::RW)));
    pt.destroy(&mut m);
    assert_eq!(m.live(), 0);
}

#[test]
fn stage2_attribute_encoding() {
    let ro = Attrs {
        write: false,
        ..Attrs::RW
    };
    let d = Stage2::encode(ro);
    assert_eq!(d & (0b11 << 6), 1 << 6, "S2AP read only");
    assert_eq!((d >> 2) & 0xf, 0b1111, "normal write-back");
    assert_eq!((d >> 8) & 3, 3, "inner shareable");
    assert_ne!(d & (1 << 10), 0, "access flag");
    assert_eq!(Stage2::decode(d), ro);
    let dev = Stage2::encode(Attrs::DEVICE);
    assert_eq!((dev >> 2) & 0xf, 0b0001);
    assert_eq!(Stage2::decode(dev), Attrs::DEVICE);
}

#[test]
fn stage2_encoding_by_table_is_the_direct_one() {
    // The table `encode` loads from against the encoding it was built
    // with, for all sixteen attribute sets, each decoding back.
    for mem in [MemType::Normal, MemType::Device] {
        for i in 0..8 {
            let a = Attrs {
                mem,
                read: i & 1 != 0,
                write: i & 2 != 0,
                exec: i & 4 != 0,
            };
            assert_eq!(Stage2::encode(a), Stage2::bits(a), "{a:?}");
            assert_eq!(Stage2::decode(Stage2::encode(a)), a, "{a:?}");
        }
    }
}

#[test]
fn stage1_el2_permission_encoding() {
    // EL2 regime without VHE: AP[2] (bit 7) read-only, AP[1] (bit 6) RES1,
    // XN (bit 54) execute-never; bit 53 is RES0 (no PXN at one EL).
    let bits = |a: Attrs| Stage1El2::encode(a);
    assert_eq!(bits(Attrs::RX) & (1 << 7), 1 << 7, "code is read-only");
    assert_eq!(bits(Attrs::RX) & (1 << 54), 0, "code is executable");
    assert_eq!(bits(Attrs::RO) & (1 << 7 | 1 << 54), 1 << 7 | 1 << 54);
    assert_eq!(bits(Attrs::RW) & (1 << 7 | 1 << 54), 1 << 54);
    assert_eq!(bits(Attrs::DEVICE) & (1 << 7 | 1 << 54), 1 << 54);
    for a in [Attrs::RX, Attrs::RO, Attrs::RW, Attrs::DEVICE] {
        assert_ne!(bits(a) & (1 << 6), 0, "AP[1] is RES1 at EL2");
        assert_eq!(bits(a) & (1 << 53), 0, "bit 53 is RES0 at EL2");
        assert_eq!(Stage1El2::decode(bits(a)), a);
    }
    assert_eq!(Attrs::RX.perms(), "r-x");
    assert_eq!(Attrs::RO.perms(), "r--");
    assert_eq!(Attrs::RW.perms(), "rw-");
    assert!(Attrs::RWX.writable_and_executable());
    assert!(!Attrs::RX.writable_and_executable() && !Attrs::RW.writable_and_executable());
}

#[test]
fn unmap_clears_and_refuses_splits() {
    let mut m = FakeMem::default();
    let mut pt: PageTable<Stage2> = PageTable::new(&mut m, 40, 1).unwrap();
    pt.map(&mut m, 0, 0x4000_0000, MIB2, Attrs::RW).unwrap();
    pt.map(&mut m, MIB2, 0x5000_0000, 3 * PAGE_SIZE, Attrs::RW)
        .unwrap();
    assert_eq!(
        pt.unmap(&mut m, PAGE_SIZE, PAGE_SIZE),
        Err(MapError::WouldSplit)
    );
    assert!(pt.translate(&m, PAGE_SIZE).is_some());
    // Holes are fine; the 2 MiB block and the pages go.
    pt.unmap(&mut m, 0, 2 * MIB2).unwrap();
    assert_eq!(pt.translate(&m, 0), None);
    assert_eq!(pt.translate(&m, MIB2 + PAGE_SIZE), None);
    // The freed range can be mapped again.
    pt.map(&mut m, 0, 0x6000_0000, 2 * MIB2, Attrs::RW).unwrap();
    assert_eq!(pt.translate(&m, MIB2 + 8).map(|t| t.0), Some(0x6020_0008));
}

#[test]
fn running_out_of_tables_rolls_back() {
    let mut m = FakeMem::default();
    let mut pt = s1(&mut m);
    m.limit = Some(m.live() + 3);
    // Needs L1, L2 and two L3 tables: the fourth allocation fails.
    let r = pt.map(&mut m, MIB2 - PAGE_SIZE, 0, 2 * PAGE_SIZE, Attrs::RW);
    assert_eq!(r, Err(MapError::NoMemory));
    assert_eq!(pt.translate(&m, MIB2 - PAGE_SIZE), None);
}

#[test]
fn random_maps_match_a_model() {
    // The shared deterministic generator (crate::test_rng).
    let mut rng = crate::test_rng::Rng(0x1234_5678_9abc_def0u64);
    let mut rnd = move || rng.next();
    let mut m = FakeMem::default();
    let mut pt: PageTable<Stage2> = PageTable::new(&mut m, 36, 1).unwrap();
    let mut model: Vec<(u64, u64, u64)> = Vec::new(); // (va, pa, size)
    for _ in 0..500 {
        let pages = 1 + rnd() % 600;
        let va = (rnd() % (1 << 24)) * PAGE_SIZE;
        let pa = (rnd() % (1 << 24)) * PAGE_SIZE;
        let size = pages * PAGE_SIZE;
        if rnd() % 3 == 0 && !model.is_empty() {
            let i = (rnd() as usize) % model.len();
            let (v, _, s) = model.remove(i);
            pt.unmap(&mut m, v, s).unwrap();
            continue;
        }
        let overlaps = model.iter().any(|&(v, _, s)| va < v + s && v < va + size);
        let r = pt.map(&mut m, va, pa, size, Attrs::RW);
        if va + size > 1 << 36 {
            assert_eq!(r, Err(MapError::OutOfRange));
        } else if overlaps {
            assert_eq!(r, Err(MapError::AlreadyMapped));
        } else {
            r.unwrap();
            model.push((va, pa, size));
        }
    }
    for &(v, p, s) in &model {
        for probe in [v, v + s / 2 / PAGE_SIZE * PAGE_SIZE, v + s - 1] {
            assert_eq!(pt.translate(&m, probe).map(|t| t.0), Some(p + (probe - v)));
        }
    }
}

/// One-descriptor maps and unmaps (the virtio-iommu's usual request) take
/// a shortcut walk; it must agree with the general walk at every boundary.
#[test]
fn single_descriptor_shortcut_matches_the_general_rules() {
    let mut m = FakeMem::default();
    let mut t = PageTable::<Stage2>::new(&mut m, 40, 1).unwrap();
    let rw = Attrs::RW;
    // A page inside a block, and a block over a page: refused, unchanged.
    t.map(&mut m, MIB2, 0x8000_0000, MIB2, rw).unwrap();
    assert_eq!(
        t.map(&mut m, MIB2 + 0x1000, 0x9000_0000, 0x1000, rw),
        Err(MapError::AlreadyMapped)
    );
    t.map(&mut m, 2 * MIB2 + 0x3000, 0x9000_3000, 0x1000, rw)
        .unwrap();
    assert_eq!(
        t.map(&mut m, 2 * MIB2, 0xa000_0000, MIB2, rw),
        Err(MapError::AlreadyMapped)
    );
    assert_eq!(
        t.translate(&m, 2 * MIB2 + 0x3000).map(|x| x.0),
        Some(0x9000_3000)
    );
    // The same page again: refused.
    assert_eq!(
        t.map(&mut m, 2 * MIB2 + 0x3000, 0x9000_3000, 0x1000, rw),
        Err(MapError::AlreadyMapped)
    );
    // A page of a block cannot be unmapped alone; the block can.
    assert_eq!(
        t.unmap(&mut m, MIB2 + 0x1000, 0x1000),
        Err(MapError::WouldSplit)
    );
    assert_eq!(t.translate(&m, MIB2).map(|x| x.0), Some(0x8000_0000));
    t.unmap(&mut m, MIB2, MIB2).unwrap();
    assert_eq!(t.translate(&m, MIB2), None);
    // A block-sized unmap over a table of pages removes the pages.
    t.unmap(&mut m, 2 * MIB2, MIB2).unwrap();
    assert_eq!(t.translate(&m, 2 * MIB2 + 0x3000), None);
    // Unmapping what was never mapped (no table on the way) is fine.
    t.unmap(&mut m, 40 * MIB2, 0x1000).unwrap();
    // Once emptied, the table under the block's slot takes a block or a
    // page again.
    t.map(&mut m, 2 * MIB2 + 0x5000, 0x9000_5000, 0x1000, rw)
        .unwrap();
    assert_eq!(
        t.translate(&m, 2 * MIB2 + 0x5000).map(|x| x.0),
        Some(0x9000_5000)
    );
    // A misaligned output address is not one descriptor: the general
    // walk maps it with pages.
    t.map(&mut m, 8 * MIB2, 0x9010_0000 + 0x1000, MIB2, rw)
        .unwrap();
    assert_eq!(
        t.translate(&m, 8 * MIB2 + 0x2000).map(|x| x.0),
        Some(0x9010_3000)
    );
}

/// Checks every table below the root: its descriptor's count equals its
/// valid entries and (with `no_empty`) it is not empty. Returns the tables.
fn check_counts<F: Format>(pt: &PageTable<F>, mem: &FakeMem, no_empty: bool) -> usize {
    // The one emptied table the table may keep linked (its `spare`).
    let spare = pt
        .spare
        .get()
        .and_then(|(va, level)| pt.table_at(mem, va, level));
    let spare_is = |t: u64| spare == Some(t);
    /// (valid entries of `table`, tables below it)
    fn walk(
        mem: &FakeMem,
        table: u64,
        level: usize,
        no_empty: bool,
        spare_is: &dyn Fn(u64) -> bool,
    ) -> (u64, usize) {
        let ptr = mem.table_ptr(table);
        let (mut valid, mut tables) = (0, 0);
        for i in 0..ENTRIES {
            // SAFETY: live table page, index in range.
            let d = unsafe { ptr.add(i).read_volatile() };
            if d & VALID == 0 {
                continue;
            }
            valid += 1;
            if level < 3 && d & TABLE_OR_PAGE != 0 {
                let sub = d & OA_MASK;
                let (live, below) = walk(mem, sub, level + 1, no_empty, spare_is);
                assert_eq!(
                    count_of(d),
                    live,
                    "count of table {sub:#x} at level {}",
                    level + 1
                );
                assert!(
                    !no_empty || live > 0 || spare_is(sub),
                    "empty table {sub:#x} left linked (not the spare)"
                );
                tables += 1 + below;
            }
        }
        (valid, tables)
    }
    let pages = pt.root_entries.div_ceil(ENTRIES);
    (0..pages)
        .map(|p| {
            walk(
                mem,
                pt.root + p as u64 * PAGE_SIZE,
                pt.start_level,
                no_empty,
                &spare_is,
            )
            .1
        })
        .sum()
}

fn io_table(mem: &mut FakeMem) -> PageTable<Stage2> {
    PageTable::new(mem, 40, 1).unwrap()
}

#[test]
fn emptied_tables_are_retired_then_freed_by_the_owner() {
    let mut m = FakeMem::retiring();
    let mut pt = io_table(&mut m);
    let start = m.live();
    assert_eq!(start, 2, "a concatenated root of two pages");
    pt.map(&mut m, 0x20_0000, 0x4000_0000, PAGE_SIZE, Attrs::RW)
        .unwrap();
    pt.map(&mut m, 0x20_1000, 0x4000_1000, PAGE_SIZE, Attrs::RW)
        .unwrap();
    assert_eq!(m.live(), start + 2, "L2 and L3");
    assert_eq!(check_counts(&pt, &m, true), 2);
    pt.unmap(&mut m, 0x20_0000, PAGE_SIZE).unwrap();
    assert!(m.retired.is_empty(), "the L3 table still maps a page");
    pt.unmap(&mut m, 0x20_1000, PAGE_SIZE).unwrap();
    assert!(m.retired.is_empty(), "the emptied L3 is kept as the spare");
    assert!(pt.has_spare());
    assert_eq!(
        check_counts(&pt, &m, true),
        2,
        "linked, and allowed: the spare"
    );
    pt.release_spare(&mut m);
    assert_eq!(m.retired.len(), 2, "L3 then the L2 it emptied");
    assert_eq!(pt.translate(&m, 0x20_1000), None);
    assert_eq!(check_counts(&pt, &m, true), 0);
    assert_eq!(m.reclaim(), 2);
    assert_eq!(m.live(), start);
}

#[test]
fn without_retiring_memory_emptied_tables_stay() {
    let mut m = FakeMem::default();
    let mut pt = io_table(&mut m);
    pt.map(&mut m, 0x20_0000, 0x4000_0000, PAGE_SIZE, Attrs::RW)
        .unwrap();
    pt.unmap(&mut m, 0x20_0000, PAGE_SIZE).unwrap();
    assert_eq!(m.live(), 4);
    assert!(m.retired.is_empty());
    assert_eq!(check_counts(&pt, &m, false), 2);
}

#[test]
fn a_map_loop_at_fresh_addresses_holds_steady_memory() {
    let mut m = FakeMem::retiring();
    let mut pt = io_table(&mut m);
    let start = m.live();
    for i in 0..8192u64 {
        let va = i * MIB2;
        pt.map(&mut m, va, 0x4000_0000, PAGE_SIZE, Attrs::RW)
            .unwrap();
        pt.unmap(&mut m, va, PAGE_SIZE).unwrap();
        m.reclaim();
        // At most the spare's L3 and the L2 above it stay.
        assert!(m.live() <= start + 2, "iteration {i}: {}", m.live());
    }
    pt.release_spare(&mut m);
    m.reclaim();
    assert_eq!(m.live(), start);
}

#[test]
fn the_spare_is_reused_by_the_next_map_and_retired_when_another_empties() {
    let mut m = FakeMem::retiring();
    let mut pt = io_table(&mut m);
    let start = m.live();
    pt.map(&mut m, 0x20_0000, 0x4000_0000, PAGE_SIZE, Attrs::RW)
        .unwrap();
    pt.unmap(&mut m, 0x20_0000, PAGE_SIZE).unwrap();
    // Mapping into the same 2 MiB takes no table.
    pt.map(&mut m, 0x20_3000, 0x4000_0000, PAGE_SIZE, Attrs::RW)
        .unwrap();
    assert_eq!(m.live(), start + 2);
    assert_eq!(check_counts(&pt, &m, true), 2);
    pt.unmap(&mut m, 0x20_3000, PAGE_SIZE).unwrap();
    // Another GiB: the old spare (and the L2 it empties) are retired when
    // the new L3 empties.
    pt.map(&mut m, 0x4000_0000, 0x4000_0000, PAGE_SIZE, Attrs::RW)
        .unwrap();
    pt.unmap(&mut m, 0x4000_0000, PAGE_SIZE).unwrap();
    assert_eq!(m.retired.len(), 2);
    assert_eq!(check_counts(&pt, &m, true), 2, "only the new spare's path");
    pt.release_spare(&mut m);
    assert_eq!(m.reclaim(), 4);
    assert_eq!(m.live(), start);
}

#[test]
fn a_map_out_of_tables_leaves_nothing_behind() {
    let mut m = FakeMem::retiring();
    let mut pt = io_table(&mut m);
    pt.map(&mut m, 0x4000_0000, 0x8000_0000, PAGE_SIZE, Attrs::RW)
        .unwrap();
    let before = m.live();
    // 4 MiB of pages from 0x1000: L2 + three L3 tables needed, two allowed.
    m.limit = Some(before + 2);
    assert_eq!(
        pt.map(&mut m, 0x1000, 0x4000_0000, 4 << 20, Attrs::RW),
        Err(MapError::NoMemory)
    );
    assert_eq!(pt.translate(&m, 0x1000), None);
    assert_eq!(
        check_counts(&pt, &m, true),
        2,
        "only the earlier mapping's tables"
    );
    m.reclaim();
    assert_eq!(m.live(), before);
    // The single-descriptor path too.
    m.limit = Some(before + 1);
    assert_eq!(
        pt.map(&mut m, 0x80_0000_0000, 0x4000_0000, PAGE_SIZE, Attrs::RW),
        Err(MapError::NoMemory)
    );
    m.reclaim();
    assert_eq!(m.live(), before);
    assert_eq!(check_counts(&pt, &m, true), 2);
}

#[test]
fn leaf_count_is_the_cost_of_a_map() {
    let mut m = FakeMem::retiring();
    let mut pt = io_table(&mut m);
    assert_eq!(pt.leaf_count(0x1000, 0x4000_0000, GIB), 262_144);
    assert_eq!(pt.leaf_count(0x1000, 0x4000_1000, GIB), 511 + 511 + 1);
    assert_eq!(pt.leaf_count(0, 0x4000_0000, GIB), 1);
    assert_eq!(pt.leaf_count(0x20_0000, 0x4020_0000, 4 << 20), 2);
    assert_eq!(pt.leaf_count(0x1000, 0x80_0000_0000, 512 * GIB), 1 << 27);
    assert_eq!(pt.leaf_count(0x1f_f000, 0x1f_f000, MIB2 + 0x2000), 2 + 1);
    for (va, pa, size) in [
        (0x1000, 0x4000_1000, 4 << 20),
        (
            4 * GIB + 0x3f_f000,
            0x4000_0000 + 0x3f_f000,
            2 * GIB + 0x2000,
        ),
        (16 * GIB, 0x4000_0000, 3 * MIB2),
    ] {
        let before = check_leaves(&pt, &m);
        pt.map(&mut m, va, pa, size, Attrs::RW).unwrap();
        assert_eq!(check_leaves(&pt, &m) - before, pt.leaf_count(va, pa, size));
    }
}

/// Valid leaf descriptors in the whole table.
fn check_leaves(pt: &PageTable<Stage2>, mem: &FakeMem) -> u64 {
    fn walk(mem: &FakeMem, table: u64, level: usize) -> u64 {
        (0..ENTRIES)
            .map(|i| {
                // SAFETY: live table page, index in range.
                let d = unsafe { mem.table_ptr(table).add(i).read_volatile() };
                match (d & VALID != 0, level < 3 && d & TABLE_OR_PAGE != 0) {
                    (false, _) => 0,
                    (true, true) => walk(mem, d & OA_MASK, level + 1),
                    (true, false) => 1,
                }
            })
            .sum()
    }
    (0..2).map(|p| walk(mem, pt.root + p * PAGE_SIZE, 1)).sum()
}

#[test]
fn translate_block_gives_the_leaf_size() {
    let mut m = FakeMem::retiring();
    let mut pt = io_table(&mut m);
    pt.map(&mut m, GIB, 0x80_0000_0000, GIB, Attrs::DEVICE)
        .unwrap();
    pt.map(&mut m, 0x1000, 0x1000, PAGE_SIZE, Attrs::DEVICE)
        .unwrap();
    assert_eq!(
        pt.translate_block(&m, GIB + 0x1234),
        Some((0x80_0000_1234, Attrs::DEVICE, GIB))
    );
    assert_eq!(
        pt.translate_block(&m, 0x1008),
        Some((0x1008, Attrs::DEVICE, PAGE_SIZE))
    );
    assert_eq!(pt.translate_block(&m, 0x2000), None);
}

#[test]
fn random_maps_and_unmaps_keep_counts_and_free_every_empty_table() {
    let mut m = FakeMem::retiring();
    let mut pt = io_table(&mut m);
    let start = m.live();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut live: Vec<(u64, u64)> = Vec::new();
    for _ in 0..1500 {
        if live.is_empty() || next() % 3 != 0 {
            // A few pages or a block in the first 8 GiB, anywhere.
            let va = (next() % (8 << 18)) << 12;
            let size = match next() % 4 {
                0 => MIB2,
                1 => (1 + next() % 600) * PAGE_SIZE,
                _ => (1 + next() % 4) * PAGE_SIZE,
            };
            let va = if size == MIB2 { va & !(MIB2 - 1) } else { va };
            if pt
                .map(&mut m, va, 0x4000_0000 + (va & (GIB - 1)), size, Attrs::RW)
                .is_ok()
            {
                live.push((va, size));
            }
        } else {
            let (va, size) = live.swap_remove((next() as usize) % live.len());
            pt.unmap(&mut m, va, size).unwrap();
        }
        if next() % 4 == 0 {
            m.reclaim();
        }
        check_counts(&pt, &m, true);
    }
    for (va, size) in live.drain(..) {
        pt.unmap(&mut m, va, size).unwrap();
    }
    pt.release_spare(&mut m);
    check_counts(&pt, &m, true);
    m.reclaim();
    assert_eq!(m.live(), start);
}

#[test]
fn the_last_leaf_table_is_forgotten_when_tables_are_unlinked() {
    let mut m = FakeMem::retiring();
    let mut pt = io_table(&mut m);
    let start = m.live();
    // Remembered by a map, used by the next map and unmap in its 2 MiB.
    pt.map(&mut m, 0x20_0000, 0x4000_0000, PAGE_SIZE, Attrs::RW)
        .unwrap();
    pt.map(&mut m, 0x20_1000, 0x4000_1000, PAGE_SIZE, Attrs::RW)
        .unwrap();
    pt.unmap(&mut m, 0x20_0000, PAGE_SIZE).unwrap();
    assert_eq!(pt.translate(&m, 0x20_1000).map(|t| t.0), Some(0x4000_1000));
    assert_eq!(pt.translate(&m, 0x20_0000), None);
    // A range unmap retires the table: freed, it must not be walked into.
    pt.unmap(&mut m, 0x20_0000, MIB2).unwrap();
    assert_eq!(m.reclaim(), 2);
    pt.map(&mut m, 0x20_2000, 0x4000_2000, PAGE_SIZE, Attrs::RW)
        .unwrap();
    assert_eq!(pt.translate(&m, 0x20_2000).map(|t| t.0), Some(0x4000_2000));
    assert_eq!(check_counts(&pt, &m, true), 2);
    // The spare released (retired and freed), a block takes the region:
    // a page there is refused, not written into the old table.
    pt.unmap(&mut m, 0x20_2000, PAGE_SIZE).unwrap();
    pt.release_spare(&mut m);
    assert_eq!(m.reclaim(), 2);
    pt.map(&mut m, 0x20_0000, 0x4020_0000, MIB2, Attrs::RW)
        .unwrap();
    assert_eq!(
        pt.map(&mut m, 0x20_1000, 0x4000_1000, PAGE_SIZE, Attrs::RW),
        Err(MapError::AlreadyMapped)
    );
    assert_eq!(
        pt.unmap(&mut m, 0x20_1000, PAGE_SIZE),
        Err(MapError::WouldSplit)
    );
    assert_eq!(pt.translate(&m, 0x20_1000).map(|t| t.0), Some(0x4020_1000));
    pt.unmap(&mut m, 0x20_0000, MIB2).unwrap();
    pt.release_spare(&mut m);
    m.reclaim();
    assert_eq!(m.live(), start);
}

#[test]
fn the_remembered_block_table_is_per_region_and_forgotten_when_unlinked() {
    let mut m = FakeMem::retiring();
    let mut pt = io_table(&mut m);
    let start = m.live();
    // A 2 MiB block remembers its level-2 table; the next block in the
    // same 1 GiB uses it, one in another 1 GiB walks to its own table.
    pt.map(&mut m, GIB, 0x4000_0000, MIB2, Attrs::RW).unwrap();
    pt.map(&mut m, GIB + MIB2, 0x4020_0000, MIB2, Attrs::RW)
        .unwrap();
    pt.map(&mut m, 2 * GIB, 0x4040_0000, MIB2, Attrs::RW)
        .unwrap();
    pt.map(&mut m, GIB + 2 * MIB2, 0x4060_0000, MIB2, Attrs::RW)
        .unwrap();
    for (va, pa) in [
        (GIB, 0x4000_0000),
        (GIB + MIB2, 0x4020_0000),
        (2 * GIB, 0x4040_0000),
        (GIB + 2 * MIB2, 0x4060_0000),
    ] {
        assert_eq!(pt.translate_block(&m, va), Some((pa, Attrs::RW, MIB2)));
    }
    assert_eq!(check_counts(&pt, &m, true), 2);
    // Two blocks of the 1 GiB go, the third empties the table (kept as
    // the spare); released, it is retired and freed: the next block there
    // must go into a new table, not the freed one.
    for va in [GIB + MIB2, GIB + 2 * MIB2, GIB] {
        pt.unmap(&mut m, va, MIB2).unwrap();
    }
    assert_eq!(pt.translate(&m, GIB), None);
    pt.release_spare(&mut m);
    assert_eq!(m.reclaim(), 1);
    pt.map(&mut m, GIB + MIB2, 0x4080_0000, MIB2, Attrs::RW)
        .unwrap();
    assert_eq!(
        pt.translate_block(&m, GIB + MIB2),
        Some((0x4080_0000, Attrs::RW, MIB2))
    );
    // A range unmap retires the table as well.
    pt.unmap(&mut m, GIB, GIB).unwrap();
    assert_eq!(m.reclaim(), 1);
    pt.map(&mut m, GIB, 0x40a0_0000, MIB2, Attrs::RW).unwrap();
    assert_eq!(
        pt.translate_block(&m, GIB),
        Some((0x40a0_0000, Attrs::RW, MIB2))
    );
    assert_eq!(check_counts(&pt, &m, true), 2);
    pt.unmap(&mut m, 0, 4 * GIB).unwrap();
    pt.release_spare(&mut m);
    m.reclaim();
    assert_eq!(m.live(), start);
}

#[test]
fn random_requests_in_few_regions_agree_with_a_model() {
    // Pages, runs and blocks in three adjacent 2 MiB regions, so that most
    // one-page requests go through the remembered leaf table, mixed with
    // range unmaps, spare releases and reclaims that unlink and free
    // tables (a stale table would be caught: freed blocks are unknown to
    // the fake, whose addresses are never reused).
    let mut m = FakeMem::retiring();
    let mut pt = io_table(&mut m);
    let start = m.live();
    let base = 0x4000_0000u64 - MIB2;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut mapped: BTreeMap<u64, u64> = BTreeMap::new(); // page -> pa
    let mut blocks: Vec<u64> = Vec::new(); // regions mapped as one block
    for step in 0..6000 {
        let va = base + ((next() % (3 * 512)) << 12);
        let region = va & !(MIB2 - 1);
        let in_block = blocks.contains(&region);
        match next() % 10 {
            0..=4 => {
                let pa = 0x8000_0000 + ((next() % 4096) << 12);
                let r = pt.map(&mut m, va, pa, PAGE_SIZE, Attrs::RW);
                assert_eq!(r.is_ok(), !mapped.contains_key(&va), "step {step}");
                if r.is_ok() {
                    mapped.insert(va, pa);
                }
            }
            5..=7 => {
                let r = pt.unmap(&mut m, va, PAGE_SIZE);
                if in_block {
                    assert_eq!(r, Err(MapError::WouldSplit), "step {step}");
                } else {
                    r.unwrap();
                    mapped.remove(&va);
                }
            }
            8 => {
                // A run of pages or a whole region.
                let (va, len) = if next() % 2 == 0 {
                    (region, MIB2)
                } else {
                    (va, (1 + next() % 40) * PAGE_SIZE)
                };
                let splits = blocks
                    .iter()
                    .any(|&b| va < b + MIB2 && b < va + len && !(va <= b && b + MIB2 <= va + len));
                let r = pt.unmap(&mut m, va, len);
                if splits {
                    assert_eq!(r, Err(MapError::WouldSplit), "step {step}");
                    continue;
                }
                r.unwrap();
                blocks.retain(|&b| !(va <= b && b + MIB2 <= va + len));
                let pages: Vec<u64> = mapped.range(va..va + len).map(|(&k, _)| k).collect();
                for p in pages {
                    mapped.remove(&p);
                }
                if len == MIB2 && next() % 2 == 0 {
                    pt.map(&mut m, va, 0x8000_0000, MIB2, Attrs::RW).unwrap();
                    blocks.push(va);
                    for i in 0..512 {
                        mapped.insert(va + i * PAGE_SIZE, 0x8000_0000 + i * PAGE_SIZE);
                    }
                }
            }
            _ => {
                if next() % 2 == 0 {
                    pt.release_spare(&mut m);
                }
                m.reclaim();
            }
        }
        if step % 64 == 0 {
            check_counts(&pt, &m, false);
            for i in 0..3 * 512 {
                let va = base + i * PAGE_SIZE;
                assert_eq!(
                    pt.translate(&m, va).map(|t| t.0),
                    mapped.get(&va).copied(),
                    "step {step}, {va:#x}"
                );
            }
        }
    }
    pt.unmap(&mut m, base, 3 * MIB2).unwrap();
    pt.release_spare(&mut m);
    m.reclaim();
    assert_eq!(m.live(), start);
}

#[test]
fn the_inlined_map_and_unmap_are_the_general_ones() {
    // Two tables given the same requests, one through `map` and `unmap`
    // (their inlined cases first), one through `map_general` and
    // `unmap_general` only: the same answers, the
    // same translations, counts and table pages, hostile requests
    // (misaligned, out of range, overlapping, over blocks) included.
    let (mut ma, mut mb) = (FakeMem::retiring(), FakeMem::retiring());
    let (mut a, mut b) = (io_table(&mut ma), io_table(&mut mb));
    let base = 0x4000_0000u64 - MIB2;
    let mut rng = crate::test_rng::Rng(0x1a7e_57ab);
    let top = 1u64 << 40;
    for step in 0..8000 {
        let va = match rng.below(8) {
            0 => rng.pick(&[0, top - PAGE_SIZE, top, top - MIB2, u64::MAX - 0xfff]),
            1 => base + rng.below(3 << 21), // anywhere, misaligned too
            _ => base + (rng.below(3 * 512) << 12),
        };
        let size = match rng.below(8) {
            0 => MIB2,
            1 => rng.pick(&[0, 1, 0x1800, 3 * PAGE_SIZE, GIB]),
            _ => PAGE_SIZE,
        };
        let va = if size == MIB2 && rng.chance(80) {
            va & !(MIB2 - 1)
        } else {
            va
        };
        let pa = match rng.below(10) {
            0 => rng.pick(&[0x10, (1 << 48) - PAGE_SIZE, 1 << 48, u64::MAX - 0xfff]),
            _ => 0x8000_0000 + (rng.below(4096) << 12),
        };
        let pa = if size == MIB2 { pa & !(MIB2 - 1) } else { pa };
        let attrs = rng.pick(&[Attrs::RW, Attrs::DEVICE]);
        match rng.below(10) {
            0..=5 => {
                let ra = a.map(&mut ma, va, pa, size, attrs);
                let rb = b.map_general(&mut mb, va, pa, size, attrs);
                assert_eq!(ra, rb, "step {step}: map {va:#x} -> {pa:#x} + {size:#x}");
            }
            6..=8 => {
                let ra = a.unmap(&mut ma, va, size);
                let rb = b.unmap_general(&mut mb, va, size);
                assert_eq!(ra, rb, "step {step}: unmap {va:#x} + {size:#x}");
            }
            _ => {
                if rng.chance(50) {
                    a.release_spare(&mut ma);
                    b.release_spare(&mut mb);
                }
                assert_eq!(ma.reclaim(), mb.reclaim(), "step {step}");
            }
        }
        if step % 50 == 0 {
            assert_eq!(ma.live(), mb.live(), "step {step}");
            assert_eq!(check_counts(&a, &ma, false), check_counts(&b, &mb, false));
            for i in 0..3 * 512 {
                let va = base + i * PAGE_SIZE;
                assert_eq!(
                    a.translate(&ma, va),
                    b.translate(&mb, va),
                    "step {step}, {va:#x}"
                );
            }
        }
    }
}

#[test]
fn one_page_requests_at_the_edges_get_the_general_answers() {
    // The one-page path takes only what passes every check; at and past
    // each limit the answers are the general ones.
    let mut m = FakeMem::retiring();
    let mut pt = io_table(&mut m);
    let top = (1u64 << 40) - PAGE_SIZE;
    let pa_top = (1u64 << 48) - PAGE_SIZE;
    pt.map(&mut m, top, pa_top, PAGE_SIZE, Attrs::RW).unwrap();
    assert_eq!(pt.translate(&m, top).map(|t| t.0), Some(pa_top));
    assert_eq!(
        pt.map(&mut m, top, 0, PAGE_SIZE, Attrs::RW),
        Err(MapError::AlreadyMapped)
    );
    for (va, pa, want) in [
        (top + PAGE_SIZE, 0, MapError::OutOfRange),
        (0, pa_top + PAGE_SIZE, MapError::OutOfRange),
        (0x1001, 0, MapError::Misaligned),
        (0, 0x10, MapError::Misaligned),
        (u64::MAX - 0xfff, 0, MapError::OutOfRange),
        (0x1001, 1 << 48, MapError::Misaligned),
    ] {
        assert_eq!(
            pt.map(&mut m, va, pa, PAGE_SIZE, Attrs::RW),
            Err(want),
            "{va:#x} -> {pa:#x}"
        );
    }
    assert_eq!(
        pt.unmap(&mut m, top + PAGE_SIZE, PAGE_SIZE),
        Err(MapError::OutOfRange)
    );
    assert_eq!(
        pt.unmap(&mut m, 0x1001, PAGE_SIZE),
        Err(MapError::Misaligned)
    );
    pt.unmap(&mut m, top, PAGE_SIZE).unwrap();
    assert_eq!(pt.translate(&m, top), None);
    // Out of table pages: nothing left behind.
    let live = m.live();
    m.limit = Some(live + 1);
    assert_eq!(
        pt.map(&mut m, 0x4000_0000, 0, PAGE_SIZE, Attrs::RW),
        Err(MapError::NoMemory)
    );
    assert_eq!(check_counts(&pt, &m, true), 2, "the spare's path only");
    // A page under a block: refused whole, as by the general walk.
    m.limit = None;
    pt.map(&mut m, 0x20_0000, 0x4020_0000, MIB2, Attrs::RW)
        .unwrap();
    assert_eq!(
        pt.map(&mut m, 0x20_1000, 0, PAGE_SIZE, Attrs::RW),
        Err(MapError::AlreadyMapped)
    );
    assert_eq!(
        pt.unmap(&mut m, 0x20_1000, PAGE_SIZE),
        Err(MapError::WouldSplit)
    );
}
