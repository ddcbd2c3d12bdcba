//! Memory management: physical layout, page tables and the heap.

pub mod accounting;
pub mod el2layout;
pub mod layout;
pub mod pagetable;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod el2map;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod heap;
pub mod heap_tables;

/// The heap's accounting on the host, until the heap itself is host-built:
/// nothing is charged (the host's allocator is not the hypervisor heap).
#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
pub mod heap {
    use super::accounting::{Owner, Usage};
    /// Sets this CPU's owner (no effect on the host).
    pub fn set_owner(owner: Owner) -> Owner {
        owner
    }
    /// Heap use of `owner` (none on the host).
    pub fn usage(_owner: Owner) -> Usage {
        Usage::default()
    }
    /// Runs `f` (no accounting on the host).
    pub fn charged_to<R>(_owner: Owner, f: impl FnOnce() -> R) -> R {
        f()
    }
}
