//! The hypervisor heap: a buddy allocator that starts on a small region in
//! .bss (so the device tree can be parsed) and then grows over all RAM the
//! device tree leaves free, with a cache of small freed blocks in front of
//! it.
//!
//! The cache matters on the virtio-iommu request path: every request
//! allocates and frees a few small buffers, and a buddy allocator merges a
//! freed block with its buddies all the way up and splits it again on the
//! next allocation, hundreds of instructions each time.
//!
//! Every allocation is charged to the current owner of the CPU making it
//! (the hypervisor or a guest, [`super::accounting`]), with the size the
//! heap really takes for it: the class size for a small block, the
//! power-of-two block the buddy allocator splits off otherwise.
//!
//! [`Heap`] is plain logic and is tested on the host. On the target the
//! one instance, `HEAP`, is the image's global allocator and the free
//! functions of this module ([`add`], [`stats`], [`set_owner`],
//! [`usage`], [`charged_to`]) work on it. On the host `HEAP` exists too,
//! but it is *not* the program's allocator (that is std's): the same
//! functions work on it as on the target, but it holds no memory unless
//! [`add`] gives it some, and no allocation of the host program is charged
//! to any owner, so [`usage`] and [`stats`] report only what was taken
//! from `HEAP` itself.

use super::accounting::{Accounts, Owner, Usage};
use crate::arch::{Arch, Cpu};
use crate::gic::phys::MAX_CPUS;
use buddy_system_allocator::LockedHeap;
use core::alloc::{GlobalAlloc, Layout};
use spin::Mutex;

#[cfg(test)]
mod tests;

/// Size classes of the small-block cache (each block is aligned to its size).
const CLASSES: [usize; 6] = [16, 32, 64, 128, 256, 512];
/// Most blocks kept per class; more go back to the buddy allocator.
const MAX_CACHED: usize = 512;

/// A stack of free blocks of one class, linked through their first word.
struct FreeList {
    head: usize,
    len: usize,
}

/// The buddy allocator (orders up to 2^35 bytes: blocks large enough for
/// guest RAM) with the small-block cache in front and the per-owner
/// accounting.
pub struct Heap {
    buddy: LockedHeap<36>,
    cache: [Mutex<FreeList>; CLASSES.len()],
    /// Bytes allocated per owner.
    accounts: Accounts<MAX_CPUS>,
}

/// The class serving `layout`, if it is small.
fn class_of(layout: &Layout) -> Option<usize> {
    let need = layout.size().max(layout.align());
    CLASSES.iter().position(|&c| need <= c)
}

/// Bytes the buddy allocator takes for `layout` (its rounding).
fn buddy_size(layout: &Layout) -> usize {
    layout
        .size()
        .next_power_of_two()
        .max(layout.align())
        .max(core::mem::size_of::<usize>())
}

fn class_layout(class: usize) -> Layout {
    // CLASSES are powers of two: always a valid layout.
    Layout::from_size_align(CLASSES[class], CLASSES[class]).unwrap_or(Layout::new::<u8>())
}

impl Default for Heap {
    fn default() -> Self {
        Self::new()
    }
}

impl Heap {
    /// A heap with no memory, every CPU owned by the hypervisor.
    pub const fn new() -> Heap {
        Heap {
            buddy: LockedHeap::empty(),
            cache: [const { Mutex::new(FreeList { head: 0, len: 0 }) }; CLASSES.len()],
            accounts: Accounts::new(),
        }
    }

    /// Adds the memory `[start, end)` to the heap.
    ///
    /// # Safety
    /// The range must be writable memory, unused and never handed out
    /// otherwise while the heap lives.
    pub unsafe fn add(&self, start: usize, end: usize) {
        // SAFETY: forwarded from the caller.
        unsafe { self.buddy.lock().add_to_heap(start, end) };
    }

    /// Bytes the heap manages in all, and bytes the buddy allocator has
    /// handed out (blocks in the small-block cache included).
    pub fn stats(&self) -> (usize, usize) {
        let heap = self.buddy.lock();
        (heap.stats_total_bytes(), heap.stats_alloc_actual())
    }

    /// Makes `owner` the owner of this CPU's allocations from now on;
    /// returns the previous owner (to restore it).
    pub fn set_owner(&self, owner: Owner) -> Owner {
        self.accounts.set_owner(Cpu::cpu_index(), owner)
    }

    /// The heap use charged to `owner`.
    pub fn usage(&self, owner: Owner) -> Usage {
        self.accounts.usage(owner)
    }

    /// Runs `f` with this CPU's allocations charged to `owner`, then
    /// restores the previous owner.
    pub fn charged_to<R>(&self, owner: Owner, f: impl FnOnce() -> R) -> R {
        let previous = self.set_owner(owner);
        let r = f();
        self.set_owner(previous);
        r
    }

    /// Free blocks kept in the cache of `class` (tests).
    #[cfg(test)]
    fn cached(&self, class: usize) -> usize {
        self.cache[class].lock().len
    }

    /// Takes a block for `layout`; returns it and the bytes taken.
    ///
    /// # Safety
    /// As [`GlobalAlloc::alloc`].
    #[inline]
    unsafe fn take(&self, layout: Layout) -> (*mut u8, usize) {
        if let Some(c) = class_of(&layout) {
            let mut list = self.cache[c].lock();
            if list.head != 0 {
                let block = list.head;
                // SAFETY: cached blocks are free, at least a word long and
                // word aligned; their first word holds the next link.
                list.head = unsafe { *(block as *const usize) };
                list.len -= 1;
                return (block as *mut u8, CLASSES[c]);
            }
            drop(list);
            // SAFETY: a non-zero layout.
            return (unsafe { self.buddy.alloc(class_layout(c)) }, CLASSES[c]);
        }
        // SAFETY: forwarded.
        (unsafe { self.buddy.alloc(layout) }, buddy_size(&layout))
    }

    /// Gives back a block of `layout`; returns the bytes it took.
    ///
    /// # Safety
    /// As [`GlobalAlloc::dealloc`].
    #[inline]
    unsafe fn give_back(&self, ptr: *mut u8, layout: Layout) -> usize {
        if let Some(c) = class_of(&layout) {
            let mut list = self.cache[c].lock();
            if list.len < MAX_CACHED {
                // SAFETY: the block is ours again (the caller frees it) and
                // large enough for the link word.
                unsafe { *(ptr as *mut usize) = list.head };
                list.head = ptr as usize;
                list.len += 1;
                return CLASSES[c];
            }
            drop(list);
            // SAFETY: it was allocated with the class layout.
            unsafe { self.buddy.dealloc(ptr, class_layout(c)) };
            return CLASSES[c];
        }
        // SAFETY: forwarded.
        unsafe { self.buddy.dealloc(ptr, layout) };
        buddy_size(&layout)
    }
}

// SAFETY: blocks handed out come from the buddy allocator (directly, or
// freed earlier and kept in a class list whose blocks all have that class's
// size and alignment); a block is in at most one place at a time, guarded
// by the list's lock. The accounting only counts.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded.
        let (p, bytes) = unsafe { self.take(layout) };
        if !p.is_null() {
            self.accounts.charge(Cpu::cpu_index(), bytes);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded.
        let bytes = unsafe { self.give_back(ptr, layout) };
        self.accounts.credit(Cpu::cpu_index(), bytes);
    }
}

/// The hypervisor heap: the global allocator on the target; on the host an
/// instance that only [`add`] gives memory to (see the module
/// documentation).
#[cfg_attr(all(target_arch = "aarch64", target_os = "none"), global_allocator)]
static HEAP: Heap = Heap::new();

/// Size of the initial heap inside the image.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
const BOOT_HEAP_SIZE: usize = 1 << 20;

/// The initial heap, in the image's .bss.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[repr(C, align(4096))]
struct BootHeap([u8; BOOT_HEAP_SIZE]);

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
static mut BOOT_HEAP: BootHeap = BootHeap([0; BOOT_HEAP_SIZE]);

/// Starts the heap on the boot region in the image. Call once, with the
/// MMU on.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub fn init() {
    let start = &raw mut BOOT_HEAP as usize;
    // SAFETY: BOOT_HEAP is used for nothing else and is handed over once.
    unsafe { HEAP.add(start, start + BOOT_HEAP_SIZE) };
}

/// Adds the free RAM `[start, end)` to the hypervisor heap.
///
/// # Safety
/// The range must be mapped, unused and never handed out otherwise.
pub unsafe fn add(start: usize, end: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { HEAP.add(start, end) };
}

/// Bytes the hypervisor heap manages in all, and bytes allocated.
pub fn stats() -> (usize, usize) {
    HEAP.stats()
}

/// Makes `owner` the owner of this CPU's allocations from the hypervisor
/// heap from now on; returns the previous owner (to restore it).
pub fn set_owner(owner: Owner) -> Owner {
    HEAP.set_owner(owner)
}

/// The use of the hypervisor heap charged to `owner`.
pub fn usage(owner: Owner) -> Usage {
    HEAP.usage(owner)
}

/// Runs `f` with this CPU's allocations from the hypervisor heap charged
/// to `owner`, then restores the previous owner.
pub fn charged_to<R>(owner: Owner, f: impl FnOnce() -> R) -> R {
    HEAP.charged_to(owner, f)
}
