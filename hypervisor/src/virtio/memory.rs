//! Guest memory as a virtio device sees it: byte reads and writes at
//! guest-physical addresses, each checked to lie wholly inside the guest's
//! RAM (no wrap-around past 2^64), plus the memory barriers a device needs
//! when it shares rings with a driver running on other CPUs.
//!
//! Everything read through [`GuestMemory`] is guest-controlled: callers copy
//! what they need once and validate the copy (no double fetch).

use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

/// Why a guest-memory access was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemError {
    /// `gpa + len` wraps past the top of the address space.
    Wraps {
        /// First byte.
        gpa: u64,
        /// Length in bytes.
        len: u64,
    },
    /// Some byte of the range lies outside the guest's RAM.
    OutOfRange {
        /// First byte.
        gpa: u64,
        /// Length in bytes.
        len: u64,
    },
}

impl core::fmt::Display for MemError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MemError::Wraps { gpa, len } => write!(f, "range {gpa:#x}+{len:#x} wraps"),
            MemError::OutOfRange { gpa, len } => {
                write!(f, "range {gpa:#x}+{len:#x} outside guest RAM")
            }
        }
    }
}

impl core::error::Error for MemError {}

/// Doublewords [`GuestMemory::read_window_direct`] reads: the longest of
/// the requests a device reads that way (a virtio-iommu MAP's 36 bytes)
/// rounded up to whole doublewords.
pub const WINDOW_WORDS: usize = 5;

/// `bytes` as little-endian doublewords.
#[inline(always)]
pub fn words_le(bytes: &[u8; 8 * WINDOW_WORDS]) -> [u64; WINDOW_WORDS] {
    let mut words = [0u64; WINDOW_WORDS];
    for (w, c) in words.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        *w = u64::from_le_bytes(b);
    }
    words
}

/// The ordering points of the split-virtqueue protocol.
///
/// The driver runs on other CPUs and orders its own accesses with SMP
/// barriers; the device must do its part. On the EL2 target the
/// [`GuestMemory`] implementation issues the instruction (suggested in each
/// variant); host fakes do nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Barrier {
    /// After reading `avail.idx`, before reading the ring entries and
    /// descriptors it publishes (`dmb ishld`).
    Acquire,
    /// After writing buffer contents and a used element, before writing
    /// `used.idx` that publishes them (`dmb ish`).
    Release,
    /// After writing `used.idx`, before reading `avail.flags` to decide on
    /// a notification (`dmb ish`).
    Full,
}

/// A guest's RAM, addressed by guest-physical address.
///
/// Implementations must refuse (without touching memory) any range that is
/// not wholly inside one RAM region of the guest, and any range whose end
/// wraps past 2^64. A zero-length range is accepted if `gpa` itself is a
/// byte of RAM or the end of a region.
pub trait GuestMemory {
    /// Checks that `gpa..gpa+len` lies inside guest RAM, touching nothing.
    fn check(&self, gpa: u64, len: u64) -> Result<(), MemError>;

    /// Copies `buf.len()` bytes from guest memory at `gpa` into `buf`.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError>;

    /// Copies `data` into guest memory at `gpa`.
    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemError>;

    /// Orders this CPU's guest-memory accesses (see [`Barrier`]).
    /// The default does nothing, which is right for host fakes only.
    fn barrier(&self, _kind: Barrier) {}

    /// Reads a little-endian `u16`.
    fn read_u16(&self, gpa: u64) -> Result<u16, MemError> {
        let mut b = [0; 2];
        self.read(gpa, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// Reads a little-endian `u32`.
    fn read_u32(&self, gpa: u64) -> Result<u32, MemError> {
        let mut b = [0; 4];
        self.read(gpa, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Reads a little-endian `u64`.
    fn read_u64(&self, gpa: u64) -> Result<u64, MemError> {
        let mut b = [0; 8];
        self.read(gpa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Reads two little-endian `u64`s, at `gpa` then `gpa + 8` (a
    /// descriptor), each read once.
    fn read_u64_pair(&self, gpa: u64) -> Result<(u64, u64), MemError> {
        Ok((self.read_u64(gpa)?, self.read_u64(gpa.wrapping_add(8))?))
    }

    /// [`read`](Self::read) of a request (a few dozen bytes, into an
    /// 8-aligned buffer), for the request path: an implementation may
    /// inline it whole. The default is `read`.
    #[inline(always)]
    fn read_request(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        self.read(gpa, buf)
    }

    /// The address the `*_direct` accessors take for guest-physical
    /// `gpa`, computed once for a range [`check`](Self::check) accepted
    /// (a ring area, a buffer) so that each later access into it is its
    /// base plus an offset: the hypervisor's guest RAM gives the host
    /// address (one load or store per access, nothing of `self` read
    /// again); the default, for memories without one, is `gpa` itself and
    /// the accessors check as usual.
    ///
    /// Over a range `check` accepted it must be affine:
    /// `direct(gpa + k) == direct(gpa) + k` for each byte `gpa + k` of it.
    /// An implementation overrides this and every `*_direct` accessor, or
    /// none of them.
    #[inline(always)]
    fn direct(&self, gpa: u64) -> u64 {
        gpa
    }

    /// Reads the little-endian `u16` at direct address `addr`
    /// ([`direct`](Self::direct)) without checking it again where the
    /// memory can (the hypervisor's guest RAM). The default checks anyway.
    ///
    /// # Safety
    /// `addr` must be `direct(gpa) + k` for a range `gpa..gpa + len` that
    /// [`check`](Self::check) accepted (and the memory's RAM has not
    /// changed since), with `k + 2 <= len`; `gpa + k` must be a multiple
    /// of 2.
    #[inline(always)]
    unsafe fn read_u16_direct(&self, addr: u64) -> u16 {
        self.read_u16(addr).unwrap_or(0)
    }

    /// [`read_u64_pair`](Self::read_u64_pair) (a descriptor) at a direct
    /// address, as [`read_u16_direct`](Self::read_u16_direct).
    ///
    /// # Safety
    /// As `read_u16_direct`, for 16 bytes at a multiple of 16.
    #[inline(always)]
    unsafe fn read_u64_pair_direct(&self, addr: u64) -> (u64, u64) {
        self.read_u64_pair(addr).unwrap_or((0, 0))
    }

    /// [`read`](Self::read) at a direct address (a request, into an
    /// 8-aligned buffer: an implementation may inline it whole), as
    /// [`read_u16_direct`](Self::read_u16_direct); any alignment.
    ///
    /// # Safety
    /// As `read_u16_direct`, for `buf.len()` bytes, without the alignment.
    #[inline(always)]
    unsafe fn read_direct(&self, addr: u64, buf: &mut [u8]) {
        if self.read(addr, buf).is_err() {
            buf.fill(0);
        }
    }

    /// The [`WINDOW_WORDS`] little-endian doublewords at a direct address
    /// (the first bytes of a request, read straight into registers rather
    /// than copied into a buffer and loaded again), each read once, as
    /// [`read_u16_direct`](Self::read_u16_direct); any alignment. The
    /// default reads them with [`read_direct`](Self::read_direct).
    ///
    /// # Safety
    /// As `read_u16_direct`, for `8 * WINDOW_WORDS` bytes, without the
    /// alignment.
    #[inline(always)]
    unsafe fn read_window_direct(&self, addr: u64) -> [u64; WINDOW_WORDS] {
        let mut bytes = [0u8; 8 * WINDOW_WORDS];
        // SAFETY: the caller's contract, passed on.
        unsafe { self.read_direct(addr, &mut bytes) };
        words_le(&bytes)
    }

    /// Writes a little-endian `u16` at a direct address, as
    /// [`read_u16_direct`](Self::read_u16_direct).
    ///
    /// # Safety
    /// As `read_u16_direct`.
    #[inline(always)]
    unsafe fn write_u16_direct(&self, addr: u64, value: u16) {
        let _ = self.write_u16(addr, value);
    }

    /// Writes a little-endian `u32` (a status tail) at a direct address, as
    /// [`read_u16_direct`](Self::read_u16_direct); any alignment.
    ///
    /// # Safety
    /// As `read_u16_direct`, for 4 bytes, without the alignment.
    #[inline(always)]
    unsafe fn write_u32_direct(&self, addr: u64, value: u32) {
        let _ = self.write_u32(addr, value);
    }

    /// Writes `lo` then `hi` as one little-endian 64-bit value (a used
    /// element: `id`, `len`) at a direct address, as
    /// [`read_u16_direct`](Self::read_u16_direct).
    ///
    /// # Safety
    /// As `read_u16_direct`, for 8 bytes at a multiple of 4.
    #[inline(always)]
    unsafe fn write_u32_pair_direct(&self, addr: u64, lo: u32, hi: u32) {
        let _ = self.write_u64(addr, u64::from(lo) | (u64::from(hi) << 32));
    }

    /// Writes a little-endian `u16`.
    fn write_u16(&self, gpa: u64, value: u16) -> Result<(), MemError> {
        self.write(gpa, &value.to_le_bytes())
    }

    /// Writes a little-endian `u32`.
    fn write_u32(&self, gpa: u64, value: u32) -> Result<(), MemError> {
        self.write(gpa, &value.to_le_bytes())
    }

    /// Writes a little-endian `u64`.
    fn write_u64(&self, gpa: u64, value: u64) -> Result<(), MemError> {
        self.write(gpa, &value.to_le_bytes())
    }
}

/// Checks `gpa..gpa+len` against one region `base..base+size`; the shared
/// arithmetic of [`GuestMemory::check`] implementations.
pub fn check_in_region(base: u64, size: u64, gpa: u64, len: u64) -> Result<(), MemError> {
    let end = gpa.checked_add(len).ok_or(MemError::Wraps { gpa, len })?;
    let region_end = base.saturating_add(size);
    if gpa < base || end > region_end {
        return Err(MemError::OutOfRange { gpa, len });
    }
    Ok(())
}

/// One guest RAM region backed by a `Vec<u8>`: a fake for host tests, which
/// also logs every write attempt (accepted or not) so that tests can prove
/// no write went astray.
#[derive(Debug)]
pub struct VecMemory {
    base: u64,
    bytes: RefCell<Vec<u8>>,
    writes: RefCell<Vec<(u64, u64)>>,
    refused_writes: RefCell<usize>,
}

impl VecMemory {
    /// `size` zeroed bytes of RAM at guest-physical `base`.
    pub fn new(base: u64, size: usize) -> Self {
        Self {
            base,
            bytes: RefCell::new(vec![0; size]),
            writes: RefCell::new(Vec::new()),
            refused_writes: RefCell::new(0),
        }
    }

    /// Guest-physical address of the first byte.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.bytes.borrow().len() as u64
    }

    /// Every accepted write so far, as `(gpa, len)`.
    pub fn write_log(&self) -> Vec<(u64, u64)> {
        self.writes.borrow().clone()
    }

    /// Forgets the write log and the refused-write count.
    pub fn clear_log(&self) {
        self.writes.borrow_mut().clear();
        *self.refused_writes.borrow_mut() = 0;
    }

    /// How many writes were refused as outside RAM.
    pub fn refused_writes(&self) -> usize {
        *self.refused_writes.borrow()
    }

    /// Offset into the vector of a checked range.
    fn offset(&self, gpa: u64, len: usize) -> Result<usize, MemError> {
        self.check(gpa, len as u64)?;
        usize::try_from(gpa - self.base).map_err(|_| MemError::OutOfRange {
            gpa,
            len: len as u64,
        })
    }
}

impl GuestMemory for VecMemory {
    fn check(&self, gpa: u64, len: u64) -> Result<(), MemError> {
        check_in_region(self.base, self.size(), gpa, len)
    }

    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let off = self.offset(gpa, buf.len())?;
        let bytes = self.bytes.borrow();
        let src = bytes
            .get(off..off + buf.len())
            .ok_or(MemError::OutOfRange {
                gpa,
                len: buf.len() as u64,
            })?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        let off = match self.offset(gpa, data.len()) {
            Ok(off) => off,
            Err(e) => {
                *self.refused_writes.borrow_mut() += 1;
                return Err(e);
            }
        };
        let mut bytes = self.bytes.borrow_mut();
        let dst = bytes
            .get_mut(off..off + data.len())
            .ok_or(MemError::OutOfRange {
                gpa,
                len: data.len() as u64,
            })?;
        dst.copy_from_slice(data);
        self.writes.borrow_mut().push((gpa, data.len() as u64));
        Ok(())
    }
}
