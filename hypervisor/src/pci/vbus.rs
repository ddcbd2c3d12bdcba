//! The configuration space of a guest's virtual PCI bus (bus 0 of the
//! virtual host bridge issue 13 gives a guest): one function per device
//! slot, either a physical function assigned to the guest, seen through
//! its [`FunctionView`], or a function the hypervisor emulates
//! ([`PciFunction`], the virtio-pci transport). ECAM offsets of the bridge's
//! window are decoded here; whatever no slot answers reads all ones, as on
//! a real bus.
//!
//! Not yet here: the bridge as a guest device (its `MmioDevice`, BAR
//! windows of emulated functions, INTx as virtual SPIs) and its device
//! tree node (docs/pci.md).

use super::config::{Bdf, ConfigAccess};
use super::function::{IntxChange, PciFunction};
use super::view::FunctionView;
use crate::virtio::memory::GuestMemory;
use alloc::boxed::Box;
use alloc::vec::Vec;
use spin::Mutex;

/// Most device slots of the virtual bus (one function each).
pub const MAX_SLOTS: usize = 32;

/// What sits in a slot of the virtual bus.
pub enum Slot<C: ?Sized + 'static> {
    /// A physical function: its filtered view and the configuration
    /// space of its host bridge.
    Assigned {
        /// The view the guest gets.
        view: FunctionView,
        /// The host bridge's configuration access (shared with the other
        /// guests given functions of that bridge).
        host: &'static Mutex<C>,
    },
    /// A function the hypervisor emulates.
    Emulated(Box<dyn PciFunction + Send>),
}

/// A guest's virtual bus 0.
pub struct VirtualBus<C: ?Sized + 'static> {
    slots: Vec<Slot<C>>,
}

/// Why a slot could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VbusError {
    /// Every one of the [`MAX_SLOTS`] slots is taken.
    Full,
}

impl core::fmt::Display for VbusError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            VbusError::Full => write!(f, "the virtual PCI bus has {MAX_SLOTS} slots, all taken"),
        }
    }
}

impl core::error::Error for VbusError {}

/// The (slot, register offset) an ECAM offset of bus 0, function 0
/// addresses; None for another bus or function.
fn decode(offset: u64) -> Option<(usize, u16)> {
    let (bus, dev, func) = (offset >> 20, (offset >> 15) & 0x1f, (offset >> 12) & 7);
    (bus == 0 && func == 0).then_some((dev as usize, (offset & 0xfff) as u16))
}

/// Whether an access of `width` bytes at register `reg` is one a config
/// access may be (naturally aligned 1, 2 or 4 bytes).
fn valid(reg: u16, width: usize) -> bool {
    matches!(width, 1 | 2 | 4) && reg.is_multiple_of(width as u16)
}

impl<C: ConfigAccess + ?Sized> VirtualBus<C> {
    /// An empty bus.
    pub fn new() -> Self {
        VirtualBus { slots: Vec::new() }
    }

    /// Adds `slot` at the next device number; returns the function's
    /// address on the virtual bus.
    pub fn add(&mut self, slot: Slot<C>) -> Result<Bdf, VbusError> {
        if self.slots.len() >= MAX_SLOTS {
            return Err(VbusError::Full);
        }
        self.slots.push(slot);
        Ok(Bdf::new(0, (self.slots.len() - 1) as u8, 0))
    }

    /// The slots, by device number.
    pub fn slots(&self) -> &[Slot<C>] {
        &self.slots
    }

    /// A guest read of `width` bytes at `offset` of the bridge's ECAM
    /// window; with the INTx change of the slot it touched (an emulated
    /// function's read may clear its interrupt status).
    pub fn read(&mut self, offset: u64, width: usize) -> (u32, Option<(usize, IntxChange)>) {
        let all_ones = (
            match width {
                1 => 0xff,
                2 => 0xffff,
                _ => u32::MAX,
            },
            None,
        );
        let Some((dev, reg)) = decode(offset) else {
            return all_ones;
        };
        if !valid(reg, width) {
            return all_ones;
        }
        match self.slots.get_mut(dev) {
            Some(Slot::Assigned { view, host }) => {
                (view.read(&*host.lock(), reg, width as u8), None)
            }
            Some(Slot::Emulated(f)) => {
                let (v, change) = f.config_read(reg, width as u8);
                (v, Some((dev, change)))
            }
            None => all_ones,
        }
    }

    /// A guest write of the low `width` bytes of `value` at `offset` of the
    /// bridge's ECAM window; with the INTx change of the slot it touched.
    pub fn write(
        &mut self,
        mem: &dyn GuestMemory,
        offset: u64,
        width: usize,
        value: u32,
    ) -> Option<(usize, IntxChange)> {
        let (dev, reg) = decode(offset)?;
        if !valid(reg, width) {
            return None;
        }
        match self.slots.get_mut(dev)? {
            Slot::Assigned { view, host } => {
                view.write(&mut *host.lock(), reg, width as u8, value);
                None
            }
            Slot::Emulated(f) => Some((dev, f.config_write(mem, reg, width as u8, value))),
        }
    }
}

impl<C: ConfigAccess + ?Sized> Default for VirtualBus<C> {
    fn default() -> Self {
        Self::new()
    }
}
