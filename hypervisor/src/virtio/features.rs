//! Feature bits the transport knows about (virtio 1.2, 6) and the rule
//! that turns a device model's features into the set offered to the driver.
//!
//! Bits 0-23 and 50-63 belong to the device type and pass through. Of the
//! reserved range 24-49, a device model may offer only ACCESS_PLATFORM and
//! ORDER_PLATFORM (they change nothing in the transport); the transport adds
//! VERSION_1 (mandatory for a version-2 device) and RING_RESET (it
//! implements QueueReset). INDIRECT_DESC, EVENT_IDX, RING_PACKED,
//! NOTIFICATION_DATA and the rest are never offered: not implemented.
//!
//! The bits themselves are [`virtio_defs::features`]'s, re-exported here.

pub use virtio_defs::features::{
    DEVICE_TYPE_BITS, F_ACCESS_PLATFORM, F_EVENT_IDX, F_INDIRECT_DESC, F_ORDER_PLATFORM,
    F_RING_PACKED, F_RING_RESET, F_VERSION_1,
};

/// The features offered for a device model reporting `device_features`.
pub fn offered(device_features: u64) -> u64 {
    (device_features & (DEVICE_TYPE_BITS | F_ACCESS_PLATFORM | F_ORDER_PLATFORM))
        | F_VERSION_1
        | F_RING_RESET
}

/// Whether the driver's choice `accepted` can be taken against `offered`:
/// a subset that includes VERSION_1.
pub fn acceptable(offered: u64, accepted: u64) -> bool {
    accepted & !offered == 0 && accepted & F_VERSION_1 != 0
}
