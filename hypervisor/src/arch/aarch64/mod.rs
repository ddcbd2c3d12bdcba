//! AArch64 at EL2: entry, exception vectors, EL2 MMU, caches, CPU registers
//! and firmware (PSCI) calls.

pub mod cache;
pub mod cpu;
pub mod entry;
pub mod gicv3;
pub mod hw;
pub mod mmu;
pub mod psci;
pub mod sysreg;
pub mod vectors;
pub mod virt;
