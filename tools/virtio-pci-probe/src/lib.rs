//! The driver side of finding a modern virtio-pci function (virtio 1.2,
//! 4.1): where its common configuration, notification, ISR and device
//! configuration structures are, as CPU addresses a driver can load and
//! store.
//!
//! [`probe`] checks the function's identity, walks its vendor-specific
//! capabilities ([`caps`]), sizes the BARs they name ([`bars`]) and keeps
//! a BAR that already sits inside one of the host bridge's memory windows
//! (placed by the hypervisor or by firmware) or places it there itself
//! (QEMU `virt` without firmware leaves every BAR at 0), then turns on
//! memory decoding and bus mastering (without bus mastering partita
//! ignores notifications; QEMU's device cannot reach the rings).
//!
//! Everything goes through [`ConfigSpace`], 32-bit aligned accesses of
//! the function's configuration space, so the logic is tested on the
//! host against a fake function; the bare-metal bench guest
//! (tools/bench-guest) implements it over ECAM. The numbers come from
//! `virtio-defs` (`virtio_defs::pci`); the PCI header's own are in
//! [`header`].
#![no_std]

pub mod bars;
pub mod caps;

use core::fmt;
use virtio_defs::pci::{DEVICE_ID_BASE, VENDOR_ID};

pub use bars::{BarError, Window};
pub use caps::{CapError, Region, VirtioCaps};

/// A function's configuration space: aligned 32-bit accesses at byte
/// offsets 0 to 0xffc.
pub trait ConfigSpace {
    /// The register at `offset` (a multiple of 4).
    fn read32(&self, offset: u16) -> u32;
    /// Writes the register at `offset` (a multiple of 4).
    fn write32(&self, offset: u16, value: u32);

    /// The byte at `offset`, from its aligned register.
    fn read8(&self, offset: u16) -> u8 {
        (self.read32(offset & !3) >> (8 * (offset & 3))) as u8
    }
}

/// Offsets and bits of the type 0 configuration header (PCI Local Bus 3.0,
/// 6.1) that the probe uses.
pub mod header {
    /// Vendor ID (low 16 bits) and device ID (high 16 bits).
    pub const ID: u16 = 0x00;
    /// Command (low 16 bits) and status (high 16 bits).
    pub const COMMAND: u16 = 0x04;
    /// Revision (low byte) and class code (high 24 bits).
    pub const CLASS: u16 = 0x08;
    /// Header type (bits 23:16 of this register).
    pub const HEADER: u16 = 0x0c;
    /// BAR 0; BAR n is at `BAR0 + 4 n`.
    pub const BAR0: u16 = 0x10;
    /// Capabilities pointer (low byte, bits 1:0 reserved).
    pub const CAP_PTR: u16 = 0x34;
    /// Command: memory space decoding.
    pub const CMD_MEMORY: u32 = 1 << 1;
    /// Command: bus master.
    pub const CMD_BUS_MASTER: u32 = 1 << 2;
    /// Status (bits 31:16 of [`COMMAND`]): capabilities list present.
    pub const STATUS_CAP_LIST: u32 = 1 << 4;
    /// Base class of bridges (class code bits 23:16).
    pub const CLASS_BRIDGE: u8 = 0x06;
}

/// A modern virtio-pci function's structures, as CPU addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The virtio device type (device ID - 0x1040; 23 for the IOMMU).
    pub device_type: u16,
    /// `struct virtio_pci_common_cfg`.
    pub common: u64,
    /// The notification region: queue `q` is notified at `notify +
    /// queue_notify_off(q) * notify_off_multiplier`.
    pub notify: u64,
    /// Bytes of the notification region.
    pub notify_len: u32,
    /// The notification capability's multiplier.
    pub notify_off_multiplier: u32,
    /// The ISR status byte.
    pub isr: u64,
    /// The device-specific configuration, with its length, if the
    /// function has one.
    pub device: Option<(u64, u32)>,
    /// BARs (bit n: BAR n) this probe placed: they were outside every
    /// window.
    pub placed: u8,
}

impl Layout {
    /// The notification address of a queue whose `queue_notify_off` reads
    /// `off`, if a 16-bit write there stays inside the region (the check
    /// Linux's `vp_modern_map_vq_notify` makes).
    pub fn notify_addr(&self, off: u16) -> Option<u64> {
        let at = u64::from(off) * u64::from(self.notify_off_multiplier);
        (at + 2 <= u64::from(self.notify_len)).then_some(self.notify + at)
    }
}

/// Why [`probe`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeError {
    /// The vendor ID is not virtio's (0x1af4); the ID register's value.
    NotVirtio(u32),
    /// A transitional or legacy device ID (below 0x1040).
    NotModern(u16),
    /// The capabilities do not describe the structures.
    Caps(CapError),
    /// A BAR the capabilities name.
    Bar(BarError),
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotVirtio(id) => write!(f, "ID register {id:#010x} is not a virtio function"),
            Self::NotModern(d) => write!(f, "device ID {d:#06x} is not a modern virtio-pci one"),
            Self::Caps(e) => write!(f, "capabilities: {e}"),
            Self::Bar(e) => write!(f, "BAR: {e}"),
        }
    }
}

impl core::error::Error for ProbeError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Caps(e) => Some(e),
            Self::Bar(e) => Some(e),
            _ => None,
        }
    }
}

/// Finds the structures of the modern virtio-pci function `cfg` (see the
/// module documentation); BARs outside `windows` are placed in them.
/// Leaves memory decoding and bus mastering on.
pub fn probe(cfg: &impl ConfigSpace, windows: &[Window]) -> Result<Layout, ProbeError> {
    let id = cfg.read32(header::ID);
    if id as u16 != VENDOR_ID {
        return Err(ProbeError::NotVirtio(id));
    }
    let device = (id >> 16) as u16;
    if device < DEVICE_ID_BASE {
        return Err(ProbeError::NotModern(device));
    }
    let caps = caps::find(cfg).map_err(ProbeError::Caps)?;
    let mut placer = bars::Placer::new(windows);
    // BAR n's CPU base and size once known.
    let mut known: [Option<(u64, u64)>; 6] = [None; 6];
    let mut placed = 0u8;
    let mut cpu = |r: Region| -> Result<u64, ProbeError> {
        let i = usize::from(r.bar);
        let (at, size) = match known[i] {
            Some(k) => k,
            None => {
                let bar = bars::probe(cfg, r.bar).map_err(ProbeError::Bar)?;
                let at = match bars::cpu_addr(windows, bar.addr, bar.size) {
                    Some(at) => at,
                    None => {
                        let (pci, at) = placer.place(&bar).map_err(ProbeError::Bar)?;
                        bars::program(cfg, &bar, pci);
                        placed |= 1 << r.bar;
                        at
                    }
                };
                known[i] = Some((at, bar.size));
                (at, bar.size)
            }
        };
        let end = u64::from(r.offset) + u64::from(r.length);
        if end > size {
            return Err(ProbeError::Bar(BarError::RegionOutside {
                index: r.bar,
                end,
                size,
            }));
        }
        Ok(at + u64::from(r.offset))
    };
    let common = cpu(caps.common)?;
    let notify = cpu(caps.notify)?;
    let isr = cpu(caps.isr)?;
    let device_cfg = match caps.device {
        Some(r) => Some((cpu(r)?, r.length)),
        None => None,
    };
    bars::enable(cfg);
    Ok(Layout {
        device_type: device - DEVICE_ID_BASE,
        common,
        notify,
        notify_len: caps.notify.length,
        notify_off_multiplier: caps.notify_off_multiplier,
        isr,
        device: device_cfg,
        placed,
    })
}

#[cfg(test)]
mod tests;
