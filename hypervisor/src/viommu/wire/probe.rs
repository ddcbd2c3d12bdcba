//! PROBE properties and the eventq fault report.
//!
//! A property is a header `{le16 type (12 bits, 4 reserved); le16 length}`
//! followed by `length` bytes; type 0 ends the list. RESV_MEM (type 1) is
//! 24 bytes in all: subtype u8@4, reserved[3]@5, start u64@8, end u64@16
//! (inclusive). A fault report is 24 bytes: reason u8@0, reserved[3]@1,
//! flags u32@4, endpoint u32@8, reserved u32@12, address u64@16.
//!
//! The type codes, flags and sizes are [`virtio_defs::iommu`]'s.

use super::{le16, le64, put};

use virtio_defs::iommu;
pub use virtio_defs::iommu::{
    FAULT_F_ADDRESS, FAULT_F_READ, FAULT_F_WRITE, FAULT_LEN, PROBE_T_MASK, PROBE_T_NONE,
    PROBE_T_RESV_MEM, PROPERTY_HEAD_LEN, RESV_MEM_LEN,
};

/// Subtype of a RESV_MEM property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ResvSubtype {
    /// The driver must not map these IOVAs.
    Reserved = iommu::RESV_MEM_T_RESERVED,
    /// An MSI doorbell: not mapped by the driver, reachable as identity.
    Msi = iommu::RESV_MEM_T_MSI,
}

/// A RESV_MEM property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResvMem {
    /// Kind of reservation.
    pub subtype: ResvSubtype,
    /// First reserved IOVA.
    pub start: u64,
    /// Last reserved IOVA (inclusive).
    pub end: u64,
}

impl ResvMem {
    /// Encodes the property, header included.
    pub fn encode(&self) -> [u8; RESV_MEM_LEN] {
        let mut b = [0u8; RESV_MEM_LEN];
        let length = (RESV_MEM_LEN - PROPERTY_HEAD_LEN) as u16;
        put(&mut b, 0, &PROBE_T_RESV_MEM.to_le_bytes());
        put(&mut b, 2, &length.to_le_bytes());
        put(&mut b, 4, &[self.subtype as u8]);
        put(&mut b, 8, &self.start.to_le_bytes());
        put(&mut b, 16, &self.end.to_le_bytes());
        b
    }

    /// Decodes a RESV_MEM property (header included); `None` when it is
    /// another type, too short or of an unknown subtype.
    pub fn decode(buf: &[u8]) -> Option<Self> {
        let kind = le16(buf, 0) & PROBE_T_MASK;
        let length = usize::from(le16(buf, 2));
        if kind != PROBE_T_RESV_MEM
            || length + PROPERTY_HEAD_LEN < RESV_MEM_LEN
            || buf.len() < RESV_MEM_LEN
        {
            return None;
        }
        let subtype = match buf.get(4).copied()? {
            iommu::RESV_MEM_T_RESERVED => ResvSubtype::Reserved,
            iommu::RESV_MEM_T_MSI => ResvSubtype::Msi,
            _ => return None,
        };
        Some(ResvMem {
            subtype,
            start: le64(buf, 8),
            end: le64(buf, 16),
        })
    }
}

/// Why an endpoint's access faulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FaultReason {
    /// Internal error, or none of the others.
    Unknown = iommu::FAULT_R_UNKNOWN,
    /// The endpoint is not attached to a domain.
    Domain = iommu::FAULT_R_DOMAIN,
    /// The address is not mapped, or not with the needed permission.
    Mapping = iommu::FAULT_R_MAPPING,
}

/// A fault report for the eventq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// Why it faulted.
    pub reason: FaultReason,
    /// The endpoint that faulted.
    pub endpoint: u32,
    /// The access was a read.
    pub read: bool,
    /// The access was a write.
    pub write: bool,
    /// The faulting IOVA, when known.
    pub address: Option<u64>,
}

impl Fault {
    /// Encodes the 24-byte report (reserved fields and unknown flags zero).
    pub fn encode(&self) -> [u8; FAULT_LEN] {
        let mut flags = 0;
        if self.read {
            flags |= FAULT_F_READ;
        }
        if self.write {
            flags |= FAULT_F_WRITE;
        }
        if self.address.is_some() {
            flags |= FAULT_F_ADDRESS;
        }
        let mut b = [0u8; FAULT_LEN];
        put(&mut b, 0, &[self.reason as u8]);
        put(&mut b, 4, &flags.to_le_bytes());
        put(&mut b, 8, &self.endpoint.to_le_bytes());
        put(&mut b, 16, &self.address.unwrap_or(0).to_le_bytes());
        b
    }
}
