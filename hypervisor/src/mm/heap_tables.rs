//! Page-table pages from the heap, reached through the identity map: the
//! [`TableMemory`] of every table built after boot (guest stage 2, and
//! later the SMMU's).

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
