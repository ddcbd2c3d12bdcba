//! The interface between a virtual host bridge and the PCI functions the
//! hypervisor emulates behind it (the virtio-pci transport first):
//! configuration space, the memory BARs the guest programmed, accesses to
//! them, and the function's INTx line.
//!
//! The bridge decodes ECAM accesses to (function, offset, width) and calls
//! [`PciFunction::config_read`] / [`PciFunction::config_write`]; it routes
//! a guest access that falls inside a window returned by
//! [`PciFunction::bar`] to [`PciFunction::bar_read`] /
//! [`PciFunction::bar_write`]. Every access that may move the INTx line
//! says how in its [`IntxChange`]; [`PciFunction::intx`] gives the level at
//! any time. Everything a guest passes is hostile: a function never panics
//! and ignores (or reads as 0) what it does not implement.

use crate::virtio::memory::GuestMemory;

/// What happened to a function's INTx line during an access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IntxChange {
    /// The level did not change.
    #[default]
    Unchanged,
    /// The line went from deasserted to asserted.
    Assert,
    /// The line went from asserted to deasserted.
    Deassert,
}

impl IntxChange {
    /// The change from level `before` to level `after`.
    pub fn between(before: bool, after: bool) -> Self {
        match (before, after) {
            (false, true) => Self::Assert,
            (true, false) => Self::Deassert,
            _ => Self::Unchanged,
        }
    }
}

/// A memory BAR the function decodes: where the guest placed it and its
/// size (a power of two; `addr` is aligned to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarWindow {
    /// Guest-physical base address.
    pub addr: u64,
    /// Bytes.
    pub size: u64,
}

/// A PCI function emulated by the hypervisor, as its host bridge sees it.
pub trait PciFunction {
    /// Reads `width` (1, 2 or 4) bytes at `offset` (naturally aligned,
    /// below 0x1000) of the configuration space, little-endian in the low
    /// bits. Another width or alignment reads 0. A read may have an effect
    /// (the virtio PCI configuration access window reads the ISR, which
    /// clears it): hence `&mut self` and the [`IntxChange`].
    fn config_read(&mut self, offset: u16, width: u8) -> (u32, IntxChange);

    /// Writes the low `width` bytes of `value` at `offset` of the
    /// configuration space (same rules as reads; read-only bits keep their
    /// value). `mem` is the guest's RAM, for what such a write may start
    /// (a notification through the configuration access window).
    fn config_write(
        &mut self,
        mem: &dyn GuestMemory,
        offset: u16,
        width: u8,
        value: u32,
    ) -> IntxChange;

    /// BAR `index` (0 to 5) while the function decodes it (memory space
    /// enabled in the command register), `None` otherwise or if the BAR is
    /// not implemented. A 64-bit BAR is reported at its lower index.
    fn bar(&self, index: u8) -> Option<BarWindow>;

    /// Reads `width` (1, 2, 4 or 8) bytes at `offset` in BAR `index`.
    fn bar_read(&mut self, index: u8, offset: u64, width: usize) -> (u64, IntxChange);

    /// Writes the low `width` bytes of `value` at `offset` in BAR `index`;
    /// handled completely (a virtio notification included) before return.
    fn bar_write(
        &mut self,
        mem: &dyn GuestMemory,
        index: u8,
        offset: u64,
        width: usize,
        value: u64,
    ) -> IntxChange;

    /// The level of the INTx line (pin in the interrupt pin register).
    fn intx(&self) -> bool;

    /// A conventional reset (bus reset, the guest's restart): back to the
    /// power-on state, BARs and command register cleared. The line goes
    /// down if it was up.
    fn reset(&mut self) -> IntxChange;
}
