//! Table pages charged to one guest: [`BudgetTables`], the [`TableMemory`]
//! of a guest's virtio-iommu domains. It allocates from the heap up to a
//! page limit (the guest's budget), takes back tables the page-table code
//! retires when they empty and frees them only when its owner says the
//! invalidation that makes it safe has completed ([`BudgetTables::reclaim`]),
//! and keeps a few of them in a small per-guest pool (in the manner of
//! pKVM's per-VM memcache) so that a MAP/UNMAP loop does not go back to the
//! heap. Every page it holds (linked, retired or pooled) counts against the
//! limit. Retired and pooled pages are chained through their first word
//! (a page-aligned address: an invalid descriptor to any walker), so the
//! lists cost no allocation.

use super::heap_tables::HeapTables;
use super::pagetable::TableMemory;

/// Retired pages kept for reuse rather than freed to the heap.
pub const POOL_PAGES: usize = 8;

/// Table pages from the heap, at most `limit` held at a time.
#[derive(Debug)]
pub struct BudgetTables {
    heap: HeapTables,
    limit: usize,
    /// Pages held: linked in a table, retired or pooled.
    held: usize,
    /// Retired pages waiting for [`BudgetTables::reclaim`] (a chain).
    retired: u64,
    retired_count: usize,
    /// Retired pages whose invalidation failed: never reused, given back
    /// to the heap only when the memory is dropped (a chain).
    quarantine: u64,
    /// Empty pages ready for reuse (a chain).
    pool: u64,
    pooled: usize,
    /// Highest `held` seen.
    peak: usize,
}

impl BudgetTables {
    /// A memory that holds at most `limit` table pages.
    pub fn new(limit: usize) -> Self {
        BudgetTables {
            heap: HeapTables,
            limit,
            held: 0,
            retired: 0,
            retired_count: 0,
            quarantine: 0,
            pool: 0,
            pooled: 0,
            peak: 0,
        }
    }

    /// The page limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Pages held (linked, retired and pooled): what the budget counts.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Pages linked in tables or quarantined (held, less retired and
    /// pooled).
    pub fn linked(&self) -> usize {
        self.held - self.retired_count - self.pooled
    }

    /// Retired pages not yet reclaimed.
    pub fn retired(&self) -> usize {
        self.retired_count
    }

    /// Pages in the reuse pool.
    pub fn pooled(&self) -> usize {
        self.pooled
    }

    /// Most pages held at once.
    pub fn peak(&self) -> usize {
        self.peak
    }

    /// Frees every retired page: call only once the invalidation that
    /// covers them (TLB and walk caches, CMD_SYNC completed) is done.
    /// Up to [`POOL_PAGES`] go to the pool, the rest back to the heap.
    /// Returns how many were reclaimed.
    pub fn reclaim(&mut self) -> usize {
        let n = self.retired_count;
        while self.retired != 0 {
            let pa = self.retired;
            self.retired = self.take_link(pa);
            self.retired_count -= 1;
            if self.pooled < POOL_PAGES {
                self.set_link(pa, self.pool);
                self.pool = pa;
                self.pooled += 1;
            } else {
                self.heap.free_tables(pa, 1);
                self.held -= 1;
            }
        }
        n
    }

    /// Sets the retired pages aside for good: their invalidation failed,
    /// so a walker may still reach them. They stay charged to the budget
    /// and go back to the heap only when the memory is dropped.
    pub fn quarantine_retired(&mut self) {
        while self.retired != 0 {
            let pa = self.retired;
            self.retired = self.take_link(pa);
            self.retired_count -= 1;
            self.set_link(pa, self.quarantine);
            self.quarantine = pa;
        }
    }

    /// Reads and clears the chain link in the first word of `pa`.
    fn take_link(&self, pa: u64) -> u64 {
        let p = self.heap.table_ptr(pa);
        // SAFETY: `pa` is a table page this memory holds and no table
        // links any more; its first word is the chain's link.
        unsafe {
            let next = p.read_volatile();
            p.write_volatile(0);
            next
        }
    }

    /// Writes the chain link `next` into the first word of `pa`.
    fn set_link(&self, pa: u64, next: u64) {
        // SAFETY: as in `take_link`; the rest of the page is zero.
        unsafe { self.heap.table_ptr(pa).write_volatile(next) };
    }
}

impl TableMemory for BudgetTables {
    fn alloc_tables(&mut self, pages: usize) -> Option<u64> {
        if pages == 1 && self.pool != 0 {
            let pa = self.pool;
            self.pool = self.take_link(pa);
            self.pooled -= 1;
            return Some(pa); // zeroed: retired empty, link cleared
        }
        if self.held.checked_add(pages)? > self.limit {
            return None;
        }
        let pa = self.heap.alloc_tables(pages)?;
        self.held += pages;
        self.peak = self.peak.max(self.held);
        Some(pa)
    }

    fn free_tables(&mut self, pa: u64, pages: usize) {
        self.heap.free_tables(pa, pages);
        self.held = self.held.saturating_sub(pages);
    }

    fn table_ptr(&self, pa: u64) -> *mut u64 {
        self.heap.table_ptr(pa)
    }

    fn retires(&self) -> bool {
        true
    }

    fn retire_table(&mut self, pa: u64) {
        self.set_link(pa, self.retired);
        self.retired = pa;
        self.retired_count += 1;
    }
}

impl Drop for BudgetTables {
    /// Gives the pool back to the heap. Retired pages are given back too:
    /// the memory goes away with its guest's virtio-iommu, whose streams no
    /// longer translate through these tables.
    fn drop(&mut self) {
        self.reclaim();
        for mut chain in [self.pool, self.quarantine] {
            while chain != 0 {
                let pa = chain;
                chain = self.take_link(pa);
                self.heap.free_tables(pa, 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::pagetable::{Attrs, MapError, PAGE_SIZE, PageTable, Stage2};

    #[test]
    fn the_limit_counts_every_page_held() {
        let mut m = BudgetTables::new(3);
        let a = m.alloc_tables(2).expect("two pages");
        assert_eq!(a % (2 * PAGE_SIZE), 0);
        let b = m.alloc_tables(1).expect("the third");
        assert_eq!(m.alloc_tables(1), None, "over the limit");
        m.retire_table(b);
        assert_eq!((m.held(), m.retired(), m.linked()), (3, 1, 2));
        assert_eq!(m.alloc_tables(1), None, "retired pages still count");
        assert_eq!(m.reclaim(), 1);
        assert_eq!((m.held(), m.pooled()), (3, 1));
        let c = m.alloc_tables(1).expect("from the pool");
        assert_eq!(c, b);
        // SAFETY: a table page this memory handed out.
        let page = unsafe { core::slice::from_raw_parts(m.table_ptr(c), 512) };
        assert!(page.iter().all(|&w| w == 0), "reused pages are zero");
        m.free_tables(c, 1);
        m.free_tables(a, 2);
        assert_eq!(m.held(), 0);
        assert_eq!(m.peak(), 3);
    }

    #[test]
    fn the_pool_is_bounded_and_the_rest_goes_back_to_the_heap() {
        let mut m = BudgetTables::new(100);
        let pages: alloc::vec::Vec<u64> = (0..20).map(|_| m.alloc_tables(1).unwrap()).collect();
        for &p in &pages {
            m.retire_table(p);
        }
        assert_eq!(m.reclaim(), 20);
        assert_eq!((m.pooled(), m.held()), (POOL_PAGES, POOL_PAGES));
    }

    #[test]
    fn pages_whose_invalidation_failed_are_never_reused() {
        let mut m = BudgetTables::new(2);
        let a = m.alloc_tables(1).unwrap();
        m.retire_table(a);
        m.quarantine_retired();
        assert_eq!(m.reclaim(), 0);
        assert_eq!((m.held(), m.pooled(), m.linked()), (1, 0, 1));
        let b = m.alloc_tables(1).unwrap();
        assert_ne!(a, b);
        assert_eq!(m.alloc_tables(1), None);
    }

    #[test]
    fn an_io_table_over_budget_maps_nothing_and_gives_its_tables_back() {
        let mut m = BudgetTables::new(4);
        let mut pt = PageTable::<Stage2>::new(&mut m, 40, 1).unwrap();
        assert_eq!(m.held(), 2);
        // 4 MiB of pages at 0x1000: an L2 and three L3 tables.
        assert_eq!(
            pt.map(&mut m, 0x1000, 0x4000_0000, 4 << 20, Attrs::RW),
            Err(MapError::NoMemory)
        );
        assert_eq!(pt.translate(&m, 0x1000), None);
        m.reclaim();
        assert_eq!(m.linked(), 2);
        pt.destroy(&mut m);
        drop(m);
    }
}
