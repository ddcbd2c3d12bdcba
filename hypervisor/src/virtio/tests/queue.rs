//! The split ring through the [`Queue`] API: layout checks, popping chains
//! of one and several descriptors, the used ring and its ordering, index
//! wrap-around at 65536 and notification suppression.

use super::fake::{BUF_BASE, RAM_BASE, RAM_SIZE, Ring, ring_base};
use crate::virtio::chain::{Chain, ChainError, Segments};
use crate::virtio::device::QueueContext;
use crate::virtio::memory::{Barrier, GuestMemory, MemError, VecMemory};
use crate::virtio::queue::{Area, LayoutError, Queue, QueueError, VIRTQ_AVAIL_F_NO_INTERRUPT};
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

/// An enabled queue of `size` over fresh RAM.
fn enabled(size: u16) -> (VecMemory, Queue, Ring) {
    let mem = VecMemory::new(RAM_BASE, RAM_SIZE);
    let ring = Ring::new(ring_base(0), size);
    let mut q = Queue::new(16);
    q.set_size(u32::from(size));
    q.set_desc_addr(ring.desc);
    q.set_avail_addr(ring.avail);
    q.set_used_addr(ring.used);
    q.enable(&mem).unwrap();
    (mem, q, ring)
}

#[test]
fn layout_is_checked_before_enabling() {
    let mem = VecMemory::new(RAM_BASE, RAM_SIZE);
    let ring = Ring::new(ring_base(0), 8);
    let mut q = Queue::new(16);
    q.set_desc_addr(ring.desc);
    q.set_avail_addr(ring.avail);
    q.set_used_addr(ring.used);
    for bad in [0, 3, 12, 32, 0x1_0008] {
        q.set_size(bad);
        assert_eq!(
            q.enable(&mem),
            Err(LayoutError::BadSize { size: bad, max: 16 })
        );
        assert!(!q.ready());
    }
    q.set_size(8);
    q.set_desc_addr(ring.desc + 8);
    assert_eq!(
        q.enable(&mem),
        Err(LayoutError::Misaligned(Area::Descriptors, ring.desc + 8))
    );
    q.set_desc_addr(ring.desc);
    q.set_avail_addr(ring.avail + 1);
    assert!(matches!(
        q.enable(&mem),
        Err(LayoutError::Misaligned(Area::Driver, _))
    ));
    q.set_avail_addr(ring.avail);
    q.set_used_addr(ring.used + 2);
    assert!(matches!(
        q.enable(&mem),
        Err(LayoutError::Misaligned(Area::Device, _))
    ));
    // The used ring ending one byte past RAM.
    let end = RAM_BASE + RAM_SIZE as u64;
    q.set_used_addr(end - (4 + 8 * 8) + 4);
    assert!(matches!(
        q.enable(&mem),
        Err(LayoutError::OutOfRam(Area::Device, _))
    ));
    q.set_used_addr(end - (4 + 8 * 8));
    q.set_desc_addr(0xffff_ffff_ffff_fff0);
    assert!(matches!(
        q.enable(&mem),
        Err(LayoutError::OutOfRam(
            Area::Descriptors,
            MemError::Wraps { .. }
        ))
    ));
    q.set_desc_addr(ring.desc);
    q.enable(&mem).unwrap();
    assert!(q.ready());
    // Configuration is frozen while enabled.
    q.set_size(4);
    q.set_desc_addr(0);
    assert_eq!((q.size(), q.desc_addr()), (8, ring.desc));
    q.reset();
    assert!(!q.ready());
    assert_eq!((q.size(), q.desc_addr(), q.max_size()), (16, 0, 16));
    assert_eq!(Queue::new(u16::MAX).max_size(), 32768);
}

#[test]
fn disabled_queue_refuses_work() {
    let mem = VecMemory::new(RAM_BASE, RAM_SIZE);
    let mut q = Queue::new(8);
    assert_eq!(q.pop(&mem), Err(QueueError::NotReady));
    assert_eq!(q.push_used(&mem, 0, 0), Err(QueueError::NotReady));
    assert!(mem.write_log().is_empty());
}

#[test]
fn pop_request_response_round_trip() {
    let (mem, mut q, mut ring) = enabled(8);
    assert_eq!(q.pop(&mem), Ok(None));
    mem.write(BUF_BASE, b"ping").unwrap();
    let head = ring.chain(
        &mem,
        0,
        &[(BUF_BASE, 4, false), (BUF_BASE + 0x100, 16, true)],
    );
    ring.publish(&mem, head);
    assert_eq!(q.pending(&mem), Ok(1));
    let chain = q.pop(&mem).unwrap().unwrap();
    assert_eq!(
        chain,
        Chain {
            head: 0,
            readable: Segments::from_slice(&[(BUF_BASE, 4)]),
            writable: Segments::from_slice(&[(BUF_BASE + 0x100, 16)]),
        }
    );
    assert_eq!(chain.read_readable(&mem, 64).unwrap(), b"ping");
    assert_eq!(chain.write_writable(&mem, b"pong").unwrap(), 4);
    q.push_used(&mem, chain.head, 4).unwrap();
    assert_eq!(ring.take_used(&mem), Some((0, 4)));
    assert_eq!(ring.take_used(&mem), None);
    let mut out = [0u8; 4];
    mem.read(BUF_BASE + 0x100, &mut out).unwrap();
    assert_eq!(&out, b"pong");
    assert_eq!(q.pop(&mem), Ok(None));
    assert_eq!((q.last_avail_idx(), q.used_idx()), (1, 1));
}

#[test]
fn chains_span_several_descriptors() {
    let (mem, mut q, mut ring) = enabled(8);
    mem.write(BUF_BASE, b"abc").unwrap();
    mem.write(BUF_BASE + 0x10, b"defg").unwrap();
    mem.write(BUF_BASE + 0x20, b"h").unwrap();
    // Starts at descriptor 6 and wraps to 0, 1, 2; one empty descriptor.
    let head = ring.chain(
        &mem,
        6,
        &[
            (BUF_BASE, 3, false),
            (BUF_BASE + 0x10, 4, false),
            (BUF_BASE + 0x20, 1, false),
            (0, 0, true),
            (BUF_BASE + 0x100, 2, true),
            (BUF_BASE + 0x200, 8, true),
        ],
    );
    ring.publish(&mem, head);
    let chain = q.pop(&mem).unwrap().unwrap();
    assert_eq!(chain.head, 6);
    assert_eq!(chain.readable.len(), 3);
    assert_eq!(
        chain.writable.to_vec(),
        vec![(BUF_BASE + 0x100, 2), (BUF_BASE + 0x200, 8)]
    );
    assert_eq!((chain.readable_len(), chain.writable_len()), (8, 10));
    assert_eq!(chain.read_readable(&mem, 8).unwrap(), b"abcdefgh");
    assert_eq!(
        chain.read_readable(&mem, 7),
        Err(ChainError::ReadLimit { len: 8, limit: 7 })
    );
    // The response spans both writable buffers; the excess is dropped.
    assert_eq!(chain.write_writable(&mem, b"0123456789AB").unwrap(), 10);
    let mut a = [0u8; 2];
    let mut b = [0u8; 9];
    mem.read(BUF_BASE + 0x100, &mut a).unwrap();
    mem.read(BUF_BASE + 0x200, &mut b).unwrap();
    assert_eq!(&a, b"01");
    assert_eq!(&b, b"23456789\0");
    // Writing at an offset inside the second buffer.
    assert_eq!(chain.write_writable_at(&mem, 9, b"xy").unwrap(), 1);
    assert_eq!(chain.write_writable_at(&mem, 10, b"z").unwrap(), 0);
    mem.read(BUF_BASE + 0x200, &mut b).unwrap();
    assert_eq!(&b, b"2345678x\0");
}

#[test]
fn a_chain_as_long_as_the_queue_is_fine() {
    let (mem, mut q, mut ring) = enabled(4);
    let bufs: Vec<_> = (0..4).map(|i| (BUF_BASE + 0x10 * i, 4, i >= 2)).collect();
    let head = ring.chain(&mem, 1, &bufs);
    ring.publish(&mem, head);
    let chain = q.pop(&mem).unwrap().unwrap();
    assert_eq!((chain.readable.len(), chain.writable.len()), (2, 2));
}

/// Memory that records the order of writes and barriers.
struct Ordered<'a> {
    inner: &'a VecMemory,
    events: RefCell<Vec<&'static str>>,
    used: u64,
}

impl GuestMemory for Ordered<'_> {
    fn check(&self, gpa: u64, len: u64) -> Result<(), MemError> {
        self.inner.check(gpa, len)
    }
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        self.inner.read(gpa, buf)
    }
    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        let what = if gpa == self.used + 2 {
            "idx"
        } else if gpa >= self.used + 4 {
            "elem"
        } else {
            "other"
        };
        self.events.borrow_mut().push(what);
        self.inner.write(gpa, data)
    }
    fn barrier(&self, kind: Barrier) {
        self.events.borrow_mut().push(match kind {
            Barrier::Acquire => "acquire",
            Barrier::Release => "release",
            Barrier::Full => "full",
        });
    }
}

#[test]
fn used_element_is_written_before_used_idx() {
    let (mem, mut q, mut ring) = enabled(8);
    let ordered = Ordered {
        inner: &mem,
        events: RefCell::new(Vec::new()),
        used: ring.used,
    };
    let head = ring.chain(&mem, 0, &[(BUF_BASE, 4, true)]);
    ring.publish(&mem, head);
    let chain = q.pop(&ordered).unwrap().unwrap();
    q.push_used(&ordered, chain.head, 4).unwrap();
    assert!(q.needs_notification(&ordered));
    assert_eq!(
        *ordered.events.borrow(),
        ["acquire", "elem", "release", "idx", "full"]
    );
}

#[test]
fn indices_wrap_at_65536() {
    let (mem, mut q, mut ring) = enabled(4);
    mem.write(BUF_BASE, b"w").unwrap();
    for round in 0..65540u32 {
        let head = (round % 4) as u16;
        ring.chain(&mem, head, &[(BUF_BASE, 1, false), (BUF_BASE + 8, 1, true)]);
        ring.publish(&mem, head);
        let chain = q.pop(&mem).unwrap().unwrap();
        assert_eq!(chain.head, head);
        q.push_used(&mem, head, round % 3).unwrap();
        assert_eq!(ring.take_used(&mem), Some((u32::from(head), round % 3)));
    }
    assert_eq!(q.last_avail_idx(), 4);
    assert_eq!(q.used_idx(), 4);
    assert_eq!(ring.used_idx(&mem), 4);
}

#[test]
fn a_full_ring_across_the_wrap() {
    let (mem, mut q, mut ring) = enabled(4);
    // Bring both sides to 65534, then queue 4 (the maximum) across 65536.
    for _ in 0..65534u32 {
        ring.chain(&mem, 0, &[(BUF_BASE, 1, true)]);
        ring.publish(&mem, 0);
        let c = q.pop(&mem).unwrap().unwrap();
        q.push_used(&mem, c.head, 0).unwrap();
        ring.take_used(&mem);
    }
    for i in 0..4 {
        ring.chain(&mem, i, &[(BUF_BASE, 1, true)]);
        ring.publish(&mem, i);
    }
    assert_eq!(q.pending(&mem), Ok(4));
    for i in 0..4 {
        assert_eq!(q.pop(&mem).unwrap().unwrap().head, i);
    }
    assert_eq!(q.pop(&mem), Ok(None));
}

#[test]
fn avail_idx_moving_by_more_than_the_size_is_fatal() {
    let (mem, mut q, ring) = enabled(8);
    mem.write_u16(ring.avail + 2, 9).unwrap();
    let err = q.pop(&mem).unwrap_err();
    assert_eq!(
        err,
        QueueError::AvailIdxJump {
            last_avail: 0,
            avail: 9
        }
    );
    assert!(err.is_fatal());
    assert_eq!(q.last_avail_idx(), 0);
    // Moving backwards is the same jump.
    mem.write_u16(ring.avail + 2, 0xffff).unwrap();
    assert!(matches!(q.pop(&mem), Err(QueueError::AvailIdxJump { .. })));
    // Exactly the size is fine.
    mem.write_u16(ring.avail + 2, 8).unwrap();
    assert_eq!(q.pending(&mem), Ok(8));
}

#[test]
fn head_out_of_range_is_fatal() {
    let (mem, mut q, mut ring) = enabled(8);
    ring.publish(&mem, 8);
    let err = q.pop(&mem).unwrap_err();
    assert_eq!(err, QueueError::HeadOutOfRange { head: 8 });
    assert!(err.is_fatal());
    assert_eq!(
        q.push_used(&mem, 8, 0),
        Err(QueueError::UsedIdOutOfRange { head: 8 })
    );
}

#[test]
fn no_interrupt_flag_is_honoured() {
    let (mem, q, ring) = enabled(8);
    assert!(q.needs_notification(&mem));
    ring.set_avail_flags(&mem, VIRTQ_AVAIL_F_NO_INTERRUPT);
    assert!(!q.needs_notification(&mem));
    // Other bits are not ours to interpret.
    ring.set_avail_flags(&mem, 0xfffe);
    assert!(q.needs_notification(&mem));
}

#[test]
fn re_enabling_starts_from_index_zero() {
    let (mem, mut q, mut ring) = enabled(8);
    ring.chain(&mem, 0, &[(BUF_BASE, 1, true)]);
    ring.publish(&mem, 0);
    q.pop(&mem).unwrap().unwrap();
    q.push_used(&mem, 0, 1).unwrap();
    q.disable();
    assert_eq!(q.pop(&mem), Err(QueueError::NotReady));
    let fresh = Ring::new(ring_base(2), 8);
    q.set_desc_addr(fresh.desc);
    q.set_avail_addr(fresh.avail);
    q.set_used_addr(fresh.used);
    q.enable(&mem).unwrap();
    assert_eq!((q.last_avail_idx(), q.used_idx()), (0, 0));
    assert_eq!(q.pop(&mem), Ok(None));
}

/// Memory that counts reads of `avail.idx` and writes of `used.idx`, and
/// logs barriers.
struct Counting<'a> {
    inner: &'a VecMemory,
    avail_idx: u64,
    used_idx: u64,
    avail_reads: RefCell<u32>,
    used_writes: RefCell<u32>,
    barriers: RefCell<Vec<Barrier>>,
}

impl GuestMemory for Counting<'_> {
    fn check(&self, gpa: u64, len: u64) -> Result<(), MemError> {
        self.inner.check(gpa, len)
    }
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        if gpa == self.avail_idx {
            *self.avail_reads.borrow_mut() += 1;
        }
        self.inner.read(gpa, buf)
    }
    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        if gpa == self.used_idx {
            *self.used_writes.borrow_mut() += 1;
        }
        self.inner.write(gpa, data)
    }
    fn barrier(&self, kind: Barrier) {
        self.barriers.borrow_mut().push(kind);
    }
}

#[test]
fn a_batch_reads_avail_idx_once_more_than_needed_and_publishes_used_idx_once() {
    let (mem, mut q, mut ring) = enabled(8);
    for i in 0..5u16 {
        let head = ring.chain(&mem, i, &[(BUF_BASE + 0x10 * u64::from(i), 4, true)]);
        ring.publish(&mem, head);
    }
    let counting = Counting {
        inner: &mem,
        avail_idx: ring.avail + 2,
        used_idx: ring.used + 2,
        avail_reads: RefCell::new(0),
        used_writes: RefCell::new(0),
        barriers: RefCell::new(Vec::new()),
    };
    let mut queues = [q.clone()];
    let mut ctx = QueueContext::new(&counting, &mut queues);
    let mut chain = Chain::default();
    let mut heads = Vec::new();
    while ctx.pop_into(0, &mut chain) {
        heads.push(chain.head);
        ctx.push_used(0, chain.head, 4).unwrap();
    }
    assert_eq!(heads, [0, 1, 2, 3, 4]);
    // Nothing is visible before the context finishes.
    assert_eq!(ring.used_idx(&mem), 0);
    let outcome = ctx.finish();
    assert_eq!(outcome.fatal, None);
    // avail.idx: once for the batch, once more to find it empty.
    assert_eq!(*counting.avail_reads.borrow(), 2);
    assert_eq!(*counting.used_writes.borrow(), 1);
    assert_eq!(
        *counting.barriers.borrow(),
        [Barrier::Acquire, Barrier::Release, Barrier::Full]
    );
    assert_eq!(ring.used_idx(&mem), 5);
    for i in 0..5u32 {
        assert_eq!(ring.take_used(&mem), Some((i, 4)));
    }
    // The queue given back keeps going from there.
    q = queues[0].clone();
    assert_eq!(q.used_idx(), 5);
    assert_eq!(q.last_avail_idx(), 5);
}

#[test]
fn segments_spill_to_the_heap_and_come_back_inline() {
    let mut s = Segments::default();
    let segs: Vec<(u64, u32)> = (0..5).map(|i| (0x1000 * i, 16 + i as u32)).collect();
    for &seg in &segs {
        s.push(seg);
    }
    assert_eq!(s.to_vec(), segs);
    assert_eq!(s.len(), 5);
    assert_eq!(s.bytes(), (16..21).sum::<u64>());
    assert_eq!(s.get(5), None);
    s.clear();
    assert!(s.is_empty());
    assert_eq!(s.bytes(), 0);
    s.push((0x42, 2));
    assert_eq!(s.to_vec(), [(0x42, 2)]);
    assert_eq!(s, Segments::from_slice(&[(0x42, 2)]));
    s.push((0x43, 3));
    s.push((0x44, 4));
    assert_eq!(s.to_vec(), [(0x42, 2), (0x43, 3), (0x44, 4)]);
}

/// RAM in two regions with a hole between them: `[RAM_BASE, +0x8000)`
/// and `[RAM_BASE + 0x1_0000, end)`.
struct Holed<'a>(&'a VecMemory);

impl GuestMemory for Holed<'_> {
    fn check(&self, gpa: u64, len: u64) -> Result<(), MemError> {
        let hole = RAM_BASE + 0x8000..RAM_BASE + 0x1_0000;
        match gpa.checked_add(len) {
            Some(end) if end <= hole.start || gpa >= hole.end => self.0.check(gpa, len),
            _ => Err(MemError::OutOfRange { gpa, len }),
        }
    }
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        self.check(gpa, buf.len() as u64)?;
        self.0.read(gpa, buf)
    }
    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        self.check(gpa, data.len() as u64)?;
        self.0.write(gpa, data)
    }
}

#[test]
fn areas_in_two_ram_regions_work_and_areas_gone_from_ram_are_fatal() {
    // The descriptor table and driver area below the hole, the device
    // area above it: the one check of the range holding all three fails,
    // each area's own passes.
    let inner = VecMemory::new(RAM_BASE, RAM_SIZE);
    let mem = Holed(&inner);
    let mut ring = Ring::new(RAM_BASE, 8);
    ring.used = RAM_BASE + 0x1_0000;
    let mut q = Queue::new(8);
    q.set_size(8);
    q.set_desc_addr(ring.desc);
    q.set_avail_addr(ring.avail);
    q.set_used_addr(ring.used);
    q.enable(&mem).unwrap();
    let head = ring.chain(
        &inner,
        0,
        &[(BUF_BASE, 4, false), (BUF_BASE + 0x100, 4, true)],
    );
    ring.publish(&inner, head);
    let chain = q.pop(&mem).unwrap().unwrap();
    q.push_used(&mem, chain.head, 4).unwrap();
    assert_eq!(ring.take_used(&inner), Some((0, 4)));

    // The same queue over a memory that no longer holds its used ring:
    // every ring operation refuses, nothing is written.
    let small = VecMemory::new(RAM_BASE, 0x8000);
    ring.publish(&inner, head);
    assert!(matches!(q.pop(&small), Err(QueueError::Memory(_))));
    assert!(matches!(
        q.push_used(&small, 0, 0),
        Err(QueueError::Memory(_))
    ));
    assert!(small.write_log().is_empty());
    // Through a context: the session is refused and the error is fatal.
    let mut queues = [q];
    let mut ctx = QueueContext::new(&small, &mut queues);
    assert!(ctx.pop(0).is_none());
    assert!(matches!(ctx.fatal_error(), Some(QueueError::Memory(_))));
    assert!(small.write_log().is_empty());
}
