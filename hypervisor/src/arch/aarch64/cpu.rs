//! CPU identification and control: exception level, MPIDR, the per-CPU index
//! kept in TPIDR_EL2, physical address size, and parking.

use aarch64_cpu::registers::{
    CNTFRQ_EL0, CurrentEL, ID_AA64MMFR0_EL1, MPIDR_EL1, Readable, TPIDR_EL2, Writeable,
};

/// The exception level the CPU is executing at (0 to 3).
pub fn current_el() -> u64 {
    CurrentEL.get() >> 2
}

/// This CPU's affinity value (MPIDR_EL1 Aff3..Aff0, as the DT's `reg` names it).
pub fn mpidr() -> u64 {
    MPIDR_EL1.get() & 0xff_00ff_ffff
}

/// Records this CPU's logical index for logging and per-CPU data.
pub fn set_cpu_index(index: usize) {
    TPIDR_EL2.set(index as u64);
}

/// This CPU's logical index (0 for the boot CPU).
pub fn cpu_index() -> usize {
    TPIDR_EL2.get() as usize
}

/// The CPU's physical address size field (ID_AA64MMFR0_EL1.PARange, the
/// encoding TCR.PS and VTCR.PS use).
pub fn pa_bits_field() -> u64 {
    ID_AA64MMFR0_EL1.get() & 0xf
}

/// The CPU's physical address size in bits.
pub fn pa_bits() -> u32 {
    crate::arch::pa_range_bits(pa_bits_field())
}

/// The system counter frequency in Hz (CNTFRQ_EL0).
pub fn counter_frequency() -> u64 {
    CNTFRQ_EL0.get()
}

/// Stops this CPU for good: interrupts masked, waiting forever.
pub fn park() -> ! {
    // SAFETY: masking interrupts on a CPU that will never run anything else
    // again cannot break any invariant.
    unsafe { core::arch::asm!("msr daifset, #0xf", options(nomem, nostack)) };
    loop {
        aarch64_cpu::asm::wfi();
    }
}

/// Waits for an interrupt or event; used by an idle CPU.
pub fn wait_for_interrupt() {
    aarch64_cpu::asm::wfi();
}

/// The physical system counter (CNTPCT_EL0), read after an ISB so that
/// it is not taken early: the clock of [`crate::perf`].
#[inline(always)]
pub fn counter_ticks() -> u64 {
    use aarch64_cpu::registers::CNTPCT_EL0;
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    CNTPCT_EL0.get()
}

/// Microseconds since the system counter started (CNTPCT_EL0 / CNTFRQ_EL0).
pub fn uptime_us() -> u64 {
    use aarch64_cpu::registers::CNTPCT_EL0;
    let freq = counter_frequency().max(1);
    (CNTPCT_EL0.get() as u128 * 1_000_000 / freq as u128) as u64
}
