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
//! [`self_check`] asks the MMU (AT S1E2R/S1E2W) what it allows at an address
//! of each kind; [`fault_test`] deliberately breaks W^X for the boot tests.

use super::el2layout::{self, ImageLayout, Part, Plan};
use super::pagetable::{Attrs, MapError, PAGE_SIZE, PageTable, Stage1El2, TableMemory};
use crate::arch::aarch64::mmu::{self, MmuConfig, VA_BITS};
use crate::cmdline::WxTest;
use alloc::alloc::{Layout, alloc_zeroed, dealloc};
use core::fmt;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use log::{error, info};
use spin::Mutex;

unsafe extern "C" {
    // Page-aligned boundaries of the image, from hypervisor/linker.ld.
    static _image_start: u8;
    static _text_end: u8;
    static _rodata_end: u8;
    static _image_end: u8;
}

/// Where the loaded image's pieces are (physical = virtual addresses).
pub fn image_layout() -> ImageLayout {
    ImageLayout {
        start: &raw const _image_start as u64,
        text_end: &raw const _text_end as u64,
        rodata_end: &raw const _rodata_end as u64,
        end: &raw const _image_end as u64,
    }
}

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

/// The EL2 page table, where its pages come from and the plan it was
/// built from. Built by [`build_boot_map`], then handed to [`install`].
pub struct El2Map {
    tables: El2Tables,
    pt: PageTable<Stage1El2>,
    plan: Plan,
}

static EL2_MAP: Mutex<Option<El2Map>> = Mutex::new(None);

/// Why the boot map could not be built.
#[derive(Debug, Clone, Copy)]
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

/// Builds the boot map before the MMU is on, from the W^X plan of `ram`,
/// the image and the `uart`. Runs on the boot CPU alone, with no locks
/// (exclusive accesses need the MMU and caches), after the entry code has
/// applied the image's relocations: the relocated data becomes read-only
/// here.
///
/// # Safety
/// Call once, on the boot CPU with the MMU off: the .bss pool is not
/// shared with anything.
pub unsafe fn build_boot_map(
    ram: &[crate::mm::layout::Region],
    uart: Option<u64>,
) -> Result<(El2Map, MmuConfig), BootMapError> {
    let plan = el2layout::plan(ram, &image_layout(), uart).map_err(BootMapError::Plan)?;
    let mut tables = El2Tables {
        pool_used: 0,
        heap_ready: false,
    };
    let mut pt = PageTable::new(&mut tables, VA_BITS, 0).map_err(BootMapError::Map)?;
    for r in &plan {
        let a = r.attrs();
        // The plan never asks for W+X; WXN would make it XN anyway.
        debug_assert!(!a.writable_and_executable());
        pt.map(&mut tables, r.region.base, r.region.base, r.region.size, a)
            .map_err(BootMapError::Map)?;
    }
    let cfg = MmuConfig::new(pt.root());
    Ok((El2Map { tables, pt, plan }, cfg))
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

/// Logs the ranges of the boot map and their permissions.
pub fn log_plan() {
    let guard = EL2_MAP.lock();
    let Some(m) = guard.as_ref() else { return };
    for r in &m.plan {
        info!("EL2 map: {r}");
    }
    info!(
        "EL2 map: W^X, SCTLR_EL2.WXN {}",
        if mmu::wxn_enabled() { "on" } else { "off" }
    );
}

/// The attributes of the live descriptor mapping `va`, if any.
fn descriptor_attrs(va: u64) -> Option<Attrs> {
    let guard = EL2_MAP.lock();
    let m = guard.as_ref()?;
    m.pt.translate(&m.tables, va).map(|(_, a)| a)
}

// Probes of the self-check, one of each kind of image data. The linker
// places them by their kind: no interior mutability and no pointer ->
// .rodata; a pointer -> .data.rel.ro (written by the relocation code);
// non-zero atomic -> .data; zero atomic -> .bss.
static PROBE_RODATA: [u64; 2] = [0x7061_7274_6974_6121, 2];
static PROBE_RELRO: &[u64; 2] = &PROBE_RODATA;
static PROBE_DATA: AtomicU64 = AtomicU64::new(0x7061_7274_6974_6121);
static PROBE_BSS: AtomicU64 = AtomicU64::new(0);
/// `ret`, in .data: what [`fault_test`] tries to execute.
static RET_IN_DATA: AtomicU32 = AtomicU32::new(RET);
/// The A64 `ret` instruction.
const RET: u32 = 0xd65f_03c0;

/// Most probes of a [`Check`].
const MAX_PROBES: usize = 8;

/// One probe of the self-check: what it is, what the CPU allows there and
/// what the plan says it should allow.
#[derive(Debug, Clone, Copy)]
struct Probe {
    name: &'static str,
    found: &'static str,
    expected: &'static str,
}

/// The result of [`self_check`] on one CPU.
#[derive(Debug, Clone)]
pub struct Check {
    probes: heapless::Vec<Probe, MAX_PROBES>,
}

impl Check {
    /// True when every probe found the planned permissions.
    pub fn passed(&self) -> bool {
        self.probes.iter().all(|p| p.found == p.expected)
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.probes.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{} {}", p.name, p.found)?;
            if p.found != p.expected {
                write!(f, " (expected {})", p.expected)?;
            }
        }
        Ok(())
    }
}

/// What this CPU's EL2 translation allows at `va`: reads and writes as the
/// MMU reports them (AT S1E2R, AT S1E2W), execution from the live
/// descriptor's XN bit and SCTLR_EL2.WXN (AT does not check fetches).
fn effective(va: u64) -> Attrs {
    let hw = mmu::probe(va);
    let exec = descriptor_attrs(va).is_some_and(|a| a.exec && !(mmu::wxn_enabled() && a.write));
    Attrs {
        read: hw.read,
        write: hw.write,
        exec,
        ..Attrs::RW
    }
}

/// Checks this CPU's view of the EL2 map at one address of each kind: the
/// code, the constants, the relocated pointers, .data, .bss, the stack, the
/// heap and RAM outside the image.
pub fn self_check() -> Check {
    let ram = EL2_MAP.lock().as_ref().and_then(|m| {
        m.plan
            .iter()
            .find(|r| r.part == Part::Ram)
            .map(|r| r.region.base)
    });
    let stack = 0u64;
    let heap = alloc::boxed::Box::new(0u64);
    let probes: [(&'static str, Option<u64>, Part); MAX_PROBES] = [
        ("text", Some(self_check as *const () as u64), Part::Text),
        ("rodata", Some(&raw const PROBE_RODATA as u64), Part::Rodata),
        ("relro", Some(&raw const PROBE_RELRO as u64), Part::Rodata),
        ("data", Some(PROBE_DATA.as_ptr() as u64), Part::Data),
        ("bss", Some(PROBE_BSS.as_ptr() as u64), Part::Data),
        (
            "stack",
            Some(core::hint::black_box(&stack) as *const u64 as u64),
            Part::Ram,
        ),
        ("heap", Some(&*heap as *const u64 as u64), Part::Ram),
        ("ram", ram, Part::Ram),
    ];
    let mut check = Check {
        probes: heapless::Vec::new(),
    };
    for (name, addr, part) in probes {
        let Some(addr) = addr else { continue };
        let _ = check.probes.push(Probe {
            name,
            found: effective(addr).perms(),
            expected: part.attrs().perms(),
        });
    }
    check
}

/// CPUs whose [`self_check`] passed.
static CHECKS_PASSED: AtomicU64 = AtomicU64::new(0);

/// Runs [`self_check`] on this CPU and logs it: the whole result on the
/// boot CPU (`verbose`), only a failure elsewhere.
pub fn check_and_log(cpu: usize, verbose: bool) {
    let check = self_check();
    if check.passed() {
        CHECKS_PASSED.fetch_add(1, Ordering::AcqRel);
        if verbose {
            info!("EL2 map check (AT S1E2R/W): {check}");
        }
    } else {
        error!("cpu {cpu}: EL2 map check FAILED: {check}");
    }
}

/// How many CPUs passed [`check_and_log`].
pub fn checks_passed() -> u64 {
    CHECKS_PASSED.load(Ordering::Acquire)
}

/// Breaks W^X on purpose: writes to the code or to the relocated constants,
/// or executes an instruction in .data or in the heap. The MMU must refuse
/// with a permission fault, which the EL2 exception handler reports before
/// parking the CPU; if the access goes through, this logs the failure and
/// returns.
pub fn fault_test(test: WxTest) {
    let (what, addr) = match test {
        WxTest::WriteText => ("writing to image text", fault_test as *const () as u64),
        WxTest::WriteRelro => ("writing to image relro", &raw const PROBE_RELRO as u64),
        WxTest::ExecData => ("executing image data", RET_IN_DATA.as_ptr() as u64),
        WxTest::ExecHeap => {
            // Larger than the boot heap in .bss: RAM outside the image.
            let block = alloc::vec![0u32; (2 << 20) / 4].leak();
            block[0] = RET;
            (
                "executing heap (RAM outside the image)",
                block.as_ptr() as u64,
            )
        }
    };
    info!("W^X test: {what} at {addr:#x}; expecting a permission fault");
    match test {
        WxTest::WriteText | WxTest::WriteRelro => {
            // SAFETY: the store writes back the word that is there: if the
            // map wrongly allows it, nothing changes.
            unsafe {
                let old = (addr as *const u32).read_volatile();
                mmu::store32(addr, old);
            }
        }
        WxTest::ExecData | WxTest::ExecHeap => {
            // SAFETY: the word at `addr` is `ret`: if the map wrongly allows
            // the fetch, the call returns at once.
            unsafe { mmu::call(addr) };
        }
    }
    error!("W^X test: {what} at {addr:#x} succeeded: the EL2 map is not W^X");
}
