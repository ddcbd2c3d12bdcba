//! The hypervisor heap: a buddy allocator that starts on a small region in
//! .bss (so the device tree can be parsed) and then grows over all RAM the
//! device tree leaves free.

use buddy_system_allocator::LockedHeap;

/// Size of the initial heap inside the image.
const BOOT_HEAP_SIZE: usize = 1 << 20;

#[repr(C, align(4096))]
struct BootHeap([u8; BOOT_HEAP_SIZE]);

static mut BOOT_HEAP: BootHeap = BootHeap([0; BOOT_HEAP_SIZE]);

/// Orders up to 2^35 bytes: blocks large enough for guest RAM.
#[global_allocator]
static HEAP: LockedHeap<36> = LockedHeap::empty();

/// Starts the heap on the boot region. Call once, with the MMU on.
pub fn init() {
    let start = &raw mut BOOT_HEAP as usize;
    // SAFETY: BOOT_HEAP is used for nothing else and is handed over once.
    unsafe { HEAP.lock().init(start, BOOT_HEAP_SIZE) };
}

/// Adds the free RAM `[start, end)` to the heap.
///
/// # Safety
/// The range must be mapped, unused and never handed out otherwise.
pub unsafe fn add(start: usize, end: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { HEAP.lock().add_to_heap(start, end) };
}

/// Bytes the heap manages in all, and bytes allocated.
pub fn stats() -> (usize, usize) {
    let heap = HEAP.lock();
    (heap.stats_total_bytes(), heap.stats_alloc_actual())
}
