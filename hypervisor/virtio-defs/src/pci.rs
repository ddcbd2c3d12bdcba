//! The virtio-pci (modern) transport (virtio 1.2, 4.1): PCI identity,
//! the vendor-specific capabilities that locate the virtio structures in
//! the function's BARs, the common configuration structure's field offsets
//! and the ISR bits.
//!
//! Every structure is little-endian. A capability is
//! `struct virtio_pci_cap { u8 cap_vndr, cap_next, cap_len, cfg_type, bar,
//! id, padding[2]; le32 offset, length; }` (16 bytes); the notification
//! capability appends `le32 notify_off_multiplier` (20 bytes), the PCI
//! configuration access capability `u8 pci_cfg_data[4]` (20 bytes).

/// PCI vendor ID of every virtio device (Red Hat / Qumranet).
pub const VENDOR_ID: u16 = 0x1af4;
/// Device ID of a modern (non-transitional) device: this plus the virtio
/// device type (0x1057 for the IOMMU, type 23).
pub const DEVICE_ID_BASE: u16 = 0x1040;
/// Revision ID of a non-transitional device (at least 1).
pub const REVISION: u8 = 1;

/// Capability ID of a vendor-specific capability, which virtio uses.
pub const CAP_ID_VNDR: u8 = 0x09;

/// `cfg_type`: common configuration.
pub const CAP_COMMON_CFG: u8 = 1;
/// `cfg_type`: notifications.
pub const CAP_NOTIFY_CFG: u8 = 2;
/// `cfg_type`: ISR status.
pub const CAP_ISR_CFG: u8 = 3;
/// `cfg_type`: device-specific configuration.
pub const CAP_DEVICE_CFG: u8 = 4;
/// `cfg_type`: PCI configuration access (a window onto the BARs through
/// configuration space).
pub const CAP_PCI_CFG: u8 = 5;

/// Byte offsets inside `struct virtio_pci_cap`.
pub mod cap {
    /// `cap_vndr` (u8): [`super::CAP_ID_VNDR`].
    pub const VNDR: u16 = 0;
    /// `cap_next` (u8): offset of the next capability, 0 at the end.
    pub const NEXT: u16 = 1;
    /// `cap_len` (u8): bytes of this capability.
    pub const LEN: u16 = 2;
    /// `cfg_type` (u8): which structure.
    pub const CFG_TYPE: u16 = 3;
    /// `bar` (u8): which BAR holds it (0 to 5).
    pub const BAR: u16 = 4;
    /// `id` (u8): distinguishes several capabilities of one type.
    pub const ID: u16 = 5;
    /// `offset` (le32): where the structure starts in the BAR.
    pub const OFFSET: u16 = 8;
    /// `length` (le32): bytes of the structure.
    pub const LENGTH: u16 = 12;
    /// `notify_off_multiplier` (le32), notification capability only.
    pub const NOTIFY_OFF_MULTIPLIER: u16 = 16;
    /// `pci_cfg_data` (u8[4]), PCI configuration access capability only.
    pub const PCI_CFG_DATA: u16 = 16;
    /// Bytes of a plain capability.
    pub const SIZE: u8 = 16;
    /// Bytes of the notification and PCI configuration access capabilities.
    pub const SIZE_EXTENDED: u8 = 20;
}

/// Byte offsets inside `struct virtio_pci_common_cfg` (width in brackets).
pub mod common {
    /// `device_feature_select` (le32).
    pub const DEVICE_FEATURE_SELECT: u64 = 0x00;
    /// `device_feature` (le32, read-only).
    pub const DEVICE_FEATURE: u64 = 0x04;
    /// `driver_feature_select` (le32).
    pub const DRIVER_FEATURE_SELECT: u64 = 0x08;
    /// `driver_feature` (le32).
    pub const DRIVER_FEATURE: u64 = 0x0c;
    /// `config_msix_vector` (le16).
    pub const CONFIG_MSIX_VECTOR: u64 = 0x10;
    /// `num_queues` (le16, read-only).
    pub const NUM_QUEUES: u64 = 0x12;
    /// `device_status` (u8).
    pub const DEVICE_STATUS: u64 = 0x14;
    /// `config_generation` (u8, read-only).
    pub const CONFIG_GENERATION: u64 = 0x15;
    /// `queue_select` (le16).
    pub const QUEUE_SELECT: u64 = 0x16;
    /// `queue_size` (le16).
    pub const QUEUE_SIZE: u64 = 0x18;
    /// `queue_msix_vector` (le16).
    pub const QUEUE_MSIX_VECTOR: u64 = 0x1a;
    /// `queue_enable` (le16).
    pub const QUEUE_ENABLE: u64 = 0x1c;
    /// `queue_notify_off` (le16, read-only).
    pub const QUEUE_NOTIFY_OFF: u64 = 0x1e;
    /// `queue_desc` (le64).
    pub const QUEUE_DESC: u64 = 0x20;
    /// `queue_driver` (le64).
    pub const QUEUE_DRIVER: u64 = 0x28;
    /// `queue_device` (le64).
    pub const QUEUE_DEVICE: u64 = 0x30;
    /// `queue_notify_data` (le16, read-only; with NOTIFICATION_DATA).
    pub const QUEUE_NOTIFY_DATA: u64 = 0x38;
    /// `queue_reset` (le16; with RING_RESET).
    pub const QUEUE_RESET: u64 = 0x3a;
    /// Bytes of the structure without the optional fields from
    /// `queue_notify_data` on (Linux's minimum).
    pub const SIZE: u64 = 0x38;
}

/// `config_msix_vector` / `queue_msix_vector` value meaning "no vector".
pub const NO_VECTOR: u16 = 0xffff;

/// ISR bit 0: a queue interrupt (used buffers).
pub const ISR_QUEUE: u8 = 1;
/// ISR bit 1: a configuration change.
pub const ISR_CONFIG: u8 = 2;
