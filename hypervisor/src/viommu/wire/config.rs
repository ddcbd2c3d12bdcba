//! The device configuration space (40 bytes, little-endian):
//!
//! | offset | field | width |
//! |---|---|---|
//! | 0x00 | `page_size_mask` | u64 |
//! | 0x08 | `input_range.start` | u64 |
//! | 0x10 | `input_range.end` (inclusive) | u64 |
//! | 0x18 | `domain_range.start` | u32 |
//! | 0x1c | `domain_range.end` (inclusive) | u32 |
//! | 0x20 | `probe_size` | u32 |
//! | 0x24 | `bypass` | u8 |
//! | 0x25 | reserved | 3 bytes |
//!
//! Only `bypass` is writable (by a driver that negotiated BYPASS_CONFIG;
//! the device cannot tell and accepts it from any driver), and only with
//! the values 0 and 1: the device never presents anything else.
//!
//! The size and offsets are [`virtio_defs::iommu::config`]'s.

use super::put;

pub use virtio_defs::iommu::config::{
    CONFIG_LEN, OFF_BYPASS, OFF_DOMAIN_END, OFF_DOMAIN_START, OFF_INPUT_END, OFF_INPUT_START,
    OFF_PAGE_SIZE_MASK, OFF_PROBE_SIZE,
};

/// The configuration space as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigSpace {
    /// Page sizes the device maps; the lowest set bit is the granule.
    pub page_size_mask: u64,
    /// First IOVA the device translates.
    pub input_start: u64,
    /// Last IOVA the device translates (inclusive).
    pub input_end: u64,
    /// First valid domain ID.
    pub domain_start: u32,
    /// Last valid domain ID (inclusive).
    pub domain_end: u32,
    /// Size of the PROBE properties buffer (0: PROBE not offered).
    pub probe_size: u32,
    /// Whether unattached endpoints bypass translation.
    pub bypass: bool,
}

impl ConfigSpace {
    /// The 40 bytes the driver reads.
    pub fn to_bytes(&self) -> [u8; CONFIG_LEN] {
        let mut b = [0u8; CONFIG_LEN];
        put(
            &mut b,
            OFF_PAGE_SIZE_MASK,
            &self.page_size_mask.to_le_bytes(),
        );
        put(&mut b, OFF_INPUT_START, &self.input_start.to_le_bytes());
        put(&mut b, OFF_INPUT_END, &self.input_end.to_le_bytes());
        put(&mut b, OFF_DOMAIN_START, &self.domain_start.to_le_bytes());
        put(&mut b, OFF_DOMAIN_END, &self.domain_end.to_le_bytes());
        put(&mut b, OFF_PROBE_SIZE, &self.probe_size.to_le_bytes());
        put(&mut b, OFF_BYPASS, &[u8::from(self.bypass)]);
        b
    }

    /// Reads `width` bytes (1, 2, 4 or 8) at `offset`, little-endian.
    /// Bytes past the end read as zero; another width reads as 0.
    pub fn read(&self, offset: usize, width: usize) -> u64 {
        if !matches!(width, 1 | 2 | 4 | 8) {
            return 0;
        }
        let bytes = self.to_bytes();
        (0..width).fold(0u64, |acc, i| {
            let byte = offset
                .checked_add(i)
                .and_then(|o| bytes.get(o))
                .copied()
                .unwrap_or(0);
            acc | u64::from(byte) << (8 * i)
        })
    }

    /// Writes `width` bytes (1, 2, 4 or 8) of `value` at `offset`. Only
    /// the `bypass` byte takes a write, and only the values 0 and 1; every
    /// other byte, width or value is ignored. Returns the new `bypass`
    /// when it changed.
    pub fn write(&mut self, offset: usize, width: usize, value: u64) -> Option<bool> {
        if !matches!(width, 1 | 2 | 4 | 8) {
            return None;
        }
        let end = offset.checked_add(width)?;
        if !(offset..end).contains(&OFF_BYPASS) {
            return None;
        }
        let shift = 8 * (OFF_BYPASS - offset);
        let byte = (value >> shift) & 0xff;
        let on = match byte {
            0 => false,
            1 => true,
            _ => return None,
        };
        if on == self.bypass {
            return None;
        }
        self.bypass = on;
        Some(on)
    }
}
