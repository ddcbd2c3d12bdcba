//! The ring work's fast paths against the general ones, on the same
//! random and hostile rings:
//! - the walk's pair path for the common chain (one readable descriptor,
//!   one writable) against the general walk alone: every pop must give
//!   the same result, the same chain and leave the queue in the same
//!   state, whichever path took it; over the fake memory and over the
//!   hypervisor's own `GuestRam` (the type the bench's queue work is
//!   compiled for);
//! - a context's sessions over `GuestRam`, whose ring accesses skip the
//!   range check once the areas are checked, against the same work over
//!   the fake, whose accesses all check: the same chains, used ring,
//!   outcome and RAM;
//! - a session publishing itself when it ends (`publish_at_end`, the
//!   request path) against one left to the context's finish: the same
//!   outcome, barriers, queue and RAM.

use super::fake::{BUF_BASE, RAM_BASE, RAM_SIZE, Ring, ring_base};
use crate::mm::layout::Region;
use crate::test_rng::Rng;
use crate::virtio::chain::Chain;
use crate::virtio::device::{ContextOutcome, QueueContext};
use crate::virtio::memory::{Barrier, GuestMemory, MemError, VecMemory, check_in_region};
use crate::virtio::queue::{
    Queue, QueueError, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
};
use crate::vm::ram::GuestRam;

const N: u16 = VIRTQ_DESC_F_NEXT;
const W: u16 = VIRTQ_DESC_F_WRITE;
const I: u16 = VIRTQ_DESC_F_INDIRECT;
const END: u64 = RAM_BASE + RAM_SIZE as u64;

/// Fake RAM whose checks accept `claim` bytes from `RAM_BASE` (up to
/// 8 GiB, so that two buffers can total 2^32 or more without being
/// allocated); its first megabyte is real.
struct Claim {
    inner: VecMemory,
    claim: u64,
}

impl GuestMemory for Claim {
    fn check(&self, gpa: u64, len: u64) -> Result<(), MemError> {
        check_in_region(RAM_BASE, self.claim, gpa, len)
    }
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        self.inner.read(gpa, buf)
    }
    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        self.inner.write(gpa, data)
    }
}

/// A buffer address biased towards the edges of RAM and beyond.
fn address(rng: &mut Rng) -> u64 {
    match rng.below(8) {
        0..=3 => BUF_BASE + rng.below(0x1000),
        4 => END - rng.below(64),
        5 => RAM_BASE.wrapping_sub(rng.below(64)),
        6 => u64::MAX - rng.below(64),
        _ => rng.next(),
    }
}

/// A length biased towards 0, small values and the 2^32 total.
fn length(rng: &mut Rng) -> u32 {
    match rng.below(8) {
        0 => 0,
        1..=4 => 1 + rng.below(256) as u32,
        5 => 0x8000_0000 + rng.below(3) as u32,
        6 => u32::MAX - rng.below(3) as u32,
        _ => rng.next() as u32,
    }
}

/// Descriptor flags: the common ones and every hostile mix.
fn flags(rng: &mut Rng) -> u16 {
    rng.pick(&[0, N, W, N | W, I, N | I, W | I, N | W | I, N | 8, W | 0x80])
        | if rng.chance(3) { rng.next() as u16 } else { 0 }
}

/// A `next` index: mostly in range, sometimes the size or beyond.
fn next(rng: &mut Rng, size: u16) -> u16 {
    match rng.below(10) {
        0 => size,
        1 => rng.next() as u16,
        _ => rng.below(u64::from(size)) as u16,
    }
}

/// What the pops of one ring came to.
#[derive(Default)]
struct Tally {
    pairs: u32,
    other_chains: u32,
    bad_chains: u32,
    fatal: u32,
}

/// Writes a random ring (16 descriptors, some of them good
/// readable-writable pairs, some near misses of one, and a random driver
/// area) through `raw`; returns it.
fn random_ring(raw: &dyn Fn(u64, &[u8]), rng: &mut Rng) -> Ring {
    let size = rng.pick(&[1u16, 2, 4, 8, 16]);
    let ring = Ring::new(ring_base(0), size);
    let desc = |i: u16, addr: u64, len: u32, flags: u16, next: u16| {
        let gpa = ring.desc + 16 * u64::from(i);
        raw(gpa, &addr.to_le_bytes());
        raw(gpa + 8, &len.to_le_bytes());
        raw(gpa + 12, &flags.to_le_bytes());
        raw(gpa + 14, &next.to_le_bytes());
    };
    let mut pairs = alloc::vec::Vec::new();
    for i in 0..16 {
        if i < size && rng.chance(50) {
            pairs.push(i);
            // A good pair from `i`, then perhaps one hostile change.
            let j = rng.below(u64::from(size)) as u16;
            let (mut a0, mut l0, mut f0, mut n0) = (address(rng), 1 + rng.below(64) as u32, N, j);
            let (mut a1, mut l1, mut f1) = (BUF_BASE + rng.below(0x1000), 4, W);
            a0 = if rng.chance(80) {
                BUF_BASE + rng.below(0x1000)
            } else {
                a0
            };
            match rng.below(12) {
                0 => l0 = length(rng),
                1 => l1 = length(rng),
                2 => f0 = flags(rng),
                3 => f1 = flags(rng),
                4 => n0 = next(rng, size),
                5 => a1 = address(rng),
                6 => (l0, l1) = (0x8000_0000, 0x8000_0000 - rng.below(2) as u32),
                _ => {}
            }
            desc(i, a0, l0, f0, n0);
            if j != i {
                desc(j, a1, l1, f1, next(rng, size));
            }
        } else {
            desc(i, address(rng), length(rng), flags(rng), next(rng, size));
        }
    }
    for slot in 0..u64::from(size) {
        let head = if !pairs.is_empty() && rng.chance(70) {
            rng.pick(&pairs)
        } else if rng.chance(90) {
            rng.below(u64::from(size)) as u16
        } else {
            rng.next() as u16
        };
        raw(ring.avail + 4 + 2 * slot, &head.to_le_bytes());
    }
    let avail_idx = if rng.chance(95) {
        rng.below(u64::from(size) + 1) as u16
    } else {
        rng.next() as u16
    };
    raw(ring.avail + 2, &avail_idx.to_le_bytes());

    ring
}

/// An enabled queue over `ring`.
/// A fake guest memory holding a random ring ([`random_ring`]) whose
/// `avail.flags` is randomly 0 or NO_INTERRUPT, the ring, and an image of
/// the whole memory (to copy into the other memories compared).
fn random_memory(rng: &mut Rng) -> (VecMemory, Ring, alloc::vec::Vec<u8>) {
    let fake = VecMemory::new(RAM_BASE, RAM_SIZE);
    let raw = |gpa: u64, bytes: &[u8]| fake.write(gpa, bytes).unwrap();
    let ring = random_ring(&raw, rng);
    raw(ring.avail, &(rng.below(2) as u16).to_le_bytes());
    let mut image = alloc::vec![0u8; RAM_SIZE];
    fake.read(RAM_BASE, &mut image).unwrap();
    (fake, ring, image)
}

fn queue_of<M: GuestMemory>(mem: &M, ring: &Ring) -> Queue {
    let mut q = Queue::new(16);
    q.set_size(u32::from(ring.size));
    q.set_desc_addr(ring.desc);
    q.set_avail_addr(ring.avail);
    q.set_used_addr(ring.used);
    q.enable(mem).unwrap();
    q
}

/// Writes a random ring, then pops it through both walks and compares
/// every result.
fn one_ring<M: GuestMemory>(mem: &M, raw: &dyn Fn(u64, &[u8]), rng: &mut Rng, tally: &mut Tally) {
    let ring = random_ring(raw, rng);
    let size = ring.size;
    let q = queue_of(mem, &ring);
    let (mut fast, mut general) = (q.clone(), q);
    let (mut cf, mut cg) = (Chain::default(), Chain::default());
    for _ in 0..=size {
        let rf = fast.pop_into(mem, &mut cf);
        let rg = general.pop_into_general(mem, &mut cg);
        assert_eq!(rf, rg);
        assert_eq!(fast, general);
        match rf {
            Ok(true) => {
                assert_eq!(cf, cg);
                assert_eq!(
                    (cf.readable_len(), cf.writable_len()),
                    (cg.readable_len(), cg.writable_len())
                );
                if (cf.readable.len(), cf.writable.len()) == (1, 1) {
                    tally.pairs += 1;
                } else {
                    tally.other_chains += 1;
                }
            }
            Ok(false) => break,
            Err(QueueError::BadChain { .. }) => tally.bad_chains += 1,
            Err(_) => {
                tally.fatal += 1;
                break;
            }
        }
    }
}

fn check_tally(tally: &Tally) {
    // Both paths were exercised, with and without errors.
    assert!(tally.pairs > 1000, "{} pairs", tally.pairs);
    assert!(tally.other_chains > 1000, "{} others", tally.other_chains);
    assert!(tally.bad_chains > 2000, "{} bad chains", tally.bad_chains);
    assert!(tally.fatal > 100, "{} fatal", tally.fatal);
}

#[test]
fn the_pair_walk_and_the_general_walk_agree_on_hostile_rings() {
    let mut rng = Rng(0x5eed_f7a1c);
    let mut tally = Tally::default();
    for _ in 0..3000 {
        let claim = if rng.chance(20) {
            8 << 30
        } else {
            RAM_SIZE as u64
        };
        let mem = Claim {
            inner: VecMemory::new(RAM_BASE, RAM_SIZE),
            claim,
        };
        let raw = |gpa: u64, bytes: &[u8]| mem.inner.write(gpa, bytes).unwrap();
        one_ring(&mem, &raw, &mut rng, &mut tally);
    }
    check_tally(&tally);
}

#[test]
fn the_pair_walk_and_the_general_walk_agree_over_guest_ram() {
    let layout = core::alloc::Layout::from_size_align(RAM_SIZE, 4096).unwrap();
    // SAFETY: a non-zero layout.
    let host = unsafe { alloc::alloc::alloc_zeroed(layout) };
    assert!(!host.is_null());
    // SAFETY: the block is ours until it is freed below, after the last
    // use of `mem`.
    let mem = unsafe { GuestRam::new(Region::new(RAM_BASE, RAM_SIZE as u64), host as u64) };
    let raw = |gpa: u64, bytes: &[u8]| mem.write(gpa, bytes).unwrap();
    let mut rng = Rng(0x9a7e_5eed);
    let mut tally = Tally::default();
    for _ in 0..3000 {
        one_ring(&mem, &raw, &mut rng, &mut tally);
    }
    // SAFETY: allocated above with this layout; `mem` is not used again.
    unsafe { alloc::alloc::dealloc(host, layout) };
    check_tally(&tally);
}

/// `GuestRam`'s window read (five doublewords straight into registers,
/// aligned or not) gives the bytes a plain checked read gives, as
/// little-endian words, and the default method (over the fake memory)
/// the same: every misalignment, at RAM's start, middle and last window.
#[test]
fn the_window_read_gives_the_bytes_as_words_aligned_or_not() {
    use crate::virtio::memory::{WINDOW_WORDS, words_le};
    let ram = TestRam::new();
    let fake = VecMemory::new(RAM_BASE, RAM_SIZE);
    let mut rng = Rng(0x3e1d_0f5e);
    let fill: alloc::vec::Vec<u8> = (0..RAM_SIZE).map(|_| rng.next() as u8).collect();
    ram.mem.write(RAM_BASE, &fill).unwrap();
    fake.write(RAM_BASE, &fill).unwrap();
    let len = 8 * WINDOW_WORDS as u64;
    let end = RAM_BASE + RAM_SIZE as u64;
    let mut starts: alloc::vec::Vec<u64> = (0..16).map(|k| RAM_BASE + k).collect();
    starts.extend((0..16).map(|k| RAM_BASE + 0x1234 + k));
    starts.extend((0..16).map(|k| end - len - k));
    for gpa in starts {
        assert!(ram.mem.check(gpa, len).is_ok());
        let mut bytes = [0u8; 8 * WINDOW_WORDS];
        ram.mem.read(gpa, &mut bytes).unwrap();
        let want = words_le(&bytes);
        // SAFETY: `gpa..gpa + len` checked just above, in each memory.
        let (got, default) = unsafe {
            (
                ram.mem.read_window_direct(ram.mem.direct(gpa)),
                fake.read_window_direct(fake.direct(gpa)),
            )
        };
        assert_eq!(got, want, "{gpa:#x}");
        assert_eq!(default, want, "{gpa:#x}");
        assert_eq!(want[0] as u8, bytes[0]);
        assert_eq!(
            (want[4] >> 32) as u32,
            u32::from_le_bytes([bytes[36], bytes[37], bytes[38], bytes[39]])
        );
    }
}

/// Guest RAM for a test: `RAM_SIZE` zeroed bytes at `RAM_BASE`, freed
/// when dropped.
struct TestRam {
    host: *mut u8,
    mem: GuestRam,
}

impl TestRam {
    const LAYOUT: core::alloc::Layout = match core::alloc::Layout::from_size_align(RAM_SIZE, 4096) {
        Ok(l) => l,
        Err(_) => panic!(),
    };

    fn new() -> Self {
        // SAFETY: a non-zero layout.
        let host = unsafe { alloc::alloc::alloc_zeroed(Self::LAYOUT) };
        assert!(!host.is_null());
        // SAFETY: the block is ours until `drop`, after the last use of
        // `mem` (a field of this value); page-aligned like `RAM_BASE`.
        let mem = unsafe { GuestRam::new(Region::new(RAM_BASE, RAM_SIZE as u64), host as u64) };
        TestRam { host, mem }
    }
}

impl Drop for TestRam {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { alloc::alloc::dealloc(self.host, Self::LAYOUT) };
    }
}

/// Pops every chain of queue 0 through a context (a session: areas
/// checked once, ring accesses unchecked where the memory allows),
/// answers each with a used length of its head plus 3, and finishes:
/// the popped heads and the outcome.
fn drain<M: GuestMemory>(
    mem: &M,
    queue: &mut Queue,
) -> (alloc::vec::Vec<u16>, crate::virtio::device::ContextOutcome) {
    let mut queues = [queue.clone()];
    let mut ctx = crate::virtio::device::QueueContext::new(mem, &mut queues);
    let mut heads = alloc::vec::Vec::new();
    while let Some(chain) = ctx.pop(0) {
        heads.push(chain.head);
        ctx.push_used(0, chain.head, u32::from(chain.head) + 3)
            .unwrap();
    }
    let outcome = ctx.finish();
    let [q] = queues;
    *queue = q;
    (heads, outcome)
}

#[test]
fn guest_ram_without_per_access_checks_matches_the_checked_fake() {
    // The same random rings in the hypervisor's guest RAM (whose ring
    // accesses in a session skip the range check) and in the fake (whose
    // accesses all check): the same chains popped, the same used ring,
    // flags and outcome, the same bytes of RAM after.
    let ram = TestRam::new();
    let mut rng = Rng(0x7e57_5eed);
    let (mut chains, mut fatal) = (0, 0);
    for _ in 0..1000 {
        let (fake, ring, mut image) = random_memory(&mut rng);
        ram.mem.write(RAM_BASE, &image).unwrap();

        let (mut qf, mut qr) = (queue_of(&fake, &ring), queue_of(&ram.mem, &ring));
        for _ in 0..2 {
            let a = drain(&fake, &mut qf);
            let b = drain(&ram.mem, &mut qr);
            assert_eq!(a, b);
            assert_eq!(qf, qr);
            chains += a.0.len();
            fatal += usize::from(a.1.fatal.is_some());
            // The driver makes a few more entries available.
            let idx = fake.read_u16(ring.avail + 2).unwrap();
            let more = idx.wrapping_add(rng.below(3) as u16).to_le_bytes();
            fake.write(ring.avail + 2, &more).unwrap();
            ram.mem.write(ring.avail + 2, &more).unwrap();
        }
        let mut after = alloc::vec![0u8; RAM_SIZE];
        ram.mem.read(RAM_BASE, &mut after).unwrap();
        fake.read(RAM_BASE, &mut image).unwrap();
        assert!(after == image, "RAM differs");
    }
    assert!(chains > 1000, "{chains} chains");
    assert!(fatal > 50, "{fatal} fatal");
}

/// Guest memory that logs the barriers issued through it.
struct Logged<'a, M: GuestMemory> {
    inner: &'a M,
    barriers: core::cell::RefCell<alloc::vec::Vec<Barrier>>,
}

impl<M: GuestMemory> GuestMemory for Logged<'_, M> {
    fn check(&self, gpa: u64, len: u64) -> Result<(), MemError> {
        self.inner.check(gpa, len)
    }
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        self.inner.read(gpa, buf)
    }
    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        self.inner.write(gpa, data)
    }
    fn barrier(&self, kind: Barrier) {
        self.barriers.borrow_mut().push(kind);
    }
    // The direct accessors forwarded too (all or none), so that over
    // `GuestRam` the session's unchecked accesses are the ones tested.
    fn direct(&self, gpa: u64) -> u64 {
        self.inner.direct(gpa)
    }
    unsafe fn read_u16_direct(&self, addr: u64) -> u16 {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.inner.read_u16_direct(addr) }
    }
    unsafe fn read_u64_pair_direct(&self, addr: u64) -> (u64, u64) {
        // SAFETY: as above.
        unsafe { self.inner.read_u64_pair_direct(addr) }
    }
    unsafe fn read_direct(&self, addr: u64, buf: &mut [u8]) {
        // SAFETY: as above.
        unsafe { self.inner.read_direct(addr, buf) }
    }
    unsafe fn read_window_direct(&self, addr: u64) -> [u64; crate::virtio::memory::WINDOW_WORDS] {
        // SAFETY: as above.
        unsafe { self.inner.read_window_direct(addr) }
    }
    unsafe fn write_u16_direct(&self, addr: u64, value: u16) {
        // SAFETY: as above.
        unsafe { self.inner.write_u16_direct(addr, value) }
    }
    unsafe fn write_u32_direct(&self, addr: u64, value: u32) {
        // SAFETY: as above.
        unsafe { self.inner.write_u32_direct(addr, value) }
    }
    unsafe fn write_u32_pair_direct(&self, addr: u64, lo: u32, hi: u32) {
        // SAFETY: as above.
        unsafe { self.inner.write_u32_pair_direct(addr, lo, hi) }
    }
}

/// What [`session_drain`] saw: the popped heads, the `push_used` results,
/// the outcome and the barriers issued.
type Drained = (
    alloc::vec::Vec<u16>,
    alloc::vec::Vec<Result<(), QueueError>>,
    ContextOutcome,
    alloc::vec::Vec<Barrier>,
);

/// Drains queue 0 through one session, answering each chain with a used
/// length of its head plus 3 (then perhaps pushing the hostile id
/// `extra`); the session publishes itself when it ends (`publish`: the
/// request path) or leaves that to the context's finish: the popped
/// heads, the `push_used` results, the outcome and the barriers issued.
fn session_drain<M: GuestMemory>(
    mem: &M,
    queue: &mut Queue,
    extra: Option<u16>,
    publish: bool,
) -> Drained {
    let logged = Logged {
        inner: mem,
        barriers: core::cell::RefCell::new(alloc::vec::Vec::new()),
    };
    let mut queues = [queue.clone()];
    let mut ctx = QueueContext::new(&logged, &mut queues);
    let (mut heads, mut pushes) = (alloc::vec::Vec::new(), alloc::vec::Vec::new());
    if let Some(mut s) = ctx.session(0) {
        if publish {
            s.publish_at_end();
        }
        let mut chain = Chain::default();
        while s.pop_into(&mut chain) {
            heads.push(chain.head);
            pushes.push(s.push_used(chain.head, u32::from(chain.head) + 3));
        }
        if let Some(id) = extra {
            pushes.push(s.push_used(id, 1));
        }
    }
    let outcome = ctx.finish();
    let [q] = queues;
    *queue = q;
    let barriers = logged.barriers.into_inner();
    (heads, pushes, outcome, barriers)
}

#[test]
fn a_session_publishing_itself_matches_the_context_finishing() {
    // The request path's session publishes itself (`used.idx` and the
    // notification decision when it ends, the context's finish then has
    // no queue to visit); any other user leaves both to the context's
    // finish. On the same random and hostile rings (bad
    // chains, fatal errors, hostile used ids, NO_INTERRUPT either way,
    // more entries made available between notifies): the same heads,
    // results, outcome (notification, fatal error, bad chains), barriers
    // in the same order, the same queue state and the same RAM, over the
    // fake and over the hypervisor's `GuestRam`.
    let ram = TestRam::new();
    let mut rng = Rng(0x9b1e_5eed);
    let (mut chains, mut fatal, mut notified, mut quiet) = (0, 0, 0, 0);
    for _ in 0..1500 {
        let (fake, ring, mut image) = random_memory(&mut rng);
        let other = VecMemory::new(RAM_BASE, RAM_SIZE);
        other.write(RAM_BASE, &image).unwrap();
        ram.mem.write(RAM_BASE, &image).unwrap();

        let mut qf = queue_of(&fake, &ring);
        let (mut qo, mut qr) = (qf.clone(), queue_of(&ram.mem, &ring));
        for _ in 0..3 {
            let extra = match rng.below(4) {
                0 => Some(rng.below(u64::from(ring.size)) as u16),
                1 => Some(rng.next() as u16),
                _ => None,
            };
            let a = session_drain(&fake, &mut qf, extra, false);
            let b = session_drain(&other, &mut qo, extra, true);
            let c = session_drain(&ram.mem, &mut qr, extra, true);
            assert_eq!(a, b);
            assert_eq!(a, c);
            assert_eq!(qf, qo);
            assert_eq!(qf, qr);
            chains += a.0.len();
            fatal += usize::from(a.2.fatal.is_some());
            if a.2.notify {
                notified += 1;
            } else {
                quiet += 1;
            }
            // The driver makes a few more entries available and perhaps
            // flips NO_INTERRUPT.
            let idx = fake.read_u16(ring.avail + 2).unwrap();
            let more = idx.wrapping_add(rng.below(3) as u16).to_le_bytes();
            let flags = (rng.below(2) as u16).to_le_bytes();
            for m in [&fake, &other] {
                m.write(ring.avail + 2, &more).unwrap();
                m.write(ring.avail, &flags).unwrap();
            }
            ram.mem.write(ring.avail + 2, &more).unwrap();
            ram.mem.write(ring.avail, &flags).unwrap();
        }
        let mut after = alloc::vec![0u8; RAM_SIZE];
        for m in [&other as &dyn GuestMemory, &ram.mem] {
            m.read(RAM_BASE, &mut after).unwrap();
            fake.read(RAM_BASE, &mut image).unwrap();
            assert!(after == image, "RAM differs");
        }
    }
    assert!(chains > 1000, "{chains} chains");
    assert!(fatal > 50, "{fatal} fatal");
    assert!(notified > 500 && quiet > 500, "{notified} / {quiet}");
}
