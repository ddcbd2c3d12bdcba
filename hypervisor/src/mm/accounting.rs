//! Heap accounting by owner: how much hypervisor memory each guest costs.
//!
//! Every physical CPU has a *current owner*, the hypervisor itself or one
//! guest. The heap charges each allocation to the owner of the CPU that
//! makes it and credits each free to the owner of the CPU that makes it;
//! per owner it keeps the bytes live now and the most ever live (the peak).
//! In a static partitioner a CPU runs at most one vCPU of one guest, so the
//! owner is set where a CPU enters its vCPU, and on the boot CPU around the
//! construction of each guest; everything else is the hypervisor's.
//!
//! No block remembers who allocated it (that would cost a header or a
//! side table on every allocation). A block freed under another owner
//! than the one it was charged to is credited to the freeing owner, whose
//! live count saturates at zero instead of wrapping; the charged owner
//! keeps it as live. In practice a guest's memory is allocated and freed
//! on its own CPUs, and the hypervisor frees only its own.
//!
//! The counters are relaxed atomics: a charge is one `fetch_add` and a load
//! of the peak (a `fetch_max` only when the peak grows), a credit one
//! compare-and-swap loop that normally runs once. Readers get a consistent
//! enough snapshot for reporting, not a linearisable one.

use crate::config::limits::MAX_GUESTS;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Owners counted: the hypervisor and [`MAX_GUESTS`] guests.
pub const OWNERS: usize = MAX_GUESTS + 1;

/// Who an allocation is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The hypervisor itself (boot, global tables, anything not a guest's).
    Hypervisor,
    /// The guest with this index (its position in the bundle). An index of
    /// [`MAX_GUESTS`] or more is counted as the hypervisor's.
    Guest(usize),
}

impl Owner {
    /// Counter slot: 0 for the hypervisor, index + 1 for a guest.
    fn slot(self) -> usize {
        match self {
            Owner::Guest(g) if g < MAX_GUESTS => g + 1,
            _ => 0,
        }
    }

    fn from_slot(slot: usize) -> Owner {
        match slot {
            0 => Owner::Hypervisor,
            s => Owner::Guest(s - 1),
        }
    }
}

/// One owner's heap use, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Allocated now.
    pub live: usize,
    /// The most ever allocated at once.
    pub peak: usize,
}

/// One owner's counters, on a cache line of their own: guests allocating
/// on their own CPUs do not contend for a line (no interference through
/// the accounting).
#[repr(align(64))]
struct Counters {
    live: AtomicUsize,
    peak: AtomicUsize,
}

/// Per-CPU current owners and per-owner counters, for `CPUS` physical CPUs
/// (a CPU index is taken modulo `CPUS`).
pub struct Accounts<const CPUS: usize> {
    /// Per CPU: the [`Owner::slot`] of its current owner. Written only
    /// when a CPU changes owner, read on every allocation.
    current: [AtomicUsize; CPUS],
    counters: [Counters; OWNERS],
}

impl<const CPUS: usize> Default for Accounts<CPUS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const CPUS: usize> Accounts<CPUS> {
    /// Every CPU owned by the hypervisor, every counter zero.
    pub const fn new() -> Self {
        Accounts {
            current: [const { AtomicUsize::new(0) }; CPUS],
            counters: [const {
                Counters {
                    live: AtomicUsize::new(0),
                    peak: AtomicUsize::new(0),
                }
            }; OWNERS],
        }
    }

    /// Makes `owner` the current owner of CPU `cpu`; returns the previous
    /// one. Only CPU `cpu` itself should call this (the load in
    /// [`charge`](Self::charge) is relaxed).
    pub fn set_owner(&self, cpu: usize, owner: Owner) -> Owner {
        Owner::from_slot(self.current[cpu % CPUS].swap(owner.slot(), Relaxed))
    }

    /// The current owner of CPU `cpu`.
    pub fn owner(&self, cpu: usize) -> Owner {
        Owner::from_slot(self.current[cpu % CPUS].load(Relaxed))
    }

    /// The counters of CPU `cpu`'s current owner.
    #[inline]
    fn current(&self, cpu: usize) -> Option<&Counters> {
        // Always in range (`set_owner` stores slots); `get` keeps a panic
        // path out of the allocator.
        self.counters.get(self.current[cpu % CPUS].load(Relaxed))
    }

    /// Charges `bytes` allocated on CPU `cpu` to its current owner.
    #[inline]
    pub fn charge(&self, cpu: usize, bytes: usize) {
        if let Some(c) = self.current(cpu) {
            let now = c.live.fetch_add(bytes, Relaxed).wrapping_add(bytes);
            if now > c.peak.load(Relaxed) {
                c.peak.fetch_max(now, Relaxed);
            }
        }
    }

    /// Credits `bytes` freed on CPU `cpu` to its current owner, saturating
    /// at zero (see the module documentation).
    #[inline]
    pub fn credit(&self, cpu: usize, bytes: usize) {
        if let Some(c) = self.current(cpu) {
            let _ = c
                .live
                .fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(bytes)));
        }
    }

    /// The heap use of `owner`.
    pub fn usage(&self, owner: Owner) -> Usage {
        let c = &self.counters[owner.slot()];
        let live = c.live.load(Relaxed);
        // A charge raises the peak just after the live count.
        let peak = c.peak.load(Relaxed).max(live);
        Usage { live, peak }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type A = Accounts<4>;

    #[test]
    fn charges_go_to_the_current_owner_of_the_cpu() {
        let a = A::new();
        assert_eq!(a.owner(0), Owner::Hypervisor);
        assert_eq!(a.set_owner(1, Owner::Guest(0)), Owner::Hypervisor);
        a.charge(0, 100);
        a.charge(1, 4096);
        a.charge(1, 64);
        assert_eq!(
            a.usage(Owner::Hypervisor),
            Usage {
                live: 100,
                peak: 100
            }
        );
        assert_eq!(
            a.usage(Owner::Guest(0)),
            Usage {
                live: 4160,
                peak: 4160
            }
        );
        assert_eq!(a.usage(Owner::Guest(1)), Usage::default());
    }

    #[test]
    fn the_peak_stays_after_frees() {
        let a = A::new();
        a.set_owner(2, Owner::Guest(3));
        a.charge(2, 4096);
        a.charge(2, 8192);
        a.credit(2, 8192);
        a.charge(2, 512);
        assert_eq!(
            a.usage(Owner::Guest(3)),
            Usage {
                live: 4608,
                peak: 12288
            }
        );
    }

    #[test]
    fn a_free_under_another_owner_saturates_at_zero() {
        let a = A::new();
        a.set_owner(0, Owner::Guest(0));
        a.charge(0, 4096);
        // The hypervisor frees the guest's block: its own count cannot go
        // below zero, the guest keeps the block as live.
        assert_eq!(a.set_owner(0, Owner::Hypervisor), Owner::Guest(0));
        a.charge(0, 64);
        a.credit(0, 4096);
        assert_eq!(a.usage(Owner::Hypervisor), Usage { live: 0, peak: 64 });
        assert_eq!(
            a.usage(Owner::Guest(0)),
            Usage {
                live: 4096,
                peak: 4096
            }
        );
        // Later allocations count from zero again.
        a.charge(0, 32);
        assert_eq!(a.usage(Owner::Hypervisor), Usage { live: 32, peak: 64 });
    }

    #[test]
    fn owners_out_of_range_are_the_hypervisor() {
        let a = A::new();
        a.set_owner(0, Owner::Guest(MAX_GUESTS));
        assert_eq!(a.owner(0), Owner::Hypervisor);
        a.charge(0, 16);
        assert_eq!(a.usage(Owner::Hypervisor).live, 16);
        assert_eq!(a.usage(Owner::Guest(MAX_GUESTS)).live, 16);
        a.set_owner(0, Owner::Guest(MAX_GUESTS - 1));
        assert_eq!(a.owner(0), Owner::Guest(MAX_GUESTS - 1));
    }

    #[test]
    fn cpu_indices_wrap() {
        let a = A::new();
        a.set_owner(5, Owner::Guest(2));
        assert_eq!(a.owner(1), Owner::Guest(2));
    }

    #[test]
    fn concurrent_charges_and_credits_balance() {
        let a = std::sync::Arc::new(A::new());
        let threads: Vec<_> = (0..4)
            .map(|cpu| {
                let a = a.clone();
                std::thread::spawn(move || {
                    a.set_owner(cpu, Owner::Guest(cpu % 2));
                    for i in 0..10_000 {
                        a.charge(cpu, 16 << (i % 6));
                        a.credit(cpu, 16 << (i % 6));
                    }
                    a.charge(cpu, 4096);
                })
            })
            .collect();
        for t in threads {
            t.join().expect("no panic");
        }
        for g in 0..2 {
            let u = a.usage(Owner::Guest(g));
            assert_eq!(u.live, 2 * 4096);
            assert!(u.peak >= 2 * 4096 && u.peak <= 2 * (4096 + 512), "{u:?}");
        }
    }
}
