//! One descriptor chain popped from a split virtqueue: the buffers the
//! driver offers, already checked to lie in guest RAM, split into the
//! device-readable part (the request) and the device-writable part (room for
//! the response), with helpers to copy bytes out of and into them.
//!
//! A chain lives on the request fast path: its buffer lists keep two
//! entries inline (a request as Linux builds it is one readable and one
//! writable buffer) and only longer chains touch the heap.

use alloc::vec::Vec;

use super::memory::{GuestMemory, MemError};

/// The default bound on how much of a chain's readable part is copied out
/// by [`Chain::read_readable`] callers that have no better limit.
pub const MAX_READ: usize = 64 * 1024;

/// Why a descriptor chain is refused. The request fails; the queue stays
/// usable (see [`QueueError::BadChain`](super::queue::QueueError::BadChain)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainError {
    /// A descriptor's `next` is not below the queue size.
    NextOutOfRange {
        /// The offending `next` value.
        next: u16,
    },
    /// More descriptors than the queue size: the chain loops.
    Loop,
    /// A descriptor has VIRTQ_DESC_F_INDIRECT, which is not offered.
    Indirect,
    /// A device-readable descriptor follows a device-writable one.
    ReadableAfterWritable,
    /// A descriptor's buffer does not lie in guest RAM.
    OutOfRam(MemError),
    /// The chain totals more than 2^32 - 1 bytes.
    TooLarge,
    /// The readable part exceeds the caller's read limit.
    ReadLimit {
        /// Bytes in the readable part.
        len: u64,
        /// The limit.
        limit: usize,
    },
    /// Guest memory refused an access while copying.
    Memory(MemError),
}

impl core::fmt::Display for ChainError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ChainError::NextOutOfRange { next } => write!(f, "next {next} out of range"),
            ChainError::Loop => f.write_str("chain longer than the queue (loop)"),
            ChainError::Indirect => f.write_str("indirect descriptor not negotiated"),
            ChainError::ReadableAfterWritable => {
                f.write_str("device-readable descriptor after a writable one")
            }
            ChainError::OutOfRam(e) => write!(f, "buffer outside RAM: {e}"),
            ChainError::TooLarge => f.write_str("chain larger than 4 GiB"),
            ChainError::ReadLimit { len, limit } => {
                write!(
                    f,
                    "readable part of {len} bytes over the {limit}-byte limit"
                )
            }
            ChainError::Memory(e) => write!(f, "guest memory: {e}"),
        }
    }
}

impl core::error::Error for ChainError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            ChainError::OutOfRam(e) | ChainError::Memory(e) => Some(e),
            _ => None,
        }
    }
}

/// The `(gpa, len)` buffers of one part of a chain, in chain order: two
/// inline, a longer list on the heap (allocated once, kept by the chain).
/// Cheaper than a `SmallVec` on the request path: clearing is two stores,
/// an inline push three; and smaller (56 bytes), since a device keeps one
/// chain per request of a batch.
#[derive(Debug, Clone, Default)]
pub struct Segments {
    len: u32,
    /// Total bytes (a part totals less than 2^32: checked by the walk).
    bytes: u32,
    /// Addresses and lengths of the first two buffers.
    gpa: [u64; 2],
    seg_len: [u32; 2],
    /// Every buffer, once there are more than two.
    heap: Vec<(u64, u32)>,
}

impl Segments {
    /// Forgets every buffer (the heap list keeps its room).
    #[inline(always)]
    pub fn clear(&mut self) {
        self.len = 0;
        self.bytes = 0;
    }

    /// The buffers of `segs`.
    pub fn from_slice(segs: &[(u64, u32)]) -> Self {
        let mut s = Self::default();
        segs.iter().for_each(|&seg| s.push(seg));
        s
    }

    /// Total bytes of the buffers.
    #[inline(always)]
    pub fn bytes(&self) -> u64 {
        u64::from(self.bytes)
    }

    /// Appends a buffer (the caller keeps the part's total below 2^32).
    #[inline(always)]
    pub fn push(&mut self, seg: (u64, u32)) {
        let i = self.len as usize;
        if let (Some(gpa), Some(len)) = (self.gpa.get_mut(i), self.seg_len.get_mut(i)) {
            *gpa = seg.0;
            *len = seg.1;
        } else {
            self.spill(seg);
        }
        self.len += 1;
        self.bytes = self.bytes.wrapping_add(seg.1);
    }

    /// Makes the list the one buffer `(gpa, len)`: what [`clear`](Self::clear)
    /// then [`push`](Self::push) give, in four stores.
    #[inline(always)]
    pub fn set_single(&mut self, gpa: u64, len: u32) {
        self.len = 1;
        self.bytes = len;
        self.gpa[0] = gpa;
        self.seg_len[0] = len;
    }

    #[cold]
    fn spill(&mut self, seg: (u64, u32)) {
        if self.len as usize == self.gpa.len() {
            self.heap.clear();
            self.heap.extend(self.gpa.into_iter().zip(self.seg_len));
        }
        self.heap.push(seg);
    }

    /// The `i`-th buffer.
    #[inline(always)]
    pub fn get(&self, i: usize) -> Option<(u64, u32)> {
        if i >= self.len as usize {
            return None;
        }
        match (self.gpa.get(i), self.seg_len.get(i)) {
            (Some(&gpa), Some(&len)) if self.len as usize <= self.gpa.len() => Some((gpa, len)),
            _ => self.heap.get(i).copied(),
        }
    }

    /// The only buffer, when there is exactly one (a request as Linux
    /// builds it).
    #[inline(always)]
    pub fn single(&self) -> Option<(u64, u32)> {
        let ([gpa, _], [len, _]) = (self.gpa, self.seg_len);
        (self.len == 1).then_some((gpa, len))
    }

    /// The first buffer, if any.
    #[inline(always)]
    pub fn first(&self) -> Option<(u64, u32)> {
        if self.len == 0 {
            return None;
        }
        // The first two stay inline even once the list spills.
        let ([gpa, _], [len, _]) = (self.gpa, self.seg_len);
        Some((gpa, len))
    }

    /// The buffers, in chain order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        (0..self.len as usize).filter_map(|i| self.get(i))
    }

    /// The buffers, copied.
    pub fn to_vec(&self) -> Vec<(u64, u32)> {
        self.iter().collect()
    }

    /// Number of buffers.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether there is no buffer.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl PartialEq for Segments {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl Eq for Segments {}

/// A validated descriptor chain. Zero-length descriptors are dropped; every
/// listed `(gpa, len)` lies in guest RAM, and each part totals less than
/// 2^32 bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    /// Index of the head descriptor: the id to return in the used ring.
    pub head: u16,
    /// Device-readable buffers, in chain order.
    pub readable: Segments,
    /// Device-writable buffers, in chain order.
    pub writable: Segments,
}

impl Chain {
    /// Total bytes of the device-readable part.
    pub fn readable_len(&self) -> u64 {
        self.readable.bytes()
    }

    /// Total bytes of the device-writable part.
    pub fn writable_len(&self) -> u64 {
        self.writable.bytes()
    }

    /// Copies the whole readable part out of guest memory, refusing a part
    /// longer than `limit` bytes (use [`MAX_READ`] when in doubt).
    pub fn read_readable<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        limit: usize,
    ) -> Result<Vec<u8>, ChainError> {
        let len = self.readable_len();
        if len > limit as u64 {
            return Err(ChainError::ReadLimit { len, limit });
        }
        let mut out = Vec::new();
        out.try_reserve_exact(len as usize)
            .map_err(|_| ChainError::ReadLimit { len, limit })?;
        out.resize(len as usize, 0);
        self.read_readable_into(mem, &mut out)?;
        Ok(out)
    }

    /// Copies the whole readable part into the start of `buf` without
    /// allocating; returns its length. A part longer than `buf` is refused
    /// ([`ChainError::ReadLimit`]) and nothing is read.
    #[inline]
    pub fn read_readable_into<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        buf: &mut [u8],
    ) -> Result<usize, ChainError> {
        let len = self.readable_len();
        let limit = buf.len();
        if len > limit as u64 {
            return Err(ChainError::ReadLimit { len, limit });
        }
        let mut at = 0usize;
        for (gpa, seg_len) in self.readable.iter() {
            // The part fits in `buf`, so each segment does.
            let end = at + seg_len as usize;
            let dst = buf
                .get_mut(at..end)
                .ok_or(ChainError::ReadLimit { len, limit })?;
            mem.read(gpa, dst).map_err(ChainError::Memory)?;
            at = end;
        }
        Ok(at)
    }

    /// Writes `data` at the start of the writable part; see
    /// [`write_writable_at`](Self::write_writable_at).
    pub fn write_writable<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        data: &[u8],
    ) -> Result<u32, MemError> {
        self.write_writable_at(mem, 0, data)
    }

    /// Writes `data` at byte `offset` of the writable part, spanning
    /// descriptors as needed. Bytes that do not fit are dropped; returns how
    /// many were written. A memory error stops the copy (buffers were
    /// checked at pop time, so only a changed memory map can cause one).
    #[inline]
    pub fn write_writable_at<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        offset: u64,
        data: &[u8],
    ) -> Result<u32, MemError> {
        // The usual case, a response within the first buffer: one write.
        if let Some((gpa, seg_len)) = self.writable.get(0)
            && let Some(end) = offset.checked_add(data.len() as u64)
            && end <= u64::from(seg_len)
        {
            mem.write(gpa.wrapping_add(offset), data)?;
            return Ok(data.len() as u32);
        }
        let mut skip = offset;
        let mut rest = data;
        let mut written = 0u32;
        for (gpa, seg_len) in self.writable.iter() {
            if rest.is_empty() {
                break;
            }
            let seg_len = u64::from(seg_len);
            if skip >= seg_len {
                skip -= seg_len;
                continue;
            }
            let room = seg_len - skip;
            let n = room.min(rest.len() as u64) as usize;
            mem.write(gpa.saturating_add(skip), &rest[..n])?;
            rest = &rest[n..];
            // n <= seg_len <= u32::MAX and the part totals < 2^32.
            written = written.saturating_add(n as u32);
            skip = 0;
        }
        Ok(written)
    }
}
