//! VMIDs of virtio-iommu domains.
//!
//! One [`VmidPool`] for the machine, sized from what the CPU and every SMMU
//! in use take ([`VmidPool::for_machine`]): 16-bit VMIDs only when all of
//! them have VMID16, else 8-bit ones, so a VMID handed out always fits the
//! STE of any SMMU. Domain VMIDs run from [`FIRST_DOMAIN_VMID`] up; the
//! guests' own stage-2 VMIDs (1 to [`MAX_GUESTS`]) and those of their
//! tables for unattached endpoints ([`unattached_vmid`]) lie below it.
//!
//! Each guest's virtio-iommu takes a share of the pool at build
//! ([`VmidPool::reserve`], a [`GuestVmids`]): the shares never add up to
//! more than the pool holds, so one guest allocating all of its share
//! cannot leave another guest without VMIDs. The pool's bitmap and each
//! share's list are allocated once, up front: allocating and freeing a
//! VMID on a guest's request never allocates memory.

use crate::config::limits::MAX_GUESTS;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use spin::Mutex;

/// First VMID handed to virtio-iommu domains (guests use 1..=MAX_GUESTS).
pub const FIRST_DOMAIN_VMID: u16 = 64;

const _: () = assert!(MAX_GUESTS < FIRST_DOMAIN_VMID as usize);

/// VMIDs of the guests' tables for unattached endpoints
/// ([`unattached_vmid`]) start above this.
const UNATTACHED_VMID_BASE: u16 = 32;

const _: () = assert!(
    MAX_GUESTS < UNATTACHED_VMID_BASE as usize
        && UNATTACHED_VMID_BASE as usize + MAX_GUESTS < FIRST_DOMAIN_VMID as usize
);

/// The VMID of guest `index`'s table for the virtio-iommu endpoints no
/// domain holds (`vm::dma::Unattached`): one per guest, between the
/// guests' own VMIDs and the domains', so it fits 8-bit VMIDs.
pub const fn unattached_vmid(index: usize) -> u16 {
    UNATTACHED_VMID_BASE + 1 + index as u16
}

/// Largest VMID with 8-bit VMIDs.
pub const MAX_VMID8: u16 = 0xff;

struct PoolState {
    /// Bit `v - FIRST_DOMAIN_VMID` set: VMID `v` is in use.
    used: Vec<u64>,
    in_use: usize,
    /// VMIDs promised to shares (held or not).
    reserved: usize,
}

/// The VMIDs of domains, across guests.
pub struct VmidPool {
    max: u16,
    state: Mutex<PoolState>,
}

impl VmidPool {
    /// A pool of `FIRST_DOMAIN_VMID..=max` (empty when `max` is below
    /// [`FIRST_DOMAIN_VMID`]).
    pub fn new(max: u16) -> Self {
        let n = (usize::from(max) + 1).saturating_sub(usize::from(FIRST_DOMAIN_VMID));
        VmidPool {
            max,
            state: Mutex::new(PoolState {
                used: vec![0; n.div_ceil(64)],
                in_use: 0,
                reserved: 0,
            }),
        }
    }

    /// A pool sized for the CPU alone: 16-bit VMIDs or 8-bit ones. Use
    /// [`VmidPool::for_machine`] when SMMUs translate with these VMIDs.
    pub fn for_cpu(vmid16: bool) -> Self {
        Self::new(if vmid16 { u16::MAX } else { MAX_VMID8 })
    }

    /// A pool whose VMIDs every translator takes: the CPU (`cpu_vmid16`,
    /// ID_AA64MMFR1_EL1.VMIDBits) and the SMMUs (`smmu_max`, the largest
    /// VMID all of them accept, see `SmmuManager::max_vmid`).
    pub fn for_machine(cpu_vmid16: bool, smmu_max: u16) -> Self {
        let cpu_max = if cpu_vmid16 { u16::MAX } else { MAX_VMID8 };
        Self::new(cpu_max.min(smmu_max))
    }

    /// The largest VMID the pool hands out.
    pub fn max(&self) -> u16 {
        self.max
    }

    /// How many VMIDs the pool holds.
    pub fn capacity(&self) -> usize {
        let n = usize::from(self.max) + 1;
        n.saturating_sub(usize::from(FIRST_DOMAIN_VMID))
    }

    /// A share of up to `want` VMIDs for one guest: all of them if the
    /// pool still has that many unpromised, else what is left (possibly
    /// none). The share is the guest's until dropped.
    pub fn reserve(self: &Arc<Self>, want: usize) -> GuestVmids {
        let granted = {
            let mut s = self.state.lock();
            let granted = want.min(self.capacity().saturating_sub(s.reserved));
            s.reserved += granted;
            granted
        };
        GuestVmids {
            pool: self.clone(),
            quota: granted,
            held: Vec::with_capacity(granted),
        }
    }

    /// Takes the lowest free VMID.
    fn take(&self) -> Option<u16> {
        let mut s = self.state.lock();
        let cap = self.capacity();
        let (w, word) = s.used.iter().enumerate().find(|(_, w)| **w != u64::MAX)?;
        let bit = word.trailing_ones() as usize;
        let index = w * 64 + bit;
        if index >= cap {
            return None;
        }
        let vmid = u16::try_from(index + usize::from(FIRST_DOMAIN_VMID)).ok()?;
        *s.used.get_mut(w)? |= 1 << bit;
        s.in_use += 1;
        Some(vmid)
    }

    /// Gives `vmid` back (ignored if it is not in use).
    fn give_back(&self, vmid: u16) {
        let Some(index) = vmid.checked_sub(FIRST_DOMAIN_VMID).map(usize::from) else {
            return;
        };
        let mut s = self.state.lock();
        if let Some(word) = s.used.get_mut(index / 64)
            && *word & (1 << (index % 64)) != 0
        {
            *word &= !(1 << (index % 64));
            s.in_use -= 1;
        }
    }

    /// VMIDs in use.
    pub fn in_use(&self) -> usize {
        self.state.lock().in_use
    }

    /// VMIDs promised to shares.
    pub fn reserved(&self) -> usize {
        self.state.lock().reserved
    }
}

/// One guest's share of the [`VmidPool`]: at most [`GuestVmids::quota`]
/// VMIDs held at once.
pub struct GuestVmids {
    pool: Arc<VmidPool>,
    quota: usize,
    /// VMIDs held (capacity `quota`, never grown).
    held: Vec<u16>,
}

impl GuestVmids {
    /// Takes a VMID of the share; None when the share is used up.
    pub fn alloc(&mut self) -> Option<u16> {
        if self.held.len() >= self.quota {
            return None;
        }
        let vmid = self.pool.take()?;
        self.held.push(vmid);
        Some(vmid)
    }

    /// Gives `vmid` back to the share (and the pool). Its TLB entries must
    /// be gone: the next domain may get it.
    pub fn free(&mut self, vmid: u16) {
        if let Some(at) = self.held.iter().position(|&v| v == vmid) {
            self.held.swap_remove(at);
            self.pool.give_back(vmid);
        }
    }

    /// How many VMIDs the share may hold.
    pub fn quota(&self) -> usize {
        self.quota
    }

    /// How many it holds.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// The pool's largest VMID.
    pub fn max(&self) -> u16 {
        self.pool.max
    }
}

impl Drop for GuestVmids {
    /// Returns the unused part of the share. VMIDs still held stay in use
    /// (their TLB entries may live on): a dropped backend leaks them
    /// rather than risk their reuse.
    fn drop(&mut self) {
        let mut s = self.pool.state.lock();
        s.reserved -= self.quota - self.held.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_is_sized_by_the_narrowest_translator() {
        assert_eq!(VmidPool::for_machine(true, u16::MAX).max(), u16::MAX);
        assert_eq!(VmidPool::for_machine(true, MAX_VMID8).max(), MAX_VMID8);
        assert_eq!(VmidPool::for_machine(false, u16::MAX).max(), MAX_VMID8);
        assert_eq!(VmidPool::new(MAX_VMID8).capacity(), 192);
        assert_eq!(VmidPool::new(u16::MAX).capacity(), 65536 - 64);
        assert_eq!(VmidPool::new(10).capacity(), 0);
    }

    #[test]
    fn shares_never_exceed_the_pool_and_vmids_stay_in_range() {
        let pool = Arc::new(VmidPool::new(MAX_VMID8));
        let mut a = pool.reserve(150);
        let b = pool.reserve(150);
        assert_eq!((a.quota(), b.quota()), (150, 42), "b gets what is left");
        assert_eq!(pool.reserve(1).quota(), 0);
        let got: Vec<u16> = core::iter::from_fn(|| a.alloc()).collect();
        assert_eq!(got.len(), 150, "a's share and no more");
        assert!(
            got.iter()
                .all(|&v| (FIRST_DOMAIN_VMID..=MAX_VMID8).contains(&v))
        );
        a.free(got[3]);
        assert_eq!(a.alloc(), Some(got[3]), "the lowest free VMID again");
        drop(b);
        assert_eq!(pool.reserved(), 150, "b's unused share is back");
        let mut wide = Arc::new(VmidPool::new(u16::MAX)).reserve(70000);
        let all: Vec<u16> = core::iter::from_fn(|| wide.alloc()).collect();
        assert_eq!(all.len(), 65536 - 64);
        assert_eq!(all.last(), Some(&u16::MAX));
    }
}
