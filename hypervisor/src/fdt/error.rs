//! The error type of device-tree parsing: why a DTB was refused as a whole.
//!
//! Problems confined to one optional node are not errors; [`super::HostDt`]
//! turns them into warnings and skips the node.

use core::fmt;

/// Why a device-tree blob could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtError {
    /// The pointer handed over at boot is null or the blob would wrap
    /// around the end of the address space.
    BadPointer,
    /// The blob (or a pointer to it) is not 4-byte aligned.
    Unaligned,
    /// Fewer bytes than an FDT header (40 bytes).
    TooShort {
        /// Bytes available.
        len: usize,
    },
    /// The header does not start with the FDT magic 0xd00dfeed.
    BadMagic {
        /// The first word found.
        found: u32,
    },
    /// The header's `totalsize` is below the header size or above the
    /// sanity bound [`super::MAX_DTB_SIZE`].
    BadTotalSize {
        /// The header's `totalsize`.
        size: u32,
    },
    /// The buffer is shorter than the header's `totalsize`.
    Truncated {
        /// The header's `totalsize`.
        total: usize,
        /// Bytes available.
        available: usize,
    },
    /// A device-tree format version this parser cannot read (it needs
    /// `version >= 17` and `last_comp_version <= 17`).
    BadVersion {
        /// The header's `version`.
        version: u32,
        /// The header's `last_comp_version`.
        last_comp: u32,
    },
    /// A block offset or size in the header is misaligned or points outside
    /// the blob.
    BadLayout,
    /// The memory reservation block is not terminated inside the blob.
    BadMemReserve,
    /// The structure block is malformed at this byte offset (bad token,
    /// unterminated name, property running past the end, unbalanced nodes).
    BadStructure {
        /// Offset into the blob where parsing stopped.
        offset: usize,
    },
    /// A node or property name is not NUL-terminated inside its block, not
    /// valid UTF-8, or (for a node) longer than 255 bytes.
    BadName {
        /// Offset into the blob of the token that holds the name.
        offset: usize,
    },
    /// Nodes nested deeper than [`super::MAX_DEPTH`].
    TooDeep,
    /// More memory regions than the fixed-size early list can hold.
    TooManyRegions,
    /// No usable memory: no enabled `device_type = "memory"` node with a
    /// valid non-empty `reg`.
    NoMemory,
    /// No usable CPU node under `/cpus`.
    NoCpus,
}

impl fmt::Display for DtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadPointer => write!(f, "device tree pointer is null or wraps around memory"),
            Self::Unaligned => write!(f, "device tree is not 4-byte aligned"),
            Self::TooShort { len } => write!(f, "device tree too short for a header ({len} bytes)"),
            Self::BadMagic { found } => write!(
                f,
                "bad device tree magic {found:#010x} (expected 0xd00dfeed)"
            ),
            Self::BadTotalSize { size } => {
                write!(f, "implausible device tree total size {size:#x}")
            }
            Self::Truncated { total, available } => {
                write!(
                    f,
                    "device tree truncated: header says {total:#x} bytes, only {available:#x} available"
                )
            }
            Self::BadVersion { version, last_comp } => {
                write!(
                    f,
                    "unsupported device tree version {version} (last compatible {last_comp})"
                )
            }
            Self::BadLayout => write!(f, "device tree header offsets or sizes are out of bounds"),
            Self::BadMemReserve => {
                write!(f, "device tree memory reservation block is not terminated")
            }
            Self::BadStructure { offset } => {
                write!(f, "malformed device tree structure at offset {offset:#x}")
            }
            Self::BadName { offset } => write!(
                f,
                "invalid or over-long name in device tree at offset {offset:#x}"
            ),
            Self::TooDeep => write!(
                f,
                "device tree nodes nested deeper than {}",
                super::MAX_DEPTH
            ),
            Self::TooManyRegions => write!(f, "too many memory regions in device tree"),
            Self::NoMemory => write!(f, "device tree describes no usable memory"),
            Self::NoCpus => write!(f, "device tree describes no usable cpu"),
        }
    }
}

impl core::error::Error for DtError {}
