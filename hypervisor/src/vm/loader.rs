//! Where a guest's boot images go in its RAM, per the arm64 Linux boot
//! protocol: the kernel Image at a 2 MiB-aligned base plus its
//! `text_offset`, the device tree in the 2 MiB slot after the kernel's
//! `image_size`, the initrd right after it. Everything sits low, so the top
//! of RAM can be kept from the kernel (`mem=`) without losing an image.

use crate::mm::layout::Region;

/// Room reserved for the device tree at the top of RAM.
pub const DTB_SLOT: u64 = 2 << 20;

/// Guest-physical placement of the boot images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootLayout {
    /// Kernel load address (also its entry point).
    pub kernel: u64,
    /// Initrd location, if any.
    pub initrd: Option<Region>,
    /// Device tree location (up to [`DTB_SLOT`] bytes).
    pub dtb: u64,
}

/// Why the images do not fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// Not an arm64 Linux Image (no "ARM\x64" magic at 0x38).
    NotAnImage,
    /// The images need more RAM than the guest has.
    TooSmall {
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        have: u64,
    },
}

impl core::fmt::Display for LoadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LoadError::NotAnImage => write!(f, "the kernel is not an arm64 Image (bad magic)"),
            LoadError::TooSmall { needed, have } => write!(
                f,
                "kernel, initrd and device tree need {} MiB, the guest has {} MiB",
                needed.div_ceil(1 << 20),
                have >> 20
            ),
        }
    }
}

impl core::error::Error for LoadError {}

fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Plans the layout of `kernel` (an arm64 Image) and an initrd of
/// `initrd_len` bytes in guest RAM `ram` (2 MiB aligned).
pub fn plan(ram: Region, kernel: &[u8], initrd_len: Option<u64>) -> Result<BootLayout, LoadError> {
    if kernel.get(0x38..0x3c) != Some(b"ARM\x64".as_slice()) {
        return Err(LoadError::NotAnImage);
    }
    let text_offset = le64(kernel, 8).ok_or(LoadError::NotAnImage)?;
    let image_size = match le64(kernel, 16).ok_or(LoadError::NotAnImage)? {
        0 => kernel.len() as u64, // very old kernels: no size, text_offset 0x80000
        n => n.max(kernel.len() as u64),
    };
    let text_offset = if le64(kernel, 16) == Some(0) {
        0x8_0000
    } else {
        text_offset
    };
    let kernel_end = text_offset
        .saturating_add(image_size)
        .next_multiple_of(4096);
    let initrd = initrd_len.unwrap_or(0).next_multiple_of(4096);
    let needed = kernel_end.saturating_add(initrd).saturating_add(DTB_SLOT);
    if needed > ram.size {
        return Err(LoadError::TooSmall {
            needed,
            have: ram.size,
        });
    }
    let dtb = ram.base + kernel_end.next_multiple_of(DTB_SLOT);
    if dtb - ram.base + DTB_SLOT + initrd > ram.size {
        return Err(LoadError::TooSmall {
            needed: dtb - ram.base + DTB_SLOT + initrd,
            have: ram.size,
        });
    }
    Ok(BootLayout {
        kernel: ram.base + text_offset,
        initrd: initrd_len.map(|len| Region::new(dtb + DTB_SLOT, len)),
        dtb,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn image(text_offset: u64, size: u64) -> alloc::vec::Vec<u8> {
        let mut k = vec![0u8; 4096];
        k[8..16].copy_from_slice(&text_offset.to_le_bytes());
        k[16..24].copy_from_slice(&size.to_le_bytes());
        k[0x38..0x3c].copy_from_slice(b"ARM\x64");
        k
    }

    #[test]
    fn places_kernel_initrd_and_dtb() {
        let ram = Region::new(0x4000_0000, 64 << 20);
        let l = plan(ram, &image(0, 31 << 20), Some(5 << 20)).unwrap();
        assert_eq!(l.kernel, 0x4000_0000);
        // The next 2 MiB boundary after the kernel, then the initrd.
        assert_eq!(l.dtb, 0x4000_0000 + (32 << 20));
        assert_eq!(
            l.initrd,
            Some(Region::new(0x4000_0000 + (34 << 20), 5 << 20))
        );
    }

    #[test]
    fn refuses_what_does_not_fit_or_is_not_an_image() {
        let ram = Region::new(0x4000_0000, 32 << 20);
        assert_eq!(
            plan(ram, &image(0, 30 << 20), Some(1 << 20)),
            Err(LoadError::TooSmall {
                needed: 33 << 20,
                have: 32 << 20
            })
        );
        assert_eq!(plan(ram, &[0u8; 100], None), Err(LoadError::NotAnImage));
        assert_eq!(plan(ram, &[], None), Err(LoadError::NotAnImage));
    }
}
