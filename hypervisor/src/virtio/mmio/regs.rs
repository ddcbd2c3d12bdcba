//! The virtio-mmio version 2 register layout (virtio 1.2, 4.2.2): offsets,
//! identity values, status and interrupt bits.
//!
//! The numbers are the shared crate's ([`virtio_defs::mmio`], also used by
//! the bench guest and the QEMU tests), re-exported here under the names
//! the transport has always used; only what is partita's own choice (the
//! vendor ID, the status bits a driver may set) is defined here.

pub use virtio_defs::mmio::offset::CONFIG as CONFIG_OFFSET;
pub use virtio_defs::mmio::{
    INT_CONFIG_CHANGE, INT_USED_BUFFER, MAGIC, Register, STATUS_ACKNOWLEDGE,
    STATUS_DEVICE_NEEDS_RESET, STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FAILED, STATUS_FEATURES_OK,
    VERSION, WINDOW_SIZE,
};

/// VendorID: "PART" little-endian (partita). Linux matches virtio drivers
/// on the device ID with any vendor, and no driver keys quirks on it.
pub const VENDOR_ID: u32 = u32::from_le_bytes(*b"PART");

/// Status bits a driver may set (SUSPEND is not offered).
pub use crate::virtio::transport::STATUS_DRIVER_BITS;
