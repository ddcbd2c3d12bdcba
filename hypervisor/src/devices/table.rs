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

/// Up to this many devices, [`DeviceTable::find`] scans.
const LINEAR_MAX: usize = 8;

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

    /// The device whose window holds `ipa`, and the offset in it: a scan
    /// of a small table (a guest has a handful of devices; one compare per
    /// window), a binary search of a large one.
    #[inline]
    pub fn find(&self, ipa: u64) -> Option<(&dyn MmioDevice, u64)> {
        if self.entries.len() <= LINEAR_MAX {
            for (r, d) in &self.entries {
                let off = ipa.wrapping_sub(r.base);
                if off < r.size {
                    return Some((d.as_ref(), off));
                }
            }
            return None;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::{AccessCtx, Effect};

    struct Named(&'static str);

    impl MmioDevice for Named {
        fn name(&self) -> &'static str {
            self.0
        }
        fn read(&self, _: &AccessCtx<'_>, _: u64, _: usize) -> Option<u64> {
            None
        }
        fn write(&self, _: &AccessCtx<'_>, _: u64, _: usize, _: u64) -> Option<Effect> {
            None
        }
    }

    fn table(n: u64) -> DeviceTable {
        let mut t = DeviceTable::new();
        // Inserted out of order, every other 4 KiB page.
        for i in (0..n).rev() {
            t.insert(
                Region::new(0x1000 + i * 0x2000, 0x1000),
                Arc::new(Named("dev")),
            )
            .unwrap();
        }
        t
    }

    #[test]
    fn finds_the_window_and_offset_small_and_large() {
        for n in [3, 20] {
            let t = table(n);
            assert_eq!(t.len(), n as usize);
            for i in 0..n {
                let base = 0x1000 + i * 0x2000;
                assert_eq!(t.find(base).map(|(_, o)| o), Some(0));
                assert_eq!(t.find(base + 0xfff).map(|(_, o)| o), Some(0xfff));
                assert!(t.find(base + 0x1000).is_none(), "gap after window {i}");
            }
            assert!(t.find(0).is_none());
            assert!(t.find(u64::MAX).is_none());
        }
    }

    #[test]
    fn overlapping_windows_are_refused() {
        let mut t = table(3);
        let e = t
            .insert(Region::new(0x2800, 0x1000), Arc::new(Named("new")))
            .unwrap_err();
        assert_eq!(e.existing, Region::new(0x3000, 0x1000));
        assert!(
            t.insert(Region::new(0x4f80, 0x100), Arc::new(Named("new")))
                .is_err()
        );
        t.insert(Region::new(0x2000, 0x1000), Arc::new(Named("fits")))
            .unwrap();
        assert_eq!(t.find(0x2010).unwrap().0.name(), "fits");
    }
}
