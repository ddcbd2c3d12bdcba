//! The five requests of the request queue: their device-readable layouts,
//! a parser for what the driver sent and an encoder (for tests and for
//! anything that plays the driver).
//!
//! Byte offsets (head at 0, tail not included, it is device-writable):
//! - ATTACH (20): domain u32@4, endpoint u32@8, flags u32@12, reserved[4]@16
//! - DETACH (20): domain u32@4, endpoint u32@8, reserved[8]@12
//! - MAP (36): domain u32@4, virt_start u64@8, virt_end u64@16 (inclusive),
//!   phys_start u64@24, flags u32@32
//! - UNMAP (28): domain u32@4, virt_start u64@8, virt_end u64@16,
//!   reserved[4]@24
//! - PROBE (72): endpoint u32@4, reserved[64]@8
//!
//! The type codes, sizes and flags are [`virtio_defs::iommu`]'s.

use super::{HEAD_LEN, RequestType, le32, le64, put};
use alloc::vec::Vec;

use virtio_defs::iommu;
pub use virtio_defs::iommu::{
    ATTACH_F_BYPASS, ATTACH_LEN, DETACH_LEN, MAP_LEN, PROBE_LEN, UNMAP_LEN,
};

/// Every ATTACH flag the device knows.
pub const ATTACH_F_MASK: u32 = ATTACH_F_BYPASS;

impl RequestType {
    /// Size of the device-readable part of this request type.
    pub const fn readable_len(self) -> usize {
        match self {
            RequestType::Attach => ATTACH_LEN,
            RequestType::Detach => DETACH_LEN,
            RequestType::Map => MAP_LEN,
            RequestType::Unmap => UNMAP_LEN,
            RequestType::Probe => PROBE_LEN,
        }
    }
}

/// MAP flags: access permissions and memory type of a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MapFlags(pub u32);

impl MapFlags {
    /// Reads are allowed.
    pub const READ: u32 = iommu::MAP_F_READ;
    /// Writes are allowed.
    pub const WRITE: u32 = iommu::MAP_F_WRITE;
    /// The target is device MMIO (memory type, not a permission).
    pub const MMIO: u32 = iommu::MAP_F_MMIO;
    /// Every flag the device knows.
    pub const MASK: u32 = Self::READ | Self::WRITE | Self::MMIO;

    /// Whether only known flags are set.
    pub const fn is_known(self) -> bool {
        self.0 & !Self::MASK == 0
    }
    /// Whether READ is set.
    pub const fn read(self) -> bool {
        self.0 & Self::READ != 0
    }
    /// Whether WRITE is set.
    pub const fn write(self) -> bool {
        self.0 & Self::WRITE != 0
    }
    /// Whether MMIO is set.
    pub const fn mmio(self) -> bool {
        self.0 & Self::MMIO != 0
    }
}

/// ATTACH: put `endpoint` into `domain`, creating the domain if needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attach {
    /// Domain ID.
    pub domain: u32,
    /// Endpoint ID.
    pub endpoint: u32,
    /// ATTACH flags ([`ATTACH_F_BYPASS`]).
    pub flags: u32,
    /// Reserved bytes (must be zero).
    pub reserved: [u8; 4],
}

/// DETACH: take `endpoint` out of `domain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detach {
    /// Domain ID.
    pub domain: u32,
    /// Endpoint ID.
    pub endpoint: u32,
    /// Reserved bytes (ignored by the device).
    pub reserved: [u8; 8],
}

/// MAP: `[virt_start, virt_end]` of `domain` to `phys_start` onwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Map {
    /// Domain ID.
    pub domain: u32,
    /// First IOVA.
    pub virt_start: u64,
    /// Last IOVA (inclusive).
    pub virt_end: u64,
    /// Guest-physical address of `virt_start`.
    pub phys_start: u64,
    /// Permissions and memory type.
    pub flags: MapFlags,
}

/// UNMAP: remove the mappings lying inside `[virt_start, virt_end]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unmap {
    /// Domain ID.
    pub domain: u32,
    /// First IOVA of the range.
    pub virt_start: u64,
    /// Last IOVA of the range (inclusive).
    pub virt_end: u64,
    /// Reserved bytes (must be zero).
    pub reserved: [u8; 4],
}

/// PROBE: describe `endpoint` (the 64 reserved bytes are ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Endpoint ID.
    pub endpoint: u32,
}

/// A parsed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// ATTACH.
    Attach(Attach),
    /// DETACH.
    Detach(Detach),
    /// MAP.
    Map(Map),
    /// UNMAP.
    Unmap(Unmap),
    /// PROBE.
    Probe(Probe),
}

/// Why a device-readable part could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than the head: the type is unknown too.
    NoHead,
    /// A type the device does not implement.
    UnknownType(u8),
    /// A known type, but fewer bytes than its layout needs.
    Truncated(RequestType),
}

impl core::fmt::Display for ParseError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ParseError::NoHead => f.write_str("request shorter than its head"),
            ParseError::UnknownType(t) => write!(f, "unknown request type {t}"),
            ParseError::Truncated(kind) => write!(
                f,
                "{} request shorter than its {} bytes",
                kind.name(),
                kind.readable_len()
            ),
        }
    }
}

impl core::error::Error for ParseError {}

fn array<const N: usize>(buf: &[u8], off: usize) -> [u8; N] {
    let mut out = [0; N];
    if let Some(src) = buf.get(off..off.saturating_add(N)) {
        out.copy_from_slice(src);
    }
    out
}

/// Bytes of a request the typed reads of MAP and UNMAP look at: the longer
/// of the two layouts (MAP's 36) rounded up to whole doublewords.
pub const WINDOW: usize = 40;

/// The first [`WINDOW`] bytes of a request as little-endian doublewords
/// ([`GuestMemory::read_window_direct`]: read straight into registers):
/// MAP and UNMAP are read out of them, each field one word or half of one.
///
/// [`GuestMemory::read_window_direct`]: crate::virtio::memory::GuestMemory::read_window_direct
pub type Words = [u64; WINDOW / 8];

const _: () = assert!(WINDOW == 8 * crate::virtio::memory::WINDOW_WORDS);

/// The head's type byte in `w` (byte 0).
#[inline(always)]
pub const fn type_byte(w: &Words) -> u8 {
    w[0] as u8
}

impl Map {
    /// The MAP whose request starts with the words `w`, every field as
    /// [`Request::parse`] reads it (the domain bytes 4..8, the addresses
    /// words 1 to 3, the flags bytes 32..36). The caller has checked the
    /// type byte and that the request is at least [`MAP_LEN`] bytes long
    /// (the fields lie in its bytes).
    #[inline(always)]
    pub const fn from_words(w: &Words) -> Self {
        Map {
            domain: (w[0] >> 32) as u32,
            virt_start: w[1],
            virt_end: w[2],
            phys_start: w[3],
            flags: MapFlags(w[4] as u32),
        }
    }
}

impl Unmap {
    /// The UNMAP whose request starts with the words `w`, every field (the
    /// reserved bytes 24..28 too) as [`Request::parse`] reads it. The caller
    /// has checked the type byte and that the request is at least
    /// [`UNMAP_LEN`] bytes long.
    #[inline(always)]
    pub const fn from_words(w: &Words) -> Self {
        Unmap {
            domain: (w[0] >> 32) as u32,
            virt_start: w[1],
            virt_end: w[2],
            reserved: (w[3] as u32).to_le_bytes(),
        }
    }
}

impl Request {
    /// Parses the device-readable part of a request. Bytes beyond the
    /// type's layout are ignored (room for extensions, as the reserved
    /// fields are).
    pub fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        if buf.len() < HEAD_LEN {
            return Err(ParseError::NoHead);
        }
        let raw = buf.first().copied().unwrap_or(0);
        let kind = RequestType::from_u8(raw).ok_or(ParseError::UnknownType(raw))?;
        if buf.len() < kind.readable_len() {
            return Err(ParseError::Truncated(kind));
        }
        Ok(match kind {
            RequestType::Attach => Request::Attach(Attach {
                domain: le32(buf, 4),
                endpoint: le32(buf, 8),
                flags: le32(buf, 12),
                reserved: array(buf, 16),
            }),
            RequestType::Detach => Request::Detach(Detach {
                domain: le32(buf, 4),
                endpoint: le32(buf, 8),
                reserved: array(buf, 12),
            }),
            RequestType::Map => Request::Map(Map {
                domain: le32(buf, 4),
                virt_start: le64(buf, 8),
                virt_end: le64(buf, 16),
                phys_start: le64(buf, 24),
                flags: MapFlags(le32(buf, 32)),
            }),
            RequestType::Unmap => Request::Unmap(Unmap {
                domain: le32(buf, 4),
                virt_start: le64(buf, 8),
                virt_end: le64(buf, 16),
                reserved: array(buf, 24),
            }),
            RequestType::Probe => Request::Probe(Probe {
                endpoint: le32(buf, 4),
            }),
        })
    }

    /// The request's type.
    pub const fn kind(&self) -> RequestType {
        match self {
            Request::Attach(_) => RequestType::Attach,
            Request::Detach(_) => RequestType::Detach,
            Request::Map(_) => RequestType::Map,
            Request::Unmap(_) => RequestType::Unmap,
            Request::Probe(_) => RequestType::Probe,
        }
    }

    /// Encodes the device-readable part (head reserved bytes zero).
    pub fn encode(&self) -> Vec<u8> {
        let kind = self.kind();
        let mut buf = alloc::vec![0u8; kind.readable_len()];
        put(&mut buf, 0, &[kind as u8]);
        match self {
            Request::Attach(r) => {
                put(&mut buf, 4, &r.domain.to_le_bytes());
                put(&mut buf, 8, &r.endpoint.to_le_bytes());
                put(&mut buf, 12, &r.flags.to_le_bytes());
                put(&mut buf, 16, &r.reserved);
            }
            Request::Detach(r) => {
                put(&mut buf, 4, &r.domain.to_le_bytes());
                put(&mut buf, 8, &r.endpoint.to_le_bytes());
                put(&mut buf, 12, &r.reserved);
            }
            Request::Map(r) => {
                put(&mut buf, 4, &r.domain.to_le_bytes());
                put(&mut buf, 8, &r.virt_start.to_le_bytes());
                put(&mut buf, 16, &r.virt_end.to_le_bytes());
                put(&mut buf, 24, &r.phys_start.to_le_bytes());
                put(&mut buf, 32, &r.flags.0.to_le_bytes());
            }
            Request::Unmap(r) => {
                put(&mut buf, 4, &r.domain.to_le_bytes());
                put(&mut buf, 8, &r.virt_start.to_le_bytes());
                put(&mut buf, 16, &r.virt_end.to_le_bytes());
                put(&mut buf, 24, &r.reserved);
            }
            Request::Probe(r) => put(&mut buf, 4, &r.endpoint.to_le_bytes()),
        }
        buf
    }
}
