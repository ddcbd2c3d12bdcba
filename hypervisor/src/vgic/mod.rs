//! The guest's GICv3: an emulated distributor and redistributors (plain
//! register logic, tested on the host) whose enables, trigger modes and
//! routing of guest-owned hardware interrupts are forwarded to the physical
//! GIC through [`crate::gic::PhysGic`], and the per-vCPU queue of virtual interrupts
//! waiting for a list register.
//!
//! Ownership is the one mechanism: an INTID the guest owns (an SPI of a
//! passed-through device, a timer PPI) is programmed on the physical GIC as
//! the guest asks, and its pending and active state is the physical GIC's
//! combined with this CPU's copy of it ([`hw`]); any other INTID reads as
//! zero and ignores writes. SGIs are purely virtual.

pub mod dist;
pub mod hw;
pub mod pending;
pub mod redist;

#[cfg(test)]
mod tests;

/// First SPI INTID.
pub const SPI_BASE: u32 = 32;
/// Size of one redistributor (RD_base + SGI_base frames).
pub const REDIST_STRIDE: u64 = 0x2_0000;
/// Size of the distributor frame.
pub const DIST_SIZE: u64 = 0x1_0000;

/// State of one virtual interrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IrqState {
    /// Enabled by the guest.
    pub enabled: bool,
    /// Guest priority.
    pub priority: u8,
    /// Edge-triggered (ICFGR bit set).
    pub edge: bool,
    /// Target vCPU (SPIs; from IROUTER Aff0).
    pub target: usize,
    /// Forwarded to a physical INTID of the same number.
    pub owned: bool,
    /// Owned and level-triggered, made pending by the guest (ISPENDR) and
    /// not yet acknowledged by the hypervisor: its copy stays pending until
    /// the guest takes it, whatever the line (see [`hw`]).
    pub latched: bool,
}

/// Applies a 32-bit register access of `width` bytes at byte `offset`
/// inside a register: returns the new 32-bit value.
pub(crate) fn merge(old: u32, offset: u64, width: usize, value: u64) -> u32 {
    if width >= 4 {
        return value as u32;
    }
    let shift = (offset % 4) * 8;
    let mask = (((1u64 << (width * 8)) - 1) << shift) as u32;
    (old & !mask) | (((value << shift) as u32) & mask)
}
