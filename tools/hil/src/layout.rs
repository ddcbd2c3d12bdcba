//! Where things land in the board's RAM: the image (its arm64 `Image`
//! header gives the size it occupies, .bss included), the bundle, the DT.
//! Checked before anything is sent to the board, so a bad board definition
//! fails with the two regions named instead of a board that hangs.

use crate::board::{Dtb, Load};

/// Room U-Boot adds after a DT it uses in place (`CONFIG_SYS_FDT_PAD`).
pub const FDT_PAD: u64 = 0x3000;

/// The fields of an arm64 Linux `Image` header that matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    /// `text_offset`: where the image goes relative to a 2 MiB boundary.
    pub text_offset: u64,
    /// `image_size`: the memory the image occupies (0: unknown, old kernels).
    pub image_size: u64,
}

impl ImageHeader {
    /// Reads the header at the start of `bytes`; `None` unless the magic
    /// `ARM\x64` is at 0x38.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let field = |at: usize| -> Option<u64> {
            let b: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
            Some(u64::from_le_bytes(b))
        };
        (bytes.get(0x38..0x3c)? == b"ARM\x64").then_some(())?;
        Some(Self {
            text_offset: field(8)?,
            image_size: field(16)?,
        })
    }
}

/// A named region of RAM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// "the image"...
    pub name: &'static str,
    /// First byte.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
}

impl Region {
    fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }
}

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:#x}..{:#x})", self.name, self.start, self.end())
    }
}

/// The regions a boot occupies: image (its header's size or the file's,
/// whichever is larger), bundle, and the DT unless it stays in U-Boot's memory.
pub fn regions(
    load: &Load,
    dtb: &Dtb,
    image: ImageHeader,
    image_file_len: u64,
    bundle_len: u64,
    dtb_file_len: Option<u64>,
) -> Vec<Region> {
    let mut regions = vec![
        Region {
            name: "the image",
            start: load.image + image.text_offset,
            len: image.image_size.max(image_file_len),
        },
        Region {
            name: "the bundle",
            start: load.bundle,
            len: bundle_len,
        },
    ];
    match dtb {
        Dtb::UBootInPlace => {}
        Dtb::UBootCopy { addr, size } => regions.push(Region {
            name: "the device tree",
            start: *addr,
            len: size + FDT_PAD,
        }),
        Dtb::File { addr, .. } => regions.push(Region {
            name: "the device tree",
            start: *addr,
            len: dtb_file_len.unwrap_or(0) + FDT_PAD,
        }),
    }
    regions
}

/// Checks that no two regions overlap and that all fit in RAM (when known).
pub fn check(load: &Load, regions: &[Region]) -> Result<(), String> {
    for (i, a) in regions.iter().enumerate() {
        for b in &regions[i + 1..] {
            if a.start < b.end() && b.start < a.end() {
                return Err(format!("{a} and {b} overlap"));
            }
        }
        if let Some((start, size)) = load.ram
            && (a.start < start || a.end() > start.saturating_add(size))
        {
            return Err(format!(
                "{a} does not fit in RAM ({start:#x}..{:#x})",
                start.saturating_add(size)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_bytes(image_size: u64) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[16..24].copy_from_slice(&image_size.to_le_bytes());
        b[0x38..0x3c].copy_from_slice(b"ARM\x64");
        b
    }

    const LOAD: Load = Load {
        image: 0x4020_0000,
        bundle: 0x4800_0000,
        ram: Some((0x4000_0000, 0x4000_0000)),
    };

    #[test]
    fn header() {
        let h = ImageHeader::parse(&header_bytes(0x18f000)).expect("valid header");
        assert_eq!(
            h,
            ImageHeader {
                text_offset: 0,
                image_size: 0x18f000
            }
        );
        assert_eq!(ImageHeader::parse(&[0u8; 64]), None);
        assert_eq!(ImageHeader::parse(b"short"), None);
    }

    #[test]
    fn qemu_layout_fits() {
        let h = ImageHeader::parse(&header_bytes(0x18f000)).expect("valid");
        let dtb = Dtb::UBootCopy {
            addr: 0x4000_0000,
            size: 0x10_0000,
        };
        let r = regions(&LOAD, &dtb, h, 210_120, 45_298_824, None);
        assert_eq!(r.len(), 3);
        assert_eq!(check(&LOAD, &r), Ok(()));
    }

    #[test]
    fn overlaps_and_ram_are_named() {
        let h = ImageHeader::parse(&header_bytes(0x18f000)).expect("valid");
        // A 2 MiB DT copy at the bottom runs into the image at 0x40200000.
        let dtb = Dtb::UBootCopy {
            addr: 0x4000_0000,
            size: 0x20_0000,
        };
        let r = regions(&LOAD, &dtb, h, 210_120, 4096, None);
        assert_eq!(
            check(&LOAD, &r),
            Err("the image (0x40200000..0x4038f000) and the device tree (0x40000000..0x40203000) overlap".into())
        );
        // A bundle too large for the RAM above its address.
        let r = regions(&LOAD, &Dtb::UBootInPlace, h, 210_120, 0x4000_0000, None);
        assert_eq!(
            check(&LOAD, &r),
            Err(
                "the bundle (0x48000000..0x88000000) does not fit in RAM (0x40000000..0x80000000)"
                    .into()
            )
        );
        // The file is larger than the header says (it never is, but be safe).
        let r = regions(&LOAD, &Dtb::UBootInPlace, h, 0x800_0000, 4096, None);
        assert!(check(&LOAD, &r).is_err());
        // A DTB file counts with U-Boot's padding.
        let dtb = Dtb::File {
            path: "x".into(),
            addr: 0x4010_0000,
        };
        let r = regions(&LOAD, &dtb, h, 210_120, 4096, Some(0xfe000));
        assert!(
            check(&LOAD, &r)
                .expect_err("pad reaches the image")
                .contains("overlap")
        );
    }
}
