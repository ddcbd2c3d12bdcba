//! A guest's RAM as the hypervisor's emulated devices see it: guest-physical
//! addresses, bounds checked, reached through the hypervisor's identity map
//! of host RAM (on the host, in tests: real memory at its own address).

use crate::arch::{Arch, Cpu};
use crate::mm::layout::Region;
use crate::virtio::memory::{Barrier, GuestMemory, MemError, WINDOW_WORDS, words_le};

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
    /// this value (and copies of it) are used; `pa` and `ram.base` must be
    /// equal modulo 16 (both are page-aligned in practice), so that an
    /// aligned guest-physical address is an aligned host one.
    pub unsafe fn new(ram: Region, pa: u64) -> Self {
        debug_assert_eq!((pa ^ ram.base) % 16, 0);
        GuestRam { ram, pa }
    }

    /// Host address of `gpa`, which the caller knows to be RAM.
    #[inline(always)]
    fn host_of(&self, gpa: u64) -> usize {
        gpa.wrapping_sub(self.ram.base).wrapping_add(self.pa) as usize
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
    /// One subtraction and two comparisons: a `gpa` below the base wraps
    /// to an offset beyond any region (regions end at or below 2^64).
    #[inline(always)]
    fn offset(&self, gpa: u64, len: u64) -> Result<u64, MemError> {
        let off = gpa.wrapping_sub(self.ram.base);
        match self.ram.size.checked_sub(len) {
            Some(room) if off <= room => Ok(off),
            _ => Err(refused(gpa, len)),
        }
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

/// Copies `buf.len()` bytes from `src` into `buf`: a request (24 to 72
/// bytes) a doubleword at a time when both sides are 8-byte aligned,
/// anything else with `copy_nonoverlapping` (compiler_builtins' `memcpy`
/// costs about 100 instructions for 40 bytes). Three or four doublewords
/// (an UNMAP's 28 bytes, a MAP's 36: and a word) go straight, without a
/// loop.
///
/// # Safety
/// `src..src + buf.len()` must be readable.
#[inline(always)]
unsafe fn copy_in(src: *const u8, buf: &mut [u8]) {
    let n = buf.len();
    let dst = buf.as_mut_ptr();
    if n <= 128 && (src as usize | dst as usize).is_multiple_of(8) {
        let words = n / 8;
        let (s, d) = (src as *const u64, dst as *mut u64);
        // SAFETY: word `i` lies in both ranges (i < n / 8); aligned.
        let word = |i: usize| unsafe { d.add(i).write(s.add(i).read_volatile()) };
        // The common lengths first (a MAP: four, an UNMAP: three).
        if words == 4 {
            word(0);
            word(1);
            word(2);
            word(3);
        } else if words == 3 {
            word(0);
            word(1);
            word(2);
        } else {
            (0..words).for_each(word);
        }
        let mut i = words * 8;
        if n - i >= 4 {
            // SAFETY: bytes `i..i + 4 <= n` of both ranges; `i` is a
            // multiple of 8 from 8-aligned bases. (Requests are 20, 28, 36
            // or 72 bytes: a word tail, no byte loop.)
            unsafe {
                let w = (src.add(i) as *const u32).read_volatile();
                (dst.add(i) as *mut u32).write(w);
            }
            i += 4;
        }
        for i in i..n {
            // SAFETY: byte `i < n` of both ranges.
            unsafe { dst.add(i).write(src.add(i).read_volatile()) };
        }
    } else {
        // SAFETY: the caller's contract; `buf` is ours.
        unsafe { core::ptr::copy_nonoverlapping(src, dst, n) };
    }
}

/// [`GuestMemory::read_window_direct`] of a window not 8-aligned (a
/// driver's requests are; out of line): a byte copy, then the words.
///
/// # Safety
/// As `read_window_direct`.
#[cold]
#[inline(never)]
unsafe fn read_window_unaligned(addr: u64) -> [u64; WINDOW_WORDS] {
    let mut bytes = [0u8; 8 * WINDOW_WORDS];
    // SAFETY: the caller's contract: the 40 bytes are RAM `new`'s contract
    // maps; `bytes` is ours.
    unsafe { copy_in(addr as *const u8, &mut bytes) };
    words_le(&bytes)
}

/// The error of a refused range (out of line: the accepted path is the
/// hot one).
#[cold]
#[inline(never)]
fn refused(gpa: u64, len: u64) -> MemError {
    if gpa.checked_add(len).is_none() {
        MemError::Wraps { gpa, len }
    } else {
        MemError::OutOfRange { gpa, len }
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
    #[inline]
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        match buf.len() {
            2 => buf.copy_from_slice(&self.read_u16(gpa)?.to_le_bytes()),
            4 => buf.copy_from_slice(&self.read_u32(gpa)?.to_le_bytes()),
            8 => buf.copy_from_slice(&self.read_u64(gpa)?.to_le_bytes()),
            n => {
                let src = self.host(gpa, n)? as *const u8;
                // SAFETY: the whole range lies in the guest's RAM (checked
                // by `host`), which `new`'s contract maps; `buf` is ours.
                unsafe { copy_in(src, buf) };
            }
        }
        Ok(())
    }
    #[inline]
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
    fn read_u64(&self, gpa: u64) -> Result<u64, MemError> {
        let src = self.host(gpa, 8)?;
        let v = if src.is_multiple_of(8) {
            // SAFETY: in the guest's RAM (checked by `host`), which `new`'s
            // contract maps; aligned. One load: read once.
            unsafe { (src as *const u64).read_volatile() }
        } else if src.is_multiple_of(4) {
            // SAFETY: as above, two aligned halves.
            unsafe {
                let p = src as *const u32;
                u64::from(p.read_volatile()) | (u64::from(p.add(1).read_volatile()) << 32)
            }
        } else {
            // SAFETY: as above, without the alignment.
            unsafe { (src as *const u64).read_unaligned() }
        };
        Ok(u64::from_le(v))
    }
    #[inline(always)]
    fn read_u64_pair(&self, gpa: u64) -> Result<(u64, u64), MemError> {
        // One range check for both (a descriptor: 16-byte aligned in a
        // table checked at queue enable, so both loads are aligned).
        let src = self.host(gpa, 16)?;
        let (a, b) = if src.is_multiple_of(8) {
            // SAFETY: both words lie in the guest's RAM (checked by
            // `host`), which `new`'s contract maps; aligned. One load each.
            unsafe {
                let p = src as *const u64;
                (p.read_volatile(), p.add(1).read_volatile())
            }
        } else {
            // SAFETY: as above, without the alignment.
            unsafe {
                let p = src as *const u64;
                (p.read_unaligned(), p.add(1).read_unaligned())
            }
        };
        Ok((u64::from_le(a), u64::from_le(b)))
    }
    fn write_u64(&self, gpa: u64, value: u64) -> Result<(), MemError> {
        let dst = self.host(gpa, 8)?;
        let v = value.to_le();
        if dst.is_multiple_of(8) {
            // SAFETY: as in `read_u64`.
            unsafe { (dst as *mut u64).write_volatile(v) };
        } else if dst.is_multiple_of(4) {
            // SAFETY: as in `read_u64` (a used-ring element sits at 4 mod 8).
            unsafe {
                let p = dst as *mut u32;
                p.write_volatile(v as u32);
                p.add(1).write_volatile((v >> 32) as u32);
            }
        } else {
            // SAFETY: as in `read_u64`.
            unsafe { (dst as *mut u64).write_unaligned(v) };
        }
        Ok(())
    }
    #[inline(always)]
    fn read_request(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let src = self.host(gpa, buf.len())? as *const u8;
        // SAFETY: the whole range lies in the guest's RAM (checked by
        // `host`), which `new`'s contract maps; `buf` is ours.
        unsafe { copy_in(src, buf) };
        Ok(())
    }
    #[inline(always)]
    fn direct(&self, gpa: u64) -> u64 {
        self.host_of(gpa) as u64
    }
    #[inline(always)]
    unsafe fn read_u16_direct(&self, addr: u64) -> u16 {
        // SAFETY: the caller's contract: the two bytes are RAM (a host
        // address `direct` gave inside a checked range), which `new`'s
        // contract maps, 2-aligned (a 2-aligned guest address is, by
        // `new`'s contract). One volatile load: read once.
        u16::from_le(unsafe { (addr as *const u16).read_volatile() })
    }
    #[inline(always)]
    unsafe fn read_u64_pair_direct(&self, addr: u64) -> (u64, u64) {
        let p = addr as *const u64;
        // SAFETY: as in `read_u16_direct`, for 16 bytes, 16-aligned.
        let (a, b) = unsafe { (p.read_volatile(), p.add(1).read_volatile()) };
        (u64::from_le(a), u64::from_le(b))
    }
    #[inline(always)]
    unsafe fn read_direct(&self, addr: u64, buf: &mut [u8]) {
        // SAFETY: as in `read_u16_direct`, for `buf.len()` bytes; `buf`
        // is ours.
        unsafe { copy_in(addr as *const u8, buf) };
    }
    #[inline(always)]
    unsafe fn read_window_direct(&self, addr: u64) -> [u64; WINDOW_WORDS] {
        let p = addr as *const u64;
        if !p.is_aligned() {
            // SAFETY: the caller's contract, passed on.
            return unsafe { read_window_unaligned(addr) };
        }
        // SAFETY: as in `read_u16_direct`, for 40 bytes, 8-aligned. One
        // volatile load each: read once, straight into registers.
        let w = unsafe {
            [
                p.read_volatile(),
                p.add(1).read_volatile(),
                p.add(2).read_volatile(),
                p.add(3).read_volatile(),
                p.add(4).read_volatile(),
            ]
        };
        w.map(u64::from_le)
    }
    #[inline(always)]
    unsafe fn write_u16_direct(&self, addr: u64, value: u16) {
        // SAFETY: as in `read_u16_direct`.
        unsafe { (addr as *mut u16).write_volatile(value.to_le()) };
    }
    #[inline(always)]
    unsafe fn write_u32_direct(&self, addr: u64, value: u32) {
        let p = addr as *mut u32;
        // SAFETY: as in `read_u16_direct`, for 4 bytes; aligned or not.
        unsafe {
            if p.is_aligned() {
                p.write_volatile(value.to_le());
            } else {
                p.write_unaligned(value.to_le());
            }
        }
    }
    #[inline(always)]
    unsafe fn write_u32_pair_direct(&self, addr: u64, lo: u32, hi: u32) {
        let p = addr as *mut u32;
        // SAFETY: as in `read_u16_direct`, for 8 bytes, 4-aligned.
        unsafe {
            p.write_volatile(lo.to_le());
            p.add(1).write_volatile(hi.to_le());
        }
    }
    aligned_access!(read_u16, write_u16, u16);
    aligned_access!(read_u32, write_u32, u32);
    fn barrier(&self, kind: Barrier) {
        match kind {
            Barrier::Acquire => Cpu::dmb_ishld(),
            _ => Cpu::dmb_ish(),
        }
    }
}
