//! The hypervisor's own address space: a W^X identity map of RAM (normal
//! memory) and of the MMIO regions it uses (device memory), built before the
//! MMU is on from a page pool in .bss and extended later from the heap.
//!
//! The plan ([`super::el2layout`]) gives the image's code `r-x`, its
//! constants and relocated pointers `r--`, everything else in RAM `rw-`
//! (never executable); device memory is never executable either, and
//! SCTLR_EL2.WXN makes any writable mapping execute-never in hardware. The
//! whole RAM part of the map is final before the MMU is switched on; later
//! changes only add device pages, so no live entry ever changes.
//!
//! [`self_check`] asks the MMU (AT S1E2R/S1E2W, through [`Arch`]) what it
//! allows at an address of each kind; `fault_test` deliberately breaks W^X
//! for the boot tests.
//!
//! [`El2Map`] (building the map from the plan, adding device pages) and the
//! self-check's comparison ([`check`], in `selfcheck`) are plain logic, tested on the host
//! with the fake CPU. What only the image has lives in `hw` (compiled for
//! the target only): the linker symbols of the image's sections
//! (`image_layout`), the .bss table pool (`build_boot_map`), the MMU
//! register values (`mmu_config`) and the faulting accesses of
//! `fault_test`.

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod hw;
mod selfcheck;
#[cfg(test)]
mod tests;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use hw::{build_boot_map, fault_test, image_layout, mmu_config};
pub use selfcheck::{
    Check, FaultKind, FaultTarget, MAX_PROBES, Probe, check, check_and_log, checks_passed,
    fault_target, self_check,
};

use super::el2layout::{self, ImageLayout, Part, Plan};
use super::layout::Region;
use super::pagetable::{Attrs, MapError, PAGE_SIZE, PageTable, Stage1El2, TableMemory};
use crate::arch::{Arch, Cpu, EL2_VA_BITS, El2Access};
use alloc::alloc::{Layout, alloc_zeroed, dealloc};
use core::fmt;
use log::info;
use spin::Mutex;

/// One page of the table pool.
#[derive(Clone)]
#[repr(C, align(4096))]
pub struct Page(pub [u64; 512]);

impl Page {
    /// A zeroed page.
    pub const ZERO: Page = Page([0; 512]);
}

/// Table pages for the EL2 map: a pool of zeroed pages first (in .bss on
/// the target, usable with the MMU off), then, once the map is
/// [`install`]ed, the heap.
pub struct El2Tables {
    /// Address of the first pool page.
    pool: u64,
    pool_pages: usize,
    pool_used: usize,
    heap_ready: bool,
}

impl El2Tables {
    /// Tables from `pool` until the heap is ready. Pool pages are never
    /// given back.
    ///
    /// # Safety
    /// Every page of `pool` must be zeroed (they become tables as they are).
    pub unsafe fn new(pool: &'static mut [Page]) -> El2Tables {
        El2Tables {
            pool: pool.as_mut_ptr() as u64,
            pool_pages: pool.len(),
            pool_used: 0,
            heap_ready: false,
        }
    }

    fn in_pool(&self, pa: u64) -> bool {
        (self.pool..self.pool + self.pool_pages as u64 * PAGE_SIZE).contains(&pa)
    }
}

impl TableMemory for El2Tables {
    fn alloc_tables(&mut self, pages: usize) -> Option<u64> {
        if pages != 1 {
            return None;
        }
        if self.pool_used < self.pool_pages {
            let page = self.pool + self.pool_used as u64 * PAGE_SIZE;
            self.pool_used += 1;
            // Zeroed (`new`'s contract) and never handed out before.
            return Some(page);
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
        if self.in_pool(pa) {
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

/// The EL2 page table, where its pages come from and the plan it was
/// built from. Built by [`El2Map::build`] (on the target through
/// `build_boot_map`), then handed to [`install`].
pub struct El2Map {
    tables: El2Tables,
    pt: PageTable<Stage1El2>,
    plan: Plan,
}

/// Why the boot map could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootMapError {
    /// No W^X plan for this RAM and image.
    Plan(el2layout::PlanError),
    /// The page table refused a range of the plan.
    Map(MapError),
}

impl fmt::Display for BootMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootMapError::Plan(e) => e.fmt(f),
            BootMapError::Map(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for BootMapError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            BootMapError::Plan(e) => Some(e),
            BootMapError::Map(e) => Some(e),
        }
    }
}

impl El2Map {
    /// Builds the map of the W^X plan of `ram`, the `image` and the
    /// `uart`, with tables from `tables`. Takes no lock and allocates
    /// nothing from the heap: on the target it runs before the MMU is on.
    pub fn build(
        ram: &[Region],
        image: &ImageLayout,
        uart: Option<u64>,
        mut tables: El2Tables,
    ) -> Result<El2Map, BootMapError> {
        let plan = el2layout::plan(ram, image, uart).map_err(BootMapError::Plan)?;
        let mut pt = PageTable::new(&mut tables, EL2_VA_BITS, 0).map_err(BootMapError::Map)?;
        for r in &plan {
            let a = r.attrs();
            // The plan never asks for W+X; WXN would make it XN anyway.
            debug_assert!(!a.writable_and_executable());
            pt.map(&mut tables, r.region.base, r.region.base, r.region.size, a)
                .map_err(BootMapError::Map)?;
        }
        Ok(El2Map { tables, pt, plan })
    }

    /// Physical address of the root table (TTBR0_EL2).
    pub fn root(&self) -> u64 {
        self.pt.root()
    }

    /// The plan the map was built from.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The attributes of the descriptor mapping `va`, if any.
    pub fn attrs(&self, va: u64) -> Option<Attrs> {
        self.pt.translate(&self.tables, va).map(|(_, a)| a)
    }

    /// Lets the map take table pages from the heap once the pool is used
    /// up (the heap is initialised).
    pub fn grow_from_heap(&mut self) {
        self.tables.heap_ready = true;
    }

    /// Maps the MMIO range `[base, base + size)` as device memory, rounded
    /// out to pages. Pages already mapped (RAM, or device pages mapped
    /// before) are left as they are. On an error the pages mapped before it
    /// stay mapped. The caller publishes the new entries to the walker.
    pub fn map_device(&mut self, base: u64, size: u64) -> Result<(), MapError> {
        let start = base / PAGE_SIZE * PAGE_SIZE;
        let end = base
            .checked_add(size)
            .and_then(|e| e.checked_next_multiple_of(PAGE_SIZE))
            .ok_or(MapError::OutOfRange)?;
        let mapped = |m: &Self, page| m.pt.translate(&m.tables, page).is_some();
        let mut page = start;
        // Map page by page around anything already mapped, in one pass of runs.
        while page < end {
            if mapped(self, page) {
                page += PAGE_SIZE;
                continue;
            }
            let mut run_end = page + PAGE_SIZE;
            while run_end < end && !mapped(self, run_end) {
                run_end += PAGE_SIZE;
            }
            self.pt
                .map(&mut self.tables, page, page, run_end - page, Attrs::DEVICE)?;
            page = run_end;
        }
        Ok(())
    }

    /// What a CPU whose MMU answers `access` at `va` (and whose
    /// SCTLR_EL2.WXN is `wxn`) allows there: reads and writes as the MMU
    /// reports them, execution from the descriptor's XN bit and WXN (AT
    /// does not check fetches).
    pub fn effective(&self, va: u64, access: El2Access, wxn: bool) -> Attrs {
        let exec = self.attrs(va).is_some_and(|a| a.exec && !(wxn && a.write));
        Attrs {
            read: access.read,
            write: access.write,
            exec,
            ..Attrs::RW
        }
    }

    /// The start of the first RAM range outside the image, if any.
    pub fn first_ram(&self) -> Option<u64> {
        self.plan
            .iter()
            .find(|r| r.part == Part::Ram)
            .map(|r| r.region.base)
    }
}

/// The live EL2 map, once [`install`]ed.
static EL2_MAP: Mutex<Option<El2Map>> = Mutex::new(None);

/// Puts the boot map behind its lock once the MMU is on and the heap is
/// initialised, and lets it grow from the heap.
pub fn install(mut map: El2Map) {
    map.grow_from_heap();
    *EL2_MAP.lock() = Some(map);
}

/// Maps the MMIO range `[base, base + size)` as device memory in the live
/// map (rounded out to pages; see [`El2Map::map_device`]) and publishes
/// the new entries. [`MapError::NoMemory`] when no map is installed (so
/// always on the host, which has none).
pub fn map_device(base: u64, size: u64) -> Result<(), MapError> {
    let mut guard = EL2_MAP.lock();
    let m = guard.as_mut().ok_or(MapError::NoMemory)?;
    let result = m.map_device(base, size);
    Cpu::el2_publish_new_entries();
    result
}

/// Logs the ranges of the live map and their permissions.
pub fn log_plan() {
    let guard = EL2_MAP.lock();
    let Some(m) = guard.as_ref() else { return };
    for r in m.plan() {
        info!("EL2 map: {r}");
    }
    info!(
        "EL2 map: W^X, SCTLR_EL2.WXN {}",
        if Cpu::el2_wxn() { "on" } else { "off" }
    );
}
