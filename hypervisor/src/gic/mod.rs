//! The physical GICv3, owned by the hypervisor: distributor and
//! redistributor set-up, and the operations the virtual GIC forwards for
//! guest-owned interrupts.

#[cfg(test)]
pub mod fake_regs;
pub mod hyp_irq;
pub mod maintenance;
pub mod phys;
#[cfg(test)]
pub mod recorder;
pub mod regs;

/// The physical SGI the hypervisor uses to make another CPU look at its
/// mailbox (pending virtual interrupts, start or stop requests).
pub const KICK_SGI: u32 = 7;
pub use maintenance::maintenance_ppi;

/// Priority given to guest interrupts on the physical GIC.
pub const PHYS_PRIORITY: u8 = 0xa0;

/// The physical GIC as the virtual GIC and the vCPUs use it: the
/// operations the emulation forwards for owned INTIDs, and what a CPU needs
/// to wake another one. Implemented by the physical GIC driver (and by
/// recording fakes in tests); methods take `&self` (the driver serialises
/// its read-modify-writes itself).
pub trait PhysGic {
    /// Enables or disables `intid`; for PPIs, on the physical CPU `pcpu`.
    fn set_enabled(&self, intid: u32, pcpu: usize, enabled: bool);
    /// Sets edge (true) or level triggering.
    fn set_edge(&self, intid: u32, pcpu: usize, edge: bool);
    /// Routes SPI `intid` to physical CPU `pcpu`.
    fn route_spi(&self, intid: u32, pcpu: usize);
    /// Whether `intid` is pending (GICD_ISPENDR, or GICR_ISPENDR0 of
    /// `pcpu` for a PPI). For a level-triggered interrupt this is its line
    /// (or a latched software set), also while it is active.
    fn pending(&self, intid: u32, pcpu: usize) -> bool;
    /// Whether `intid` is active (GICD_ISACTIVER, or GICR_ISACTIVER0 of
    /// `pcpu` for a PPI).
    fn active(&self, intid: u32, pcpu: usize) -> bool;
    /// Sets (ISPENDR) or clears (ICPENDR) the pending state of `intid`.
    fn set_pending(&self, intid: u32, pcpu: usize, pending: bool);
    /// Sets (ISACTIVER) or clears (ICACTIVER) the active state of `intid`.
    fn set_active(&self, intid: u32, pcpu: usize, active: bool);
    /// SPIs the distributor implements.
    fn nr_spis(&self) -> u32;
    /// Affinity (MPIDR) of logical CPU `pcpu`, to send it an SGI.
    fn cpu_mpidr(&self, pcpu: usize) -> u64;
}
