//! Where partita's virtio-pci function keeps things: its identity, the
//! capability list in configuration space and the regions of BAR 0. The
//! virtio numbers themselves are [`virtio_defs::pci`]'s, re-exported here.
//!
//! ```text
//! config space                         BAR 0 (16 KiB, 64-bit, prefetchable)
//! 0x34 capabilities pointer -> 0x40    0x0000 common configuration (0x1000)
//! 0x40 COMMON_CFG  -> BAR 0 + 0x0000   0x1000 ISR status (0x1000, 1 byte used)
//! 0x50 NOTIFY_CFG  -> BAR 0 + 0x3000   0x2000 device configuration (0x1000)
//! 0x64 ISR_CFG     -> BAR 0 + 0x1000   0x3000 notifications: queue q at
//! 0x74 DEVICE_CFG  -> BAR 0 + 0x2000          0x3000 + 4 * q
//! 0x84 PCI_CFG     (window, 20 bytes)
//! ```

pub use virtio_defs::pci::*;

/// Class code (base class, subclass, programming interface): 0x00ff00,
/// what QEMU's virtio-iommu-pci reports (`PCI_CLASS_OTHERS` in its 16-bit
/// class field, so base class 0x00, subclass 0xff). Linux's driver matches
/// on vendor and device IDs only.
pub const CLASS_CODE: u32 = 0x00ff00;
/// Subsystem vendor ID (Red Hat / Qumranet, as QEMU).
pub const SUBSYSTEM_VENDOR_ID: u16 = 0x1af4;
/// Subsystem ID (QEMU's default; a non-transitional device should use
/// 0x40 or higher).
pub const SUBSYSTEM_ID: u16 = 0x1100;
/// Interrupt pin: INTA.
pub const INTERRUPT_PIN: u8 = 1;

/// Bytes of BAR 0 (a power of two).
pub const BAR0_SIZE: u64 = 0x4000;
/// Low flag bits of BAR 0: memory, 64-bit (0b10 in bits 2:1),
/// prefetchable (bit 3), as QEMU's modern virtio BAR.
pub const BAR0_FLAGS: u32 = 0b1100;
/// Bytes of each region of BAR 0.
pub const REGION_SIZE: u64 = 0x1000;
/// Offset of the common configuration in BAR 0.
pub const COMMON_OFFSET: u64 = 0x0000;
/// Offset of the ISR status byte in BAR 0.
pub const ISR_OFFSET: u64 = 0x1000;
/// Offset of the device-specific configuration in BAR 0.
pub const DEVICE_OFFSET: u64 = 0x2000;
/// Offset of the notification region in BAR 0.
pub const NOTIFY_OFFSET: u64 = 0x3000;
/// `notify_off_multiplier`: queue q is notified at
/// `NOTIFY_OFFSET + q * NOTIFY_OFF_MULTIPLIER` (`queue_notify_off` = q).
pub const NOTIFY_OFF_MULTIPLIER: u32 = 4;

/// Configuration-space offset of the first capability.
pub const CAP_FIRST: u16 = 0x40;
/// Configuration-space offset of the common configuration capability.
pub const CAP_COMMON: u16 = 0x40;
/// Configuration-space offset of the notification capability.
pub const CAP_NOTIFY: u16 = 0x50;
/// Configuration-space offset of the ISR capability.
pub const CAP_ISR: u16 = 0x64;
/// Configuration-space offset of the device configuration capability.
pub const CAP_DEVICE: u16 = 0x74;
/// Configuration-space offset of the PCI configuration access capability.
pub const CAP_PCI: u16 = 0x84;
/// Configuration-space offset of its `pci_cfg_data`.
pub const CAP_PCI_DATA: u16 = CAP_PCI + cap::PCI_CFG_DATA;
/// First configuration-space offset past the capabilities.
pub const CAP_END: u16 = CAP_PCI + cap::SIZE_EXTENDED as u16;

/// Bytes of configuration space (one ECAM function).
pub const CONFIG_SIZE: u16 = 0x1000;
/// Bytes of the header and capabilities the function defines; the rest of
/// the 4 KiB reads 0 (no extended capabilities).
pub const CONFIG_DEFINED: usize = 0x100;
