//! The hypervisor's own address space: an identity map of RAM (normal
//! memory) and of the MMIO regions it uses (device memory), built before the
//! MMU is on from a page pool in .bss and extended later from the heap.

use super::pagetable::{Attrs, MapError, PAGE_SIZE, PageTable, Stage1El2, TableMemory};
use crate::arch::aarch64::mmu::{self, MmuConfig, VA_BITS};
use alloc::alloc::{Layout, alloc_zeroed, dealloc};
use spin::Mutex;

/// Pages reserved in .bss for the tables built before the heap exists.
const POOL_PAGES: usize = 64;

#[repr(C, align(4096))]
struct Pool([[u64; 512]; POOL_PAGES]);

static mut POOL: Pool = Pool([[0; 512]; POOL_PAGES]);

/// Table pages for the EL2 map: the .bss pool first, then the heap.
struct El2Tables {
    pool_used: usize,
    heap_ready: bool,
}

impl TableMemory for El2Tables {
    fn alloc_tables(&mut self, pages: usize) -> Option<u64> {
        if pages != 1 {
            return None;
        }
        if self.pool_used < POOL_PAGES {
            let page = (&raw mut POOL as usize) + self.pool_used * PAGE_SIZE as usize;
            self.pool_used += 1;
            // The pool is zeroed with .bss and pages are never returned.
            return Some(page as u64);
        }
        if !self.heap_ready {
            return None;
        }
        let layout = Layout::from_size_align(PAGE_SIZE as usize, PAGE_SIZE as usize).ok()?;
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc_zeroed(layout) };
        (!p.is_null()).then_some(p as u64)
    }

    fn free_tables(&mut self, pa: u64, pages: usize) {
        let pool = &raw mut POOL as u64;
        if (pool..pool + (POOL_PAGES as u64) * PAGE_SIZE).contains(&pa) {
            return;
        }
        if let Ok(layout) = Layout::from_size_align(pages * PAGE_SIZE as usize, PAGE_SIZE as usize)
        {
            // SAFETY: pages not from the pool came from alloc_zeroed with this layout.
            unsafe { dealloc(pa as *mut u8, layout) };
        }
    }

    fn table_ptr(&self, pa: u64) -> *mut u64 {
        pa as *mut u64 // identity map
    }
}

/// The EL2 page table and where its pages come from. Built by
/// [`build_boot_map`], then handed to [`install`].
pub struct El2Map {
    tables: El2Tables,
    pt: PageTable<Stage1El2>,
}

static EL2_MAP: Mutex<Option<El2Map>> = Mutex::new(None);

/// Builds the boot map before the MMU is on: `ram` as normal memory (code
/// included) and `uart` as device memory. Runs on the boot CPU alone, with
/// no locks (exclusive accesses need the MMU and caches).
///
/// # Safety
/// Call once, on the boot CPU with the MMU off: the .bss pool is not
/// shared with anything.
pub unsafe fn build_boot_map(
    ram: &[crate::mm::layout::Region],
    uart: Option<u64>,
) -> Result<(El2Map, MmuConfig), MapError> {
    let mut tables = El2Tables {
        pool_used: 0,
        heap_ready: false,
    };
    let mut pt = PageTable::new(&mut tables, VA_BITS, 0)?;
    for r in ram {
        let (base, end) = (
            r.base / PAGE_SIZE * PAGE_SIZE,
            (r.base + r.size).next_multiple_of(PAGE_SIZE),
        );
        pt.map(&mut tables, base, base, end - base, Attrs::RWX)?;
    }
    if let Some(u) = uart {
        let page = u / PAGE_SIZE * PAGE_SIZE;
        match pt.map(&mut tables, page, page, PAGE_SIZE, Attrs::DEVICE) {
            Ok(()) | Err(MapError::AlreadyMapped) => {}
            Err(e) => return Err(e),
        }
    }
    let cfg = MmuConfig::new(pt.root());
    Ok((El2Map { tables, pt }, cfg))
}

/// Puts the boot map behind its lock once the MMU is on and the heap is
/// initialised, and lets it grow from the heap.
pub fn install(mut map: El2Map) {
    map.tables.heap_ready = true;
    *EL2_MAP.lock() = Some(map);
}

/// Maps the MMIO range `[base, base + size)` as device memory (rounded out to
/// pages). Ranges already mapped are left as they are.
pub fn map_device(base: u64, size: u64) -> Result<(), MapError> {
    let start = base / PAGE_SIZE * PAGE_SIZE;
    let end = base
        .checked_add(size)
        .ok_or(MapError::OutOfRange)?
        .next_multiple_of(PAGE_SIZE);
    let mut guard = EL2_MAP.lock();
    let m = guard.as_mut().ok_or(MapError::NoMemory)?;
    let mut page = start;
    // Map page by page around anything already mapped, in one pass of runs.
    while page < end {
        if m.pt.translate(&m.tables, page).is_some() {
            page += PAGE_SIZE;
            continue;
        }
        let mut run_end = page + PAGE_SIZE;
        while run_end < end && m.pt.translate(&m.tables, run_end).is_none() {
            run_end += PAGE_SIZE;
        }
        m.pt.map(&mut m.tables, page, page, run_end - page, Attrs::DEVICE)?;
        page = run_end;
    }
    mmu::publish_new_entries();
    Ok(())
}

/// The register values other CPUs use to switch on the same map.
pub fn mmu_config() -> Option<MmuConfig> {
    EL2_MAP.lock().as_ref().map(|m| MmuConfig::new(m.pt.root()))
}
