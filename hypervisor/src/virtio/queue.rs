//! A split virtqueue living in guest memory (virtio 1.2, 2.7): the
//! descriptor table, the driver ("available") ring and the device ("used")
//! ring, all at guest-physical addresses the driver chose.
//!
//! Every byte of the rings is guest-controlled and may change at any time:
//! each field is read once into a local copy and validated there. The
//! layout (size, alignment, rings inside RAM) is checked once when the queue
//! is enabled; each descriptor's buffer is checked when its chain is popped.
//!
//! Error policy, chosen here and applied by
//! [`QueueContext`](super::device::QueueContext):
//! - a malformed chain whose head is a valid index ([`QueueError::BadChain`])
//!   fails that request only: the chain is consumed and returned in the used
//!   ring with length 0 (Linux's virtio-iommu driver reads a zero length as
//!   an I/O error), and the queue goes on;
//! - anything that leaves the device unable to name the request or trust the
//!   ring indices (avail idx moved by more than the queue size, a head index
//!   out of range, a ring unreadable) is fatal: the device sets
//!   DEVICE_NEEDS_RESET and processes nothing more until reset.
//!
//! Memory ordering: the driver runs on other CPUs. This module asks the
//! [`GuestMemory`] for a [`Barrier`] at each ordering point of the protocol
//! (after reading `avail.idx`, before publishing `used.idx`, before reading
//! `avail.flags`); on the EL2 target that is a `dmb`, so this module stays
//! free of architecture code.
//!
//! Neither VIRTIO_F_INDIRECT_DESC, VIRTIO_F_EVENT_IDX nor
//! VIRTIO_F_RING_PACKED is offered: an indirect descriptor is an error, and
//! notifications follow `VIRTQ_AVAIL_F_NO_INTERRUPT` only.
//!
//! The ring's flags, element sizes and alignments are
//! [`virtio_defs::ring`]'s (the flags re-exported here).

use super::chain::{Chain, ChainError};
use super::memory::{Barrier, GuestMemory, MemError};

use virtio_defs::ring::{
    AVAIL_ALIGN, AVAIL_ELEM_LEN, DESC_ALIGN, DESC_LEN, RING_HEAD_LEN, USED_ALIGN, USED_ELEM_LEN,
};
pub use virtio_defs::ring::{
    MAX_QUEUE_SIZE, VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT,
    VIRTQ_DESC_F_WRITE,
};

/// The three areas of a split virtqueue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// The descriptor table (alignment 16).
    Descriptors,
    /// The driver area, or available ring (alignment 2).
    Driver,
    /// The device area, or used ring (alignment 4).
    Device,
}

impl Area {
    /// Alignment the split ring requires of this area.
    pub fn alignment(self) -> u64 {
        match self {
            Area::Descriptors => DESC_ALIGN,
            Area::Driver => AVAIL_ALIGN,
            Area::Device => USED_ALIGN,
        }
    }

    /// Bytes of this area the device accesses for a queue of `size`
    /// entries (`used_event`/`avail_event` excluded: EVENT_IDX is not
    /// offered).
    pub fn bytes(self, size: u16) -> u64 {
        let n = u64::from(size);
        match self {
            Area::Descriptors => DESC_LEN * n,
            Area::Driver => RING_HEAD_LEN + AVAIL_ELEM_LEN * n,
            Area::Device => RING_HEAD_LEN + USED_ELEM_LEN * n,
        }
    }
}

impl core::fmt::Display for Area {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Area::Descriptors => "descriptor table",
            Area::Driver => "driver area",
            Area::Device => "device area",
        })
    }
}

/// Why a queue cannot be enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutError {
    /// The size is zero, not a power of two, or above the maximum.
    BadSize {
        /// Size the driver wrote.
        size: u32,
        /// The device's maximum.
        max: u16,
    },
    /// An area is not aligned as the split ring requires.
    Misaligned(Area, u64),
    /// An area does not lie in guest RAM.
    OutOfRam(Area, MemError),
}

impl core::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LayoutError::BadSize { size, max } => {
                write!(f, "queue size {size} is not a power of two from 1 to {max}")
            }
            LayoutError::Misaligned(area, addr) => write!(
                f,
                "{area} at {addr:#x} is not {}-byte aligned",
                area.alignment()
            ),
            LayoutError::OutOfRam(area, e) => write!(f, "{area}: {e}"),
        }
    }
}

impl core::error::Error for LayoutError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            LayoutError::OutOfRam(_, e) => Some(e),
            LayoutError::BadSize { .. } | LayoutError::Misaligned(..) => None,
        }
    }
}

/// Why a queue operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// The queue is not enabled.
    NotReady,
    /// A ring could not be accessed.
    Memory(MemError),
    /// `avail.idx` moved further than the queue size from the last entry
    /// consumed: the ring indices cannot be trusted.
    AvailIdxJump {
        /// Next entry the device would consume.
        last_avail: u16,
        /// `avail.idx` as read.
        avail: u16,
    },
    /// An available-ring entry names a descriptor beyond the queue.
    HeadOutOfRange {
        /// The entry.
        head: u16,
    },
    /// The chain at `head` is malformed; it has been consumed and must be
    /// returned in the used ring (length 0).
    BadChain {
        /// Head descriptor of the chain.
        head: u16,
        /// What is wrong with it.
        error: ChainError,
    },
    /// `push_used` was asked to return an id beyond the queue.
    UsedIdOutOfRange {
        /// The id.
        head: u16,
    },
}

impl core::fmt::Display for QueueError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            QueueError::NotReady => f.write_str("queue not ready"),
            QueueError::Memory(e) => write!(f, "ring access: {e}"),
            QueueError::AvailIdxJump { last_avail, avail } => write!(
                f,
                "avail.idx {avail} is more than the queue size past entry {last_avail}"
            ),
            QueueError::HeadOutOfRange { head } => {
                write!(
                    f,
                    "available ring names descriptor {head}, beyond the queue"
                )
            }
            QueueError::BadChain { head, error } => write!(f, "chain at {head}: {error}"),
            QueueError::UsedIdOutOfRange { head } => {
                write!(f, "used id {head} is beyond the queue")
            }
        }
    }
}

impl core::error::Error for QueueError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            QueueError::Memory(e) => Some(e),
            QueueError::BadChain { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl QueueError {
    /// Whether the error leaves the queue unusable (DEVICE_NEEDS_RESET)
    /// rather than failing one request.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, QueueError::BadChain { .. })
    }
}

impl From<MemError> for QueueError {
    fn from(e: MemError) -> Self {
        QueueError::Memory(e)
    }
}

/// One split virtqueue: the driver-written configuration and the device's
/// private indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    max_size: u16,
    size: u32,
    ready: bool,
    desc_addr: u64,
    avail_addr: u64,
    used_addr: u64,
    last_avail_idx: u16,
    /// `avail.idx` as last read and checked: the chains before it are
    /// known to be available without reading it again.
    avail_seen: u16,
    used_idx: u16,
    /// `used.idx` as last written: the elements from it to `used_idx`
    /// are written but not yet published.
    used_published: u16,
    /// Chains taken in the current [`QueueContext`](super::device::QueueContext)
    /// (its bound on the work of one notify).
    taken: u32,
    /// The smallest range holding the three areas, as `(first byte,
    /// length)`, set at enable: one range check finds all three still in
    /// RAM ([`check_rings`](Self::check_rings)).
    hull: (u64, u64),
    /// The size while the queue is enabled (checked then: a power of two,
    /// not zero), 0 while it is disabled: one load answers both for a
    /// session ([`live_size`](Self::live_size)).
    live: u16,
}

/// One descriptor as copied out of the table.
struct Descriptor {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

impl Queue {
    /// A disabled queue of at most `max_size` entries (capped at
    /// [`MAX_QUEUE_SIZE`]); the size starts at the maximum.
    pub fn new(max_size: u16) -> Self {
        let max_size = max_size.min(MAX_QUEUE_SIZE);
        Self {
            max_size,
            size: u32::from(max_size),
            ready: false,
            desc_addr: 0,
            avail_addr: 0,
            used_addr: 0,
            last_avail_idx: 0,
            avail_seen: 0,
            used_idx: 0,
            used_published: 0,
            taken: 0,
            hull: (0, 0),
            live: 0,
        }
    }

    /// Returns the queue to its state after device reset.
    pub fn reset(&mut self) {
        *self = Self::new(self.max_size);
    }

    /// Largest size the device accepts (QueueNumMax).
    pub fn max_size(&self) -> u16 {
        self.max_size
    }

    /// Size the driver chose (QueueNum), as written.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Whether the queue is enabled (QueueReady).
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// Guest-physical address of the descriptor table.
    pub fn desc_addr(&self) -> u64 {
        self.desc_addr
    }

    /// Guest-physical address of the driver (available) ring.
    pub fn avail_addr(&self) -> u64 {
        self.avail_addr
    }

    /// Guest-physical address of the device (used) ring.
    pub fn used_addr(&self) -> u64 {
        self.used_addr
    }

    /// Next available-ring position the device will consume.
    pub fn last_avail_idx(&self) -> u16 {
        self.last_avail_idx
    }

    /// Next used-ring position the device will fill (its `used.idx`).
    pub fn used_idx(&self) -> u16 {
        self.used_idx
    }

    /// Sets the size; ignored while the queue is enabled.
    pub fn set_size(&mut self, size: u32) {
        if !self.ready {
            self.size = size;
        }
    }

    /// Sets the descriptor table address; ignored while enabled.
    pub fn set_desc_addr(&mut self, gpa: u64) {
        if !self.ready {
            self.desc_addr = gpa;
        }
    }

    /// Sets the driver ring address; ignored while enabled.
    pub fn set_avail_addr(&mut self, gpa: u64) {
        if !self.ready {
            self.avail_addr = gpa;
        }
    }

    /// Sets the device ring address; ignored while enabled.
    pub fn set_used_addr(&mut self, gpa: u64) {
        if !self.ready {
            self.used_addr = gpa;
        }
    }

    /// Starts a context's count of chains taken.
    pub(super) fn begin_context(&mut self) {
        self.taken = 0;
    }

    /// Checks the layout: size a power of two within the maximum, areas
    /// aligned and inside guest RAM.
    pub fn validate<M: GuestMemory + ?Sized>(&self, mem: &M) -> Result<(), LayoutError> {
        let size = match u16::try_from(self.size) {
            Ok(s) if s != 0 && s.is_power_of_two() && s <= self.max_size => s,
            _ => {
                return Err(LayoutError::BadSize {
                    size: self.size,
                    max: self.max_size,
                });
            }
        };
        for (area, gpa) in [
            (Area::Descriptors, self.desc_addr),
            (Area::Driver, self.avail_addr),
            (Area::Device, self.used_addr),
        ] {
            if !gpa.is_multiple_of(area.alignment()) {
                return Err(LayoutError::Misaligned(area, gpa));
            }
            mem.check(gpa, area.bytes(size))
                .map_err(|e| LayoutError::OutOfRam(area, e))?;
        }
        Ok(())
    }

    /// Enables the queue after checking its layout; the ring indices start
    /// at 0 (the driver hands over freshly zeroed rings).
    pub fn enable<M: GuestMemory + ?Sized>(&mut self, mem: &M) -> Result<(), LayoutError> {
        self.validate(mem)?;
        // The areas are inside RAM (no wrap), so their ends are too.
        let size = self.size as u16;
        let areas = [
            (self.desc_addr, Area::Descriptors.bytes(size)),
            (self.avail_addr, Area::Driver.bytes(size)),
            (self.used_addr, Area::Device.bytes(size)),
        ];
        let lo = areas.iter().map(|a| a.0).min().unwrap_or(0);
        let hi = areas.iter().map(|a| a.0 + a.1).max().unwrap_or(0);
        self.hull = (lo, hi - lo);
        self.ready = true;
        self.live = size;
        self.last_avail_idx = 0;
        self.avail_seen = 0;
        self.used_idx = 0;
        self.used_published = 0;
        Ok(())
    }

    /// Disables the queue (QueueReady = 0), keeping its configuration.
    pub fn disable(&mut self) {
        self.ready = false;
        self.live = 0;
    }

    /// Checks that the three areas of an enabled queue still lie in `mem`'s
    /// RAM (they did at enable): what lets the ring accesses of a run of
    /// pops and pushes go without a range check each
    /// ([`GuestMemory::read_u16_checked`] and its kind). One check of the
    /// range holding all three; failing that (areas in different RAM
    /// regions, or a memory other than the one the queue was enabled
    /// with), each area on its own.
    #[inline(always)]
    pub(super) fn check_rings<M: GuestMemory + ?Sized>(&self, mem: &M) -> Result<(), QueueError> {
        if mem.check(self.hull.0, self.hull.1).is_ok() {
            return Ok(());
        }
        self.check_areas(mem)
    }

    #[cold]
    #[inline(never)]
    fn check_areas<M: GuestMemory + ?Sized>(&self, mem: &M) -> Result<(), QueueError> {
        let size = self.ring_size()?;
        mem.check(self.desc_addr, Area::Descriptors.bytes(size))?;
        mem.check(self.avail_addr, Area::Driver.bytes(size))?;
        mem.check(self.used_addr, Area::Device.bytes(size))?;
        Ok(())
    }

    /// The size of an enabled queue.
    #[inline(always)]
    fn ring_size(&self) -> Result<u16, QueueError> {
        match self.live {
            0 => Err(QueueError::NotReady),
            s => Ok(s),
        }
    }

    /// How many chains the driver has made available and the device has not
    /// consumed yet.
    pub fn pending<M: GuestMemory + ?Sized>(&self, mem: &M) -> Result<u16, QueueError> {
        let size = self.ring_size()?;
        self.checked_pending(mem, size).map(|(_, pending)| pending)
    }

    /// Reads `avail.idx` and checks it against the last entry consumed:
    /// `(avail.idx, chains pending)`.
    #[inline(always)]
    fn checked_pending<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        size: u16,
    ) -> Result<(u16, u16), QueueError> {
        let avail = mem.read_u16(self.avail_addr.wrapping_add(2))?;
        let pending = avail.wrapping_sub(self.last_avail_idx);
        if pending > size {
            return Err(QueueError::AvailIdxJump {
                last_avail: self.last_avail_idx,
                avail,
            });
        }
        Ok((avail, pending))
    }

    /// Takes the next available chain, if any. On
    /// [`QueueError::BadChain`] the chain has been consumed and the caller
    /// must return `head` with [`push_used`](Self::push_used); on a fatal
    /// error nothing was consumed.
    pub fn pop<M: GuestMemory + ?Sized>(&mut self, mem: &M) -> Result<Option<Chain>, QueueError> {
        let mut chain = Chain::default();
        Ok(self.pop_into(mem, &mut chain)?.then_some(chain))
    }

    /// [`pop`](Self::pop) into a chain the caller keeps (its buffer lists
    /// are reused; nothing is moved): `Ok(true)` when `chain` now holds the
    /// next available chain, `Ok(false)` when there is none. On an error
    /// `chain` holds nothing meaningful.
    ///
    /// `avail.idx` is read (and the acquire barrier issued) only when the
    /// chains seen at its last reading are consumed: once per batch.
    #[inline]
    pub fn pop_into<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        chain: &mut Chain,
    ) -> Result<bool, QueueError> {
        self.pop_checked::<true, M>(mem, chain)
    }

    /// [`pop_into`](Self::pop_into) through the general walk only (no
    /// pair walk): what the tests compare it with.
    #[cfg(test)]
    pub(crate) fn pop_into_general<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        chain: &mut Chain,
    ) -> Result<bool, QueueError> {
        self.pop_checked::<false, M>(mem, chain)
    }

    /// [`pop_into`](Self::pop_into) with the pair walk (`FAST`) or without:
    /// the queue's [`Ring`], one pop, the ring stored back.
    #[inline]
    fn pop_checked<const FAST: bool, M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        chain: &mut Chain,
    ) -> Result<bool, QueueError> {
        let mut ring = self.checked_ring(mem)?;
        // SAFETY: the ring of this queue, whose areas were just checked to
        // lie in `mem`'s RAM.
        let popped = unsafe { ring.pop::<FAST, M>(mem, chain) };
        self.store_ring(&ring);
        Ok(match popped? {
            Popped::Empty => false,
            Popped::Pair(pair) => {
                pair.fill(chain);
                true
            }
            Popped::Chain => true,
        })
    }

    /// The [`Ring`] of this enabled queue after checking that its areas
    /// still lie in `mem`'s RAM ([`check_rings`](Self::check_rings)).
    #[inline(always)]
    fn checked_ring<M: GuestMemory + ?Sized>(&self, mem: &M) -> Result<Ring, QueueError> {
        let size = self.ring_size()?;
        self.check_rings(mem)?;
        Ok(self.ring(mem, size))
    }

    /// The [`Ring`] of this queue, enabled with `size` entries (its
    /// [`live_size`](Self::live_size)): the areas' direct addresses in
    /// `mem` and the device's indices, copied out.
    ///
    /// Safe to make; using it is not ([`Ring::pop`]): its accesses are
    /// valid only once [`check_rings`](Self::check_rings)`(mem)` has
    /// passed.
    #[inline(always)]
    pub(super) fn ring<M: GuestMemory + ?Sized>(&self, mem: &M, size: u16) -> Ring {
        Ring {
            desc: mem.direct(self.desc_addr),
            avail: mem.direct(self.avail_addr),
            used: mem.direct(self.used_addr),
            size,
            last_avail: self.last_avail_idx,
            avail_seen: self.avail_seen,
            used_idx: self.used_idx,
            taken: self.taken,
        }
    }

    /// Records `used.idx` as written up to `idx` (a session published it:
    /// [`Ring::publish_and_ask`]).
    #[inline(always)]
    pub(super) fn set_published(&mut self, idx: u16) {
        self.used_published = idx;
    }

    /// Stores the indices of `ring` (made by [`ring`](Self::ring) from
    /// this queue) back.
    #[inline(always)]
    pub(super) fn store_ring(&mut self, ring: &Ring) {
        self.last_avail_idx = ring.last_avail;
        self.avail_seen = ring.avail_seen;
        self.used_idx = ring.used_idx;
        self.taken = ring.taken;
    }

    /// The size of an enabled queue (a power of two, checked at enable),
    /// `None` while it is disabled: what [`ring`](Self::ring) takes, for
    /// a caller that holds the queue (and so its configuration) across a
    /// run of pops and pushes.
    #[inline(always)]
    pub(super) fn live_size(&self) -> Option<u16> {
        self.ring_size().ok()
    }

    /// Returns chain `head` to the driver with `len` bytes written: the used
    /// element first, then (after a [`Barrier::Release`]) `used.idx`.
    pub fn push_used<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        head: u16,
        len: u32,
    ) -> Result<(), QueueError> {
        self.add_used(mem, head, len)?;
        self.publish_used(mem)
    }

    /// Writes the used element returning chain `head` with `len` bytes
    /// written, without publishing it: the driver sees it after
    /// [`publish_used`](Self::publish_used).
    #[inline(always)]
    pub fn add_used<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        head: u16,
        len: u32,
    ) -> Result<(), QueueError> {
        let mut ring = self.checked_ring(mem)?;
        // SAFETY: as in `pop_checked`.
        let added = unsafe { ring.add_used(mem, head, len) };
        self.store_ring(&ring);
        added
    }

    /// Publishes the used elements written since the last call: a
    /// [`Barrier::Release`], then one write of `used.idx`. Nothing when
    /// there are none.
    pub fn publish_used<M: GuestMemory + ?Sized>(&mut self, mem: &M) -> Result<(), QueueError> {
        if self.used_published == self.used_idx {
            return Ok(());
        }
        mem.barrier(Barrier::Release);
        mem.write_u16(self.used_addr.wrapping_add(2), self.used_idx)?;
        self.used_published = self.used_idx;
        Ok(())
    }

    /// [`publish_used`](Self::publish_used) then
    /// [`needs_notification`](Self::needs_notification), the end of a
    /// context's work on a queue of `mem` whose areas were checked: the same
    /// barriers and accesses, without a range check each.
    ///
    /// # Safety
    /// [`check_rings`](Self::check_rings)`(mem)` must have passed (and
    /// `mem`'s RAM not changed since).
    #[inline(always)]
    pub(super) unsafe fn publish_and_ask<M: GuestMemory + ?Sized>(&mut self, mem: &M) -> bool {
        if self.used_published != self.used_idx {
            mem.barrier(Barrier::Release);
            // SAFETY: `used.idx` lies in the device area, 2-aligned (the
            // area is 4-aligned, checked at enable), in RAM (the caller's
            // contract).
            unsafe {
                mem.write_u16_direct(mem.direct(self.used_addr).wrapping_add(2), self.used_idx)
            };
            self.used_published = self.used_idx;
        }
        mem.barrier(Barrier::Full);
        // SAFETY: `avail.flags` lies in the driver area, 2-aligned; as above.
        let flags = unsafe { mem.read_u16_direct(mem.direct(self.avail_addr)) };
        flags & VIRTQ_AVAIL_F_NO_INTERRUPT == 0
    }

    /// Whether the driver wants a used-buffer notification now, i.e.
    /// `VIRTQ_AVAIL_F_NO_INTERRUPT` is clear. Issues a [`Barrier::Full`]
    /// first so that a driver clearing the flag after our `used.idx` write
    /// is not missed. An unreadable ring errs towards notifying.
    pub fn needs_notification<M: GuestMemory + ?Sized>(&self, mem: &M) -> bool {
        mem.barrier(Barrier::Full);
        match mem.read_u16(self.avail_addr) {
            Ok(flags) => flags & VIRTQ_AVAIL_F_NO_INTERRUPT == 0,
            Err(_) => true,
        }
    }
}

/// An enabled queue's ring as plain values, for a run of pops and pushes
/// (a [`QueueSession`](super::device::QueueSession), or one
/// [`Queue::pop_into`]): the three areas' direct addresses
/// ([`GuestMemory::direct`]: host addresses in the hypervisor's guest RAM,
/// so that each ring access is a base plus an index), the size and the
/// device's indices, copied out of the [`Queue`] ([`Queue::ring`]) and
/// stored back when the run ends ([`Queue::store_ring`]). Being values, the
/// loop that holds it keeps them in registers rather than reloading them
/// through the queue after every store into guest memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ring {
    desc: u64,
    avail: u64,
    used: u64,
    /// The queue's size (enabled: a power of two).
    size: u16,
    last_avail: u16,
    avail_seen: u16,
    used_idx: u16,
    taken: u32,
}

/// The common chain, one device-readable descriptor then one
/// device-writable one (a request as Linux builds it), as
/// [`Ring::pop`]'s pair walk found it: both buffers non-empty and checked
/// to lie in RAM, totalling less than 2^32 bytes. [`fill`](Self::fill)
/// gives the [`Chain`] the general walk gives for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    /// Index of the head descriptor: the id to return in the used ring.
    pub head: u16,
    /// The readable buffer: guest-physical address, length.
    pub readable: (u64, u32),
    /// The writable buffer: guest-physical address, length.
    pub writable: (u64, u32),
}

impl Pair {
    /// Makes `chain` this pair: what the general walk gives for it.
    #[inline(always)]
    pub fn fill(&self, chain: &mut Chain) {
        chain.head = self.head;
        chain.readable.set_single(self.readable.0, self.readable.1);
        chain.writable.set_single(self.writable.0, self.writable.1);
    }
}

/// What [`Ring::pop`] took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Popped {
    /// No chain is available.
    Empty,
    /// A chain of the common shape (the caller's chain is untouched).
    Pair(Pair),
    /// Any other valid chain, now in the caller's chain.
    Chain,
}

impl Ring {
    /// Counts one chain taken in the current context (its bound on the
    /// work of one notify); false once it has taken a queue's worth.
    #[inline(always)]
    pub(super) fn take_one(&mut self) -> bool {
        if self.taken >= u32::from(self.size) {
            return false;
        }
        self.taken += 1;
        true
    }

    /// Takes the next available chain. On [`QueueError::BadChain`] the
    /// chain has been consumed and the caller must return `head` with
    /// [`add_used`](Self::add_used); on a fatal error nothing was
    /// consumed. `avail.idx` is read (and the acquire barrier issued) only
    /// when the chains seen at its last reading are consumed.
    ///
    /// `FAST` (true but in the tests comparing both) lets the common chain
    /// shape take the pair walk, which gives it as a [`Pair`], before the
    /// general walk, which fills `chain`.
    ///
    /// # Safety
    /// The ring must be [`Queue::ring`] of a queue (or its indices since)
    /// whose [`Queue::check_rings`]`(mem)` passed, `mem`'s RAM unchanged
    /// since: the ring accesses are not checked again.
    #[inline(always)]
    pub(super) unsafe fn pop<const FAST: bool, M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        chain: &mut Chain,
    ) -> Result<Popped, QueueError> {
        if self.avail_seen == self.last_avail {
            // SAFETY: `avail.idx` lies in the driver area, 2-aligned (the
            // area is, checked at enable); the area is in RAM (the
            // caller's contract).
            let avail = unsafe { mem.read_u16_direct(self.avail.wrapping_add(2)) };
            let pending = avail.wrapping_sub(self.last_avail);
            if pending > self.size {
                return Err(QueueError::AvailIdxJump {
                    last_avail: self.last_avail,
                    avail,
                });
            }
            if pending == 0 {
                return Ok(Popped::Empty);
            }
            self.avail_seen = avail;
            mem.barrier(Barrier::Acquire);
        }
        // The size is a power of two (checked at enable).
        let slot = u64::from(self.last_avail & (self.size - 1));
        // SAFETY: ring entry `slot < size` of the driver area, 2-aligned;
        // as above.
        let head = unsafe {
            mem.read_u16_direct(
                self.avail
                    .wrapping_add(RING_HEAD_LEN + AVAIL_ELEM_LEN * slot),
            )
        };
        if head >= self.size {
            return Err(QueueError::HeadOutOfRange { head });
        }
        self.last_avail = self.last_avail.wrapping_add(1);
        if FAST {
            // SAFETY: the caller's contract, passed on.
            if let Some(pair) = unsafe { self.walk_pair(mem, head) } {
                return Ok(Popped::Pair(pair));
            }
        }
        // SAFETY: as above.
        unsafe { self.walk(mem, head, chain)? };
        Ok(Popped::Chain)
    }

    /// The common chain at `head` (below the size), walked without the
    /// general walk's bookkeeping: `Some` when it is exactly what
    /// [`walk`](Self::walk) would give for `head`. Anything else (other
    /// flags, a zero length, `next` out of range, a buffer outside RAM, a
    /// total of 2^32 or more) is `None` with nothing consumed, and the
    /// general walk starts over from `head`: it makes each check again and
    /// names the error.
    ///
    /// The checks are the general walk's for this shape: the head's flags
    /// exactly NEXT (readable, not indirect), its `next` below the size,
    /// the second's flags exactly WRITE (writable, not indirect, last),
    /// both lengths non-zero (zero-length descriptors are dropped there),
    /// both buffers inside RAM, the total below 2^32. The loop bound holds:
    /// a two-descriptor chain needs a queue of two, and with a size of one
    /// `next` can only be the head again, whose flags are NEXT, not WRITE.
    ///
    /// # Safety
    /// As [`pop`](Self::pop).
    #[inline(always)]
    unsafe fn walk_pair<M: GuestMemory + ?Sized>(&self, mem: &M, head: u16) -> Option<Pair> {
        // SAFETY: the caller's contract.
        let d0 = unsafe { self.descriptor(mem, head) };
        if d0.flags != VIRTQ_DESC_F_NEXT || d0.len == 0 || d0.next >= self.size {
            return None;
        }
        // SAFETY: as above.
        let d1 = unsafe { self.descriptor(mem, d0.next) };
        if d1.flags != VIRTQ_DESC_F_WRITE
            || d1.len == 0
            || u64::from(d0.len) + u64::from(d1.len) > u64::from(u32::MAX)
            || mem.check(d0.addr, u64::from(d0.len)).is_err()
            || mem.check(d1.addr, u64::from(d1.len)).is_err()
        {
            return None;
        }
        Some(Pair {
            head,
            readable: (d0.addr, d0.len),
            writable: (d1.addr, d1.len),
        })
    }

    /// Walks the chain starting at `head` (already below the size) into
    /// `chain`: any shape, every check.
    ///
    /// # Safety
    /// As [`pop`](Self::pop).
    #[inline(never)]
    unsafe fn walk<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        head: u16,
        chain: &mut Chain,
    ) -> Result<(), QueueError> {
        let bad = |error| QueueError::BadChain { head, error };
        chain.head = head;
        chain.readable.clear();
        chain.writable.clear();
        let mut total = 0u64;
        let mut index = head;
        let mut seen = 0u16;
        let mut in_writable = false;
        loop {
            if seen == self.size {
                return Err(bad(ChainError::Loop));
            }
            seen += 1;
            // SAFETY: the caller's contract.
            let d = unsafe { self.descriptor(mem, index) };
            if d.flags & VIRTQ_DESC_F_INDIRECT != 0 {
                return Err(bad(ChainError::Indirect));
            }
            let writable = d.flags & VIRTQ_DESC_F_WRITE != 0;
            if !writable && in_writable {
                return Err(bad(ChainError::ReadableAfterWritable));
            }
            in_writable = writable;
            if d.len != 0 {
                mem.check(d.addr, u64::from(d.len))
                    .map_err(|e| bad(ChainError::OutOfRam(e)))?;
                total += u64::from(d.len);
                if total > u64::from(u32::MAX) {
                    return Err(bad(ChainError::TooLarge));
                }
                let part = if writable {
                    &mut chain.writable
                } else {
                    &mut chain.readable
                };
                part.push((d.addr, d.len));
            }
            if d.flags & VIRTQ_DESC_F_NEXT == 0 {
                return Ok(());
            }
            if d.next >= self.size {
                return Err(bad(ChainError::NextOutOfRange { next: d.next }));
            }
            index = d.next;
        }
    }

    /// Copies descriptor `index` (below the size; taken modulo it all the
    /// same) out of the table: two 64-bit reads, `addr`, then `len`,
    /// `flags` and `next` together.
    ///
    /// # Safety
    /// As [`pop`](Self::pop).
    #[inline(always)]
    unsafe fn descriptor<M: GuestMemory + ?Sized>(&self, mem: &M, index: u16) -> Descriptor {
        // The size is a power of two: the entry is inside the table.
        let index = index & (self.size - 1);
        let at = self.desc.wrapping_add(DESC_LEN * u64::from(index));
        // SAFETY: entry `index < size` of the descriptor table, 16-aligned
        // (checked at enable), in RAM (the caller's contract).
        let (addr, rest) = unsafe { mem.read_u64_pair_direct(at) };
        Descriptor {
            addr,
            len: rest as u32,
            flags: (rest >> 32) as u16,
            next: (rest >> 48) as u16,
        }
    }

    /// The device's next used-ring position (its `used.idx`).
    #[inline(always)]
    pub(super) fn used_idx(&self) -> u16 {
        self.used_idx
    }

    /// Publishes the used elements written so far and decides on the
    /// used-buffer notification: a [`Barrier::Release`], `used.idx`
    /// written (again, if nothing was added since its last write: the
    /// driver sees no change), a [`Barrier::Full`], then `avail.flags`
    /// read: true when `VIRTQ_AVAIL_F_NO_INTERRUPT` is clear. What
    /// [`Queue::publish_and_ask`] does, from the ring's direct addresses.
    ///
    /// # Safety
    /// As [`pop`](Self::pop).
    #[inline(always)]
    pub(super) unsafe fn publish_and_ask<M: GuestMemory + ?Sized>(&self, mem: &M) -> bool {
        mem.barrier(Barrier::Release);
        // SAFETY: `used.idx` lies in the device area, 2-aligned (the area
        // is 4-aligned, checked at enable), in RAM (the caller's contract).
        unsafe { mem.write_u16_direct(self.used.wrapping_add(2), self.used_idx) };
        mem.barrier(Barrier::Full);
        // SAFETY: `avail.flags` lies in the driver area, 2-aligned; as above.
        let flags = unsafe { mem.read_u16_direct(self.avail) };
        flags & VIRTQ_AVAIL_F_NO_INTERRUPT == 0
    }

    /// Writes the used element returning chain `head` with `len` bytes
    /// written, without publishing it (the queue's `used.idx` is written
    /// when its context finishes); an id beyond the queue is refused.
    ///
    /// # Safety
    /// As [`pop`](Self::pop).
    #[inline(always)]
    pub(super) unsafe fn add_used<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        head: u16,
        len: u32,
    ) -> Result<(), QueueError> {
        if head >= self.size {
            return Err(QueueError::UsedIdOutOfRange { head });
        }
        let idx = self.used_idx;
        // The size is a power of two (checked at enable).
        let slot = u64::from(idx & (self.size - 1));
        // `le32 id; le32 len`.
        let at = self.used.wrapping_add(RING_HEAD_LEN + USED_ELEM_LEN * slot);
        // SAFETY: element `slot < size` of the device area, 4-aligned
        // (the area is 4-aligned, checked at enable; elements are 8 bytes
        // from offset 4), in RAM (the caller's contract).
        unsafe { mem.write_u32_pair_direct(at, u32::from(head), len) };
        self.used_idx = idx.wrapping_add(1);
        Ok(())
    }
}
