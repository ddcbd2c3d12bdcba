//! The EL2 stage-1 MMU: translation control values and switching it on.

use super::cpu;
use crate::mm::pagetable::Stage1El2;
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{MAIR_EL2, Readable, SCTLR_EL2, TCR_EL2, TTBR0_EL2, Writeable};

/// Input address bits of the EL2 map (T0SZ = 16, walk from level 0).
pub const VA_BITS: u32 = 48;

/// Register values that switch the EL2 MMU on with a given table.
#[derive(Debug, Clone, Copy)]
pub struct MmuConfig {
    /// TTBR0_EL2.
    pub ttbr0: u64,
    /// TCR_EL2.
    pub tcr: u64,
    /// MAIR_EL2.
    pub mair: u64,
    /// SCTLR_EL2 with M, C and I set.
    pub sctlr: u64,
}

impl MmuConfig {
    /// Values for a 4 KiB-granule, 48-bit table rooted at `root`, walked
    /// with inner-shareable write-back accesses.
    pub fn new(root: u64) -> MmuConfig {
        let ps = (cpu::pa_bits_field()).min(5); // at most 48 bits
        let tcr = (1 << 31) | (1 << 23) // RES1
            | (ps << 16)                // PS
            | (0b11 << 12)              // SH0 inner shareable
            | (0b01 << 10)              // ORGN0 write-back
            | (0b01 << 8)               // IRGN0 write-back
            | (64 - VA_BITS as u64); // T0SZ
        let sctlr = 0x30c5_0830 // RES1
            | (1 << 12)         // I
            | (1 << 3)          // SA
            | (1 << 2)          // C
            | 1; // M
        MmuConfig {
            ttbr0: root,
            tcr,
            mair: Stage1El2::MAIR,
            sctlr,
        }
    }
}

/// Switches the EL2 MMU and caches on with `cfg`.
///
/// # Safety
/// The table must identity-map all code, data and stacks in use, and memory
/// written with caches off must not be shadowed by stale cache lines.
pub unsafe fn enable(cfg: &MmuConfig) {
    MAIR_EL2.set(cfg.mair);
    TCR_EL2.set(cfg.tcr);
    TTBR0_EL2.set(cfg.ttbr0);
    barrier::isb(barrier::SY);
    // SAFETY: invalidating all EL2 TLB entries has no effect on memory.
    unsafe { core::arch::asm!("tlbi alle2", "dsb nsh", options(nostack)) };
    barrier::isb(barrier::SY);
    SCTLR_EL2.set(cfg.sctlr);
    barrier::isb(barrier::SY);
}

/// True when the EL2 MMU is on.
pub fn enabled() -> bool {
    SCTLR_EL2.get() & 1 != 0
}

/// Makes new entries of the EL2 table visible to the walker (entries that
/// were invalid before need no TLB invalidation).
pub fn publish_new_entries() {
    barrier::dsb(barrier::ISHST);
    barrier::isb(barrier::SY);
}
