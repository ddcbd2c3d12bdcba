//! The virtio-iommu device over a real split queue in fake guest memory:
//! requests in any descriptor layout, status-only responses written in
//! place, oversized requests failed, and one sync per notify.

use super::*;
use crate::viommu::fake::{Call, FakeBackend, MemKind, Region};
use crate::viommu::model::ViommuConfig;
use crate::viommu::wire::Status;
use crate::viommu::wire::request::{Attach, Map, MapFlags, Request, Unmap};
use crate::virtio::memory::VecMemory;
use crate::virtio::queue::{Queue, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};
use alloc::vec;

const RAM: u64 = 0x4000_0000;
const RAM_LEN: usize = 1 << 20;
const DESC: u64 = RAM;
const AVAIL: u64 = RAM + 0x1000;
const USED: u64 = RAM + 0x2000;
const BUFS: u64 = RAM + 0x1_0000;
const QSIZE: u16 = 16;
const EP: u32 = 8;

/// A driver's view of queue 0: descriptors handed out in order.
struct Driver {
    mem: VecMemory,
    queues: [Queue; 2],
    next_desc: u16,
    avail: u16,
    used: u16,
    next_buf: u64,
}

impl Driver {
    fn new() -> Self {
        let mem = VecMemory::new(RAM, RAM_LEN);
        let mut q = Queue::new(REQUESTQ_SIZE);
        q.set_size(u32::from(QSIZE));
        q.set_desc_addr(DESC);
        q.set_avail_addr(AVAIL);
        q.set_used_addr(USED);
        q.enable(&mem).expect("queue layout");
        Self {
            mem,
            queues: [q, Queue::new(EVENTQ_SIZE)],
            next_desc: 0,
            avail: 0,
            used: 0,
            next_buf: BUFS,
        }
    }

    /// Places `bytes` in a fresh buffer; returns its address.
    fn buffer(&mut self, bytes: &[u8], room: usize) -> u64 {
        let at = self.next_buf;
        self.mem.write(at, bytes).unwrap();
        self.next_buf += (bytes.len().max(room) as u64 + 15) & !15;
        at
    }

    /// Queues one chain: readable pieces, then writable lengths.
    fn queue(&mut self, readable: &[&[u8]], writable: &[usize]) -> u16 {
        let head = self.next_desc;
        let total = readable.len() + writable.len();
        let mut parts = vec![];
        for r in readable {
            parts.push((self.buffer(r, 0), r.len() as u32, 0));
        }
        for &w in writable {
            parts.push((self.buffer(&vec![0xee; w], w), w as u32, VIRTQ_DESC_F_WRITE));
        }
        for (i, (addr, len, flags)) in parts.into_iter().enumerate() {
            let idx = (self.next_desc + i as u16) % QSIZE;
            let last = i + 1 == total;
            let mut d = [0u8; 16];
            d[..8].copy_from_slice(&addr.to_le_bytes());
            d[8..12].copy_from_slice(&len.to_le_bytes());
            let f = flags | if last { 0 } else { VIRTQ_DESC_F_NEXT };
            d[12..14].copy_from_slice(&f.to_le_bytes());
            d[14..16].copy_from_slice(&((idx + 1) % QSIZE).to_le_bytes());
            self.mem.write(DESC + 16 * u64::from(idx), &d).unwrap();
        }
        self.next_desc = (self.next_desc + total as u16) % QSIZE;
        let slot = u64::from(self.avail % QSIZE);
        self.mem.write_u16(AVAIL + 4 + 2 * slot, head).unwrap();
        self.avail = self.avail.wrapping_add(1);
        self.mem.write_u16(AVAIL + 2, self.avail).unwrap();
        head
    }

    fn notify(&mut self, dev: &mut ViommuDevice<FakeBackend>) {
        let mut ctx = QueueContext::new(&self.mem, &mut self.queues);
        assert_eq!(dev.notify(REQUESTQ, &mut ctx), NotifyResult::Done);
        assert_eq!(ctx.fatal_error(), None);
        // Publishes the used elements.
        assert_eq!(ctx.finish().fatal, None);
    }

    /// The next used element: (id, len).
    fn used(&mut self) -> Option<(u32, u32)> {
        if self.mem.read_u16(USED + 2).unwrap() == self.used {
            return None;
        }
        let at = USED + 4 + 8 * u64::from(self.used % QSIZE);
        self.used = self.used.wrapping_add(1);
        Some((
            self.mem.read_u32(at).unwrap(),
            self.mem.read_u32(at + 4).unwrap(),
        ))
    }
}

fn device() -> ViommuDevice<FakeBackend> {
    let backend = FakeBackend {
        endpoints: [EP].into_iter().collect(),
        regions: vec![Region {
            gpa: RAM,
            len: RAM_LEN as u64,
            host: 0x8_0000_0000,
            kind: MemKind::Ram,
        }],
        ..FakeBackend::default()
    };
    ViommuDevice::new(Viommu::new(backend, ViommuConfig::default()).unwrap())
}

fn attach() -> Vec<u8> {
    Request::Attach(Attach {
        domain: 1,
        endpoint: EP,
        flags: 0,
        reserved: [0; 4],
    })
    .encode()
}

fn map(iova: u64) -> Vec<u8> {
    Request::Map(Map {
        domain: 1,
        virt_start: iova,
        virt_end: iova + 0xfff,
        phys_start: RAM,
        flags: MapFlags(MapFlags::READ | MapFlags::WRITE),
    })
    .encode()
}

fn unmap(iova: u64) -> Vec<u8> {
    Request::Unmap(Unmap {
        domain: 1,
        virt_start: iova,
        virt_end: iova + 0xfff,
        reserved: [0; 4],
    })
    .encode()
}

/// The tail at the end of a writable buffer of `len` bytes at `at`.
fn tail(d: &Driver, at: u64, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    d.mem.read(at, &mut b).unwrap();
    b
}

#[test]
fn requests_split_anywhere_are_read_whole_and_answered_in_place() {
    let mut d = Driver::new();
    let mut dev = device();
    let a = attach();
    let h0 = d.queue(&[&a], &[4]);
    let m = map(0x10_0000);
    // The MAP split in three readable pieces, the tail in two writable ones.
    let h1 = d.queue(&[&m[..3], &m[3..20], &m[20..]], &[1, 3]);
    let tail_at = d.next_buf - 16 - 16; // the two writable buffers of h1
    d.notify(&mut dev);
    assert_eq!(d.used(), Some((u32::from(h0), 4)));
    assert_eq!(d.used(), Some((u32::from(h1), 4)));
    assert_eq!(d.used(), None);
    assert_eq!(tail(&d, tail_at, 1), [Status::Ok as u8]);
    assert_eq!(tail(&d, tail_at + 16, 3), [0, 0, 0]);
    assert_eq!(dev.model.mapping_count(), 1);
}

#[test]
fn a_longer_writable_part_gets_zeros_then_the_tail() {
    let mut d = Driver::new();
    let mut dev = device();
    let a = attach();
    d.queue(&[&a], &[100]);
    let at = d.next_buf - 112;
    d.notify(&mut dev);
    assert_eq!(d.used().map(|u| u.1), Some(100));
    let mut want = vec![0u8; 100];
    want[96] = Status::Ok as u8;
    assert_eq!(tail(&d, at, 100), want);
}

#[test]
fn an_oversized_request_fails_alone_with_nothing_written() {
    let mut d = Driver::new();
    let mut dev = device();
    let mut big = attach();
    big.resize(MAX_REQUEST + 1, 0);
    let h0 = d.queue(&[&big], &[4]);
    let at = d.next_buf - 16;
    let a = attach();
    let h1 = d.queue(&[&a], &[4]);
    d.notify(&mut dev);
    assert_eq!(d.used(), Some((u32::from(h0), 0)));
    assert_eq!(d.used(), Some((u32::from(h1), 4)));
    assert_eq!(tail(&d, at, 4), [0xee; 4], "nothing written");
    assert_eq!(dev.model.domain_of(EP), Some(1));
}

#[test]
fn one_sync_per_notify_and_buffers_reused_across_notifies() {
    let mut d = Driver::new();
    let mut dev = device();
    let a = attach();
    d.queue(&[&a], &[4]);
    d.notify(&mut dev);
    d.used();
    for round in 0..3u64 {
        let iova = 0x20_0000 + round * 0x1000;
        let (m, u) = (map(iova), unmap(iova));
        d.queue(&[&m], &[4]);
        d.queue(&[&u], &[4]);
        let syncs = dev.model.backend().count(|c| matches!(c, Call::Sync));
        d.notify(&mut dev);
        let after = dev.model.backend().count(|c| matches!(c, Call::Sync));
        assert_eq!(after, syncs + 1, "round {round}");
        assert_eq!(d.used().map(|u| u.1), Some(4));
        assert_eq!(d.used().map(|u| u.1), Some(4));
        assert_eq!(dev.model.mapping_count(), 0);
    }
    // Two requests per notify, plus the slot the empty pop was tried in.
    assert_eq!(dev.chains.len(), 3, "slots reused, not added");
}

#[test]
fn a_request_in_no_readable_buffer_fails_with_ioerr() {
    let mut d = Driver::new();
    let mut dev = device();
    // Only a writable buffer: no readable segment, so no single-buffer
    // copy; the empty request has no head.
    let h = d.queue(&[], &[4]);
    let at = d.next_buf - 16;
    d.notify(&mut dev);
    assert_eq!(d.used(), Some((u32::from(h), 4)));
    assert_eq!(tail(&d, at, 4), [Status::Ioerr as u8, 0, 0, 0]);
}

#[test]
fn an_oversized_request_in_two_buffers_fails_alone() {
    let mut d = Driver::new();
    let mut dev = device();
    let mut big = attach();
    big.resize(MAX_REQUEST + 8, 0);
    let h0 = d.queue(&[&big[..MAX_REQUEST], &big[MAX_REQUEST..]], &[4]);
    let at = d.next_buf - 16;
    let a = attach();
    let h1 = d.queue(&[&a], &[4]);
    d.notify(&mut dev);
    assert_eq!(d.used(), Some((u32::from(h0), 0)));
    assert_eq!(d.used(), Some((u32::from(h1), 4)));
    assert_eq!(tail(&d, at, 4), [0xee; 4], "nothing written");
}

#[test]
fn a_request_exactly_the_buffer_size_is_read() {
    let mut d = Driver::new();
    let mut dev = device();
    // An ATTACH padded to the largest request the device reads: one
    // readable buffer of exactly MAX_REQUEST bytes.
    let mut a = attach();
    a.resize(MAX_REQUEST, 0);
    let h = d.queue(&[&a], &[4]);
    d.notify(&mut dev);
    assert_eq!(d.used(), Some((u32::from(h), 4)));
    assert_eq!(dev.model.domain_of(EP), Some(1));
}

#[test]
fn a_tail_after_a_first_writable_buffer_lands_in_the_second() {
    let mut d = Driver::new();
    let mut dev = device();
    let a = attach();
    // Writable part of 8 bytes in two buffers of 4: zeros in the first,
    // the tail in the second (not a status store into the first).
    d.queue(&[&a], &[4, 4]);
    let at = d.next_buf - 32;
    d.notify(&mut dev);
    assert_eq!(d.used().map(|u| u.1), Some(8));
    assert_eq!(tail(&d, at, 4), [0; 4]);
    assert_eq!(tail(&d, at + 16, 4), [Status::Ok as u8, 0, 0, 0]);
}

#[test]
fn a_writable_part_shorter_than_the_tail_is_not_written_past() {
    let mut d = Driver::new();
    let mut dev = device();
    let a = attach();
    let h = d.queue(&[&a], &[2]);
    let at = d.next_buf - 16;
    // Mark the bytes after the two-byte buffer.
    d.mem.write(at + 2, &[0xaa; 14]).unwrap();
    d.notify(&mut dev);
    assert_eq!(d.used(), Some((u32::from(h), 0)));
    assert_eq!(tail(&d, at, 2), [0xee; 2], "nothing written");
    assert_eq!(tail(&d, at + 2, 14), [0xaa; 14]);
}

#[test]
fn a_malformed_chain_amid_a_batch_fails_alone() {
    let mut d = Driver::new();
    let mut dev = device();
    let a = attach();
    let h0 = d.queue(&[&a], &[4]);
    let m = map(0x30_0000);
    let h1 = d.queue(&[&m], &[4]);
    // Break h1: its first descriptor's `next` beyond the queue.
    let desc = DESC + 16 * u64::from(h1);
    d.mem.write_u16(desc + 14, QSIZE).unwrap();
    let u = unmap(0x30_0000);
    let h2 = d.queue(&[&u], &[4]);
    d.notify(&mut dev);
    // The malformed chain is returned as the walk meets it, the others
    // after the batch's sync.
    assert_eq!(d.used(), Some((u32::from(h1), 0)));
    assert_eq!(d.used(), Some((u32::from(h0), 4)));
    assert_eq!(d.used(), Some((u32::from(h2), 4)));
    assert_eq!(d.used(), None);
    assert_eq!(dev.model.mapping_count(), 0);
}

#[test]
fn chain_slots_grow_with_the_largest_batch_and_failed_requests_keep_their_slot() {
    let mut d = Driver::new();
    let mut dev = device();
    let a = attach();
    d.queue(&[&a], &[4]);
    d.notify(&mut dev);
    assert_eq!(d.used().map(|u| u.1), Some(4));
    assert_eq!(dev.chains.len(), 2, "one request and the empty pop");
    // A larger batch grows the slots (out of line); the unreadable request
    // amid it fails alone at once (used before the batch, which completes
    // after its sync) and leaves its slot to the next chain.
    let mut big = attach();
    big.resize(MAX_REQUEST + 1, 0);
    let mut heads = vec![];
    let mut failed = 0;
    for i in 0..5u64 {
        let m = map(0x40_0000 + i * 0x1000);
        heads.push(d.queue(&[&m], &[4]));
        if i == 1 {
            failed = d.queue(&[&big], &[4]);
        }
    }
    d.notify(&mut dev);
    assert_eq!(d.used(), Some((u32::from(failed), 0)));
    for head in heads {
        assert_eq!(d.used(), Some((u32::from(head), 4)));
    }
    assert_eq!(d.used(), None);
    assert_eq!(dev.model.mapping_count(), 5);
    assert_eq!(dev.chains.len(), 6, "five requests and the empty pop");
    // A smaller batch reuses them.
    for i in 0..2u64 {
        let u = unmap(0x40_0000 + i * 0x1000);
        d.queue(&[&u], &[4]);
    }
    d.notify(&mut dev);
    assert_eq!(d.used().map(|u| u.1), Some(4));
    assert_eq!(d.used().map(|u| u.1), Some(4));
    assert_eq!(dev.model.mapping_count(), 3);
    assert_eq!(dev.chains.len(), 6, "slots reused, not added");
}
