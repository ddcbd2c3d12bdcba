//! Memory management: physical layout, page tables and the heap.

pub mod accounting;
pub mod el2layout;
pub mod layout;
pub mod pagetable;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod el2map;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod heap;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod heap_tables;
