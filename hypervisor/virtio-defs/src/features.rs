//! Transport feature bits (virtio 1.2, 6), as masks in the 64-bit feature
//! word (DeviceFeatures/DriverFeatures with selector 1 hold bits 32-63).
//! Device-type bits (such as the virtio-iommu's) live with their device,
//! e.g. [`crate::iommu`].

/// VIRTIO_F_INDIRECT_DESC (28): indirect descriptor tables.
pub const F_INDIRECT_DESC: u64 = 1 << 28;
/// VIRTIO_F_EVENT_IDX (29): used_event / avail_event notification
/// suppression.
pub const F_EVENT_IDX: u64 = 1 << 29;
/// VIRTIO_F_VERSION_1 (32): a modern (non-legacy) device or driver.
pub const F_VERSION_1: u64 = 1 << 32;
/// VIRTIO_F_ACCESS_PLATFORM (33): the device's accesses go through the
/// platform's IOMMU.
pub const F_ACCESS_PLATFORM: u64 = 1 << 33;
/// VIRTIO_F_RING_PACKED (34): packed virtqueues.
pub const F_RING_PACKED: u64 = 1 << 34;
/// VIRTIO_F_ORDER_PLATFORM (36): the driver orders its accesses with
/// platform (not SMP) barriers.
pub const F_ORDER_PLATFORM: u64 = 1 << 36;
/// VIRTIO_F_RING_RESET (40): queues can be reset one by one (QueueReset).
pub const F_RING_RESET: u64 = 1 << 40;

/// Bits the device type owns: 0-23 and 50-63.
pub const DEVICE_TYPE_BITS: u64 = ((1 << 24) - 1) | !((1 << 50) - 1);
