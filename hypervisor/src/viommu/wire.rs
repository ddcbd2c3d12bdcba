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

pub mod config;
pub mod probe;
pub mod request;

/// Virtio device ID of the IOMMU device.
pub const DEVICE_ID: u32 = 23;
/// Index of the request virtqueue.
pub const REQUEST_QUEUE: u16 = 0;
/// Index of the event virtqueue.
pub const EVENT_QUEUE: u16 = 1;
/// Size of the request head (`type` and three reserved bytes).
pub const HEAD_LEN: usize = 4;
/// Size of the request tail (`status` and three reserved bytes).
pub const TAIL_LEN: usize = 4;

/// Feature bits of the device (the virtio-iommu bits and VERSION_1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Feature {
    /// `input_range` in the configuration space is valid.
    InputRange = 0,
    /// `domain_range` in the configuration space is valid.
    DomainRange = 1,
    /// MAP and UNMAP requests are available.
    MapUnmap = 2,
    /// Legacy: unattached endpoints bypass (superseded, never offered).
    Bypass = 3,
    /// The PROBE request is available.
    Probe = 4,
    /// The MAP flag MMIO is available.
    Mmio = 5,
    /// The configuration field `bypass` and ATTACH flag BYPASS exist.
    BypassConfig = 6,
    /// VIRTIO_F_VERSION_1: a modern (non-legacy) device.
    Version1 = 32,
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
    Attach = 1,
    /// Detach an endpoint from its domain.
    Detach = 2,
    /// Map an IOVA range of a domain to guest-physical memory.
    Map = 3,
    /// Remove the mappings lying inside an IOVA range of a domain.
    Unmap = 4,
    /// Describe an endpoint's properties (reserved regions).
    Probe = 5,
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

    /// Decodes a head `type` byte; `None` for a type the device does not know.
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            1 => Some(RequestType::Attach),
            2 => Some(RequestType::Detach),
            3 => Some(RequestType::Map),
            4 => Some(RequestType::Unmap),
            5 => Some(RequestType::Probe),
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
    Ok = 0,
    /// Virtio communication error (here: buffers that do not fit the type).
    Ioerr = 1,
    /// Unsupported request.
    Unsupp = 2,
    /// Internal device error.
    Deverr = 3,
    /// Invalid parameters.
    Inval = 4,
    /// Out-of-range parameters.
    Range = 5,
    /// Entry not found.
    Noent = 6,
    /// Bad address.
    Fault = 7,
    /// Insufficient resources.
    Nomem = 8,
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
            0 => Some(Status::Ok),
            1 => Some(Status::Ioerr),
            2 => Some(Status::Unsupp),
            3 => Some(Status::Deverr),
            4 => Some(Status::Inval),
            5 => Some(Status::Range),
            6 => Some(Status::Noent),
            7 => Some(Status::Fault),
            8 => Some(Status::Nomem),
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
    buf.get(off..off.saturating_add(4))
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

/// Reads a little-endian `u64` at `off`, or 0 when `buf` is too short.
pub(crate) fn le64(buf: &[u8], off: usize) -> u64 {
    buf.get(off..off.saturating_add(8))
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// Writes `bytes` at `off` when they fit in `buf`; silently does nothing
/// otherwise (callers size their buffers, this only keeps it panic-free).
pub(crate) fn put(buf: &mut [u8], off: usize, bytes: &[u8]) {
    if let Some(dst) = buf.get_mut(off..off.saturating_add(bytes.len())) {
        dst.copy_from_slice(bytes);
    }
}
