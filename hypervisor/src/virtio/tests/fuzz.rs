//! A seeded fuzz run (xorshift, no dependency): random descriptors, ring
//! bytes, register accesses, notifications, polls and resets against the
//! echo device. Nothing may panic, and the device may never even try to
//! write outside guest RAM (the fake memory counts refused writes).

use super::fake::{BUF_BASE, Guest, RAM_BASE, RAM_SIZE, Ring, ring_base};
use crate::virtio::memory::GuestMemory;
use crate::virtio::mmio::regs::WINDOW_SIZE;

const END: u64 = RAM_BASE + RAM_SIZE as u64;
/// Bytes from `ring_base(0)` the fuzzer scribbles over (both queues' rings
/// and a little beyond).
const SCRIBBLE: u64 = 0x2_0000;

/// Marsaglia's xorshift64.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// An address biased towards the interesting places.
fn address(rng: &mut XorShift) -> u64 {
    match rng.below(7) {
        0 | 1 => BUF_BASE + rng.below(0x1000),
        2 => END - rng.below(64),
        3 => RAM_BASE.wrapping_sub(rng.below(64)),
        4 => u64::MAX - rng.below(64),
        5 => ring_base(rng.below(2) as usize) + rng.below(0x400),
        _ => rng.next(),
    }
}

/// A length biased towards small values and the edges.
fn length(rng: &mut XorShift) -> u32 {
    match rng.below(5) {
        0 => 0,
        1 | 2 => rng.below(64) as u32,
        3 => rng.below(0x2_0000) as u32,
        _ => rng.next() as u32,
    }
}

/// A register value biased towards small numbers.
fn value(rng: &mut XorShift) -> u64 {
    match rng.below(4) {
        0 => rng.below(4),
        1 => rng.below(0x100),
        2 => RAM_BASE + rng.below(SCRIBBLE),
        _ => rng.next(),
    }
}

/// Resets and re-initialises the device over zeroed ring indices.
fn reinit(g: &mut Guest) {
    for q in 0..2 {
        let ring = Ring::new(ring_base(q), 8);
        g.mem.write(ring.avail, &[0; 4]).unwrap();
        g.mem.write(ring.used, &[0; 4]).unwrap();
    }
    g.init(0);
}

/// Queues a well-formed echo request on queue 0 (descriptors 0 and 1).
fn good_request(g: &mut Guest) {
    let ring = Ring::new(ring_base(0), 8);
    ring.chain(
        &g.mem,
        0,
        &[(BUF_BASE, 4, false), (BUF_BASE + 0x100, 4, true)],
    );
    let idx = g.mem.read_u16(ring.avail + 2).unwrap();
    g.mem
        .write_u16(ring.avail + 4 + 2 * u64::from(idx % 8), 0)
        .unwrap();
    g.mem
        .write_u16(ring.avail + 2, idx.wrapping_add(1))
        .unwrap();
    g.t.write(&g.mem, 0x050, 4, 0);
}

fn step(g: &mut Guest, rng: &mut XorShift) {
    if !g.t.running() && rng.below(16) == 0 {
        reinit(g);
    }
    let q = rng.below(2) as usize;
    let base = ring_base(q);
    match rng.below(14) {
        12 | 13 => good_request(g),
        0..=2 => {
            // A random descriptor in one of the tables (size 8 or 16).
            let i = rng.below(16);
            let gpa = base + 16 * i;
            g.mem.write_u64(gpa, address(rng)).unwrap();
            g.mem.write_u32(gpa + 8, length(rng)).unwrap();
            g.mem.write_u16(gpa + 12, rng.below(16) as u16).unwrap();
            g.mem.write_u16(gpa + 14, rng.below(20) as u16).unwrap();
        }
        3 | 4 => {
            // Publish a head on the default ring layout (size 8).
            let avail = base + 16 * 8;
            let idx = g.mem.read_u16(avail + 2).unwrap();
            let slot = u64::from(idx % 8);
            g.mem
                .write_u16(avail + 4 + 2 * slot, rng.below(10) as u16)
                .unwrap();
            let bump = if rng.below(10) == 0 {
                rng.next() as u16
            } else {
                1
            };
            g.mem.write_u16(avail + 2, idx.wrapping_add(bump)).unwrap();
            if rng.below(4) == 0 {
                g.mem.write_u16(avail, rng.below(4) as u16).unwrap();
            }
        }
        5 => {
            // Random bytes anywhere in the ring area.
            let gpa = ring_base(0) + rng.below(SCRIBBLE - 16);
            g.mem.write_u64(gpa, rng.next()).unwrap();
        }
        6 | 7 => {
            let target = if rng.below(8) == 0 {
                rng.next()
            } else {
                q as u64
            };
            g.t.write(&g.mem, 0x050, 4, target);
        }
        8 => {
            let offset = if rng.below(4) == 0 {
                rng.below(WINDOW_SIZE + 8)
            } else {
                rng.below(WINDOW_SIZE / 4) * 4
            };
            let width = [1, 2, 4, 4, 4, 8][rng.below(6) as usize];
            let v = value(rng);
            g.t.write(&g.mem, offset, width, v);
        }
        9 => {
            let offset = rng.below(WINDOW_SIZE + 8);
            let width = [1, 2, 4, 8][rng.below(4) as usize];
            g.t.read(offset, width);
        }
        10 => {
            let n = rng.below(40) as usize;
            g.t.device_mut().events.push(alloc::vec![0x5a; n]);
            g.t.poll(&g.mem);
        }
        _ => {
            if rng.below(20) == 0 {
                reinit(g);
            } else {
                g.t.write(&g.mem, 0x064, 4, rng.next());
            }
        }
    }
}

#[test]
fn random_rings_and_registers_never_escape_guest_ram() {
    let mut kicks_answered = 0;
    for seed in 1..=64u64 {
        let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut g = Guest::new();
        g.init(0);
        g.mem.clear_log();
        for _ in 0..4000 {
            step(&mut g, &mut rng);
            assert_eq!(g.mem.refused_writes(), 0, "seed {seed}");
        }
        for (gpa, len) in g.mem.write_log() {
            assert!(gpa >= RAM_BASE && gpa + len <= END, "seed {seed}");
        }
        kicks_answered += g.t.device().answered;
    }
    // The run reached the device, not only the error paths.
    assert!(
        kicks_answered > 1000,
        "only {kicks_answered} requests answered"
    );
}

/// The notify's common case (one test of the `runnable` bit) against the
/// general checks alone: two transports in lockstep over the same random
/// registers, rings, notifies (hostile queue numbers included), polls and
/// resets, one of them taking only the general checks. After every step
/// both have the same status, interrupt status, queue state, answers and
/// guest-RAM writes, and the kept bits are what the status and the queues
/// say.
#[test]
fn a_notify_by_the_runnable_bit_matches_the_general_checks() {
    let mut fast_runs = 0;
    for seed in 1..=48u64 {
        let mut rng_a = XorShift(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
        let mut rng_b = XorShift(rng_a.0);
        let (mut a, mut b) = (Guest::new(), Guest::new());
        b.t.core_mut().general_notify = true;
        for g in [&mut a, &mut b] {
            g.init(0);
            g.mem.clear_log();
        }
        for i in 0..3000 {
            let before = a.t.device().answered;
            let runnable = a.t.core_mut().runnable_consistent();
            assert!(runnable, "seed {seed} step {i}: runnable bits");
            step(&mut a, &mut rng_a);
            step(&mut b, &mut rng_b);
            assert!(a.t.core_mut().runnable_consistent(), "seed {seed} step {i}");
            assert_eq!(a.t.status(), b.t.status(), "seed {seed} step {i}: status");
            assert_eq!(
                a.t.interrupt_status(),
                b.t.interrupt_status(),
                "seed {seed} step {i}: interrupt status"
            );
            assert_eq!(
                a.t.device().answered,
                b.t.device().answered,
                "seed {seed} step {i}"
            );
            for q in 0..2 {
                let (qa, qb) = (a.t.queue(q).unwrap(), b.t.queue(q).unwrap());
                assert_eq!(qa.ready(), qb.ready(), "seed {seed} step {i}: queue {q}");
            }
            assert_eq!(a.mem.write_log(), b.mem.write_log(), "seed {seed} step {i}");
            if a.t.device().answered > before && a.t.running() {
                fast_runs += 1;
            }
        }
    }
    assert!(fast_runs > 1000, "only {fast_runs} steps answered requests");
}
