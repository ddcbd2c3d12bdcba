//! A guest's emulated devices by guest-physical range: sorted, disjoint,
//! found with one binary search per MMIO exit.

use super::MmioDevice;
use crate::mm::layout::Region;
use alloc::sync::Arc;
use alloc::vec::Vec;

/// Two devices' windows overlap (a configuration error found when the
/// guest is built).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overlap {
    /// The window being added.
    pub new: Region,
    /// The window it collides with.
    pub existing: Region,
    /// The existing device's name.
    pub existing_name: &'static str,
}

impl core::fmt::Display for Overlap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "emulated device window {:#x}..{:#x} overlaps the {} at {:#x}..{:#x}",
            self.new.base,
            self.new.end(),
            self.existing_name,
            self.existing.base,
            self.existing.end()
        )
    }
}

impl core::error::Error for Overlap {}

/// The emulated devices of one guest.
#[derive(Default)]
pub struct DeviceTable {
    /// Sorted by base; windows never overlap.
    entries: Vec<(Region, Arc<dyn MmioDevice>)>,
}

impl DeviceTable {
    /// An empty table.
    pub fn new() -> Self {
        DeviceTable {
            entries: Vec::new(),
        }
    }

    /// Registers `device` at `window`.
    pub fn insert(&mut self, window: Region, device: Arc<dyn MmioDevice>) -> Result<(), Overlap> {
        let at = self.entries.partition_point(|(r, _)| r.base < window.base);
        for (r, d) in [at.checked_sub(1), Some(at)]
            .into_iter()
            .flatten()
            .filter_map(|i| self.entries.get(i))
        {
            if r.base < window.end() && window.base < r.end() {
                return Err(Overlap {
                    new: window,
                    existing: *r,
                    existing_name: d.name(),
                });
            }
        }
        self.entries.insert(at, (window, device));
        Ok(())
    }

    /// The device whose window holds `ipa`, and the offset in it.
    #[inline]
    pub fn find(&self, ipa: u64) -> Option<(&dyn MmioDevice, u64)> {
        let i = self.entries.partition_point(|(r, _)| r.base <= ipa);
        let (r, d) = self.entries.get(i.checked_sub(1)?)?;
        let off = ipa - r.base;
        (off < r.size).then_some((d.as_ref(), off))
    }

    /// Every device, in address order.
    pub fn iter(&self) -> impl Iterator<Item = (Region, &dyn MmioDevice)> {
        self.entries.iter().map(|(r, d)| (*r, d.as_ref()))
    }

    /// Number of devices.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the guest has no emulated device.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
