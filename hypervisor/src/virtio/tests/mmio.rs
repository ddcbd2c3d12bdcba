//! The transport at work: request round trips, interrupts and their
//! acknowledgement, configuration space, device reset, QueueReset, the
//! event queue, notifications before DRIVER_OK and the per-call budget.

use alloc::vec;
use core::cell::Cell;

use super::fake::{BUF_BASE, CROSS, ECHO_F_UPPER, ECHO_QMAX, Guest, Ring, ring_base};
use crate::virtio::device::NotifyResult;
use crate::virtio::features::{F_RING_RESET, F_VERSION_1};
use crate::virtio::memory::{GuestMemory, MemError, VecMemory};
use crate::virtio::mmio::TransportAction;
use crate::virtio::mmio::regs::*;
use crate::virtio::queue::VIRTQ_AVAIL_F_NO_INTERRUPT;

/// Queues one echo request of `data` on `ring` (descriptors from `first`),
/// with a `room`-byte response buffer at `resp`.
fn request(g: &Guest, ring: &mut Ring, first: u16, data: &[u8], resp: u64, room: u32) {
    let req = BUF_BASE + 0x1000 * u64::from(first);
    g.mem.write(req, data).unwrap();
    let head = ring.chain(
        &g.mem,
        first,
        &[(req, data.len() as u32, false), (resp, room, true)],
    );
    ring.publish(&g.mem, head);
}

fn read_bytes(mem: &VecMemory, gpa: u64, n: usize) -> alloc::vec::Vec<u8> {
    let mut v = vec![0; n];
    mem.read(gpa, &mut v).unwrap();
    v
}

#[test]
fn request_round_trip_with_interrupt_and_ack() {
    let mut g = Guest::new();
    let (mut r0, _) = g.init(ECHO_F_UPPER);
    request(&g, &mut r0, 0, b"hello", BUF_BASE + 0x8000, 16);
    let action = g.kick(0);
    assert_eq!(
        action,
        TransportAction {
            used_buffer: true,
            config_change: false
        }
    );
    assert!(action.raise_interrupt());
    assert!(g.t.interrupt_pending());
    assert_eq!(g.rd(Register::InterruptStatus), INT_USED_BUFFER);
    assert_eq!(r0.take_used(&g.mem), Some((0, 5)));
    assert_eq!(read_bytes(&g.mem, BUF_BASE + 0x8000, 5), b"HELLO");
    // Acknowledging an undefined bit changes nothing; bit 0 clears.
    g.wr(Register::InterruptAck, 2);
    assert_eq!(g.rd(Register::InterruptStatus), INT_USED_BUFFER);
    g.wr(Register::InterruptAck, INT_USED_BUFFER);
    assert_eq!(g.rd(Register::InterruptStatus), 0);
    assert!(!g.t.interrupt_pending());
    // An empty kick raises nothing.
    assert_eq!(g.kick(0), TransportAction::NONE);
}

#[test]
fn one_kick_completes_a_batch() {
    let mut g = Guest::new();
    let (mut r0, _) = g.init(0);
    for i in 0..4u16 {
        request(
            &g,
            &mut r0,
            2 * i,
            &[b'a' + i as u8; 3],
            BUF_BASE + 0x8000 + 0x100 * u64::from(i),
            8,
        );
    }
    assert!(g.kick(0).used_buffer);
    for i in 0..4 {
        assert_eq!(r0.take_used(&g.mem), Some((2 * i, 3)));
    }
    assert_eq!(g.t.device().answered, 4);
}

#[test]
fn no_interrupt_flag_suppresses_the_notification() {
    let mut g = Guest::new();
    let (mut r0, _) = g.init(0);
    r0.set_avail_flags(&g.mem, VIRTQ_AVAIL_F_NO_INTERRUPT);
    request(&g, &mut r0, 0, b"quiet", BUF_BASE + 0x8000, 8);
    assert_eq!(g.kick(0), TransportAction::NONE);
    assert_eq!(g.rd(Register::InterruptStatus), 0);
    // The request was still completed (a polling driver sees it).
    assert_eq!(r0.take_used(&g.mem), Some((0, 5)));
}

#[test]
fn config_space_accesses() {
    let mut g = Guest::new();
    assert_eq!(g.t.read(0x100, 4), 0xcafe_f00d);
    assert_eq!(g.t.read(0x100, 2), 0xf00d);
    assert_eq!(g.t.read(0x102, 2), 0xcafe);
    assert_eq!(g.t.read(0x103, 1), 0xca);
    // Misaligned, 64-bit and odd widths read 0.
    assert_eq!(g.t.read(0x101, 2), 0);
    assert_eq!(g.t.read(0x102, 4), 0);
    assert_eq!(g.t.read(0x100, 8), 0);
    assert_eq!(g.t.read(0x100, 3), 0);
    // Past the device's fields but inside the window: the device says 0.
    assert_eq!(g.t.read(0x1fc, 4), 0);
    g.t.write(&g.mem, 0x104, 4, 0x1_2345_6789);
    assert_eq!(g.t.device().scratch, 0x2345_6789);
    assert_eq!(g.t.read(0x104, 4), 0x2345_6789);
    g.t.write(&g.mem, 0x104, 8, 0);
    g.t.write(&g.mem, 0x106, 4, 0);
    assert_eq!(g.t.device().scratch, 0x2345_6789);
}

#[test]
fn config_change_bumps_generation_and_interrupts() {
    let mut g = Guest::new();
    // Before DRIVER_OK: generation moves, no interrupt.
    assert_eq!(g.t.config_changed(), TransportAction::NONE);
    assert_eq!(g.rd(Register::ConfigGeneration), 1);
    let (mut r0, _) = g.init(0);
    let action = g.t.config_changed();
    assert!(action.config_change && !action.used_buffer);
    assert_eq!(g.rd(Register::ConfigGeneration), 2);
    assert_eq!(g.rd(Register::InterruptStatus), INT_CONFIG_CHANGE);
    // A device reporting a change from a notification.
    g.t.device_mut().next_result = Some(NotifyResult::ConfigChanged);
    request(&g, &mut r0, 0, b"x", BUF_BASE + 0x8000, 1);
    let action = g.kick(0);
    assert!(action.config_change && action.used_buffer);
    assert_eq!(g.rd(Register::ConfigGeneration), 3);
    assert_eq!(
        g.rd(Register::InterruptStatus),
        INT_CONFIG_CHANGE | INT_USED_BUFFER
    );
}

#[test]
fn device_asking_for_reset() {
    let mut g = Guest::new();
    let (mut r0, _) = g.init(0);
    g.t.device_mut().next_result = Some(NotifyResult::NeedsReset);
    request(&g, &mut r0, 0, b"x", BUF_BASE + 0x8000, 1);
    let action = g.kick(0);
    assert!(action.used_buffer && action.config_change);
    assert!(g.needs_reset());
    assert!(!g.t.running());
    assert_eq!(g.t.poll(&g.mem), TransportAction::NONE);
}

#[test]
fn device_reset_clears_everything() {
    let mut g = Guest::new();
    let (mut r0, _) = g.init(ECHO_F_UPPER);
    request(&g, &mut r0, 0, b"x", BUF_BASE + 0x8000, 1);
    g.kick(0);
    g.wr(Register::QueueSel, 1);
    g.wr(Register::DeviceFeaturesSel, 1);
    g.wr(Register::Status, 0);
    assert_eq!(g.rd(Register::Status), 0);
    assert_eq!(g.rd(Register::InterruptStatus), 0);
    assert_eq!(g.t.driver_features(), 0);
    assert_eq!(g.t.device().resets, 2);
    assert!(g.t.device().activated.is_none());
    // Selectors are back to 0, queues disabled with their maximum size.
    assert_eq!(
        g.rd(Register::DeviceFeatures),
        g.t.offered_features() as u32
    );
    assert_eq!(g.rd(Register::QueueReady), 0);
    assert_eq!(g.rd(Register::QueueNumMax), u32::from(ECHO_QMAX));
    let q0 = g.t.queue(0).unwrap();
    assert!(!q0.ready());
    assert_eq!(
        (q0.desc_addr(), q0.last_avail_idx(), q0.used_idx()),
        (0, 0, 0)
    );
    // A full re-initialisation works again from fresh rings.
    g.mem.write(r0.avail, &[0; 64]).unwrap();
    g.mem.write(r0.used, &[0; 128]).unwrap();
    let (mut r0, _) = g.init(0);
    request(&g, &mut r0, 0, b"again", BUF_BASE + 0x8000, 8);
    g.kick(0);
    assert_eq!(r0.take_used(&g.mem), Some((0, 5)));
}

#[test]
fn queue_registers_are_frozen_while_ready() {
    let mut g = Guest::new();
    let (mut r0, _) = g.init(0);
    g.wr(Register::QueueSel, 0);
    g.wr(Register::QueueNum, 2);
    g.wr(Register::QueueDescLow, 0);
    g.wr(Register::QueueDriverHigh, 1);
    g.wr(Register::QueueDeviceLow, 0);
    let q = g.t.queue(0).unwrap();
    assert_eq!(
        (q.size(), q.desc_addr(), q.avail_addr(), q.used_addr()),
        (8, r0.desc, r0.avail, r0.used)
    );
    // Writing 1 again keeps the ring state; odd values are ignored.
    request(&g, &mut r0, 0, b"x", BUF_BASE + 0x8000, 1);
    g.kick(0);
    g.wr(Register::QueueReady, 1);
    g.wr(Register::QueueReady, 7);
    assert_eq!(g.t.queue(0).unwrap().used_idx(), 1);
    assert_eq!(g.rd(Register::QueueReady), 1);
    // 0 disables, and then the registers take writes again.
    g.wr(Register::QueueReady, 0);
    assert_eq!(g.rd(Register::QueueReady), 0);
    g.wr(Register::QueueNum, 4);
    assert_eq!(g.t.queue(0).unwrap().size(), 4);
}

#[test]
fn queue_reset_resets_one_queue() {
    let mut g = Guest::new();
    let (mut r0, mut r1) = g.init(0);
    request(&g, &mut r0, 0, b"x", BUF_BASE + 0x8000, 1);
    g.kick(0);
    g.wr(Register::QueueSel, 0);
    assert_eq!(g.wr(Register::QueueReset, 1), TransportAction::NONE);
    assert_eq!(g.rd(Register::QueueReset), 0);
    assert_eq!(g.rd(Register::QueueReady), 0);
    assert_eq!(g.t.device().queue_resets, [0]);
    let q0 = g.t.queue(0).unwrap();
    assert_eq!(
        (
            q0.size(),
            q0.desc_addr(),
            q0.last_avail_idx(),
            q0.used_idx()
        ),
        (16, 0, 0, 0)
    );
    // Queue 1 and the device carry on.
    assert!(g.t.queue(1).unwrap().ready());
    assert!(g.t.running());
    g.t.device_mut().events.push(vec![1, 2, 3]);
    r1.chain(&g.mem, 0, &[(BUF_BASE + 0x9000, 8, true)]);
    r1.publish(&g.mem, 0);
    assert!(g.t.poll(&g.mem).used_buffer);
    assert_eq!(r1.take_used(&g.mem), Some((0, 3)));
    // Re-enabled elsewhere, with different parameters.
    let mut fresh = Ring::new(ring_base(3), 4);
    g.setup_queue(0, &fresh);
    assert!(!g.needs_reset());
    request(&g, &mut fresh, 1, b"yz", BUF_BASE + 0x8000, 4);
    g.kick(0);
    assert_eq!(fresh.take_used(&g.mem), Some((1, 2)));
    // Values other than 1 and absent queues are ignored.
    g.wr(Register::QueueReset, 2);
    g.wr(Register::QueueSel, 9);
    g.wr(Register::QueueReset, 1);
    assert_eq!(g.t.device().queue_resets, [0]);
}

#[test]
fn queue_reset_needs_ring_reset_negotiated() {
    let mut g = Guest::new();
    assert!(g.negotiate(F_VERSION_1));
    let r0 = Ring::new(ring_base(0), 8);
    g.setup_queue(0, &r0);
    g.wr(Register::QueueReset, 1);
    assert_eq!(g.rd(Register::QueueReady), 1);
    assert!(g.t.device().queue_resets.is_empty());
    // Not before FEATURES_OK either.
    g.wr(Register::Status, 0);
    g.set_driver_features(F_VERSION_1 | F_RING_RESET);
    g.setup_queue(0, &r0);
    g.wr(Register::QueueReset, 1);
    assert_eq!(g.rd(Register::QueueReady), 1);
}

#[test]
fn event_queue_filled_on_poll_and_from_another_queue() {
    let mut g = Guest::new();
    let (mut r0, mut r1) = g.init(0);
    // No buffer yet: the event waits.
    g.t.device_mut().events.push(b"fault".to_vec());
    assert_eq!(g.t.poll(&g.mem), TransportAction::NONE);
    for i in 0..2u16 {
        r1.chain(
            &g.mem,
            i,
            &[(BUF_BASE + 0x9000 + 0x100 * u64::from(i), 32, true)],
        );
        r1.publish(&g.mem, i);
    }
    // The driver's kick on the event queue lets the device flush it.
    assert!(g.kick(1).used_buffer);
    assert_eq!(r1.take_used(&g.mem), Some((0, 5)));
    assert_eq!(read_bytes(&g.mem, BUF_BASE + 0x9000, 5), b"fault");
    // A request on queue 0 that posts on queue 1 within the same trap.
    request(&g, &mut r0, 0, &[CROSS, 7], BUF_BASE + 0x8000, 2);
    assert!(g.kick(0).used_buffer);
    assert_eq!(r0.take_used(&g.mem), Some((0, 2)));
    assert_eq!(r1.take_used(&g.mem), Some((1, 2)));
    assert_eq!(read_bytes(&g.mem, BUF_BASE + 0x9100, 2), [CROSS, 7]);
}

#[test]
fn notifications_before_driver_ok_wait_for_it() {
    let mut g = Guest::new();
    assert!(g.negotiate(F_VERSION_1));
    let mut r0 = Ring::new(ring_base(0), 8);
    g.setup_queue(0, &r0);
    request(&g, &mut r0, 0, b"early", BUF_BASE + 0x8000, 8);
    assert_eq!(g.kick(0), TransportAction::NONE);
    assert_eq!(r0.used_idx(&g.mem), 0);
    assert!(g.t.device().notified.is_empty());
    let action = g.add_status(STATUS_DRIVER_OK);
    assert!(action.used_buffer);
    assert_eq!(r0.take_used(&g.mem), Some((0, 5)));
    // Nothing happens after FAILED.
    g.add_status(STATUS_FAILED);
    request(&g, &mut r0, 2, b"late", BUF_BASE + 0x8000, 8);
    assert_eq!(g.kick(0), TransportAction::NONE);
    assert_eq!(g.t.device().notified, [0]);
}

/// Memory in which the "guest" makes one more chain available every time
/// the device reads `avail.idx`, as a driver refilling the ring from
/// another CPU could.
struct Refilling<'a> {
    inner: &'a VecMemory,
    avail: u64,
    reads: Cell<u32>,
}

impl GuestMemory for Refilling<'_> {
    fn check(&self, gpa: u64, len: u64) -> Result<(), MemError> {
        self.inner.check(gpa, len)
    }
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        if gpa == self.avail + 2 {
            self.reads.set(self.reads.get() + 1);
            let idx = self.inner.read_u16(gpa)?;
            self.inner.write_u16(gpa, idx.wrapping_add(1))?;
        }
        self.inner.read(gpa, buf)
    }
    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        self.inner.write(gpa, data)
    }
}

#[test]
fn a_ring_refilled_forever_does_not_hold_the_cpu() {
    let mut g = Guest::new();
    let (r0, _) = g.init(0);
    // Every avail entry (zeroed) names descriptor 0: a valid 1-byte chain.
    r0.chain(
        &g.mem,
        0,
        &[(BUF_BASE, 1, false), (BUF_BASE + 0x10, 1, true)],
    );
    let mem = Refilling {
        inner: &g.mem,
        avail: r0.avail,
        reads: Cell::new(0),
    };
    let action = g.t.write(&mem, Register::QueueNotify.offset(), 4, 0);
    assert!(action.used_buffer);
    // One queue's worth per notification.
    assert_eq!(g.t.device().answered, 8);
    assert_eq!(r0.used_idx(&g.mem), 8);
    assert!(!g.needs_reset());
}

/// The one-step read decode (`MmioTransport::read_word`, a `match` on the
/// offset) against the reference (the offset's `Register`, then
/// `read_register`): at every offset and width below the configuration
/// space, hostile ones included (misaligned, odd widths, reserved and
/// write-only offsets), in transport states reached by random register
/// writes (selectors out of range, status changes, reset, queue setup).
#[test]
fn register_reads_decode_as_the_register_enum() {
    let mut g = Guest::new();
    let mut rng = crate::test_rng::Rng(0x9e37_79b9_7f4a_7c15u64);
    let mut next = move || rng.next();
    let writable = [
        Register::DeviceFeaturesSel,
        Register::DriverFeaturesSel,
        Register::DriverFeatures,
        Register::QueueSel,
        Register::QueueNum,
        Register::QueueReady,
        Register::QueueReset,
        Register::InterruptAck,
        Register::Status,
        Register::QueueDescLow,
    ];
    for round in 0..400 {
        if round > 0 {
            let r = next();
            let reg = writable[(r % writable.len() as u64) as usize];
            // Small values half the time (valid selectors and status bits),
            // anything the other half.
            let value = if r & (1 << 20) != 0 {
                (r >> 32) & 0xff
            } else {
                r >> 32
            };
            let _ = g.t.write(&g.mem, reg.offset(), 4, value);
        }
        for offset in 0..CONFIG_OFFSET {
            for width in 0..=9 {
                let want = if width == 4 && offset.is_multiple_of(4) {
                    Register::from_offset(offset).map_or(0, |r| g.t.read_register(r))
                } else {
                    0
                };
                assert_eq!(
                    g.t.read(offset, width),
                    u64::from(want),
                    "round {round}: offset {offset:#x}, width {width}"
                );
            }
        }
    }
}
