//! Memory management: physical layout, page tables, the hypervisor's own
//! map and the heap.

pub mod accounting;
pub mod budget_tables;
pub mod el2layout;
pub mod el2map;
pub mod heap;
pub mod heap_tables;
pub mod layout;
pub mod mirror;
pub mod pagetable;
