//! Data-cache maintenance by virtual address and the barriers around it.

use aarch64_cpu::asm::barrier;

/// Smallest data-cache line any Armv8 CPU has; walking by it is always safe.
const LINE: usize = 64;

/// Cleans `[start, start + len)` to the point of coherency, so that an
/// observer with caches off (a CPU before its MMU is on, a non-coherent
/// device) sees what was written.
pub fn clean_to_poc(start: usize, len: usize) {
    let mut addr = start & !(LINE - 1);
    while addr < start + len {
        // SAFETY: DC CVAC only writes back cache lines; it changes no data.
        unsafe { core::arch::asm!("dc cvac, {}", in(reg) addr, options(nostack)) };
        addr += LINE;
    }
    barrier::dsb(barrier::SY);
}

/// Invalidates `[start, start + len)` from the data caches without writing
/// back. Used before the MMU is turned on, on memory written with caches
/// off, so that no stale line left by the boot loader can shadow it.
///
/// # Safety
/// Any dirty data in those lines is lost: call it only on memory whose
/// latest contents are already in RAM (written with caches off).
pub unsafe fn invalidate_to_poc(start: usize, len: usize) {
    let mut addr = start & !(LINE - 1);
    while addr < start + len {
        // SAFETY: the caller guarantees that no line in the range holds data
        // newer than RAM.
        unsafe { core::arch::asm!("dc ivac, {}", in(reg) addr, options(nostack)) };
        addr += LINE;
    }
    barrier::dsb(barrier::SY);
}

/// Cleans and invalidates `[start, start + len)` to the point of coherency,
/// so that later reads see what a non-coherent device wrote.
pub fn clean_invalidate_to_poc(start: usize, len: usize) {
    let mut addr = start & !(LINE - 1);
    while addr < start + len {
        // SAFETY: DC CIVAC writes back then drops lines; data is preserved.
        unsafe { core::arch::asm!("dc civac, {}", in(reg) addr, options(nostack)) };
        addr += LINE;
    }
    barrier::dsb(barrier::SY);
}

/// Orders earlier normal-memory writes before a following device register
/// write (a device reading a queue the CPU just filled).
pub fn write_barrier() {
    barrier::dsb(barrier::ST);
}

/// Orders a device register read before later normal-memory reads (the CPU
/// reading records a device reported through that register).
pub fn read_barrier() {
    barrier::dsb(barrier::LD);
}

/// A full inner-shareable memory barrier (`dmb ish`).
pub fn dmb_ish() {
    barrier::dmb(barrier::ISH);
}

/// A load-acquire style barrier (`dmb ishld`).
pub fn dmb_ishld() {
    barrier::dmb(barrier::ISHLD);
}
