//! Emulated devices: everything a guest reaches by MMIO that the hypervisor
//! answers itself. Each device is one file implementing [`MmioDevice`]; a
//! guest registers the devices it owns in its [`DeviceTable`] (sorted
//! guest-physical ranges, one lookup per MMIO exit), and the vCPU code
//! dispatches through the table without naming any device.
//!
//! A device answers an access with a value (reads) or [`Effect`]s
//! (writes): what the vCPU layer must do next, such as raising a virtual
//! interrupt. Devices never reach into the vCPU layer themselves.
//!
//! To add a device: write `devices/<name>.rs` with a type implementing
//! [`MmioDevice`], and register it where the guest is built
//! (`vm::guest::build`) with [`DeviceTable::insert`].

pub mod gicd;
pub mod gicr;
pub mod pl011;
pub mod table;
pub mod viommu_mmio;
pub mod viommu_pci;
pub mod vpci;

pub use table::{DeviceTable, Overlap};

use crate::vgic::hw::{GicPort, RegCtx};
use crate::virtio::memory::GuestMemory;
use alloc::string::String;

/// What a device access may use besides its own state.
#[derive(Clone, Copy)]
pub struct AccessCtx<'a> {
    /// The vCPU making the access (index in its guest).
    pub vcpu: usize,
    /// The guest's RAM (bounds-checked guest-physical accesses).
    pub mem: &'a dyn GuestMemory,
    /// The physical GIC, for interrupts the guest owns, and the queue of
    /// virtual interrupts of the vCPU (which runs on this CPU), for the
    /// vGIC's view of the interrupts it holds.
    pub gic: &'a dyn GicPort,
}

impl<'a> AccessCtx<'a> {
    /// The access as the vGIC's register model sees it.
    pub fn gic_regs(&self) -> RegCtx<'a> {
        RegCtx {
            phys: self.gic.phys(),
            vcpu: self.vcpu,
            queue: self.gic,
        }
    }
}

/// What the vCPU layer must do after a device access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Nothing.
    None,
    /// Raise the guest's virtual SPI with this INTID (an emulated
    /// device's interrupt, not a hardware one).
    RaiseSpi(u32),
}

/// A device the hypervisor emulates in a guest-physical window.
///
/// Accesses come from any vCPU of the guest, concurrently: a device keeps
/// its state behind its own lock. `None` from `read` or `write` means the
/// device does not claim that offset (the guest gets an external abort).
pub trait MmioDevice: Send + Sync {
    /// A short name for messages.
    fn name(&self) -> &'static str;
    /// A load of `width` bytes (1, 2, 4 or 8) at `offset` in the window.
    fn read(&self, ctx: &AccessCtx<'_>, offset: u64, width: usize) -> Option<u64>;
    /// A store of the low `width` bytes of `value` at `offset`.
    fn write(&self, ctx: &AccessCtx<'_>, offset: u64, width: usize, value: u64) -> Option<Effect>;
    /// The guest is being reset: back to the power-on state, releasing
    /// whatever the device holds for the guest.
    fn reset(&self, _ctx: &AccessCtx<'_>) {}
    /// Counters worth printing when the guest stops, if any.
    fn report(&self) -> Option<String> {
        None
    }
}
