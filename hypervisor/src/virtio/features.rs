//! Feature bits the transport knows about (virtio 1.2, 6) and the rule
//! that turns a device model's features into the set offered to the driver.
//!
//! Bits 0-23 and 50-63 belong to the device type and pass through. Of the
//! reserved range 24-49, a device model may offer only ACCESS_PLATFORM and
//! ORDER_PLATFORM (they change nothing in the transport); the transport adds
//! VERSION_1 (mandatory for a version-2 device) and RING_RESET (it
//! implements QueueReset). INDIRECT_DESC, EVENT_IDX, RING_PACKED,
//! NOTIFICATION_DATA and the rest are never offered: not implemented.

/// VIRTIO_F_INDIRECT_DESC (28): not offered.
pub const F_INDIRECT_DESC: u64 = 1 << 28;
/// VIRTIO_F_EVENT_IDX (29): not offered.
pub const F_EVENT_IDX: u64 = 1 << 29;
/// VIRTIO_F_VERSION_1 (32): always offered, and required of the driver.
pub const F_VERSION_1: u64 = 1 << 32;
/// VIRTIO_F_ACCESS_PLATFORM (33): passed through from the device model.
pub const F_ACCESS_PLATFORM: u64 = 1 << 33;
/// VIRTIO_F_RING_PACKED (34): not offered.
pub const F_RING_PACKED: u64 = 1 << 34;
/// VIRTIO_F_ORDER_PLATFORM (36): passed through from the device model.
pub const F_ORDER_PLATFORM: u64 = 1 << 36;
/// VIRTIO_F_RING_RESET (40): always offered (QueueReset).
pub const F_RING_RESET: u64 = 1 << 40;

/// Bits the device type owns: 0-23 and 50-63.
pub const DEVICE_TYPE_BITS: u64 = ((1 << 24) - 1) | !((1 << 50) - 1);

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
