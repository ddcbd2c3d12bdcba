//! What the driver needs of a virtio transport ([`Transport`]: status,
//! features, queue setup, notify, device configuration), and the
//! virtio-mmio version 2 one ([`Mmio`]); virtio-pci is [`super::pci`].
//! The driver ([`super::Viommu`]) is generic over it, so each transport's
//! notify compiles down to its own single store.

use virtio_defs::iommu;
use virtio_defs::mmio::{self, offset};

/// Reads the 32-bit register at `off` (a [`offset`] constant) of the window.
pub fn rd(base: usize, off: u64) -> u32 {
    // SAFETY: `base` is a virtio-mmio window (checked magic) or a probe of one.
    unsafe { core::ptr::read_volatile((base + off as usize) as *const u32) }
}

/// Writes the 32-bit register at `off` of the window.
pub fn wr(base: usize, off: u64, v: u32) {
    // SAFETY: as for `rd`.
    unsafe { core::ptr::write_volatile((base + off as usize) as *mut u32, v) }
}

/// Whether the window at `base` is a virtio-mmio virtio-iommu.
pub fn is_viommu(base: usize) -> bool {
    rd(base, offset::MAGIC_VALUE) == mmio::MAGIC && rd(base, offset::DEVICE_ID) == iommu::DEVICE_ID
}

/// A virtio transport as the driver sees it. Status values are the
/// device status bits (`virtio_defs::mmio::STATUS_*`, the same on every
/// transport).
pub trait Transport {
    /// Writes the device status (0 resets the device).
    fn set_status(&mut self, status: u32);
    /// Reads the device status.
    fn status(&self) -> u32;
    /// Device feature bits 32 `word` .. 32 `word` + 31.
    fn device_features(&mut self, word: u32) -> u32;
    /// Sets driver feature bits 32 `word` .. 32 `word` + 31.
    fn set_driver_features(&mut self, word: u32, bits: u32);
    /// Selects queue `q`; returns its maximum size (0: no such queue).
    fn queue_max(&mut self, q: u16) -> u32;
    /// Gives the queue selected last `size` entries and its rings, then
    /// enables it (the transport learns where to notify it).
    fn enable_queue(
        &mut self,
        q: u16,
        size: u16,
        desc: u64,
        driver: u64,
        device: u64,
    ) -> Result<(), &'static str>;
    /// Tells the device that queue `q` (an enabled one) has new buffers.
    fn notify(&self, q: u16);
    /// The 32-bit word at byte `off` of the device configuration.
    fn config_read(&self, off: u64) -> u32;
    /// Writes the 32-bit word at byte `off` of the device configuration.
    fn config_write(&self, off: u64, v: u32);
    /// A register read without side effects (the null exit of the bench).
    fn null_read(&self) -> u32;
    /// Where the registers are (printed).
    fn base(&self) -> u64;
}

/// A virtio-mmio version 2 window.
pub struct Mmio {
    base: usize,
}

impl Mmio {
    /// The window at `base`, if it is a version-2 virtio-mmio virtio-iommu.
    pub fn new(base: usize) -> Result<Mmio, &'static str> {
        if !is_viommu(base) {
            return Err("no virtio-mmio virtio-iommu (magic, DeviceID 23) at the node's reg");
        }
        if rd(base, offset::VERSION) != mmio::VERSION {
            return Err("virtio-mmio version is not 2 (legacy transport?)");
        }
        Ok(Mmio { base })
    }
}

impl Transport for Mmio {
    fn set_status(&mut self, status: u32) {
        wr(self.base, offset::STATUS, status);
    }
    fn status(&self) -> u32 {
        rd(self.base, offset::STATUS)
    }
    fn device_features(&mut self, word: u32) -> u32 {
        wr(self.base, offset::DEVICE_FEATURES_SEL, word);
        rd(self.base, offset::DEVICE_FEATURES)
    }
    fn set_driver_features(&mut self, word: u32, bits: u32) {
        wr(self.base, offset::DRIVER_FEATURES_SEL, word);
        wr(self.base, offset::DRIVER_FEATURES, bits);
    }
    fn queue_max(&mut self, q: u16) -> u32 {
        wr(self.base, offset::QUEUE_SEL, u32::from(q));
        rd(self.base, offset::QUEUE_NUM_MAX)
    }
    fn enable_queue(
        &mut self,
        _q: u16,
        size: u16,
        desc: u64,
        driver: u64,
        device: u64,
    ) -> Result<(), &'static str> {
        wr(self.base, offset::QUEUE_NUM, u32::from(size));
        for (low, high, v) in [
            (offset::QUEUE_DESC_LOW, offset::QUEUE_DESC_HIGH, desc),
            (offset::QUEUE_DRIVER_LOW, offset::QUEUE_DRIVER_HIGH, driver),
            (offset::QUEUE_DEVICE_LOW, offset::QUEUE_DEVICE_HIGH, device),
        ] {
            wr(self.base, low, v as u32);
            wr(self.base, high, (v >> 32) as u32);
        }
        wr(self.base, offset::QUEUE_READY, 1);
        Ok(())
    }
    #[inline(always)]
    fn notify(&self, q: u16) {
        wr(self.base, offset::QUEUE_NOTIFY, u32::from(q));
    }
    fn config_read(&self, off: u64) -> u32 {
        rd(self.base, offset::CONFIG + off)
    }
    fn config_write(&self, off: u64, v: u32) {
        wr(self.base, offset::CONFIG + off, v);
    }
    #[inline(always)]
    fn null_read(&self) -> u32 {
        rd(self.base, offset::MAGIC_VALUE)
    }
    fn base(&self) -> u64 {
        self.base as u64
    }
}
