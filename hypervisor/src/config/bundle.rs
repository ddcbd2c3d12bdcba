//! The payload bundle: every guest's config, kernel Image and optional
//! initrd in one blob, passed to the hypervisor in the initrd slot.
//!
//! Layout (all integers little-endian, every part 8-byte aligned):
//!
//! ```text
//! header, 32 bytes
//!    0  magic        [u8; 8]  b"PARTITA\0"
//!    8  version      u32      VERSION
//!   12  guest_count  u32      1..=MAX_GUESTS
//!   16  total_len    u64      the whole bundle, header included
//!   24  header_crc   u32      CRC32 of the header (this field as 0), then
//!                             of the entry table
//!   28  reserved     u32      0
//! entry table: guest_count entries of 3 part descriptors (config, kernel,
//! initrd), 24 bytes each
//!    0  offset       u64      from the start of the bundle
//!    8  len          u64
//!   16  crc          u32      CRC32 of the part's bytes
//!   20  flags        u32      bit 0: present (config and kernel must be);
//!                             an absent part is all zero
//! data: the parts, each at an 8-byte aligned offset after the table, not
//! overlapping; every byte between parts and up to total_len is zero.
//! ```
//!
//! The config part is a postcard-encoded [`GuestConfig`]. Bytes after
//! `total_len` are ignored (a boot loader may round the initrd size up).
//! [`Bundle::parse`] checks every field, length, offset and checksum with
//! overflow-safe arithmetic and never panics.

use alloc::vec;
use alloc::vec::Vec;

use super::crc32::{Crc32, crc32};
use super::limits::MAX_GUESTS;
use super::{BundleError, GuestConfig, GuestRef, Part};

/// The first eight bytes of every bundle.
pub const MAGIC: [u8; 8] = *b"PARTITA\0";
/// The format version written and read. 2: [`GuestConfig`] gained
/// `viommu` (version 1 configs do not decode). 3: it gained
/// `allow_untranslated_dma` and `limits` (version 2 configs do not decode).
/// 4: it gained `console`. 5: `pci`. 6: `origin`.
pub const VERSION: u32 = 6;
/// Size of the fixed header.
pub const HEADER_LEN: usize = 32;
/// Size of one part descriptor.
pub const PART_LEN: usize = 24;
/// Size of one guest entry (config, kernel, initrd descriptors).
pub const ENTRY_LEN: usize = 3 * PART_LEN;
/// Alignment of every part.
pub const ALIGN: usize = 8;
/// The `present` bit of a part descriptor's flags.
pub const PART_PRESENT: u32 = 1;

/// Offset of `header_crc` in the header.
const CRC_OFFSET: usize = 24;
/// The parts of an entry, in table order.
const PARTS: [Part; 3] = [Part::Config, Part::Kernel, Part::Initrd];

/// One guest of a parsed bundle, borrowing its images from the blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleGuest<'a> {
    /// The decoded configuration.
    pub config: GuestConfig,
    /// The kernel Image.
    pub kernel: &'a [u8],
    /// The initrd, if any.
    pub initrd: Option<&'a [u8]>,
}

/// What [`Bundle::encode`] takes for one guest: its config, its kernel
/// Image and its optional initrd.
pub type GuestImages<'a> = (GuestConfig, &'a [u8], Option<&'a [u8]>);

/// A parsed and verified bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle<'a> {
    /// The guests, in entry-table order.
    pub guests: Vec<BundleGuest<'a>>,
}

/// A part descriptor as read from the table.
#[derive(Clone, Copy, Debug)]
struct PartDesc {
    offset: u64,
    len: u64,
    crc: u32,
    flags: u32,
}

/// A part whose descriptor was checked: its place in the blob.
#[derive(Clone, Copy, Debug)]
struct Placed {
    guest: usize,
    part: Part,
    start: usize,
    end: usize,
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        bytes.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        bytes.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// Length of header plus table for `count` guests (`count` is at most
/// [`MAX_GUESTS`], so this cannot overflow).
const fn table_end(count: usize) -> usize {
    HEADER_LEN + count * ENTRY_LEN
}

/// The header checksum: the header with its `header_crc` field read as
/// zero, then the entry table.
fn header_crc(header: &[u8], table: &[u8]) -> u32 {
    let mut crc = Crc32::new();
    crc.update(header.get(..CRC_OFFSET).unwrap_or(&[]));
    crc.update(&[0; 4]);
    crc.update(header.get(CRC_OFFSET + 4..HEADER_LEN).unwrap_or(&[]));
    crc.update(table);
    crc.finish()
}

impl<'a> Bundle<'a> {
    /// Parses and verifies a bundle: magic, version, guest count, total
    /// length, header checksum, every part descriptor (present flags,
    /// alignment, bounds, no overlap), zero padding, every part checksum,
    /// and decodes each config. `bytes` may be longer than the bundle.
    pub fn parse(bytes: &'a [u8]) -> Result<Bundle<'a>, BundleError> {
        let truncated = |needed: usize| BundleError::Truncated {
            needed: needed as u64,
            available: bytes.len(),
        };
        let header = bytes
            .get(..HEADER_LEN)
            .ok_or_else(|| truncated(HEADER_LEN))?;
        if header.get(..8) != Some(&MAGIC[..]) {
            return Err(BundleError::BadMagic);
        }
        let version = u32_at(header, 8).ok_or_else(|| truncated(HEADER_LEN))?;
        if version != VERSION {
            return Err(BundleError::UnsupportedVersion { version });
        }
        let count = u32_at(header, 12).ok_or_else(|| truncated(HEADER_LEN))?;
        if count == 0 {
            return Err(BundleError::NoGuests);
        }
        if count as usize > MAX_GUESTS {
            return Err(BundleError::TooManyGuests {
                count: count.into(),
            });
        }
        let count = count as usize;
        let table_end = table_end(count);
        let table = bytes
            .get(HEADER_LEN..table_end)
            .ok_or_else(|| truncated(table_end))?;
        let total = u64_at(header, 16).ok_or_else(|| truncated(HEADER_LEN))?;
        if total < table_end as u64 {
            return Err(BundleError::BadTotalLength {
                total,
                table_end: table_end as u64,
            });
        }
        let blob = usize::try_from(total)
            .ok()
            .and_then(|t| bytes.get(..t))
            .ok_or(BundleError::Truncated {
                needed: total,
                available: bytes.len(),
            })?;
        let stored = u32_at(header, CRC_OFFSET).ok_or_else(|| truncated(HEADER_LEN))?;
        let computed = header_crc(header, table);
        if stored != computed {
            return Err(BundleError::HeaderChecksum { stored, computed });
        }
        if u32_at(header, 28) != Some(0) {
            return Err(BundleError::ReservedNotZero);
        }

        let mut guests = Vec::with_capacity(count);
        let mut placed = Vec::new();
        for index in 0..count {
            let entry = table
                .get(index * ENTRY_LEN..(index + 1) * ENTRY_LEN)
                .ok_or_else(|| truncated(table_end))?;
            let guest = parse_guest(blob, entry, index, table_end, &mut placed)?;
            guests.push(guest);
        }
        check_layout(blob, table_end, &mut placed, &guests)?;
        Ok(Bundle { guests })
    }

    /// Builds a bundle from `(config, kernel, initrd)` triples. Fails when
    /// there are no guests or more than [`MAX_GUESTS`], or a config cannot
    /// be serialized. (It does not validate the configs: see
    /// [`super::check_guests`].)
    pub fn encode(guests: &[GuestImages<'_>]) -> Result<Vec<u8>, BundleError> {
        if guests.is_empty() {
            return Err(BundleError::NoGuests);
        }
        if guests.len() > MAX_GUESTS {
            return Err(BundleError::TooManyGuests {
                count: guests.len() as u64,
            });
        }
        let table_end = table_end(guests.len());
        let mut out = vec![0u8; table_end];
        let mut table = Vec::with_capacity(guests.len() * ENTRY_LEN);
        for (index, (config, kernel, initrd)) in guests.iter().enumerate() {
            let encoded = postcard::to_allocvec(config).map_err(|error| BundleError::Encode {
                guest: GuestRef::named(index, &config.name),
                error,
            })?;
            for part in [Some(encoded.as_slice()), Some(*kernel), *initrd] {
                match part {
                    Some(data) => {
                        let offset = out.len();
                        out.extend_from_slice(data);
                        out.resize(out.len().next_multiple_of(ALIGN), 0);
                        push_desc(
                            &mut table,
                            offset as u64,
                            data.len() as u64,
                            crc32(data),
                            PART_PRESENT,
                        );
                    }
                    None => push_desc(&mut table, 0, 0, 0, 0),
                }
            }
        }
        let total = out.len() as u64;
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(&MAGIC);
        header[8..12].copy_from_slice(&VERSION.to_le_bytes());
        header[12..16].copy_from_slice(&(guests.len() as u32).to_le_bytes());
        header[16..24].copy_from_slice(&total.to_le_bytes());
        let crc = header_crc(&header, &table);
        header[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
        out[..HEADER_LEN].copy_from_slice(&header);
        out[HEADER_LEN..table_end].copy_from_slice(&table);
        Ok(out)
    }
}

fn push_desc(table: &mut Vec<u8>, offset: u64, len: u64, crc: u32, flags: u32) {
    table.extend_from_slice(&offset.to_le_bytes());
    table.extend_from_slice(&len.to_le_bytes());
    table.extend_from_slice(&crc.to_le_bytes());
    table.extend_from_slice(&flags.to_le_bytes());
}

/// Reads, places and verifies the three parts of guest `index`, decoding
/// its config first so that later errors can name the guest.
fn parse_guest<'a>(
    blob: &'a [u8],
    entry: &[u8],
    index: usize,
    table_end: usize,
    placed: &mut Vec<Placed>,
) -> Result<BundleGuest<'a>, BundleError> {
    let mut guest = GuestRef::unnamed(index);
    let mut config = None;
    let mut kernel: &[u8] = &[];
    let mut initrd = None;
    for (i, part) in PARTS.into_iter().enumerate() {
        let at = i * PART_LEN;
        let desc = PartDesc {
            offset: u64_at(entry, at).unwrap_or(0),
            len: u64_at(entry, at + 8).unwrap_or(0),
            crc: u32_at(entry, at + 16).unwrap_or(0),
            flags: u32_at(entry, at + 20).unwrap_or(0),
        };
        let Some(data) = place(blob, &desc, &guest, part, table_end, placed)? else {
            continue;
        };
        match part {
            Part::Config => {
                let decoded = decode_config(data, &guest)?;
                guest.name = Some(decoded.name.clone());
                config = Some(decoded);
            }
            Part::Kernel if data.is_empty() => {
                return Err(BundleError::MissingPart { guest, part });
            }
            Part::Kernel => kernel = data,
            Part::Initrd => initrd = Some(data),
        }
    }
    let config = config.ok_or(BundleError::MissingPart {
        guest,
        part: Part::Config,
    })?;
    Ok(BundleGuest {
        config,
        kernel,
        initrd,
    })
}

/// Checks one descriptor and returns its bytes (`None` for an absent
/// initrd), recording where it lies.
fn place<'a>(
    blob: &'a [u8],
    desc: &PartDesc,
    guest: &GuestRef,
    part: Part,
    table_end: usize,
    placed: &mut Vec<Placed>,
) -> Result<Option<&'a [u8]>, BundleError> {
    let bad_entry = || BundleError::BadPartEntry {
        guest: guest.clone(),
        part,
    };
    if desc.flags & !PART_PRESENT != 0 {
        return Err(bad_entry());
    }
    if desc.flags & PART_PRESENT == 0 {
        if part != Part::Initrd {
            return Err(BundleError::MissingPart {
                guest: guest.clone(),
                part,
            });
        }
        if desc.offset != 0 || desc.len != 0 || desc.crc != 0 {
            return Err(bad_entry());
        }
        return Ok(None);
    }
    if !desc.offset.is_multiple_of(ALIGN as u64) {
        return Err(BundleError::Misaligned {
            guest: guest.clone(),
            part,
            offset: desc.offset,
        });
    }
    let out_of_bounds = || BundleError::OutOfBounds {
        guest: guest.clone(),
        part,
        offset: desc.offset,
        len: desc.len,
    };
    let start = usize::try_from(desc.offset).map_err(|_| out_of_bounds())?;
    let len = usize::try_from(desc.len).map_err(|_| out_of_bounds())?;
    let end = start.checked_add(len).ok_or_else(out_of_bounds)?;
    if start < table_end {
        return Err(out_of_bounds());
    }
    let data = blob.get(start..end).ok_or_else(out_of_bounds)?;
    let computed = crc32(data);
    if computed != desc.crc {
        return Err(BundleError::Checksum {
            guest: guest.clone(),
            part,
            stored: desc.crc,
            computed,
        });
    }
    placed.push(Placed {
        guest: guest.index,
        part,
        start,
        end,
    });
    Ok(Some(data))
}

/// Decodes a config part, refusing trailing bytes.
fn decode_config(data: &[u8], guest: &GuestRef) -> Result<GuestConfig, BundleError> {
    let (config, rest) =
        postcard::take_from_bytes::<GuestConfig>(data).map_err(|error| BundleError::BadConfig {
            guest: guest.clone(),
            error,
        })?;
    if !rest.is_empty() {
        return Err(BundleError::TrailingConfigBytes {
            guest: guest.clone(),
            extra: rest.len(),
        });
    }
    Ok(config)
}

/// Checks that no two parts overlap and that every byte of the data area
/// outside the parts is zero.
fn check_layout(
    blob: &[u8],
    table_end: usize,
    placed: &mut [Placed],
    guests: &[BundleGuest<'_>],
) -> Result<(), BundleError> {
    let name = |p: &Placed| GuestRef {
        index: p.guest,
        name: guests.get(p.guest).map(|g| g.config.name.clone()),
    };
    placed.sort_by_key(|p| (p.start, p.end));
    let mut cursor = table_end;
    let mut previous: Option<&Placed> = None;
    for p in placed.iter() {
        if let Some(prev) = previous.filter(|prev| p.start < prev.end && p.start < p.end) {
            return Err(BundleError::Overlap {
                first: name(prev),
                first_part: prev.part,
                second: name(p),
                second_part: p.part,
            });
        }
        check_zero(blob, cursor, p.start)?;
        cursor = cursor.max(p.end);
        if p.start < p.end {
            previous = Some(p);
        }
    }
    check_zero(blob, cursor, blob.len())
}

/// Every byte of `blob[from..to]` is zero (an empty or inverted range is).
fn check_zero(blob: &[u8], from: usize, to: usize) -> Result<(), BundleError> {
    let gap = blob.get(from..to).unwrap_or(&[]);
    match gap.iter().position(|&b| b != 0) {
        Some(i) => Err(BundleError::NonZeroPadding {
            offset: (from + i) as u64,
        }),
        None => Ok(()),
    }
}
