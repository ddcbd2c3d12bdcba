//! Wire formats of the virtio-iommu device (virtio specification, device
//! type 23, "IOMMU Device"), all little-endian.
//!
//! Every request is one device-readable part starting with the head
//! `{u8 type; u8 reserved[3]}` and one device-writable part ending with
//! the tail `{u8 status; u8 reserved[3]}`. This module holds the numbers
//! both sides agree on ([`RequestType`], [`Status`], [`Feature`]) and the
//! submodules the layouts: [`request`] (the five requests), [`config`]
//! (the 40-byte configuration space) and [`probe`] (PROBE properties and
//! the eventq fault report).
//!
//! The numbers (type and status codes, feature bits, sizes, offsets) are
//! [`virtio_defs::iommu`]'s, shared with the bench guest and the QEMU
//! tests; the types here are built on them and hold the parsing logic.

pub mod config;
pub mod probe;
pub mod request;

pub use virtio_defs::iommu::{DEVICE_ID, EVENT_QUEUE, HEAD_LEN, REQUEST_QUEUE, TAIL_LEN};
use virtio_defs::{features, iommu};

/// The bit number of a one-bit feature mask.
const fn bit(mask: u64) -> u8 {
    mask.trailing_zeros() as u8
}

/// Feature bits of the device (the virtio-iommu bits and VERSION_1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Feature {
    /// `input_range` in the configuration space is valid.
    InputRange = bit(iommu::F_INPUT_RANGE),
    /// `domain_range` in the configuration space is valid.
    DomainRange = bit(iommu::F_DOMAIN_RANGE),
    /// MAP and UNMAP requests are available.
    MapUnmap = bit(iommu::F_MAP_UNMAP),
    /// Legacy: unattached endpoints bypass (superseded, never offered).
    Bypass = bit(iommu::F_BYPASS),
    /// The PROBE request is available.
    Probe = bit(iommu::F_PROBE),
    /// The MAP flag MMIO is available.
    Mmio = bit(iommu::F_MMIO),
    /// The configuration field `bypass` and ATTACH flag BYPASS exist.
    BypassConfig = bit(iommu::F_BYPASS_CONFIG),
    /// VIRTIO_F_VERSION_1: a modern (non-legacy) device.
    Version1 = bit(features::F_VERSION_1),
}

impl Feature {
    /// The feature as a mask in the 64-bit feature word.
    pub const fn mask(self) -> u64 {
        1 << self as u8
    }
}

/// Request types (the head's `type` byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum RequestType {
    /// Attach an endpoint to a domain (creating the domain if needed).
    Attach = iommu::T_ATTACH,
    /// Detach an endpoint from its domain.
    Detach = iommu::T_DETACH,
    /// Map an IOVA range of a domain to guest-physical memory.
    Map = iommu::T_MAP,
    /// Remove the mappings lying inside an IOVA range of a domain.
    Unmap = iommu::T_UNMAP,
    /// Describe an endpoint's properties (reserved regions).
    Probe = iommu::T_PROBE,
}

impl RequestType {
    /// Every request type, in wire order.
    pub const ALL: [RequestType; 5] = [
        RequestType::Attach,
        RequestType::Detach,
        RequestType::Map,
        RequestType::Unmap,
        RequestType::Probe,
    ];

    /// MAP's head `type` byte.
    pub const MAP: u8 = iommu::T_MAP;
    /// UNMAP's head `type` byte.
    pub const UNMAP: u8 = iommu::T_UNMAP;

    /// Whether a failed batch sync revokes a success of this type: the
    /// hardware may still use what an ATTACH, DETACH or UNMAP took away,
    /// so their successes turn into IOERR (MAP and PROBE cannot widen
    /// access when the sync fails). One shift of a mask by the wire type
    /// (1 to 5).
    #[inline(always)]
    pub const fn revocable(self) -> bool {
        const MASK: u32 = 1 << RequestType::Attach as u32
            | 1 << RequestType::Detach as u32
            | 1 << RequestType::Unmap as u32;
        (MASK >> (self as u32 & 31)) & 1 != 0
    }

    /// Decodes a head `type` byte; `None` for a type the device does not know.
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            iommu::T_ATTACH => Some(RequestType::Attach),
            iommu::T_DETACH => Some(RequestType::Detach),
            iommu::T_MAP => Some(RequestType::Map),
            iommu::T_UNMAP => Some(RequestType::Unmap),
            iommu::T_PROBE => Some(RequestType::Probe),
            _ => None,
        }
    }

    /// Lower-case name, for tables and logs.
    pub const fn name(self) -> &'static str {
        match self {
            RequestType::Attach => "attach",
            RequestType::Detach => "detach",
            RequestType::Map => "map",
            RequestType::Unmap => "unmap",
            RequestType::Probe => "probe",
        }
    }
}

/// Request status codes (the tail's `status` byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Status {
    /// The request succeeded.
    Ok = iommu::S_OK,
    /// Virtio communication error (here: buffers that do not fit the type).
    Ioerr = iommu::S_IOERR,
    /// Unsupported request.
    Unsupp = iommu::S_UNSUPP,
    /// Internal device error.
    Deverr = iommu::S_DEVERR,
    /// Invalid parameters.
    Inval = iommu::S_INVAL,
    /// Out-of-range parameters.
    Range = iommu::S_RANGE,
    /// Entry not found.
    Noent = iommu::S_NOENT,
    /// Bad address.
    Fault = iommu::S_FAULT,
    /// Insufficient resources.
    Nomem = iommu::S_NOMEM,
}

impl Status {
    /// Every status, in wire order.
    pub const ALL: [Status; 9] = [
        Status::Ok,
        Status::Ioerr,
        Status::Unsupp,
        Status::Deverr,
        Status::Inval,
        Status::Range,
        Status::Noent,
        Status::Fault,
        Status::Nomem,
    ];

    /// Decodes a status byte.
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            iommu::S_OK => Some(Status::Ok),
            iommu::S_IOERR => Some(Status::Ioerr),
            iommu::S_UNSUPP => Some(Status::Unsupp),
            iommu::S_DEVERR => Some(Status::Deverr),
            iommu::S_INVAL => Some(Status::Inval),
            iommu::S_RANGE => Some(Status::Range),
            iommu::S_NOENT => Some(Status::Noent),
            iommu::S_FAULT => Some(Status::Fault),
            iommu::S_NOMEM => Some(Status::Nomem),
            _ => None,
        }
    }

    /// Lower-case name, for tables and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Ioerr => "ioerr",
            Status::Unsupp => "unsupp",
            Status::Deverr => "deverr",
            Status::Inval => "inval",
            Status::Range => "range",
            Status::Noent => "noent",
            Status::Fault => "fault",
            Status::Nomem => "nomem",
        }
    }
}

/// Reads a little-endian `u16` at `off`, or 0 when `buf` is too short.
pub(crate) fn le16(buf: &[u8], off: usize) -> u16 {
    buf.get(off..off.saturating_add(2))
        .and_then(|s| s.try_into().ok())
        .map_or(0, u16::from_le_bytes)
}

/// Reads a little-endian `u32` at `off`, or 0 when `buf` is too short.
pub(crate) fn le32(buf: &[u8], off: usize) -> u32 {
    match buf.get(off..off.saturating_add(4)) {
        Some(s) if s.as_ptr().addr().is_multiple_of(4) => {
            // SAFETY: four bytes in bounds, 4-byte aligned.
            // (Volatile: LLVM would otherwise merge this arm into the
            // byte loads of the other, which give the same value.)
            let v = unsafe { s.as_ptr().cast::<u32>().read_volatile() };
            u32::from_le(v)
        }
        // Unaligned: the image is built for strict alignment, so this is
        // byte loads (the request buffers the device parses are aligned).
        Some(s) => s.try_into().map_or(0, u32::from_le_bytes),
        None => 0,
    }
}

/// Reads a little-endian `u64` at `off`, or 0 when `buf` is too short.
pub(crate) fn le64(buf: &[u8], off: usize) -> u64 {
    match buf.get(off..off.saturating_add(8)) {
        Some(s) if s.as_ptr().addr().is_multiple_of(8) => {
            // SAFETY: eight bytes in bounds, 8-byte aligned.
            // (Volatile: LLVM would otherwise merge this arm into the
            // byte loads of the other, which give the same value.)
            let v = unsafe { s.as_ptr().cast::<u64>().read_volatile() };
            u64::from_le(v)
        }
        // Unaligned: byte loads, as in `le32`.
        Some(s) => s.try_into().map_or(0, u64::from_le_bytes),
        None => 0,
    }
}

/// Writes `bytes` at `off` when they fit in `buf`; silently does nothing
/// otherwise (callers size their buffers, this only keeps it panic-free).
pub(crate) fn put(buf: &mut [u8], off: usize, bytes: &[u8]) {
    if let Some(dst) = buf.get_mut(off..off.saturating_add(bytes.len())) {
        dst.copy_from_slice(bytes);
    }
}
