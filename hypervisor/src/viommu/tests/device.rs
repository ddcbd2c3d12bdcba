//! The virtio-iommu device over a real split queue in fake guest memory:
//! requests in any descriptor layout, status-only responses written in
//! place, oversized requests failed, and one sync per notify.

use super::*;
use crate::viommu::fake::{Call, FakeBackend, MemKind, Region};
use crate::viommu::model::ViommuConfig;
use crate::viommu::wire::request::{Attach, Map, MapFlags, Request, Unmap};
use crate::viommu::wire::{RequestType, Status};
use crate::virtio::memory::VecMemory;
use crate::virtio::queue::{Queue, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};
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

/// A driver and a device whose endpoint is attached to domain 1 (the
/// ATTACH answered, its used element taken).
fn attached() -> (Driver, ViommuDevice<FakeBackend>) {
    let mut d = Driver::new();
    let mut dev = device();
    let a = attach();
    d.queue(&[&a], &[4]);
    d.notify(&mut dev);
    assert_eq!(d.used().map(|u| u.1), Some(4));
    (d, dev)
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
    let (mut d, mut dev) = attached();
    let mut kept = None;
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
        // The UNMAP's success only is recorded for the sync: its kind and
        // where its status went (the second buffer of the round).
        let recorded = dev.revoked.recorded();
        assert_eq!(recorded.len(), 1, "round {round}");
        assert_eq!(recorded[0].kind, RequestType::Unmap);
        assert_eq!(
            tail(&d, recorded[0].at, 4),
            [Status::Ok as u8, 0, 0, 0],
            "round {round}"
        );
        let first = *kept.get_or_insert(recorded[0].at);
        assert!(recorded[0].at > first || round == 0, "round {round}");
    }
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
    // Every chain is returned in pop order: the malformed one as the walk
    // meets it, the others as they are handled (all published after the
    // batch's sync).
    assert_eq!(d.used(), Some((u32::from(h0), 4)));
    assert_eq!(d.used(), Some((u32::from(h1), 0)));
    assert_eq!(d.used(), Some((u32::from(h2), 4)));
    assert_eq!(d.used(), None);
    assert_eq!(dev.model.mapping_count(), 0);
}

#[test]
fn a_failed_request_amid_a_batch_is_completed_in_its_place() {
    let (mut d, mut dev) = attached();
    // The unreadable request amid the batch fails alone, its used element
    // in pop order among the others (each completed as it is handled).
    let mut big = attach();
    big.resize(MAX_REQUEST + 1, 0);
    let mut heads = vec![];
    for i in 0..5u64 {
        let m = map(0x40_0000 + i * 0x1000);
        heads.push((d.queue(&[&m], &[4]), 4));
        if i == 1 {
            heads.push((d.queue(&[&big], &[4]), 0));
        }
    }
    d.notify(&mut dev);
    for (head, len) in heads {
        assert_eq!(d.used(), Some((u32::from(head), len)));
    }
    assert_eq!(d.used(), None);
    assert_eq!(dev.model.mapping_count(), 5);
    for i in 0..2u64 {
        let u = unmap(0x40_0000 + i * 0x1000);
        d.queue(&[&u], &[4]);
    }
    d.notify(&mut dev);
    assert_eq!(d.used().map(|u| u.1), Some(4));
    assert_eq!(d.used().map(|u| u.1), Some(4));
    assert_eq!(dev.model.mapping_count(), 3);
}

#[test]
fn a_failed_sync_turns_the_revocable_successes_written_before_it_into_ioerr() {
    let (mut d, mut dev) = attached();
    let m = map(0x50_0000);
    d.queue(&[&m], &[4]);
    d.notify(&mut dev);
    d.used();
    // A MAP (its status stays), an UNMAP (pair path) and an UNMAP of
    // nothing in a longer, split writable part (general path): the sync
    // fails after all three were written.
    let (m2, u, u2) = (map(0x60_0000), unmap(0x50_0000), unmap(0x70_0000));
    let hm = d.queue(&[&m2], &[4]);
    let at_m = d.next_buf - 16;
    let hu = d.queue(&[&u], &[4]);
    let at_u = d.next_buf - 16;
    let hu2 = d.queue(&[&u2], &[6, 6]);
    let at_u2 = d.next_buf - 16;
    dev.model.backend_mut().fail_sync = Some(crate::viommu::backend::BackendError::Hardware);
    d.notify(&mut dev);
    assert_eq!(d.used(), Some((u32::from(hm), 4)));
    assert_eq!(d.used(), Some((u32::from(hu), 4)));
    assert_eq!(d.used(), Some((u32::from(hu2), 12)));
    assert_eq!(tail(&d, at_m, 4), [Status::Ok as u8, 0, 0, 0]);
    assert_eq!(tail(&d, at_u, 4), [Status::Ioerr as u8, 0, 0, 0]);
    // The tail is the last four of the twelve bytes: bytes 2..6 of the
    // second buffer.
    assert_eq!(tail(&d, at_u2, 6), [0, 0, Status::Ioerr as u8, 0, 0, 0]);
    let c = dev.model.counters();
    assert_eq!(c.count(Some(RequestType::Unmap), Some(Status::Ioerr)), 2);
    assert_eq!(c.count(Some(RequestType::Map), Some(Status::Ok)), 2);
    assert_eq!(c.sync_failures, 1);
}

/// A random request's readable bytes: every type, well-formed or not,
/// over a few IOVAs so that MAPs and UNMAPs meet.
fn random_request(rng: &mut crate::test_rng::Rng) -> Vec<u8> {
    use crate::viommu::wire::request::{Detach, Probe};
    let iova = 0x20_0000 + rng.below(6) * 0x1000;
    let mut r = match rng.below(10) {
        0 => attach(),
        1 => Request::Detach(Detach {
            domain: 1,
            endpoint: EP,
            reserved: [0; 8],
        })
        .encode(),
        2..=4 => map(iova),
        5..=7 => unmap(iova),
        8 => Request::Probe(Probe { endpoint: EP }).encode(),
        _ => (0..rng.below(80)).map(|_| rng.next() as u8).collect(),
    };
    if rng.chance(15) && !r.is_empty() {
        let i = rng.index(r.len());
        r[i] = rng.next() as u8;
    }
    hostile_fields(rng, &mut r);
    if rng.chance(8) {
        r.truncate(rng.index(r.len() + 1));
    }
    if rng.chance(4) {
        r.resize(MAX_REQUEST + rng.index(2), 0);
    }
    r
}

/// Perhaps makes a MAP or UNMAP hostile where the typed reads of the
/// common shape look: the head's reserved bytes, a field's bytes (the
/// UNMAP's reserved ones, the MAP's flags), the domain, the length around
/// its layout's (short by one, exact, longer: extra bytes are ignored).
fn hostile_fields(rng: &mut crate::test_rng::Rng, r: &mut Vec<u8>) {
    let Some(&t) = r.first() else { return };
    if t != RequestType::MAP && t != RequestType::UNMAP {
        return;
    }
    if rng.chance(10) {
        r[1 + rng.index(3)] = rng.next() as u8;
    }
    if rng.chance(15) && r.len() >= 28 {
        // UNMAP: reserved; MAP: phys_start's low bytes.
        r[24 + rng.index(4)] = 1 + rng.below(255) as u8;
    }
    if rng.chance(10) && r.len() >= 36 {
        // MAP: flags (unknown bits too).
        r[32..36].copy_from_slice(&(rng.next() as u32 & 0x1f).to_le_bytes());
    }
    if rng.chance(5) && r.len() >= 8 {
        r[4..8].copy_from_slice(&(rng.below(3) as u32).to_le_bytes());
    }
    if rng.chance(10) {
        let layout = if t == RequestType::MAP { 36 } else { 28 };
        r.resize(layout - 1 + rng.index(8), 0xee);
    }
}

/// The same random notifies, byte for byte, on two devices over two
/// memories: one through the device's request path as the hypervisor runs
/// it, one through the general walk and the general chain handling only.
struct Twin {
    mem: [VecMemory; 2],
    queues: [[Queue; 2]; 2],
    dev: [ViommuDevice<FakeBackend>; 2],
    next_buf: u64,
    avail: u16,
}

impl Twin {
    fn new() -> Self {
        let d = [Driver::new(), Driver::new()];
        let [d0, d1] = d;
        Twin {
            queues: [d0.queues, d1.queues],
            mem: [d0.mem, d1.mem],
            dev: [device(), device()],
            next_buf: BUFS,
            avail: 0,
        }
    }

    fn write(&self, gpa: u64, bytes: &[u8]) {
        for m in &self.mem {
            m.write(gpa, bytes).unwrap();
        }
    }

    /// A fresh buffer of `len` bytes (`bytes` first, then 0xee), at a
    /// random misalignment.
    fn buffer(&mut self, rng: &mut crate::test_rng::Rng, bytes: &[u8], len: usize) -> u64 {
        let at = self.next_buf + rng.below(8);
        let mut fill = vec![0xee; len];
        fill[..bytes.len().min(len)].copy_from_slice(&bytes[..bytes.len().min(len)]);
        self.write(at, &fill);
        self.next_buf = (at + len as u64 + 16) & !7;
        at
    }

    fn desc(&self, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let mut d = [0u8; 16];
        d[..8].copy_from_slice(&addr.to_le_bytes());
        d[8..12].copy_from_slice(&len.to_le_bytes());
        d[12..14].copy_from_slice(&flags.to_le_bytes());
        d[14..16].copy_from_slice(&next.to_le_bytes());
        self.write(DESC + 16 * u64::from(i % QSIZE), &d);
    }

    /// Queues up to a queue's worth of random chains, most of them the
    /// common pair, some of other shapes, some malformed; then perhaps a
    /// hostile ring index.
    fn fill(&mut self, rng: &mut crate::test_rng::Rng) {
        const N: u16 = VIRTQ_DESC_F_NEXT;
        const W: u16 = VIRTQ_DESC_F_WRITE;
        self.next_buf = BUFS;
        let mut next_desc = 0u16;
        let count = 1 + rng.below(u64::from(QSIZE) / 2) as u16;
        for _ in 0..count {
            let req = random_request(rng);
            let wlen = rng.pick(&[4usize, 4, 4, 4, 8, 36, 3, 0, 1, 68, 520, 600]);
            let head = next_desc % QSIZE;
            let r = self.buffer(rng, &req, req.len());
            let w = self.buffer(rng, &[], wlen);
            let (rl, wl) = (req.len() as u32, wlen as u32);
            // (addr, len, flags) of each descriptor, chained in order.
            let mut parts = match rng.below(20) {
                0 => vec![
                    (r, rl / 2, 0),
                    (r + u64::from(rl / 2), rl - rl / 2, 0),
                    (w, wl, W),
                ],
                1 => vec![
                    (r, rl, 0),
                    (w, wl / 2, W),
                    (w + u64::from(wl / 2), wl - wl / 2, W),
                ],
                2 => vec![(r, rl, 0)],
                3 => vec![(w, wl, W)],
                4 => vec![(w, wl, W), (r, rl, 0)],
                5 => vec![(r, rl, 0), (w, wl, W | VIRTQ_DESC_F_INDIRECT)],
                6 => vec![(RAM + RAM_LEN as u64 - rng.below(8), rl, 0), (w, wl, W)],
                7 => vec![(r, rl, 0), (u64::MAX - rng.below(8), wl, W)],
                8 => vec![(r, rl, 0), (w, u32::MAX - rng.below(4) as u32, W)],
                _ => vec![(r, rl, 0), (w, wl, W)],
            };
            if rng.chance(3) {
                parts.push((w, 0, W));
            }
            let n = parts.len() as u16;
            for (i, (addr, len, flags)) in parts.into_iter().enumerate() {
                let i = i as u16;
                let last = i + 1 == n;
                let mut next = (next_desc + i + 1) % QSIZE;
                if rng.chance(2) {
                    next = QSIZE + rng.below(4) as u16;
                }
                let flags = flags | if last { 0 } else { N };
                self.desc(next_desc + i, addr, len, flags, next);
            }
            next_desc = next_desc.wrapping_add(n);
            let mut head_entry = head;
            if rng.chance(2) {
                head_entry = QSIZE + rng.below(100) as u16;
            }
            let slot = u64::from(self.avail % QSIZE);
            self.write(AVAIL + 4 + 2 * slot, &head_entry.to_le_bytes());
            self.avail = self.avail.wrapping_add(1);
        }
        let mut idx = self.avail;
        if rng.chance(3) {
            idx = idx.wrapping_add(QSIZE + 1 + rng.below(50) as u16);
        }
        self.write(AVAIL + 2, &idx.to_le_bytes());
        self.write(AVAIL, &(rng.below(2) as u16).to_le_bytes());
    }

    /// One notify on both; asserts they agree on everything observable.
    fn notify(&mut self, fail_sync: bool) -> crate::virtio::device::ContextOutcome {
        let mut outcomes = vec![];
        for (i, ((mem, queues), dev)) in self
            .mem
            .iter()
            .zip(self.queues.iter_mut())
            .zip(self.dev.iter_mut())
            .enumerate()
        {
            if fail_sync {
                dev.model.backend_mut().fail_sync =
                    Some(crate::viommu::backend::BackendError::Hardware);
            }
            let mut ctx = QueueContext::new(mem, queues);
            let r = if i == 0 {
                dev.notify(REQUESTQ, &mut ctx)
            } else {
                dev.notify_general(&mut ctx)
            };
            assert_eq!(r, NotifyResult::Done);
            outcomes.push(ctx.finish());
        }
        assert_eq!(outcomes[0], outcomes[1], "outcome");
        assert_eq!(self.queues[0], self.queues[1], "queues");
        let mut ram = [vec![0u8; RAM_LEN], vec![0u8; RAM_LEN]];
        for (m, r) in self.mem.iter().zip(ram.iter_mut()) {
            m.read(RAM, r).unwrap();
        }
        assert!(ram[0] == ram[1], "guest RAM differs");
        let [a, b] = &self.dev;
        assert_eq!(a.model.counters(), b.model.counters(), "counters");
        assert_eq!(a.model.mapping_count(), b.model.mapping_count());
        assert_eq!(
            a.model.mappings(1).collect::<Vec<_>>(),
            b.model.mappings(1).collect::<Vec<_>>()
        );
        let (fa, fb) = (a.model.backend(), b.model.backend());
        assert_eq!(fa.calls, fb.calls, "backend calls");
        assert_eq!(fa.domains, fb.domains);
        assert_eq!(fa.bound, fb.bound);
        outcomes[0]
    }
}

#[test]
fn the_pair_path_and_the_general_path_agree_on_random_and_hostile_batches() {
    let mut rng = crate::test_rng::Rng(0x9a1f_d00d);
    let (mut fatal, mut bad, mut failed_syncs, mut notified) = (0, 0, 0, 0);
    for _ in 0..300 {
        let mut twin = Twin::new();
        for _ in 0..8 {
            twin.fill(&mut rng);
            let fail_sync = rng.chance(15);
            let outcome = twin.notify(fail_sync);
            fatal += usize::from(outcome.fatal.is_some());
            bad += outcome.bad_chains;
            failed_syncs += usize::from(fail_sync);
            notified += usize::from(outcome.notify);
            if outcome.fatal.is_some() {
                break;
            }
        }
    }
    assert!(fatal > 50, "{fatal} fatal");
    assert!(bad > 500, "{bad} malformed chains");
    assert!(failed_syncs > 100, "{failed_syncs} failed syncs");
    assert!(notified > 100, "{notified} used-buffer notifications");
}

#[test]
fn a_tail_longer_than_a_pair_s_writable_buffer_is_not_written_past_it() {
    // Not a response the model gives (it answers a writable part shorter
    // than the tail with nothing), but the pair path writes without a
    // range check, so it must not trust that: a 2-byte buffer gets 2
    // bytes, as through the general path.
    let mem = VecMemory::new(RAM, RAM_LEN);
    let at = BUFS + 1;
    mem.write(at, &[0xee; 8]).unwrap();
    let pair = Pair {
        head: 0,
        readable: (BUFS + 0x100, 8),
        writable: (at, 2),
    };
    let response = Response::Status {
        len: TAIL_LEN,
        status: Status::Ok,
    };
    let (written, _) = write_pair_response(&pair, &mem, &response);
    assert_eq!(written, 2);
    let mut b = [0u8; 8];
    mem.read(at, &mut b).unwrap();
    assert_eq!(b, [Status::Ok as u8, 0, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee]);
}

/// The pair path's request copy (a constant `WINDOW`-byte copy when the
/// request is no longer and those bytes lie in RAM) gives the model
/// exactly the request's bytes, as a plain read of its `len` bytes does:
/// every length up to past `MAX_REQUEST`, at every misalignment, in the
/// middle of RAM and ending at or just before RAM's end (where the window
/// does not fit), over a buffer holding other bytes beforehand.
#[test]
fn the_pair_copy_gives_exactly_the_request_s_bytes() {
    let mem = VecMemory::new(RAM, RAM_LEN);
    let mut rng = crate::test_rng::Rng(0x51de_c0de);
    let fill: Vec<u8> = (0..RAM_LEN).map(|_| rng.below(256) as u8).collect();
    mem.write(RAM, &fill).unwrap();
    let end = RAM + RAM_LEN as u64;
    let mut buf = RequestBuf([0; MAX_REQUEST]);
    let mut windowed = 0;
    for len in 0..MAX_REQUEST as u32 + 9 {
        let mut starts: Vec<u64> = (0..8).map(|k| BUFS + k).collect();
        starts.extend((0..2 * WINDOW as u64).map(|k| end - u64::from(len) - k));
        for gpa in starts {
            // The pair walk's guarantee: the buffer lies in RAM.
            assert!(mem.check(gpa, u64::from(len)).is_ok());
            buf.0.fill(0xa5 ^ len as u8);
            let got = match copy_pair_request(&mem, gpa, len as usize, &mut buf) {
                PairRequest::Window(words) => {
                    // The buffer untouched; the words are the bytes.
                    assert!(buf.0.iter().all(|&b| b == 0xa5 ^ len as u8));
                    let mut w = RequestBuf([0; MAX_REQUEST]);
                    w.set_words(&words);
                    Some(w.0[..len as usize].to_vec())
                }
                PairRequest::Copied => Some(buf.0[..len as usize].to_vec()),
                PairRequest::Oversized => None,
            };
            if len as usize > MAX_REQUEST {
                assert_eq!(got, None, "len {len}");
                continue;
            }
            let mut want = vec![0u8; len as usize];
            mem.read(gpa, &mut want).unwrap();
            assert_eq!(got, Some(want), "len {len} at {gpa:#x}");
            windowed += usize::from(len as usize <= WINDOW && gpa + WINDOW as u64 <= end);
        }
    }
    // Both copies ran.
    assert!(windowed > 1000, "{windowed}");
}

/// The mask test of `revocable` answers as the list of the kinds whose
/// success a failed sync revokes, for every kind and none.
#[test]
fn revocable_is_attach_detach_and_unmap() {
    for k in RequestType::ALL {
        let want = matches!(
            k,
            RequestType::Attach | RequestType::Detach | RequestType::Unmap
        );
        assert_eq!(k.revocable(), want, "{k:?}");
    }
}

/// The model's entry for the common shape (`respond_tail`: a MAP or UNMAP
/// read from the window, answered in the tail alone) against the general
/// entry (`handle_request` with a 4-byte writable part) on the same random
/// and hostile requests, two models in lockstep: it answers exactly the
/// requests it should (MAP and UNMAP at least their layout's length) with
/// the general entry's kind and status, and leaves the same counters,
/// mappings and backend calls. The bytes of the window past the request
/// are junk that neither may read.
#[test]
fn the_tail_entry_and_the_general_entry_agree_on_random_and_hostile_requests() {
    use crate::viommu::model::{Completion, Response};
    use crate::viommu::wire::TAIL_LEN;
    use crate::viommu::wire::request::WINDOW;
    let mut rng = crate::test_rng::Rng(0x7a11_5eed);
    let (mut fast, mut general) = (0usize, 0usize);
    let mut statuses = alloc::collections::BTreeSet::new();
    for _ in 0..200 {
        let mut dev = [device(), device()];
        for d in &mut dev {
            d.model.handle_request(&attach(), TAIL_LEN);
        }
        for _ in 0..64 {
            let mut req = random_request(&mut rng);
            if rng.chance(20) && !req.is_empty() {
                req[0] = rng.pick(&[0, 1, 2, 3, 4, 5, 6, 0xff]);
            }
            let len = req.len();
            let mut window = [0u8; WINDOW];
            for (i, b) in window.iter_mut().enumerate() {
                *b = req.get(i).copied().unwrap_or(rng.next() as u8);
            }
            let [a, b] = &mut dev;
            let want = b.model.handle_request(&req, TAIL_LEN);
            let words = crate::virtio::memory::words_le(&window);
            match a.model.respond_tail(words, len) {
                Some((kind, status)) => {
                    fast += 1;
                    statuses.insert(status);
                    assert!(
                        (kind == RequestType::Map && len >= 36)
                            || (kind == RequestType::Unmap && len >= 28)
                    );
                    let got = Completion {
                        kind: Some(kind),
                        response: Response::Status {
                            len: TAIL_LEN,
                            status,
                        },
                    };
                    assert_eq!(got, want, "{req:02x?}");
                }
                None => {
                    general += 1;
                    assert!(
                        !matches!(
                            (want.kind, &want.response),
                            (Some(RequestType::Map), Response::Status { .. })
                                if len >= 36
                        ) && !matches!(
                            (want.kind, &want.response),
                            (Some(RequestType::Unmap), Response::Status { .. })
                                if len >= 28
                        ),
                        "the tail entry refused {req:02x?}"
                    );
                    assert_eq!(a.model.handle_request(&req, TAIL_LEN), want);
                }
            }
            assert_eq!(a.model.counters(), b.model.counters(), "counters");
            assert_eq!(a.model.mapping_count(), b.model.mapping_count());
            for id in 0..3 {
                assert!(a.model.mappings(id).eq(b.model.mappings(id)));
            }
            let (fa, fb) = (a.model.backend(), b.model.backend());
            assert_eq!(fa.calls, fb.calls, "backend calls");
            assert_eq!(fa.domains, fb.domains);
        }
    }
    assert!(fast > 5000 && general > 1000, "{fast} {general}");
    // OK, INVAL (reserved, flags), RANGE, NOENT at least.
    assert!(statuses.len() >= 4, "{statuses:?}");
}
