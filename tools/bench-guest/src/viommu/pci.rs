//! The virtio-pci (modern) transport: the common configuration, the
//! notification region and the device configuration of a function found
//! by `virtio_pci_probe::probe` (its BARs placed and decoding), each field
//! accessed at its own width (`device_status` 8 bits, queue fields 16,
//! features and ring addresses 32: the 64-bit ones as two halves, low
//! first). A queue is notified by a 16-bit write of its index at
//! `notify + queue_notify_off * notify_off_multiplier` (no
//! NOTIFICATION_DATA), the address read once when the queue is enabled.

use super::transport::Transport;
use core::ptr::{read_volatile, write_volatile};
use virtio_defs::iommu;
use virtio_defs::pci::common;
use virtio_pci_probe::Layout;

/// Queues whose notification address is kept (request and event queue).
const QUEUES: usize = 2;

fn r8(a: usize) -> u8 {
    // SAFETY: `a` is inside a structure of the function's decoding BAR.
    unsafe { read_volatile(a as *const u8) }
}
fn w8(a: usize, v: u8) {
    // SAFETY: as for `r8`.
    unsafe { write_volatile(a as *mut u8, v) }
}
fn r16(a: usize) -> u16 {
    // SAFETY: as for `r8`; every 16-bit field is 2-byte aligned.
    unsafe { read_volatile(a as *const u16) }
}
fn w16(a: usize, v: u16) {
    // SAFETY: as for `r16`.
    unsafe { write_volatile(a as *mut u16, v) }
}
fn r32(a: usize) -> u32 {
    // SAFETY: as for `r8`; every 32-bit field is 4-byte aligned.
    unsafe { read_volatile(a as *const u32) }
}
fn w32(a: usize, v: u32) {
    // SAFETY: as for `r32`.
    unsafe { write_volatile(a as *mut u32, v) }
}

/// A modern virtio-pci virtio-iommu.
pub struct Pci {
    common: usize,
    device: usize,
    layout: Layout,
    /// Notification address of queue 0 and 1 (0: not enabled; the driver
    /// notifies enabled queues only).
    notify: [usize; QUEUES],
}

impl Pci {
    /// The transport over a probed function, if it is a virtio-iommu with
    /// a device configuration.
    pub fn new(layout: Layout) -> Result<Pci, &'static str> {
        if u32::from(layout.device_type) != iommu::DEVICE_ID {
            return Err("the virtio-pci function is not a virtio-iommu (device ID 0x1057)");
        }
        let Some((device, len)) = layout.device else {
            return Err("the virtio-pci function has no device configuration capability");
        };
        if (len as usize) < iommu::config::CONFIG_LEN {
            return Err("the virtio-iommu's device configuration is too small");
        }
        Ok(Pci {
            common: layout.common as usize,
            device: device as usize,
            layout,
            notify: [0; QUEUES],
        })
    }

    /// What the probe found.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn field(&self, off: u64) -> usize {
        self.common + off as usize
    }
}

impl Transport for Pci {
    fn set_status(&mut self, status: u32) {
        w8(self.field(common::DEVICE_STATUS), status as u8);
    }
    fn status(&self) -> u32 {
        u32::from(r8(self.field(common::DEVICE_STATUS)))
    }
    fn device_features(&mut self, word: u32) -> u32 {
        w32(self.field(common::DEVICE_FEATURE_SELECT), word);
        r32(self.field(common::DEVICE_FEATURE))
    }
    fn set_driver_features(&mut self, word: u32, bits: u32) {
        w32(self.field(common::DRIVER_FEATURE_SELECT), word);
        w32(self.field(common::DRIVER_FEATURE), bits);
    }
    fn queue_max(&mut self, q: u16) -> u32 {
        if usize::from(q) >= QUEUES {
            return 0;
        }
        w16(self.field(common::QUEUE_SELECT), q);
        u32::from(r16(self.field(common::QUEUE_SIZE)))
    }
    fn enable_queue(
        &mut self,
        q: u16,
        size: u16,
        desc: u64,
        driver: u64,
        device: u64,
    ) -> Result<(), &'static str> {
        w16(self.field(common::QUEUE_SIZE), size);
        for (off, v) in [
            (common::QUEUE_DESC, desc),
            (common::QUEUE_DRIVER, driver),
            (common::QUEUE_DEVICE, device),
        ] {
            w32(self.field(off), v as u32);
            w32(self.field(off + 4), (v >> 32) as u32);
        }
        let off = r16(self.field(common::QUEUE_NOTIFY_OFF));
        let at = self
            .layout
            .notify_addr(off)
            .ok_or("queue_notify_off points past the notification region")?;
        self.notify[usize::from(q) % QUEUES] = at as usize;
        w16(self.field(common::QUEUE_ENABLE), 1);
        Ok(())
    }
    #[inline(always)]
    fn notify(&self, q: u16) {
        w16(self.notify[usize::from(q) % QUEUES], q);
    }
    fn config_read(&self, off: u64) -> u32 {
        r32(self.device + off as usize)
    }
    fn config_write(&self, off: u64, v: u32) {
        w32(self.device + off as usize, v);
    }
    #[inline(always)]
    fn null_read(&self) -> u32 {
        r32(self.field(common::DEVICE_FEATURE_SELECT))
    }
    fn base(&self) -> u64 {
        self.layout.common
    }
}
