//! Page-table pages from the heap, reached through the identity map: the
//! [`TableMemory`] of every table built after boot (guest stage 2, and
//! later the SMMU's). On the host the global allocator is std's and
//! "physical" addresses are the process's own.

use super::pagetable::{PAGE_SIZE, TableMemory};
use alloc::alloc::{Layout, alloc_zeroed, dealloc};

/// Table pages allocated from the global heap.
#[derive(Debug, Default)]
pub struct HeapTables;

fn layout(pages: usize) -> Option<Layout> {
    let size = pages.checked_mul(PAGE_SIZE as usize)?;
    Layout::from_size_align(size, size).ok()
}

impl TableMemory for HeapTables {
    fn alloc_tables(&mut self, pages: usize) -> Option<u64> {
        let layout = layout(pages)?;
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc_zeroed(layout) };
        (!p.is_null()).then_some(p as u64)
    }

    fn free_tables(&mut self, pa: u64, pages: usize) {
        if let Some(layout) = layout(pages) {
            // SAFETY: `pa` came from `alloc_tables` with the same page count.
            unsafe { dealloc(pa as *mut u8, layout) };
        }
    }

    fn table_ptr(&self, pa: u64) -> *mut u64 {
        pa as *mut u64 // identity map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_zeroed_aligned_to_their_size_and_freed() {
        let mut t = HeapTables;
        for pages in [1, 2, 4] {
            let pa = t.alloc_tables(pages).expect("host memory");
            assert_eq!(pa % (pages as u64 * PAGE_SIZE), 0);
            let words = pages * PAGE_SIZE as usize / 8;
            // SAFETY: `pages` table pages just allocated, reached through
            // `table_ptr` as the page-table code does.
            let table = unsafe { core::slice::from_raw_parts_mut(t.table_ptr(pa), words) };
            assert!(table.iter().all(|&w| w == 0));
            table[words - 1] = 1;
            t.free_tables(pa, pages);
        }
    }

    #[test]
    fn no_pages_is_refused() {
        assert_eq!(HeapTables.alloc_tables(0), None);
        assert_eq!(layout(usize::MAX), None);
    }
}
