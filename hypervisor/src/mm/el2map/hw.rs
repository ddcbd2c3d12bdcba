//! What only the image has: the linker symbols of its sections, the table
//! pool in .bss, the MMU register values of the live map and the accesses
//! of the W^X fault test.

use super::{BootMapError, EL2_MAP, El2Map, El2Tables, FaultKind, Page, fault_target};
use crate::arch::aarch64::mmu::{self, MmuConfig};
use crate::cmdline::WxTest;
use crate::mm::el2layout::ImageLayout;
use crate::mm::layout::Region;
use log::{error, info};

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

static mut POOL: [Page; POOL_PAGES] = [const { Page::ZERO }; POOL_PAGES];

/// Builds the boot map before the MMU is on, from the W^X plan of `ram`,
/// the image and the `uart`, with tables from the .bss pool. Runs on the
/// boot CPU alone, after the entry code has applied the image's
/// relocations: the relocated data becomes read-only here.
///
/// # Safety
/// Call once, on the boot CPU with the MMU off: the .bss pool is not
/// shared with anything.
pub unsafe fn build_boot_map(
    ram: &[Region],
    uart: Option<u64>,
) -> Result<(El2Map, MmuConfig), BootMapError> {
    let pool: *mut [Page; POOL_PAGES] = &raw mut POOL;
    // SAFETY: called once (the caller's contract), so this is the only
    // reference to the pool, which is zeroed with .bss.
    let tables = unsafe { El2Tables::new(&mut *pool) };
    let map = El2Map::build(ram, &image_layout(), uart, tables)?;
    let cfg = MmuConfig::new(map.root());
    Ok((map, cfg))
}

/// The register values other CPUs use to switch on the live map.
pub fn mmu_config() -> Option<MmuConfig> {
    EL2_MAP.lock().as_ref().map(|m| MmuConfig::new(m.root()))
}

/// Breaks W^X on purpose at [`fault_target`]. The MMU must refuse with a
/// permission fault, which the EL2 exception handler reports before
/// parking the CPU; if the access goes through, this logs the failure and
/// returns.
pub fn fault_test(test: WxTest) {
    let t = fault_target(test);
    let (what, addr) = (t.what, t.addr);
    info!("W^X test: {what} at {addr:#x}; expecting a permission fault");
    match t.kind {
        // SAFETY: the store writes back the word that is there: if the map
        // wrongly allows it, nothing changes.
        FaultKind::Write => unsafe { mmu::store32(addr, (addr as *const u32).read_volatile()) },
        // SAFETY: the word at `addr` is `ret`: if the map wrongly allows
        // the fetch, the call returns at once.
        FaultKind::Exec => unsafe { mmu::call(addr) },
    }
    error!("W^X test: {what} at {addr:#x} succeeded: the EL2 map is not W^X");
}
