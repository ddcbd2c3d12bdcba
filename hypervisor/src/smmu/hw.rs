//! The SMMUv3 driver on real hardware: registers through the EL2 identity
//! map ([`MmioRegs`]), queue and table memory from the heap ([`HeapDma`]),
//! cache maintenance through [`crate::arch::Arch`] ([`ArchCache`]), and the
//! manager over them ([`HwSmmuManager`]).
//!
//! Plain code over `Arch`, so it compiles (and the manager type checks) on
//! the host too; only the target maps SMMU registers and so constructs
//! [`MmioRegs`].

use super::dma::{CacheOps, DmaMemory};
use super::manager::{SmmuManager, SmmuParts};
use super::regs::SmmuRegs;
use crate::arch::{Arch, Cpu};
use crate::fdt::Smmu as SmmuNode;
use alloc::alloc::{Layout, alloc_zeroed};

/// The SMMUs of the machine as the hypervisor runs them.
pub type HwSmmuManager = SmmuManager<MmioRegs, HeapDma, ArchCache>;

/// Registers of one SMMU, mapped as device memory at `base`.
#[derive(Debug)]
pub struct MmioRegs {
    base: usize,
}

impl MmioRegs {
    /// Registers at `base` (both 64 KiB pages must be mapped).
    ///
    /// # Safety
    /// `base` must be an SMMUv3 register block mapped as device memory and
    /// used through nothing else.
    pub unsafe fn new(base: usize) -> Self {
        MmioRegs { base }
    }
}

impl SmmuRegs for MmioRegs {
    fn read32(&self, off: usize) -> u32 {
        // SAFETY: `new`'s contract: the register block is mapped.
        let v = unsafe { core::ptr::read_volatile((self.base + off) as *const u32) };
        Cpu::read_barrier();
        v
    }
    fn write32(&mut self, off: usize, value: u32) {
        Cpu::write_barrier();
        // SAFETY: as in read32.
        unsafe { core::ptr::write_volatile((self.base + off) as *mut u32, value) }
    }
    fn read64(&self, off: usize) -> u64 {
        // SAFETY: as in read32.
        let v = unsafe { core::ptr::read_volatile((self.base + off) as *const u64) };
        Cpu::read_barrier();
        v
    }
    fn write64(&mut self, off: usize, value: u64) {
        Cpu::write_barrier();
        // SAFETY: as in read32.
        unsafe { core::ptr::write_volatile((self.base + off) as *mut u64, value) }
    }
    fn relax(&mut self) {
        // About a microsecond, so that poll limits are time limits.
        let start = Cpu::uptime_us();
        while Cpu::uptime_us() == start {
            core::hint::spin_loop();
        }
    }
}

/// Table and queue memory from the heap (identity mapped: physical = virtual).
#[derive(Debug, Default)]
pub struct HeapDma;

// SAFETY: blocks come from the global allocator with the requested
// alignment, zeroed, are never freed while the driver lives (the driver owns
// them for the SMMU's lifetime) and are identity-mapped RAM.
unsafe impl DmaMemory for HeapDma {
    fn alloc_zeroed(&mut self, bytes: usize, align: usize) -> Option<u64> {
        let layout = Layout::from_size_align(bytes.max(8), align.max(8)).ok()?;
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc_zeroed(layout) };
        (!p.is_null()).then_some(p as u64)
    }
    fn ptr(&self, phys: u64) -> *mut u8 {
        phys as *mut u8
    }
}

/// Cache maintenance through [`Arch`].
#[derive(Debug, Default, Clone, Copy)]
pub struct ArchCache;

impl CacheOps for ArchCache {
    fn clean(&self, phys: u64, len: usize) {
        Cpu::clean_to_poc(phys, len);
    }
    fn clean_invalidate(&self, phys: u64, len: usize) {
        Cpu::clean_invalidate_to_poc(phys, len);
    }
}

impl<'a> SmmuParts<'a, MmioRegs, HeapDma, ArchCache> {
    /// The parts of the SMMU `node` describes, on real hardware.
    ///
    /// # Safety
    /// The caller has mapped `node`'s register block (both 64 KiB pages)
    /// as device memory at its physical address, and nothing else uses it.
    pub unsafe fn mapped(node: &'a SmmuNode) -> Self {
        SmmuParts {
            node,
            // SAFETY: forwarded from the caller.
            regs: unsafe { MmioRegs::new(node.base as usize) },
            dma: HeapDma,
            cache: ArchCache,
        }
    }
}
