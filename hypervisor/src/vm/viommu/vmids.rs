//! VMIDs of virtio-iommu domains, shared by every guest's virtio-iommu:
//! handed out from [`FIRST_DOMAIN_VMID`] up to the largest VMID the CPU and
//! SMMUs take, and given back when a domain is destroyed.

use alloc::vec::Vec;
use spin::Mutex;

/// First VMID handed to virtio-iommu domains (guests use 1..=8).
pub const FIRST_DOMAIN_VMID: u16 = 64;

/// The VMIDs in use by domains, across guests.
pub struct VmidPool {
    max: u16,
    used: Mutex<Vec<u16>>,
}

impl VmidPool {
    /// A pool of `FIRST_DOMAIN_VMID..=max`.
    pub fn new(max: u16) -> Self {
        VmidPool {
            max,
            used: Mutex::new(Vec::new()),
        }
    }

    /// A pool sized for the CPU: 16-bit VMIDs or 8-bit ones.
    pub fn for_cpu(vmid16: bool) -> Self {
        Self::new(if vmid16 { u16::MAX } else { 0xff })
    }

    /// Takes the lowest free VMID; None when all are in use.
    pub fn alloc(&self) -> Option<u16> {
        let mut used = self.used.lock();
        let v = (FIRST_DOMAIN_VMID..=self.max).find(|v| !used.contains(v))?;
        used.push(v);
        Some(v)
    }

    /// Gives `vmid` back.
    pub fn free(&self, vmid: u16) {
        self.used.lock().retain(|&x| x != vmid);
    }

    /// VMIDs in use.
    pub fn in_use(&self) -> usize {
        self.used.lock().len()
    }
}
