//! The virtio-iommu device (virtio 1.2, 5.13, device type 23): queue
//! indices, feature bits, request types and status codes, request sizes
//! and flags, PROBE properties, fault reports and the configuration space.
//! All little-endian.
//!
//! Every request is one device-readable part starting with the head
//! `{u8 type; u8 reserved[3]}` and one device-writable part ending with
//! the tail `{u8 status; u8 reserved[3]}`. Device-readable layouts (byte
//! offsets, head at 0, tail not included):
//! - ATTACH ([`ATTACH_LEN`]): domain u32@4, endpoint u32@8, flags u32@12,
//!   reserved\[4\]@16
//! - DETACH ([`DETACH_LEN`]): domain u32@4, endpoint u32@8,
//!   reserved\[8\]@12
//! - MAP ([`MAP_LEN`]): domain u32@4, virt_start u64@8, virt_end u64@16
//!   (inclusive), phys_start u64@24, flags u32@32
//! - UNMAP ([`UNMAP_LEN`]): domain u32@4, virt_start u64@8, virt_end
//!   u64@16, reserved\[4\]@24
//! - PROBE ([`PROBE_LEN`]): endpoint u32@4, reserved\[64\]@8; its
//!   device-writable part is the properties buffer (probe_size bytes)
//!   before the tail.

/// Virtio device ID of the IOMMU device.
pub const DEVICE_ID: u32 = 23;
/// Index of the request virtqueue.
pub const REQUEST_QUEUE: u16 = 0;
/// Index of the event virtqueue.
pub const EVENT_QUEUE: u16 = 1;

/// Feature VIRTIO_IOMMU_F_INPUT_RANGE (bit 0): `input_range` in the
/// configuration space is valid.
pub const F_INPUT_RANGE: u64 = 1 << 0;
/// Feature VIRTIO_IOMMU_F_DOMAIN_RANGE (bit 1): `domain_range` in the
/// configuration space is valid.
pub const F_DOMAIN_RANGE: u64 = 1 << 1;
/// Feature VIRTIO_IOMMU_F_MAP_UNMAP (bit 2): MAP and UNMAP are available.
pub const F_MAP_UNMAP: u64 = 1 << 2;
/// Feature VIRTIO_IOMMU_F_BYPASS (bit 3, legacy): unattached endpoints
/// bypass; superseded by [`F_BYPASS_CONFIG`].
pub const F_BYPASS: u64 = 1 << 3;
/// Feature VIRTIO_IOMMU_F_PROBE (bit 4): the PROBE request is available.
pub const F_PROBE: u64 = 1 << 4;
/// Feature VIRTIO_IOMMU_F_MMIO (bit 5): the MAP flag [`MAP_F_MMIO`] is
/// available.
pub const F_MMIO: u64 = 1 << 5;
/// Feature VIRTIO_IOMMU_F_BYPASS_CONFIG (bit 6): the configuration field
/// `bypass` and the ATTACH flag [`ATTACH_F_BYPASS`] exist.
pub const F_BYPASS_CONFIG: u64 = 1 << 6;

/// Request type ATTACH: attach an endpoint to a domain.
pub const T_ATTACH: u8 = 1;
/// Request type DETACH: detach an endpoint from its domain.
pub const T_DETACH: u8 = 2;
/// Request type MAP: map an IOVA range of a domain.
pub const T_MAP: u8 = 3;
/// Request type UNMAP: remove the mappings inside an IOVA range.
pub const T_UNMAP: u8 = 4;
/// Request type PROBE: describe an endpoint's properties.
pub const T_PROBE: u8 = 5;

/// Status OK: the request succeeded.
pub const S_OK: u8 = 0;
/// Status IOERR: virtio communication error.
pub const S_IOERR: u8 = 1;
/// Status UNSUPP: unsupported request.
pub const S_UNSUPP: u8 = 2;
/// Status DEVERR: internal device error.
pub const S_DEVERR: u8 = 3;
/// Status INVAL: invalid parameters.
pub const S_INVAL: u8 = 4;
/// Status RANGE: out-of-range parameters.
pub const S_RANGE: u8 = 5;
/// Status NOENT: entry not found.
pub const S_NOENT: u8 = 6;
/// Status FAULT: bad address.
pub const S_FAULT: u8 = 7;
/// Status NOMEM: insufficient resources.
pub const S_NOMEM: u8 = 8;

/// Size of the request head (`type` and three reserved bytes).
pub const HEAD_LEN: usize = 4;
/// Size of the request tail (`status` and three reserved bytes).
pub const TAIL_LEN: usize = 4;
/// Device-readable size of ATTACH.
pub const ATTACH_LEN: usize = 20;
/// Device-readable size of DETACH.
pub const DETACH_LEN: usize = 20;
/// Device-readable size of MAP.
pub const MAP_LEN: usize = 36;
/// Device-readable size of UNMAP.
pub const UNMAP_LEN: usize = 28;
/// Device-readable size of PROBE.
pub const PROBE_LEN: usize = 72;

/// ATTACH flag: the domain is a bypass (identity) domain.
pub const ATTACH_F_BYPASS: u32 = 1 << 0;

/// MAP flag: reads are allowed.
pub const MAP_F_READ: u32 = 1 << 0;
/// MAP flag: writes are allowed.
pub const MAP_F_WRITE: u32 = 1 << 1;
/// MAP flag: the target is device MMIO (memory type, not a permission).
pub const MAP_F_MMIO: u32 = 1 << 2;

/// PROBE property type that ends the list.
pub const PROBE_T_NONE: u16 = 0;
/// PROBE property type RESV_MEM.
pub const PROBE_T_RESV_MEM: u16 = 1;
/// Bits of the property header `type` field that hold the type (the top
/// four are reserved).
pub const PROBE_T_MASK: u16 = 0x0fff;
/// Size of a property header `{le16 type; le16 length}`.
pub const PROPERTY_HEAD_LEN: usize = 4;
/// Size of a RESV_MEM property, header included: subtype u8@4,
/// reserved\[3\]@5, start u64@8, end u64@16 (inclusive).
pub const RESV_MEM_LEN: usize = 24;
/// RESV_MEM subtype RESERVED: the driver must not map these IOVAs.
pub const RESV_MEM_T_RESERVED: u8 = 0;
/// RESV_MEM subtype MSI: an MSI doorbell, reachable without a mapping.
pub const RESV_MEM_T_MSI: u8 = 1;

/// Size of an event queue fault report: reason u8@0, reserved\[3\]@1,
/// flags u32@4, endpoint u32@8, reserved u32@12, address u64@16.
pub const FAULT_LEN: usize = 24;
/// Fault reason UNKNOWN: internal error, or none of the others.
pub const FAULT_R_UNKNOWN: u8 = 0;
/// Fault reason DOMAIN: the endpoint is not attached to a domain.
pub const FAULT_R_DOMAIN: u8 = 1;
/// Fault reason MAPPING: the address is not mapped, or not with the
/// needed permission.
pub const FAULT_R_MAPPING: u8 = 2;
/// Fault flag: the faulting access was a read.
pub const FAULT_F_READ: u32 = 1 << 0;
/// Fault flag: the faulting access was a write.
pub const FAULT_F_WRITE: u32 = 1 << 1;
/// Fault flag: `address` is valid.
pub const FAULT_F_ADDRESS: u32 = 1 << 8;

/// The device configuration space (at [`crate::mmio::offset::CONFIG`] on
/// virtio-mmio), [`CONFIG_LEN`](config::CONFIG_LEN) bytes:
///
/// | offset | field | width |
/// |---|---|---|
/// | 0x00 | `page_size_mask` | u64 |
/// | 0x08 | `input_range.start` | u64 |
/// | 0x10 | `input_range.end` (inclusive) | u64 |
/// | 0x18 | `domain_range.start` | u32 |
/// | 0x1c | `domain_range.end` (inclusive) | u32 |
/// | 0x20 | `probe_size` | u32 |
/// | 0x24 | `bypass` | u8 |
/// | 0x25 | reserved | 3 bytes |
pub mod config {
    /// Size of the configuration space.
    pub const CONFIG_LEN: usize = 40;
    /// Offset of `page_size_mask`.
    pub const OFF_PAGE_SIZE_MASK: usize = 0x00;
    /// Offset of `input_range.start`.
    pub const OFF_INPUT_START: usize = 0x08;
    /// Offset of `input_range.end`.
    pub const OFF_INPUT_END: usize = 0x10;
    /// Offset of `domain_range.start`.
    pub const OFF_DOMAIN_START: usize = 0x18;
    /// Offset of `domain_range.end`.
    pub const OFF_DOMAIN_END: usize = 0x1c;
    /// Offset of `probe_size`.
    pub const OFF_PROBE_SIZE: usize = 0x20;
    /// Offset of `bypass`.
    pub const OFF_BYPASS: usize = 0x24;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_add_up_from_the_documented_fields() {
        // head, then the fields of the module documentation, in order.
        assert_eq!(HEAD_LEN + 4 + 4 + 4 + 4, ATTACH_LEN);
        assert_eq!(HEAD_LEN + 4 + 4 + 8, DETACH_LEN);
        assert_eq!(HEAD_LEN + 4 + 8 + 8 + 8 + 4, MAP_LEN);
        assert_eq!(HEAD_LEN + 4 + 8 + 8 + 4, UNMAP_LEN);
        assert_eq!(HEAD_LEN + 4 + 64, PROBE_LEN);
        assert_eq!(PROPERTY_HEAD_LEN + 1 + 3 + 8 + 8, RESV_MEM_LEN);
        assert_eq!(1 + 3 + 4 + 4 + 4 + 8, FAULT_LEN);
        assert_eq!(config::OFF_BYPASS + 1 + 3, config::CONFIG_LEN);
    }

    #[test]
    fn codes_are_distinct_and_dense() {
        let types = [T_ATTACH, T_DETACH, T_MAP, T_UNMAP, T_PROBE];
        assert!(
            types
                .iter()
                .enumerate()
                .all(|(i, &t)| usize::from(t) == i + 1)
        );
        let statuses = [
            S_OK, S_IOERR, S_UNSUPP, S_DEVERR, S_INVAL, S_RANGE, S_NOENT, S_FAULT, S_NOMEM,
        ];
        assert!(
            statuses
                .iter()
                .enumerate()
                .all(|(i, &s)| usize::from(s) == i)
        );
        let features = [
            F_INPUT_RANGE,
            F_DOMAIN_RANGE,
            F_MAP_UNMAP,
            F_BYPASS,
            F_PROBE,
            F_MMIO,
            F_BYPASS_CONFIG,
        ];
        assert!(features.iter().enumerate().all(|(i, &f)| f == 1 << i));
    }
}
