//! The capability list walk: the first usable vendor-specific capability
//! of each virtio structure type (virtio 1.2, 4.1.4: "the driver SHOULD
//! use the first instance of each virtio structure type they can
//! support"; capabilities with a reserved `cfg_type` or `bar` are
//! ignored, as the driver requirements say).

use crate::{ConfigSpace, header};
use core::fmt;
use virtio_defs::pci::{
    CAP_COMMON_CFG, CAP_DEVICE_CFG, CAP_ID_VNDR, CAP_ISR_CFG, CAP_NOTIFY_CFG, cap, common,
};

/// Most capabilities followed: the 192 bytes after the header hold at most
/// 48 (of 4 bytes), so more means the list loops.
pub const MAX_CAPS: usize = 48;

/// Where one structure is: a BAR, an offset in it and a length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// The BAR (0 to 5).
    pub bar: u8,
    /// Byte offset in the BAR.
    pub offset: u32,
    /// Bytes of the structure.
    pub length: u32,
}

/// The structures a driver needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtioCaps {
    /// Common configuration.
    pub common: Region,
    /// Notifications.
    pub notify: Region,
    /// The notification capability's `notify_off_multiplier`.
    pub notify_off_multiplier: u32,
    /// ISR status.
    pub isr: Region,
    /// Device-specific configuration (optional: not every device has one).
    pub device: Option<Region>,
}

/// Why the capabilities do not describe a virtio-pci function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapError {
    /// The status register says there is no capability list.
    NoList,
    /// More than [`MAX_CAPS`] capabilities: the list loops.
    Loop,
    /// A capability pointer below the header (0x40) or not 4-byte aligned.
    BadPointer(u8),
    /// A virtio capability shorter than its structure (`cap_len`).
    Short {
        /// Where it is.
        at: u8,
        /// Its `cap_len`.
        len: u8,
    },
    /// No usable capability of this `cfg_type`.
    Missing(u8),
    /// The common configuration is shorter than its fields up to
    /// `queue_device` (0x38 bytes), or the ISR has no byte.
    TooSmall(u8),
}

impl fmt::Display for CapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoList => f.write_str("the function has no capability list"),
            Self::Loop => write!(f, "more than {MAX_CAPS} capabilities (a loop)"),
            Self::BadPointer(p) => write!(f, "capability pointer {p:#x} is not in the device part"),
            Self::Short { at, len } => {
                write!(
                    f,
                    "virtio capability at {at:#x} has cap_len {len}, too short"
                )
            }
            Self::Missing(t) => write!(f, "no usable virtio capability of cfg_type {t}"),
            Self::TooSmall(t) => write!(f, "the structure of cfg_type {t} is too small"),
        }
    }
}

impl core::error::Error for CapError {}

/// Walks the capability list of `cfg` (see the module documentation).
pub fn find(cfg: &impl ConfigSpace) -> Result<VirtioCaps, CapError> {
    if (cfg.read32(header::COMMAND) >> 16) & header::STATUS_CAP_LIST == 0 {
        return Err(CapError::NoList);
    }
    let (mut common_r, mut notify, mut isr, mut device) = (None, None, None, None);
    let mut ptr = cfg.read8(header::CAP_PTR) & !3;
    let mut seen = 0;
    while ptr != 0 {
        if ptr < 0x40 {
            return Err(CapError::BadPointer(ptr));
        }
        seen += 1;
        if seen > MAX_CAPS {
            return Err(CapError::Loop);
        }
        let at = u16::from(ptr);
        let head = cfg.read32(at);
        let (id, next) = (head as u8, (head >> 8) as u8 & !3);
        if id == CAP_ID_VNDR {
            let (len, cfg_type) = ((head >> 16) as u8, (head >> 24) as u8);
            let bar = cfg.read8(at + cap::BAR);
            let known = matches!(
                cfg_type,
                CAP_COMMON_CFG | CAP_NOTIFY_CFG | CAP_ISR_CFG | CAP_DEVICE_CFG
            );
            if known && bar <= 5 {
                let need = if cfg_type == CAP_NOTIFY_CFG {
                    cap::SIZE_EXTENDED
                } else {
                    cap::SIZE
                };
                if len < need {
                    return Err(CapError::Short { at: ptr, len });
                }
                let region = Region {
                    bar,
                    offset: cfg.read32(at + cap::OFFSET),
                    length: cfg.read32(at + cap::LENGTH),
                };
                let slot = match cfg_type {
                    CAP_COMMON_CFG => &mut common_r,
                    CAP_NOTIFY_CFG => &mut notify,
                    CAP_ISR_CFG => &mut isr,
                    _ => &mut device,
                };
                if slot.is_none() {
                    let mult = if cfg_type == CAP_NOTIFY_CFG {
                        cfg.read32(at + cap::NOTIFY_OFF_MULTIPLIER)
                    } else {
                        0
                    };
                    *slot = Some((region, mult));
                }
            }
        }
        ptr = next;
    }
    let (common_r, _) = common_r.ok_or(CapError::Missing(CAP_COMMON_CFG))?;
    let (notify, mult) = notify.ok_or(CapError::Missing(CAP_NOTIFY_CFG))?;
    let (isr, _) = isr.ok_or(CapError::Missing(CAP_ISR_CFG))?;
    if u64::from(common_r.length) < common::SIZE {
        return Err(CapError::TooSmall(CAP_COMMON_CFG));
    }
    if isr.length == 0 {
        return Err(CapError::TooSmall(CAP_ISR_CFG));
    }
    Ok(VirtioCaps {
        common: common_r,
        notify,
        notify_off_multiplier: mult,
        isr,
        device: device.map(|(r, _)| r),
    })
}
