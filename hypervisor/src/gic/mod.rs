//! The physical GICv3, owned by the hypervisor: distributor and
//! redistributor set-up, and the operations the virtual GIC forwards for
//! guest-owned interrupts.

#[cfg(test)]
pub mod fake_regs;
pub mod hyp_irq;
pub mod phys;
pub mod regs;

/// The physical SGI the hypervisor uses to make another CPU look at its
/// mailbox (pending virtual interrupts, start or stop requests).
pub const KICK_SGI: u32 = 7;
/// The GIC maintenance interrupt (PPI 9).
pub const MAINTENANCE_PPI: u32 = 25;
