//! [`BundleError`]: why a payload bundle was refused (or could not be
//! built), naming the guest (index, and name once its config is decoded)
//! and the part concerned.

use core::fmt;

use super::GuestRef;

/// One of the three parts a guest entry points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    /// The postcard-encoded [`super::GuestConfig`].
    Config,
    /// The kernel Image.
    Kernel,
    /// The initial RAM disk.
    Initrd,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Config => "config",
            Self::Kernel => "kernel",
            Self::Initrd => "initrd",
        })
    }
}

/// Why a bundle could not be parsed or built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BundleError {
    /// The blob ends before the header, the entry table or the header's
    /// total length.
    Truncated {
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        available: usize,
    },
    /// The blob does not start with [`super::bundle::MAGIC`].
    BadMagic,
    /// A format version this hypervisor does not read.
    UnsupportedVersion {
        /// The version found.
        version: u32,
    },
    /// The bundle holds no guest.
    NoGuests,
    /// More guests than [`super::limits::MAX_GUESTS`].
    TooManyGuests {
        /// The count found (or given to the encoder).
        count: u64,
    },
    /// The total length is smaller than the header and entry table.
    BadTotalLength {
        /// The header's total length.
        total: u64,
        /// End of the entry table.
        table_end: u64,
    },
    /// The header or entry table does not match its checksum.
    HeaderChecksum {
        /// CRC32 stored in the header.
        stored: u32,
        /// CRC32 computed.
        computed: u32,
    },
    /// A reserved header field is not zero.
    ReservedNotZero,
    /// A part's flags have unknown bits set, or an absent part has a
    /// non-zero offset, length or checksum.
    BadPartEntry {
        /// The guest.
        guest: GuestRef,
        /// The part.
        part: Part,
    },
    /// The config or kernel part is marked absent, or the kernel is empty.
    MissingPart {
        /// The guest.
        guest: GuestRef,
        /// The part.
        part: Part,
    },
    /// A part's offset is not 8-byte aligned.
    Misaligned {
        /// The guest.
        guest: GuestRef,
        /// The part.
        part: Part,
        /// The offset.
        offset: u64,
    },
    /// A part does not lie between the entry table and the total length.
    OutOfBounds {
        /// The guest.
        guest: GuestRef,
        /// The part.
        part: Part,
        /// The part's offset.
        offset: u64,
        /// The part's length.
        len: u64,
    },
    /// Two parts share bytes.
    Overlap {
        /// The guest of the first part (lower offset).
        first: GuestRef,
        /// The first part.
        first_part: Part,
        /// The guest of the second part.
        second: GuestRef,
        /// The second part.
        second_part: Part,
    },
    /// A byte between parts (padding) is not zero.
    NonZeroPadding {
        /// Its offset.
        offset: u64,
    },
    /// A part does not match its checksum.
    Checksum {
        /// The guest.
        guest: GuestRef,
        /// The part.
        part: Part,
        /// CRC32 stored in the entry.
        stored: u32,
        /// CRC32 computed.
        computed: u32,
    },
    /// The config part does not decode as a [`super::GuestConfig`].
    BadConfig {
        /// The guest.
        guest: GuestRef,
        /// Why postcard refused it.
        error: postcard::Error,
    },
    /// The config part decodes but leaves bytes over.
    TrailingConfigBytes {
        /// The guest.
        guest: GuestRef,
        /// Bytes left over.
        extra: usize,
    },
    /// (Encoding) a guest's config could not be serialized.
    Encode {
        /// The guest.
        guest: GuestRef,
        /// Why postcard refused it.
        error: postcard::Error,
    },
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { needed, available } => {
                write!(
                    f,
                    "bundle truncated: {needed} bytes needed, {available} available"
                )
            }
            Self::BadMagic => f.write_str("not a partita bundle (bad magic)"),
            Self::UnsupportedVersion { version } => write!(
                f,
                "unsupported bundle version {version} (this hypervisor reads version {})",
                super::bundle::VERSION
            ),
            Self::NoGuests => f.write_str("the bundle holds no guest"),
            Self::TooManyGuests { count } => {
                write!(
                    f,
                    "{count} guests, at most {} allowed",
                    super::limits::MAX_GUESTS
                )
            }
            Self::BadTotalLength { total, table_end } => {
                write!(
                    f,
                    "total length {total} is smaller than the header and entry table ({table_end} bytes)"
                )
            }
            Self::HeaderChecksum { stored, computed } => {
                write!(
                    f,
                    "header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
                )
            }
            Self::ReservedNotZero => f.write_str("reserved header field is not zero"),
            Self::BadPartEntry { guest, part } => {
                write!(f, "{guest}: malformed {part} entry (flags or absent part)")
            }
            Self::MissingPart { guest, part } => write!(f, "{guest}: no {part}"),
            Self::Misaligned {
                guest,
                part,
                offset,
            } => {
                write!(
                    f,
                    "{guest}: {part} offset {offset:#x} is not 8-byte aligned"
                )
            }
            Self::OutOfBounds {
                guest,
                part,
                offset,
                len,
            } => {
                write!(
                    f,
                    "{guest}: {part} ({len} bytes at {offset:#x}) lies outside the bundle's data"
                )
            }
            Self::Overlap {
                first,
                first_part,
                second,
                second_part,
            } => {
                write!(f, "{first} {first_part} overlaps {second} {second_part}")
            }
            Self::NonZeroPadding { offset } => write!(f, "padding byte at {offset:#x} is not zero"),
            Self::Checksum {
                guest,
                part,
                stored,
                computed,
            } => write!(
                f,
                "{guest}: checksum mismatch in {part} (stored {stored:#010x}, computed {computed:#010x})"
            ),
            Self::BadConfig { guest, error } => {
                write!(f, "{guest}: config does not decode: {error}")
            }
            Self::TrailingConfigBytes { guest, extra } => {
                write!(f, "{guest}: config has {extra} trailing bytes")
            }
            Self::Encode { guest, error } => {
                write!(f, "{guest}: config cannot be encoded: {error}")
            }
        }
    }
}

impl core::error::Error for BundleError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::BadConfig { error, .. } | Self::Encode { error, .. } => Some(error),
            _ => None,
        }
    }
}
