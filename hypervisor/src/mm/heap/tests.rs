//! The heap on host memory, with the fake CPU choosing who is charged.

use super::*;
use crate::arch::fake;

/// A heap over `size` bytes of host memory (aligned to `size`, so the
/// buddy allocator takes it as one block), freed at the end of the test.
struct TestHeap {
    heap: Heap,
    region: *mut u8,
    layout: Layout,
}

impl TestHeap {
    fn new(size: usize) -> TestHeap {
        fake::reset();
        let layout = Layout::from_size_align(size, size).expect("power of two");
        // SAFETY: a non-zero layout.
        let region = unsafe { std::alloc::alloc(layout) };
        assert!(!region.is_null());
        let heap = Heap::new();
        // SAFETY: the region is ours alone until `drop`.
        unsafe { heap.add(region as usize, region as usize + size) };
        TestHeap {
            heap,
            region,
            layout,
        }
    }

    fn alloc(&self, size: usize, align: usize) -> *mut u8 {
        let layout = Layout::from_size_align(size, align).expect("valid layout");
        // SAFETY: a non-zero layout.
        unsafe { self.heap.alloc(layout) }
    }

    fn free(&self, p: *mut u8, size: usize, align: usize) {
        let layout = Layout::from_size_align(size, align).expect("valid layout");
        // SAFETY: `p` came from `alloc` with this layout.
        unsafe { self.heap.dealloc(p, layout) };
    }

    fn live(&self, owner: Owner) -> usize {
        self.heap.usage(owner).live
    }
}

impl Drop for TestHeap {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the heap over it is
        // dropped with `self`.
        unsafe { std::alloc::dealloc(self.region, self.layout) };
    }
}

#[test]
fn the_size_classes_and_the_buddy_rounding() {
    let l = |size, align| Layout::from_size_align(size, align).unwrap();
    assert_eq!(class_of(&l(1, 1)), Some(0));
    assert_eq!(class_of(&l(16, 8)), Some(0));
    assert_eq!(class_of(&l(17, 8)), Some(1));
    assert_eq!(class_of(&l(8, 64)), Some(2), "the alignment counts");
    assert_eq!(class_of(&l(512, 8)), Some(5));
    assert_eq!(class_of(&l(513, 8)), None);
    assert_eq!(buddy_size(&l(3000, 8)), 4096);
    assert_eq!(buddy_size(&l(4096, 8192)), 8192);
    assert_eq!(buddy_size(&l(1, 1)), core::mem::size_of::<usize>());
}

#[test]
fn a_freed_small_block_is_reused_from_its_class() {
    let h = TestHeap::new(1 << 20);
    let p = h.alloc(24, 8);
    assert!(!p.is_null());
    assert_eq!(p as usize % 32, 0, "class blocks are aligned to their size");
    assert_eq!(h.heap.stats(), (1 << 20, 32));
    assert_eq!(h.live(Owner::Hypervisor), 32);
    h.free(p, 24, 8);
    assert_eq!(h.heap.cached(1), 1);
    assert_eq!(
        h.heap.stats().1,
        32,
        "a cached block stays taken from the buddy"
    );
    assert_eq!(h.heap.usage(Owner::Hypervisor), Usage { live: 0, peak: 32 });
    // Any layout of the same class gets the cached block back.
    let q = h.alloc(20, 4);
    assert_eq!(q, p);
    assert_eq!(h.heap.cached(1), 0);
    assert_eq!(h.heap.stats().1, 32);
    h.free(q, 20, 4);
}

#[test]
fn frees_beyond_the_cache_limit_go_back_to_the_buddy() {
    let h = TestHeap::new(1 << 20);
    let blocks: Vec<*mut u8> = (0..MAX_CACHED + 8).map(|_| h.alloc(64, 8)).collect();
    assert!(blocks.iter().all(|p| !p.is_null()));
    assert_eq!(h.heap.stats().1, (MAX_CACHED + 8) * 64);
    for &p in &blocks {
        h.free(p, 64, 8);
    }
    assert_eq!(h.heap.cached(2), MAX_CACHED);
    assert_eq!(h.heap.stats().1, MAX_CACHED * 64);
    assert_eq!(
        h.heap.usage(Owner::Hypervisor),
        Usage {
            live: 0,
            peak: (MAX_CACHED + 8) * 64
        }
    );
    // Other classes are untouched.
    assert_eq!(h.heap.cached(1), 0);
}

#[test]
fn large_blocks_are_the_buddys_with_its_rounding() {
    let h = TestHeap::new(1 << 20);
    let p = h.alloc(3000, 8);
    assert!(!p.is_null());
    assert_eq!(h.heap.stats().1, 4096);
    assert_eq!(h.live(Owner::Hypervisor), 4096);
    h.free(p, 3000, 8);
    assert_eq!(h.heap.stats().1, 0);
    assert_eq!(
        h.heap.usage(Owner::Hypervisor),
        Usage {
            live: 0,
            peak: 4096
        }
    );
}

#[test]
fn allocations_are_charged_to_the_owner_of_the_cpu() {
    let h = TestHeap::new(1 << 20);
    fake::with(|s| s.cpu = 2);
    assert_eq!(h.heap.set_owner(Owner::Guest(1)), Owner::Hypervisor);
    let g = h.alloc(100, 8);
    let big = h.alloc(8192, 8);
    assert_eq!(h.live(Owner::Guest(1)), 128 + 8192);
    // CPU 0 still works for the hypervisor.
    fake::with(|s| s.cpu = 0);
    let hv = h.alloc(16, 8);
    assert_eq!(h.live(Owner::Hypervisor), 16);
    assert_eq!(h.live(Owner::Guest(1)), 128 + 8192);
    // Frees are credited to the owner of the CPU that frees.
    fake::with(|s| s.cpu = 2);
    h.free(big, 8192, 8);
    h.free(g, 100, 8);
    assert_eq!(
        h.heap.usage(Owner::Guest(1)),
        Usage {
            live: 0,
            peak: 128 + 8192
        }
    );
    fake::with(|s| s.cpu = 0);
    h.free(hv, 16, 8);
    assert_eq!(h.heap.usage(Owner::Hypervisor), Usage { live: 0, peak: 16 });
    assert_eq!(h.heap.usage(Owner::Guest(0)), Usage::default());
}

#[test]
fn charged_to_restores_the_previous_owner() {
    let h = TestHeap::new(1 << 20);
    fake::with(|s| s.cpu = 1);
    h.heap.set_owner(Owner::Guest(0));
    let p = h.heap.charged_to(Owner::Guest(2), || {
        let p = h.alloc(256, 8);
        // Nested: the inner owner is restored to the outer one.
        let q = h.heap.charged_to(Owner::Hypervisor, || h.alloc(16, 8));
        assert_eq!(h.live(Owner::Hypervisor), 16);
        // Freed back under Guest(2): credited to it (see accounting).
        h.free(q, 16, 8);
        p
    });
    assert_eq!(h.heap.set_owner(Owner::Guest(0)), Owner::Guest(0));
    let r = h.alloc(32, 8);
    assert_eq!(h.live(Owner::Guest(0)), 32);
    // Guest 2 was charged 256 and credited the 16 freed under it.
    assert_eq!(
        h.heap.usage(Owner::Guest(2)),
        Usage {
            live: 240,
            peak: 256
        }
    );
    h.free(r, 32, 8);
    h.heap.charged_to(Owner::Guest(2), || h.free(p, 256, 8));
    assert_eq!(h.live(Owner::Guest(2)), 0);
    assert_eq!(h.heap.set_owner(Owner::Hypervisor), Owner::Guest(0));
}

#[test]
fn the_peak_is_the_most_live_at_once() {
    let h = TestHeap::new(1 << 20);
    let a = h.alloc(4096, 8);
    let b = h.alloc(4096, 8);
    h.free(a, 4096, 8);
    let c = h.alloc(512, 8);
    assert_eq!(
        h.heap.usage(Owner::Hypervisor),
        Usage {
            live: 4096 + 512,
            peak: 8192
        }
    );
    h.free(b, 4096, 8);
    h.free(c, 512, 8);
    assert_eq!(h.live(Owner::Hypervisor), 0);
}

#[test]
fn an_exhausted_heap_returns_null_and_charges_nothing() {
    fake::reset();
    let empty = Heap::new();
    let layout = Layout::from_size_align(64, 8).unwrap();
    // SAFETY: a non-zero layout.
    assert!(unsafe { empty.alloc(layout) }.is_null());
    assert_eq!(empty.usage(Owner::Hypervisor), Usage::default());
    assert_eq!(empty.stats(), (0, 0));

    let h = TestHeap::new(64 << 10);
    assert!(h.alloc(128 << 10, 8).is_null(), "more than the heap holds");
    assert_eq!(h.live(Owner::Hypervisor), 0);
}
