//! The FDT header and the memory reservation block, checked by hand before
//! any byte reaches fdt-rs, so that a malformed blob is refused with a typed
//! error instead of running into the parser's internal assertions. No
//! allocation: usable before the heap exists.

use super::DtError;
use crate::mm::layout::Region;

/// The FDT magic number, big-endian at offset 0.
pub const FDT_MAGIC: u32 = 0xd00d_feed;
/// Size of the version-17 FDT header in bytes.
pub const HEADER_SIZE: usize = 40;
/// Sanity bound on a blob's `totalsize` (2 MiB); real trees are a few KiB.
pub const MAX_DTB_SIZE: usize = 2 << 20;

/// Reads a big-endian `u32` at `off`, or `None` when out of bounds.
pub(crate) fn be32(buf: &[u8], off: usize) -> Option<u32> {
    let bytes = buf.get(off..off.checked_add(4)?)?;
    Some(u32::from_be_bytes(bytes.try_into().ok()?))
}

/// Reads a big-endian `u64` at `off`, or `None` when out of bounds.
pub(crate) fn be64(buf: &[u8], off: usize) -> Option<u64> {
    let hi = be32(buf, off)?;
    let lo = be32(buf, off.checked_add(4)?)?;
    Some(((hi as u64) << 32) | lo as u64)
}

/// The fields of a validated FDT header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Size of the whole blob in bytes.
    pub total_size: usize,
    /// Offset of the structure block.
    pub off_dt_struct: usize,
    /// Size of the structure block.
    pub size_dt_struct: usize,
    /// Offset of the strings block.
    pub off_dt_strings: usize,
    /// Size of the strings block.
    pub size_dt_strings: usize,
    /// Offset of the memory reservation block.
    pub off_mem_rsvmap: usize,
    /// Format version (17 for current blobs).
    pub version: u32,
    /// Oldest version this blob is backwards compatible with.
    pub last_comp_version: u32,
    /// Physical id of the boot CPU.
    pub boot_cpuid_phys: u32,
}

/// Word `i` of the header (the caller has checked the length).
fn field(buf: &[u8], i: usize) -> u32 {
    be32(buf, i * 4).unwrap_or(0)
}

impl Header {
    /// Reads and checks the header at the start of `buf`: magic, total size
    /// (at least a header, at most [`MAX_DTB_SIZE`], not more than
    /// `buf.len()`), version, and that every block lies inside the blob.
    /// Alignment of `buf` is not checked here (see [`validate`]).
    pub fn read(buf: &[u8]) -> Result<Header, DtError> {
        if buf.len() < HEADER_SIZE {
            return Err(DtError::TooShort { len: buf.len() });
        }
        let magic = field(buf, 0);
        if magic != FDT_MAGIC {
            return Err(DtError::BadMagic { found: magic });
        }
        let total = field(buf, 1);
        let total_size = total as usize;
        if !(HEADER_SIZE..=MAX_DTB_SIZE).contains(&total_size) {
            return Err(DtError::BadTotalSize { size: total });
        }
        if buf.len() < total_size {
            return Err(DtError::Truncated {
                total: total_size,
                available: buf.len(),
            });
        }
        let header = Header {
            total_size,
            off_dt_struct: field(buf, 2) as usize,
            off_dt_strings: field(buf, 3) as usize,
            off_mem_rsvmap: field(buf, 4) as usize,
            version: field(buf, 5),
            last_comp_version: field(buf, 6),
            boot_cpuid_phys: field(buf, 7),
            size_dt_strings: field(buf, 8) as usize,
            size_dt_struct: field(buf, 9) as usize,
        };
        if header.version < 17 || header.last_comp_version > 17 {
            return Err(DtError::BadVersion {
                version: header.version,
                last_comp: header.last_comp_version,
            });
        }
        header.check_layout()?;
        Ok(header)
    }

    /// Every block starts after the header, is suitably aligned and ends
    /// inside the blob. Sizes are at most 2 MiB, so no sum overflows.
    fn check_layout(&self) -> Result<(), DtError> {
        let total = self.total_size;
        let inside =
            |off: usize, size: usize| off >= HEADER_SIZE && off.saturating_add(size) <= total;
        let ok = inside(self.off_mem_rsvmap, 16)
            && self.off_mem_rsvmap.is_multiple_of(4)
            && inside(self.off_dt_struct, self.size_dt_struct)
            && self.off_dt_struct.is_multiple_of(4)
            && self.size_dt_struct.is_multiple_of(4)
            && self.size_dt_struct >= 4
            && inside(self.off_dt_strings, self.size_dt_strings);
        if ok { Ok(()) } else { Err(DtError::BadLayout) }
    }

    /// The structure block as a range of offsets into the blob.
    pub fn struct_range(&self) -> core::ops::Range<usize> {
        self.off_dt_struct..self.off_dt_struct.saturating_add(self.size_dt_struct)
    }
}

/// Checks the header (see [`Header::read`]) and that `buf` is 4-byte
/// aligned, as fdt-rs requires; returns the blob cut to its total size.
pub fn validate(buf: &[u8]) -> Result<(&[u8], Header), DtError> {
    let header = Header::read(buf)?;
    if buf.as_ptr().align_offset(4) != 0 {
        return Err(DtError::Unaligned);
    }
    let blob = buf.get(..header.total_size).ok_or(DtError::Truncated {
        total: header.total_size,
        available: buf.len(),
    })?;
    Ok((blob, header))
}

/// Iterator over the `/memreserve/` entries of a blob whose header passed
/// [`Header::read`]. Yields `Err(BadMemReserve)` once if the list is not
/// terminated by a zero entry inside the blob, then stops.
#[derive(Clone, Debug)]
pub struct MemReserveIter<'a> {
    blob: &'a [u8],
    off: usize,
    done: bool,
}

impl<'a> MemReserveIter<'a> {
    /// Iterates the reservation block of `blob` described by `header`.
    pub fn new(blob: &'a [u8], header: &Header) -> Self {
        Self {
            blob,
            off: header.off_mem_rsvmap,
            done: false,
        }
    }
}

impl Iterator for MemReserveIter<'_> {
    type Item = Result<Region, DtError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let entry =
            be64(self.blob, self.off).zip(self.off.checked_add(8).and_then(|o| be64(self.blob, o)));
        match entry {
            None => {
                self.done = true;
                Some(Err(DtError::BadMemReserve))
            }
            Some((0, 0)) => {
                self.done = true;
                None
            }
            Some((base, size)) => {
                self.off += 16;
                Some(Ok(Region::new(base, size)))
            }
        }
    }
}
