//! Every malformed input the brief lists: each either fails its own request
//! (returned with used length 0, the queue going on) or sets
//! DEVICE_NEEDS_RESET, and nothing writes outside guest RAM.

use super::fake::{BUF_BASE, Guest, RAM_BASE, RAM_SIZE, Ring, ring_base};
use crate::virtio::chain::ChainError;
use crate::virtio::memory::{GuestMemory, MemError, VecMemory};
use crate::virtio::mmio::regs::*;
use crate::virtio::queue::{
    Queue, QueueError, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
};

const W: u16 = VIRTQ_DESC_F_WRITE;
const N: u16 = VIRTQ_DESC_F_NEXT;
const END: u64 = RAM_BASE + RAM_SIZE as u64;

/// One malformed chain: descriptors `(index, addr, len, flags, next)`,
/// head at descriptor 0, and the error expected.
struct Case {
    name: &'static str,
    descs: &'static [(u16, u64, u32, u16, u16)],
    error: ChainError,
}

const CASES: &[Case] = &[
    Case {
        name: "buffer below RAM",
        descs: &[(0, RAM_BASE - 4, 8, 0, 0)],
        error: ChainError::OutOfRam(MemError::OutOfRange {
            gpa: RAM_BASE - 4,
            len: 8,
        }),
    },
    Case {
        name: "buffer past the end of RAM",
        descs: &[(0, BUF_BASE, 4, N, 1), (1, END - 2, 4, W, 0)],
        error: ChainError::OutOfRam(MemError::OutOfRange {
            gpa: END - 2,
            len: 4,
        }),
    },
    Case {
        name: "wrapping buffer",
        descs: &[(0, u64::MAX - 1, 16, W, 0)],
        error: ChainError::OutOfRam(MemError::Wraps {
            gpa: u64::MAX - 1,
            len: 16,
        }),
    },
    Case {
        name: "self loop",
        descs: &[(0, BUF_BASE, 4, N, 0)],
        error: ChainError::Loop,
    },
    Case {
        name: "two-descriptor cycle",
        descs: &[(0, BUF_BASE, 4, N | W, 1), (1, BUF_BASE, 4, N | W, 0)],
        error: ChainError::Loop,
    },
    Case {
        name: "next beyond the queue",
        descs: &[(0, BUF_BASE, 4, N, 8)],
        error: ChainError::NextOutOfRange { next: 8 },
    },
    Case {
        name: "readable after writable",
        descs: &[(0, BUF_BASE, 4, N | W, 1), (1, BUF_BASE + 16, 4, 0, 0)],
        error: ChainError::ReadableAfterWritable,
    },
    Case {
        name: "empty writable then readable",
        descs: &[(0, 0, 0, N | W, 1), (1, BUF_BASE, 4, 0, 0)],
        error: ChainError::ReadableAfterWritable,
    },
    Case {
        name: "indirect",
        descs: &[(0, BUF_BASE, 16, VIRTQ_DESC_F_INDIRECT, 0)],
        error: ChainError::Indirect,
    },
    Case {
        name: "indirect inside a chain",
        descs: &[
            (0, BUF_BASE, 4, N, 1),
            (1, BUF_BASE, 16, VIRTQ_DESC_F_INDIRECT | W, 0),
        ],
        error: ChainError::Indirect,
    },
];

fn write_case(mem: &VecMemory, ring: &Ring, case: &Case) {
    for &(i, addr, len, flags, next) in case.descs {
        ring.desc(mem, i, addr, len, flags, next);
    }
}

#[test]
fn each_malformed_chain_is_refused_by_the_queue() {
    for case in CASES {
        let mem = VecMemory::new(RAM_BASE, RAM_SIZE);
        let mut ring = Ring::new(ring_base(0), 8);
        let mut q = Queue::new(8);
        q.set_size(8);
        q.set_desc_addr(ring.desc);
        q.set_avail_addr(ring.avail);
        q.set_used_addr(ring.used);
        q.enable(&mem).unwrap();
        write_case(&mem, &ring, case);
        ring.publish(&mem, 0);
        let err = q.pop(&mem).unwrap_err();
        assert_eq!(
            err,
            QueueError::BadChain {
                head: 0,
                error: case.error
            },
            "{}",
            case.name
        );
        assert!(!err.is_fatal(), "{}", case.name);
        // Consumed: the next pop sees an empty ring.
        assert_eq!(q.last_avail_idx(), 1, "{}", case.name);
        assert_eq!(q.pop(&mem), Ok(None), "{}", case.name);
    }
}

#[test]
fn each_malformed_chain_fails_only_its_request() {
    for case in CASES {
        let mut g = Guest::new();
        let (mut r0, _) = g.init(0);
        write_case(&g.mem, &r0, case);
        r0.publish(&g.mem, 0);
        // A good request behind it, in descriptors 4 and 5.
        g.mem.write(BUF_BASE + 0x400, b"ok").unwrap();
        let good = r0.chain(
            &g.mem,
            4,
            &[(BUF_BASE + 0x400, 2, false), (BUF_BASE + 0x500, 8, true)],
        );
        r0.publish(&g.mem, good);
        g.mem.clear_log();
        let action = g.kick(0);
        assert!(action.used_buffer, "{}", case.name);
        assert!(!g.needs_reset(), "{}", case.name);
        assert_eq!(r0.take_used(&g.mem), Some((0, 0)), "{}", case.name);
        assert_eq!(r0.take_used(&g.mem), Some((4, 2)), "{}", case.name);
        assert_eq!(g.t.device().answered, 1, "{}", case.name);
        assert_eq!(g.mem.refused_writes(), 0, "{}", case.name);
        for (gpa, len) in g.mem.write_log() {
            let in_used = gpa >= r0.used && gpa + len <= r0.used + 4 + 8 * 8;
            let in_resp = gpa >= BUF_BASE + 0x500 && gpa + len <= BUF_BASE + 0x508;
            assert!(
                in_used || in_resp,
                "{}: stray write {gpa:#x}+{len}",
                case.name
            );
        }
    }
}

/// Memory claiming 8 GiB of RAM, backed only in its first megabyte, so
/// that a chain can total more than 4 GiB without allocating it.
struct Huge(VecMemory);

impl GuestMemory for Huge {
    fn check(&self, gpa: u64, len: u64) -> Result<(), MemError> {
        crate::virtio::memory::check_in_region(RAM_BASE, 8 << 30, gpa, len)
    }
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        self.0.read(gpa, buf)
    }
    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        self.0.write(gpa, data)
    }
}

#[test]
fn a_chain_over_4_gib_is_refused() {
    let mem = Huge(VecMemory::new(RAM_BASE, RAM_SIZE));
    let mut ring = Ring::new(ring_base(0), 8);
    let mut q = Queue::new(8);
    q.set_size(8);
    q.set_desc_addr(ring.desc);
    q.set_avail_addr(ring.avail);
    q.set_used_addr(ring.used);
    q.enable(&mem).unwrap();
    ring.desc(&mem.0, 0, RAM_BASE, 0x8000_0000, N, 1);
    ring.desc(&mem.0, 1, RAM_BASE, 0x7fff_ffff, N | W, 2);
    ring.desc(&mem.0, 2, RAM_BASE, 1, W, 0);
    ring.publish(&mem.0, 0);
    assert_eq!(
        q.pop(&mem),
        Err(QueueError::BadChain {
            head: 0,
            error: ChainError::TooLarge
        })
    );
    // Exactly 4 GiB - 1 passes, and the echo's read limit then stops it.
    ring.desc(&mem.0, 2, RAM_BASE, 0, W, 0);
    ring.publish(&mem.0, 0);
    let chain = q.pop(&mem).unwrap().unwrap();
    assert_eq!(
        chain.readable_len() + chain.writable_len(),
        u64::from(u32::MAX)
    );
    assert!(matches!(
        chain.read_readable(&mem, crate::virtio::MAX_READ),
        Err(ChainError::ReadLimit { .. })
    ));
}

#[test]
fn avail_idx_jump_needs_reset() {
    let mut g = Guest::new();
    let (r0, _) = g.init(0);
    g.mem.write_u16(r0.avail + 2, 100).unwrap();
    let action = g.kick(0);
    assert!(action.config_change);
    assert!(!action.used_buffer);
    assert!(g.needs_reset());
    assert_eq!(g.rd(Register::InterruptStatus), INT_CONFIG_CHANGE);
    assert_eq!(r0.used_idx(&g.mem), 0);
}

#[test]
fn head_out_of_range_needs_reset() {
    let mut g = Guest::new();
    let (mut r0, _) = g.init(0);
    r0.publish(&g.mem, 0xffff);
    g.kick(0);
    assert!(g.needs_reset());
    assert_eq!(r0.used_idx(&g.mem), 0);
}

#[test]
fn misaligned_or_outside_rings_need_reset() {
    let bad_rings = [
        (
            8,
            ring_base(0) + 8,
            ring_base(0) + 0x200,
            ring_base(0) + 0x400,
        ),
        (8, ring_base(0), ring_base(0) + 0x201, ring_base(0) + 0x400),
        (8, ring_base(0), ring_base(0) + 0x200, ring_base(0) + 0x402),
        (8, ring_base(0), ring_base(0) + 0x200, END - 8),
        (8, 0, ring_base(0) + 0x200, ring_base(0) + 0x400),
        (6, ring_base(0), ring_base(0) + 0x200, ring_base(0) + 0x400),
        (32, ring_base(0), ring_base(0) + 0x200, ring_base(0) + 0x400),
    ];
    for (size, desc, avail, used) in bad_rings {
        let mut g = Guest::new();
        assert!(g.negotiate(crate::virtio::features::F_VERSION_1));
        let ring = Ring {
            size,
            desc,
            avail,
            used,
            avail_idx: 0,
            last_used: 0,
        };
        g.setup_queue(0, &ring);
        assert!(
            g.needs_reset(),
            "{desc:#x} {avail:#x} {used:#x} size {size}"
        );
        assert_eq!(g.rd(Register::QueueReady), 0);
        // Not yet DRIVER_OK: no interrupt for it.
        assert_eq!(g.rd(Register::InterruptStatus), 0);
        // Nothing is processed, even once the driver goes on.
        g.add_status(STATUS_DRIVER_OK);
        assert!(!g.t.running());
        assert!(g.mem.write_log().is_empty());
    }
}

#[test]
fn notify_before_queue_ready_needs_reset() {
    let mut g = Guest::new();
    let (_, _) = g.init(0);
    g.wr(Register::QueueSel, 1);
    g.wr(Register::QueueReady, 0);
    let action = g.kick(1);
    assert!(action.config_change);
    assert!(g.needs_reset());
    // Nothing more is processed until reset, even on a ready queue.
    let before = g.t.device().notified.len();
    g.kick(0);
    assert_eq!(g.t.device().notified.len(), before);
    g.wr(Register::Status, 0);
    assert!(!g.needs_reset());
    assert_eq!(g.rd(Register::InterruptStatus), 0);
}

#[test]
fn notify_of_an_absent_queue_is_ignored() {
    let mut g = Guest::new();
    g.init(0);
    for q in [2, 63, 64, 0xffff] {
        assert_eq!(g.kick(q), Default::default());
    }
    // Only the low 16 bits name the queue.
    let action = g.kick(0x1_0000);
    assert!(!g.needs_reset());
    assert_eq!(g.t.device().notified, [0]);
    assert!(!action.raise_interrupt());
}

#[test]
fn wrong_access_widths_are_ignored() {
    let mut g = Guest::new();
    let (mut r0, _) = g.init(0);
    for width in [1, 2, 8, 3, 0, 16] {
        assert_eq!(g.t.read(Register::MagicValue.offset(), width), 0);
        assert_eq!(g.t.read(Register::Status.offset(), width), 0);
        g.t.write(&g.mem, Register::Status.offset(), width, 0);
        g.t.write(&g.mem, Register::QueueNotify.offset(), width, 0);
        g.t.write(&g.mem, Register::InterruptAck.offset(), width, 0xff);
    }
    // Misaligned 32-bit accesses.
    assert_eq!(g.t.read(Register::MagicValue.offset() + 1, 4), 0);
    g.t.write(&g.mem, Register::Status.offset() + 2, 4, 0);
    // Holes and legacy registers.
    assert_eq!(g.t.read(0x028, 4), 0);
    assert_eq!(g.t.read(0x040, 4), 0);
    g.t.write(&g.mem, 0x040, 4, 0x1234);
    // Beyond the window.
    assert_eq!(g.t.read(0x200, 4), 0);
    assert_eq!(g.t.read(u64::MAX, 4), 0);
    assert_eq!(g.t.read(u64::MAX - 1, 2), 0);
    g.t.write(&g.mem, u64::MAX - 3, 4, 0);
    assert!(g.t.running());
    assert!(g.t.device().notified.is_empty());
    // The device still works.
    let head = r0.chain(&g.mem, 0, &[(BUF_BASE, 0, false), (BUF_BASE + 8, 4, true)]);
    r0.publish(&g.mem, head);
    g.kick(0);
    assert_eq!(r0.take_used(&g.mem), Some((0, 0)));
}
