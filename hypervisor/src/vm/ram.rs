//! A guest's RAM as the hypervisor's emulated devices see it: guest-physical
//! addresses, bounds checked, reached through the hypervisor's identity map
//! of host RAM (on the host, in tests: real memory at its own address).

use crate::arch::{Arch, Cpu};
use crate::mm::layout::Region;
use crate::virtio::memory::{Barrier, GuestMemory, MemError};

/// One guest's RAM: guest-physical `ram`, at host-physical `pa`.
#[derive(Debug, Clone, Copy)]
pub struct GuestRam {
    ram: Region,
    pa: u64,
}

impl GuestRam {
    /// The RAM `ram` (guest-physical) stored at host-physical `pa`.
    ///
    /// # Safety
    /// `[pa, pa + ram.size)` must be memory the hypervisor owns for this
    /// guest and maps (identity) for reading and writing, for as long as
    /// this value (and copies of it) are used.
    pub unsafe fn new(ram: Region, pa: u64) -> Self {
        GuestRam { ram, pa }
    }

    /// The guest-physical region.
    pub fn region(&self) -> Region {
        self.ram
    }

    /// Host-physical address of guest-physical `ipa`, if it is RAM.
    pub fn to_pa(&self, ipa: u64) -> Option<u64> {
        self.ram
            .contains(ipa)
            .then(|| ipa - self.ram.base + self.pa)
    }

    /// Host address of `gpa..gpa+len`, which must lie wholly in the
    /// guest's RAM: one overflow-safe comparison against the region.
    #[inline(always)]
    fn host(&self, gpa: u64, len: usize) -> Result<usize, MemError> {
        let off = self.offset(gpa, len as u64)?;
        Ok((self.pa + off) as usize)
    }

    /// Offset of `gpa..gpa+len` in the guest's RAM region, if it lies
    /// wholly inside (a zero-length range may sit at the region's end).
    #[inline(always)]
    fn offset(&self, gpa: u64, len: u64) -> Result<u64, MemError> {
        let ram = &self.ram;
        let off = gpa.wrapping_sub(ram.base);
        if gpa < ram.base || off > ram.size || len > ram.size - off {
            return Err(if gpa.checked_add(len).is_none() {
                MemError::Wraps { gpa, len }
            } else {
                MemError::OutOfRange { gpa, len }
            });
        }
        Ok(off)
    }

    /// Zeroes the whole RAM and makes the zeros visible to a guest that
    /// starts with its MMU and caches off: nothing the memory held before
    /// (firmware, boot loader, an earlier user) reaches the guest.
    pub fn clear(&self) {
        // SAFETY: the whole region is ours to write (`new`'s contract).
        unsafe { core::ptr::write_bytes(self.pa as *mut u8, 0, self.ram.size as usize) };
        Cpu::clean_to_poc(self.pa, self.ram.size as usize);
    }

    /// Copies `bytes` to guest-physical `gpa` and makes them visible to a
    /// guest that starts with its MMU and caches off.
    pub fn load(&self, gpa: u64, bytes: &[u8]) -> Result<(), MemError> {
        let dst = self.host(gpa, bytes.len())?;
        // SAFETY: the range lies in the guest's RAM (checked by `host`),
        // which `new`'s contract makes ours to write.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), dst as *mut u8, bytes.len()) };
        Cpu::publish_guest_image(dst as u64, bytes.len());
        Ok(())
    }
}

/// A little-endian integer of guest RAM read or written in one access when
/// its host address is naturally aligned. The image is built for strict
/// alignment (early boot runs with the MMU off), so an unaligned access
/// would be split into bytes; the ring fields and descriptors the split
/// queue reads are aligned by the layout checked at queue enable.
macro_rules! aligned_access {
    ($read:ident, $write:ident, $t:ty) => {
        fn $read(&self, gpa: u64) -> Result<$t, MemError> {
            let src = self.host(gpa, size_of::<$t>())?;
            let v = if src.is_multiple_of(align_of::<$t>()) {
                // SAFETY: in the guest's RAM (checked by `host`), which
                // `new`'s contract maps; aligned. One volatile load: the
                // guest may change it, we read it once.
                unsafe { (src as *const $t).read_volatile() }
            } else {
                // SAFETY: as above, without the alignment.
                unsafe { (src as *const $t).read_unaligned() }
            };
            Ok(<$t>::from_le(v))
        }
        fn $write(&self, gpa: u64, value: $t) -> Result<(), MemError> {
            let dst = self.host(gpa, size_of::<$t>())?;
            let v = value.to_le();
            if dst.is_multiple_of(align_of::<$t>()) {
                // SAFETY: as in the read.
                unsafe { (dst as *mut $t).write_volatile(v) };
            } else {
                // SAFETY: as in the read.
                unsafe { (dst as *mut $t).write_unaligned(v) };
            }
            Ok(())
        }
    };
}

impl GuestMemory for GuestRam {
    fn check(&self, gpa: u64, len: u64) -> Result<(), MemError> {
        self.offset(gpa, len).map(|_| ())
    }
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        match buf.len() {
            2 => buf.copy_from_slice(&self.read_u16(gpa)?.to_le_bytes()),
            4 => buf.copy_from_slice(&self.read_u32(gpa)?.to_le_bytes()),
            8 => buf.copy_from_slice(&self.read_u64(gpa)?.to_le_bytes()),
            n => {
                let src = self.host(gpa, n)? as *const u8;
                // SAFETY: the whole range lies in the guest's RAM (checked
                // by `host`), which `new`'s contract maps.
                unsafe { core::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), n) };
            }
        }
        Ok(())
    }
    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        match *data {
            [a, b] => self.write_u16(gpa, u16::from_le_bytes([a, b])),
            [a, b, c, d] => self.write_u32(gpa, u32::from_le_bytes([a, b, c, d])),
            _ => {
                let dst = self.host(gpa, data.len())? as *mut u8;
                // SAFETY: as in `read`.
                unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
                Ok(())
            }
        }
    }
    aligned_access!(read_u16, write_u16, u16);
    aligned_access!(read_u32, write_u32, u32);
    aligned_access!(read_u64, write_u64, u64);
    fn barrier(&self, kind: Barrier) {
        match kind {
            Barrier::Acquire => Cpu::dmb_ishld(),
            _ => Cpu::dmb_ish(),
        }
    }
}
