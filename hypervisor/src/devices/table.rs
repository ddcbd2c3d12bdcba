//! A guest's emulated devices by guest-physical range: sorted, disjoint,
//! found per MMIO exit by the window found last (one comparison when the
//! guest keeps using one device), else a scan or a binary search.

use super::MmioDevice;
use crate::mm::layout::Region;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, Ordering};

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

/// One device's window.
struct Entry {
    /// Its guest-physical window.
    window: Region,
    /// The device, as `owner` points at it (kept so that a lookup does
    /// not compute the `Arc`'s data offset from the vtable's alignment).
    dev: NonNull<dyn MmioDevice>,
    /// Keeps the device alive as long as the entry.
    _owner: Arc<dyn MmioDevice>,
}

// SAFETY: `dev` points into `_owner`, an `Arc<dyn MmioDevice>` whose
// target is `Send + Sync` (`MmioDevice: Send + Sync`); the entry only
// hands out shared references to it.
unsafe impl Send for Entry {}
// SAFETY: as for `Send`.
unsafe impl Sync for Entry {}

impl Entry {
    /// The device.
    #[inline(always)]
    fn device(&self) -> &dyn MmioDevice {
        // SAFETY: `dev` is `Arc::as_ptr` of `_owner`, which the entry
        // holds: the device lives at least as long as `&self`.
        unsafe { self.dev.as_ref() }
    }

    /// The offset of `ipa` in the window, if it is inside.
    #[inline(always)]
    fn offset_of(&self, ipa: u64) -> Option<u64> {
        let off = ipa.wrapping_sub(self.window.base);
        (off < self.window.size).then_some(off)
    }
}

/// The emulated devices of one guest.
#[derive(Default)]
pub struct DeviceTable {
    /// Sorted by base; windows never overlap.
    entries: Vec<Entry>,
    /// The entry [`DeviceTable::find`] found last, or null: a hint,
    /// checked like any entry before it is used (windows are disjoint, so
    /// the entry holding an address is the only answer whichever way it
    /// is found). Always null or an entry of `entries` as they are: set by
    /// [`DeviceTable::search`] to the entry it found, reset by
    /// [`DeviceTable::insert`] (the only change to `entries`, made with
    /// `&mut self`: no lookup runs meanwhile). Shared by the guest's vCPUs,
    /// hence atomic; relaxed, as nothing else is published through it.
    last: AtomicPtr<Entry>,
}

impl DeviceTable {
    /// An empty table.
    pub fn new() -> Self {
        DeviceTable {
            entries: Vec::new(),
            last: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// Registers `device` at `window`.
    pub fn insert(&mut self, window: Region, device: Arc<dyn MmioDevice>) -> Result<(), Overlap> {
        let at = self
            .entries
            .partition_point(|e| e.window.base < window.base);
        for e in [at.checked_sub(1), Some(at)]
            .into_iter()
            .flatten()
            .filter_map(|i| self.entries.get(i))
        {
            let r = e.window;
            if r.base < window.end() && window.base < r.end() {
                return Err(Overlap {
                    new: window,
                    existing: r,
                    existing_name: e.device().name(),
                });
            }
        }
        let dev = NonNull::from(&*device);
        // The entries move: the remembered one is forgotten.
        *self.last.get_mut() = core::ptr::null_mut();
        self.entries.insert(
            at,
            Entry {
                window,
                dev,
                _owner: device,
            },
        );
        Ok(())
    }

    /// The device whose window holds `ipa`, and the offset in it. The
    /// window found last is tried first; else [`DeviceTable::search`].
    #[inline(always)]
    pub fn find(&self, ipa: u64) -> Option<(&dyn MmioDevice, u64)> {
        // SAFETY: `last` is null or an entry of `entries` (see its
        // invariant), which `&self` keeps alive and unchanged.
        if let Some(e) = unsafe { self.last.load(Ordering::Relaxed).as_ref() }
            && let Some(off) = e.offset_of(ipa)
        {
            return Some((e.device(), off));
        }
        self.search(ipa)
    }

    /// [`DeviceTable::find`] without the last window: a scan of a small
    /// table (a guest has a handful of devices; one compare per window), a
    /// binary search of a large one. The entry found becomes the last.
    #[inline(never)]
    pub fn search(&self, ipa: u64) -> Option<(&dyn MmioDevice, u64)> {
        let (i, off) = if self.entries.len() <= LINEAR_MAX {
            self.entries
                .iter()
                .enumerate()
                .find_map(|(i, e)| Some((i, e.offset_of(ipa)?)))?
        } else {
            let i = self.entries.partition_point(|e| e.window.base <= ipa);
            let i = i.checked_sub(1)?;
            (i, self.entries.get(i)?.offset_of(ipa)?)
        };
        let e = self.entries.get(i)?;
        self.last
            .store(core::ptr::from_ref(e).cast_mut(), Ordering::Relaxed);
        Some((e.device(), off))
    }

    /// Every device, in address order.
    pub fn iter(&self) -> impl Iterator<Item = (Region, &dyn MmioDevice)> {
        self.entries.iter().map(|e| (e.window, e.device()))
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

    /// The device holding `ipa` by a plain scan of every window, as an
    /// index into the table and an offset (the reference for `find`).
    fn reference(t: &DeviceTable, ipa: u64) -> Option<(usize, u64)> {
        let hits: Vec<(usize, u64)> = t
            .iter()
            .enumerate()
            .filter(|(_, (r, _))| r.base <= ipa && ipa - r.base < r.size)
            .map(|(i, (r, _))| (i, ipa - r.base))
            .collect();
        assert!(hits.len() <= 1, "windows overlap");
        hits.first().copied()
    }

    /// The index of the device `find` answered with.
    fn index_of(t: &DeviceTable, dev: &dyn MmioDevice) -> usize {
        let p = dev as *const dyn MmioDevice as *const ();
        t.iter()
            .position(|(_, d)| core::ptr::eq(d as *const dyn MmioDevice as *const (), p))
            .expect("a device of the table")
    }

    /// Differential: whatever the remembered window (any entry, or an
    /// index past the end as a hostile or stale hint would be), `find`
    /// answers every address exactly as a scan of all windows does, small
    /// tables (scanned) and large ones (binary search) alike, with
    /// adjacent windows, gaps, the address space's ends and wrapping
    /// offsets; and the window it found is the one it remembers.
    #[test]
    fn last_window_answers_as_a_full_scan() {
        let mut rng = crate::test_rng::Rng(0x7a6b_0001_5eed);
        for round in 0..400 {
            let n = 1 + rng.index(if round % 2 == 0 { LINEAR_MAX } else { 24 });
            let mut t = DeviceTable::new();
            let mut base = rng.below(0x10_0000);
            for _ in 0..n {
                // (No empty window: the binary search, as before this test, finds
                // the last window starting at or below an address and an empty
                // one may share its base with another.)
                let size = rng.pick(&[1, 0x4, 0x200, 0x1000, 0x2_0000]) + rng.below(3);
                // Adjacent (gap 0) or a small gap.
                if t.insert(Region::new(base, size), Arc::new(Named("dev")))
                    .is_err()
                {
                    break;
                }
                base += size + rng.pick(&[0, 0, 1, 0x1000]);
            }
            let windows: Vec<Region> = t.iter().map(|(r, _)| r).collect();
            for _ in 0..64 {
                let w = rng.pick(&windows);
                let ipa = match rng.below(7) {
                    0 => w.base,
                    1 => w.base.wrapping_add(w.size),
                    2 => w.base.wrapping_add(w.size).wrapping_sub(1),
                    3 => w.base.wrapping_sub(1),
                    4 => rng.pick(&[0, u64::MAX, 1 << 63]),
                    _ => w.base.wrapping_add(rng.below(w.size.max(1) * 2)),
                };
                // Any entry, or none (null).
                let hint = rng.index(t.len() + 1);
                let hint_ptr = t
                    .entries
                    .get(hint)
                    .map_or(core::ptr::null_mut(), |e| core::ptr::from_ref(e).cast_mut());
                t.last.store(hint_ptr, Ordering::Relaxed);
                let got = t.find(ipa).map(|(d, off)| (index_of(&t, d), off));
                assert_eq!(
                    got,
                    reference(&t, ipa),
                    "ipa {ipa:#x}, hint {hint}, windows {windows:x?}"
                );
                if let Some((i, _)) = got
                    && t.entries
                        .get(hint)
                        .is_none_or(|e| e.offset_of(ipa).is_none())
                {
                    assert_eq!(
                        t.last.load(Ordering::Relaxed).cast_const(),
                        core::ptr::from_ref(&t.entries[i]),
                        "the window found is remembered"
                    );
                }
            }
        }
    }

    /// The remembered entry is forgotten when the entries move (an insert),
    /// so that it never points at a moved or freed entry.
    #[test]
    fn an_insert_forgets_the_last_window() {
        let mut t = table(3);
        assert!(t.find(0x3000).is_some());
        assert!(!t.last.load(Ordering::Relaxed).is_null());
        for i in 0..20 {
            // Enough inserts for the vector to grow (and move).
            t.insert(
                Region::new(0x10_0000 + i * 0x1000, 0x1000),
                Arc::new(Named("more")),
            )
            .unwrap();
            assert!(t.last.load(Ordering::Relaxed).is_null());
            assert_eq!(t.find(0x3000).map(|(_, o)| o), Some(0));
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
