//! The EL2 stage-1 MMU: translation control values, switching it on, and
//! asking it what it allows at an address (AT S1E2R/S1E2W) for the W^X
//! self-check of [`crate::mm::el2map`].

use super::cpu;
use super::sysreg::{read_sysreg, write_sysreg};
use crate::arch::{EL2_VA_BITS as VA_BITS, El2Access};
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{MAIR_EL2, Readable, SCTLR_EL2, TCR_EL2, TTBR0_EL2, Writeable};

/// SCTLR_EL2.WXN: every writable mapping is execute-never.
const SCTLR_WXN: u64 = 1 << 19;

/// Register values that switch the EL2 MMU on with a given table.
#[derive(Debug, Clone, Copy)]
pub struct MmuConfig {
    /// TTBR0_EL2.
    pub ttbr0: u64,
    /// TCR_EL2.
    pub tcr: u64,
    /// MAIR_EL2.
    pub mair: u64,
    /// SCTLR_EL2 with M, C, I and WXN set.
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
            | SCTLR_WXN         // writable implies execute-never
            | (1 << 12)         // I
            | (1 << 3)          // SA
            | (1 << 2)          // C
            | 1; // M
        MmuConfig {
            ttbr0: root,
            tcr,
            mair: crate::arch::EL2_MAIR,
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

/// True when SCTLR_EL2.WXN is set: no writable mapping is executable.
pub fn wxn_enabled() -> bool {
    SCTLR_EL2.get() & SCTLR_WXN != 0
}

/// Asks the MMU whether EL2 may read and write `va` (AT S1E2R and AT
/// S1E2W; PAR_EL1.F is clear when the translation succeeds). PAR_EL1 is
/// restored afterwards.
pub fn probe(va: u64) -> El2Access {
    let saved = read_sysreg!("par_el1");
    // SAFETY: an address translation instruction only writes PAR_EL1
    // (restored below) and reads nothing but the translation tables.
    unsafe { core::arch::asm!("at s1e2r, {}", in(reg) va, options(nostack, preserves_flags)) };
    barrier::isb(barrier::SY);
    let read = read_sysreg!("par_el1") & 1 == 0;
    // SAFETY: as above.
    unsafe { core::arch::asm!("at s1e2w, {}", in(reg) va, options(nostack, preserves_flags)) };
    barrier::isb(barrier::SY);
    let write = read_sysreg!("par_el1") & 1 == 0;
    write_sysreg!("par_el1", saved);
    El2Access { read, write }
}

/// Stores `value` at `addr` with one 32-bit store, whatever the mapping
/// says (the W^X fault test of [`crate::mm::el2map::fault_test`]).
///
/// # Safety
/// `addr` must be 4-byte aligned and writing `value` there must be harmless
/// if the mapping allows it.
pub unsafe fn store32(addr: u64, value: u32) {
    // SAFETY: the caller makes the store harmless; a refused store is a
    // synchronous data abort taken to the EL2 vectors.
    unsafe {
        core::arch::asm!("str {v:w}, [{a}]", a = in(reg) addr, v = in(reg) value, options(nostack, preserves_flags))
    };
}

/// Branches with link to `addr` after making the instruction cache see the
/// data there (the W^X fault test of [`crate::mm::el2map::fault_test`]).
///
/// # Safety
/// `addr` must hold code that returns at once with the C ABI if the
/// mapping allows it to run (a `ret`).
pub unsafe fn call(addr: u64) {
    // SAFETY: cache maintenance by address on a readable address has no
    // effect on memory contents; the caller guarantees that the code at
    // `addr` returns; a refused fetch is a synchronous instruction abort
    // taken to the EL2 vectors.
    unsafe {
        core::arch::asm!(
            "dc cvau, {a}",
            "dsb ish",
            "ic ivau, {a}",
            "dsb ish",
            "isb",
            "blr {a}",
            a = in(reg) addr,
            clobber_abi("C"),
        )
    };
}
