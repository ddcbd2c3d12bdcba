//! PCI configuration space through the ECAM window of a host bridge
//! (`base + (bus << 20 | dev << 15 | fn << 12 | reg)`), 32-bit accesses
//! only, and what the guests do with it: find a function by vendor and
//! device ID or the first DMA master of a bus, give the hostile guest's
//! edu its BAR 0, enable memory decoding and bus mastering; and the same
//! accesses as `virtio_pci_probe`'s [`ConfigSpace`].

use core::ptr::{read_volatile, write_volatile};
use virtio_defs::iommu;
use virtio_defs::pci::{DEVICE_ID_BASE, VENDOR_ID};
use virtio_pci_probe::{ConfigSpace, header};

/// Command register bits: memory space, bus master.
pub const CMD_MEM: u32 = 1 << 1;
/// Bus master enable.
pub const CMD_BUS_MASTER: u32 = 1 << 2;

/// One function's configuration space.
#[derive(Clone, Copy)]
pub struct Function {
    /// Its 4 KiB of ECAM.
    pub cfg: usize,
    /// Its requester ID (bus << 8 | dev << 3 | fn).
    pub rid: u32,
}

impl Function {
    /// Reads the 32-bit register at `reg` (4-byte aligned).
    pub fn read(self, reg: usize) -> u32 {
        // SAFETY: `cfg` is a function's ECAM page, passed through to us.
        unsafe { read_volatile((self.cfg + reg) as *const u32) }
    }

    /// Writes the 32-bit register at `reg` (4-byte aligned).
    pub fn write(self, reg: usize, v: u32) {
        // SAFETY: as for `read`.
        unsafe { write_volatile((self.cfg + reg) as *mut u32, v) }
    }
}

impl ConfigSpace for Function {
    fn read32(&self, offset: u16) -> u32 {
        self.read(usize::from(offset))
    }
    fn write32(&self, offset: u16, value: u32) {
        self.write(usize::from(offset), value)
    }
}

/// Function `rid` (bus << 8 | dev << 3 | fn) of the ECAM at `ecam`.
pub fn at(ecam: u64, rid: u32) -> Function {
    Function {
        cfg: (ecam + (u64::from(rid) << 12)) as usize,
        rid,
    }
}

/// The first function 0 of bus `bus` that is there, is no bridge and is no
/// virtio-iommu: the DMA master whose endpoint the bench attaches (QEMU
/// virt's NIC at 00:01.0 behind its host bridge's 00:00.0, or the first
/// function of partita's virtual bus).
pub fn first_endpoint(ecam: u64, bus: u32) -> Option<Function> {
    let viommu = u32::from(DEVICE_ID_BASE + iommu::DEVICE_ID as u16) << 16 | u32::from(VENDOR_ID);
    (0..32u32)
        .map(|dev| at(ecam, bus << 8 | dev << 3))
        .find(|f| {
            let id = f.read(usize::from(header::ID));
            let class = (f.read(usize::from(header::CLASS)) >> 24) as u8;
            id as u16 != 0xffff && id != viommu && class != header::CLASS_BRIDGE
        })
}

/// The first function 0 on bus `bus` of the ECAM at `ecam` with this vendor
/// and device ID.
pub fn find(ecam: u64, bus: u32, vendor: u16, device: u16) -> Option<Function> {
    let want = u32::from(device) << 16 | u32::from(vendor);
    (0..32u32)
        .map(|dev| Function {
            cfg: (ecam + (u64::from(bus) << 20 | u64::from(dev) << 15)) as usize,
            rid: bus << 8 | dev << 3,
        })
        .find(|f| f.read(0) == want)
}

/// Puts BAR 0 (a 32-bit memory BAR) at `addr`, then turns on memory
/// decoding and bus mastering; returns the BAR as read back.
pub fn enable(f: Function, addr: u32) -> u32 {
    f.write(0x04, 0);
    f.write(0x10, addr);
    let cmd = f.read(0x04) & 0xffff;
    f.write(0x04, cmd | CMD_MEM | CMD_BUS_MASTER);
    f.read(0x10) & !0xf
}
