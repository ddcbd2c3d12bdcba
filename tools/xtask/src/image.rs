//! ELF to raw image, like `objcopy -O binary`, without needing an objcopy
//! that understands aarch64.
//!
//! The file bytes of every `PT_LOAD` segment are placed at their physical
//! address relative to the lowest such address; gaps between segments are
//! zero-filled. Bytes that are only in memory (`p_memsz > p_filesz`, i.e.
//! `.bss`) are not part of the image: the hypervisor clears them itself.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use object::elf::{FileHeader64, PT_LOAD};
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endianness, FileKind};

/// The largest image accepted: a span larger than this means segments at
/// far-apart addresses (a linker-script mistake), not a real image.
pub const MAX_IMAGE_SIZE: u64 = 256 << 20;

/// Why an ELF file could not be turned into a raw image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Reading the ELF or writing the image failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("cannot read", "cannot write").
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The input is not a 64-bit ELF file.
    #[error("not a 64-bit ELF file ({0})")]
    NotElf64(String),
    /// The ELF headers are inconsistent or truncated.
    #[error("malformed ELF: {0}")]
    Malformed(String),
    /// There is no `PT_LOAD` segment with file bytes.
    #[error("the ELF has no PT_LOAD segment with file contents: nothing to put in the image")]
    NoLoadSegment,
    /// The loadable bytes add up to nothing.
    #[error("the raw image would be empty")]
    Empty,
    /// A section lies where the hypervisor's W^X map would give it the
    /// wrong permissions (see [`crate::wx`]).
    #[error("the image breaks the W^X layout:\n  {0}")]
    NotWx(String),
    /// The segments span more than [`MAX_IMAGE_SIZE`].
    #[error(
        "PT_LOAD segments span {span:#x} bytes from {base:#x}, more than the {MAX_IMAGE_SIZE:#x} allowed: check the linker script"
    )]
    TooLarge {
        /// Lowest physical address.
        base: u64,
        /// Bytes from `base` to the end of the last segment's file bytes.
        span: u64,
    },
}

/// A raw image and where it came from.
#[derive(Debug, PartialEq, Eq)]
pub struct RawImage {
    /// Physical address of the first byte.
    pub base: u64,
    /// Number of `PT_LOAD` segments that contributed bytes.
    pub segments: usize,
    /// The image.
    pub bytes: Vec<u8>,
}

/// Converts the ELF file `elf` into the raw image `out`, returning what was written.
pub fn convert(elf: &Path, out: &Path) -> Result<RawImage, ImageError> {
    let data = read(elf)?;
    let image = elf_to_raw(&data)?;
    fs::write(out, &image.bytes).map_err(|source| ImageError::Io {
        action: "cannot write",
        path: out.to_owned(),
        source,
    })?;
    Ok(image)
}

/// Checks the hypervisor ELF `elf` against the W^X rules of its map
/// ([`crate::wx`]) and returns its pieces.
pub fn check_wx(elf: &Path) -> Result<crate::wx::Pieces, ImageError> {
    crate::wx::check_elf(&read(elf)?)
}

fn read(elf: &Path) -> Result<Vec<u8>, ImageError> {
    fs::read(elf).map_err(|source| ImageError::Io {
        action: "cannot read",
        path: elf.to_owned(),
        source,
    })
}

/// Lays out the file bytes of the `PT_LOAD` segments of a 64-bit ELF.
pub fn elf_to_raw(data: &[u8]) -> Result<RawImage, ImageError> {
    match FileKind::parse(data) {
        Ok(FileKind::Elf64) => {}
        Ok(kind) => return Err(ImageError::NotElf64(format!("{kind:?}"))),
        Err(e) => return Err(ImageError::NotElf64(e.to_string())),
    }
    let header = FileHeader64::<Endianness>::parse(data)
        .map_err(|e| ImageError::Malformed(e.to_string()))?;
    let endian = header
        .endian()
        .map_err(|e| ImageError::Malformed(e.to_string()))?;
    let phdrs = header
        .program_headers(endian, data)
        .map_err(|e| ImageError::Malformed(e.to_string()))?;

    // (physical address, file bytes) of each loadable segment with contents.
    let mut loads = Vec::new();
    for phdr in phdrs {
        if phdr.p_type(endian) != PT_LOAD || phdr.p_filesz(endian) == 0 {
            continue;
        }
        let bytes = phdr.data(endian, data).map_err(|()| {
            ImageError::Malformed(format!(
                "PT_LOAD at {:#x}: file range {:#x}+{:#x} is outside the file",
                phdr.p_paddr(endian),
                phdr.p_offset(endian),
                phdr.p_filesz(endian)
            ))
        })?;
        loads.push((phdr.p_paddr(endian), bytes));
    }
    let base = loads
        .iter()
        .map(|&(paddr, _)| paddr)
        .min()
        .ok_or(ImageError::NoLoadSegment)?;
    let mut end = base;
    for &(paddr, bytes) in &loads {
        let seg_end = paddr
            .checked_add(bytes.len() as u64)
            .ok_or_else(|| ImageError::Malformed(format!("PT_LOAD at {paddr:#x} wraps around")))?;
        end = end.max(seg_end);
    }
    let span = end - base;
    if span > MAX_IMAGE_SIZE {
        return Err(ImageError::TooLarge { base, span });
    }
    if span == 0 {
        return Err(ImageError::Empty);
    }
    // Both conversions are exact: span <= MAX_IMAGE_SIZE fits in usize.
    let mut image = vec![0u8; span as usize];
    for &(paddr, bytes) in &loads {
        let start = (paddr - base) as usize;
        image[start..start + bytes.len()].copy_from_slice(bytes);
    }
    Ok(RawImage {
        base,
        segments: loads.len(),
        bytes: image,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One program header for [`elf`]: (type, paddr, file bytes, memsz).
    struct Seg<'a> {
        p_type: u32,
        paddr: u64,
        bytes: &'a [u8],
        memsz: u64,
    }

    fn load(paddr: u64, bytes: &[u8]) -> Seg<'_> {
        Seg {
            p_type: PT_LOAD,
            paddr,
            bytes,
            memsz: bytes.len() as u64,
        }
    }

    /// Builds a little-endian aarch64 ELF64 executable with the given
    /// segments; contents follow the headers in order. The virtual address
    /// is made different from the physical one to check which one is used.
    fn elf(segs: &[Seg<'_>]) -> Vec<u8> {
        const EHSIZE: usize = 64;
        const PHENTSIZE: usize = 56;
        let mut out = Vec::new();
        out.extend_from_slice(b"\x7fELF");
        out.extend_from_slice(&[2, 1, 1, 0]); // ELFCLASS64, LSB, version 1, SysV
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        out.extend_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
        out.extend_from_slice(&1u32.to_le_bytes()); // e_version
        out.extend_from_slice(&0u64.to_le_bytes()); // e_entry
        out.extend_from_slice(&(EHSIZE as u64).to_le_bytes()); // e_phoff
        out.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
        out.extend_from_slice(&0u32.to_le_bytes()); // e_flags
        out.extend_from_slice(&(EHSIZE as u16).to_le_bytes());
        out.extend_from_slice(&(PHENTSIZE as u16).to_le_bytes());
        out.extend_from_slice(&(segs.len() as u16).to_le_bytes());
        out.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
        out.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
        out.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
        assert_eq!(out.len(), EHSIZE);
        let mut offset = EHSIZE + PHENTSIZE * segs.len();
        for seg in segs {
            out.extend_from_slice(&seg.p_type.to_le_bytes());
            out.extend_from_slice(&5u32.to_le_bytes()); // PF_R | PF_X
            out.extend_from_slice(&(offset as u64).to_le_bytes());
            out.extend_from_slice(&(seg.paddr + 0xffff_0000_0000).to_le_bytes()); // vaddr
            out.extend_from_slice(&seg.paddr.to_le_bytes());
            out.extend_from_slice(&(seg.bytes.len() as u64).to_le_bytes());
            out.extend_from_slice(&seg.memsz.to_le_bytes());
            out.extend_from_slice(&0x1000u64.to_le_bytes()); // p_align
            offset += seg.bytes.len();
        }
        for seg in segs {
            out.extend_from_slice(seg.bytes);
        }
        out
    }

    #[test]
    fn single_segment_is_copied() {
        let raw = elf_to_raw(&elf(&[load(0x4020_0000, b"hello")])).expect("valid ELF");
        assert_eq!(
            raw,
            RawImage {
                base: 0x4020_0000,
                segments: 1,
                bytes: b"hello".to_vec()
            }
        );
    }

    #[test]
    fn gaps_are_zero_filled_and_order_does_not_matter() {
        // Listed out of address order on purpose.
        let raw =
            elf_to_raw(&elf(&[load(0x1008, b"DATA"), load(0x1000, b"CODE")])).expect("valid ELF");
        assert_eq!(raw.base, 0x1000);
        assert_eq!(raw.segments, 2);
        assert_eq!(raw.bytes, b"CODE\0\0\0\0DATA");
    }

    #[test]
    fn bss_and_other_segments_are_left_out() {
        let segs = [
            load(0x0, b"text"),
            // .data followed by .bss: only the file bytes count.
            Seg {
                p_type: PT_LOAD,
                paddr: 0x10,
                bytes: b"dd",
                memsz: 0x1000,
            },
            // A pure .bss segment: no file bytes.
            Seg {
                p_type: PT_LOAD,
                paddr: 0x2000,
                bytes: b"",
                memsz: 0x1000,
            },
            // Not loadable (PT_NOTE).
            Seg {
                p_type: 4,
                paddr: 0x9000,
                bytes: b"note",
                memsz: 4,
            },
        ];
        let raw = elf_to_raw(&elf(&segs)).expect("valid ELF");
        assert_eq!(raw.segments, 2);
        assert_eq!(raw.bytes.len(), 0x12);
        assert_eq!(&raw.bytes[..4], b"text");
        assert_eq!(&raw.bytes[0x10..], b"dd");
    }

    #[test]
    fn no_load_segment_is_an_error() {
        let note = Seg {
            p_type: 4,
            paddr: 0,
            bytes: b"note",
            memsz: 4,
        };
        assert!(matches!(
            elf_to_raw(&elf(&[note])),
            Err(ImageError::NoLoadSegment)
        ));
        assert!(matches!(
            elf_to_raw(&elf(&[])),
            Err(ImageError::NoLoadSegment)
        ));
    }

    #[test]
    fn far_apart_segments_are_refused() {
        let err = elf_to_raw(&elf(&[load(0, b"a"), load(1 << 40, b"b")]))
            .expect_err("a 1 TiB image is a mistake");
        assert!(matches!(err, ImageError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn truncated_and_foreign_files_are_refused() {
        let mut data = elf(&[load(0, b"text")]);
        data.truncate(data.len() - 2);
        assert!(matches!(elf_to_raw(&data), Err(ImageError::Malformed(_))));
        assert!(matches!(
            elf_to_raw(b"#!/bin/sh\necho not an elf\n"),
            Err(ImageError::NotElf64(_))
        ));
    }

    #[test]
    fn convert_writes_the_file() {
        let dir = std::env::temp_dir().join(format!("xtask-image-test-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir");
        let (input, output) = (dir.join("in.elf"), dir.join("out.bin"));
        fs::write(&input, elf(&[load(0x80, b"abc")])).expect("write ELF");
        let raw = convert(&input, &output).expect("conversion");
        assert_eq!(fs::read(&output).expect("read image"), b"abc");
        assert_eq!(raw.base, 0x80);
        let err = convert(&dir.join("missing.elf"), &output).expect_err("missing input");
        assert!(err.to_string().contains("missing.elf"), "{err}");
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}
