//! `read_sysreg!` / `write_sysreg!`: raw MRS/MSR by register name, for the
//! registers the aarch64-cpu crate does not model (or models awkwardly).

/// Reads a system register by its assembler name.
macro_rules! read_sysreg {
    ($name:literal) => {{
        let v: u64;
        // SAFETY: reading a system register has no side effect on memory;
        // callers only name registers that are readable at EL2.
        unsafe {
            core::arch::asm!(concat!("mrs {}, ", $name), out(reg) v, options(nomem, nostack, preserves_flags))
        };
        v
    }};
}

/// Writes a system register by its assembler name.
macro_rules! write_sysreg {
    ($name:literal, $value:expr) => {{
        let v: u64 = $value;
        // SAFETY: callers only write EL2-owned or guest-context registers
        // with values that keep the hypervisor's own translation intact.
        unsafe {
            core::arch::asm!(concat!("msr ", $name, ", {}"), in(reg) v, options(nostack, preserves_flags))
        };
    }};
}

pub(crate) use {read_sysreg, write_sysreg};

/// Instruction synchronisation barrier.
pub fn isb() {
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}
