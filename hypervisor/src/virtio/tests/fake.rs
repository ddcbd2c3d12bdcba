//! Test doubles: [`Echo`], a loopback device model with a request queue
//! (copies each request into its response) and an event queue (filled on
//! poll), and [`Ring`] plus [`Guest`], a minimal guest driver that lays
//! out split rings in a [`VecMemory`] and drives an [`MmioTransport`].

use alloc::vec::Vec;

use crate::virtio::device::{NotifyResult, QueueContext, VirtioDevice};
use crate::virtio::features::{F_RING_RESET, F_VERSION_1};
use crate::virtio::memory::{GuestMemory, VecMemory};
use crate::virtio::mmio::regs::*;
use crate::virtio::mmio::{MmioTransport, TransportAction};
use crate::virtio::queue::{VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};

/// Guest-physical base of the fake RAM.
pub const RAM_BASE: u64 = 0x4000_0000;
/// Bytes of fake RAM.
pub const RAM_SIZE: usize = 1 << 20;
/// Device ID of the echo device (not a registered virtio type).
pub const ECHO_ID: u32 = 0x7e;
/// Echo feature bit 0: upper-case the echo.
pub const ECHO_F_UPPER: u64 = 1;
/// Queue size maximum of each echo queue.
pub const ECHO_QMAX: u16 = 16;
/// A request starting with this byte also posts an event on queue 1.
pub const CROSS: u8 = 0xee;

/// The loopback device model, with a log of what the transport asked.
#[derive(Debug, Default)]
pub struct Echo {
    /// Features given to `activate`, if called.
    pub activated: Option<u64>,
    /// Calls to `reset`.
    pub resets: usize,
    /// Queues given to `queue_reset`.
    pub queue_resets: Vec<usize>,
    /// Queues given to `notify`.
    pub notified: Vec<usize>,
    /// Requests answered.
    pub answered: usize,
    /// Events waiting for an event-queue buffer.
    pub events: Vec<Vec<u8>>,
    /// What the next `notify` or `poll` returns besides its work.
    pub next_result: Option<NotifyResult>,
    /// The read-write configuration word at offset 4.
    pub scratch: u32,
    /// Extra device-type features to claim (to test the filtering).
    pub extra_features: u64,
}

impl Echo {
    /// Copies out pending events onto queue 1 while buffers last.
    fn flush_events<M: GuestMemory + ?Sized>(&mut self, ctx: &mut QueueContext<'_, M>) {
        while !self.events.is_empty() {
            let Some(chain) = ctx.pop(1) else {
                return;
            };
            let event = self.events.remove(0);
            let n = chain.write_writable(ctx.memory(), &event).unwrap_or(0);
            let _ = ctx.push_used(1, chain.head, n);
        }
    }
}

impl VirtioDevice for Echo {
    fn device_id(&self) -> u32 {
        ECHO_ID
    }

    fn device_features(&self) -> u64 {
        ECHO_F_UPPER | self.extra_features
    }

    fn num_queues(&self) -> usize {
        2
    }

    fn queue_max_size(&self, _q: usize) -> u16 {
        ECHO_QMAX
    }

    fn config_read(&self, offset: u64, width: usize) -> u64 {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&0xcafe_f00du32.to_le_bytes());
        bytes[4..].copy_from_slice(&self.scratch.to_le_bytes());
        let mut v = 0u64;
        for i in 0..width as u64 {
            let b = bytes.get((offset + i) as usize).copied().unwrap_or(0);
            v |= u64::from(b) << (8 * i);
        }
        v
    }

    fn config_write(&mut self, offset: u64, width: usize, value: u64) {
        if offset == 4 && width == 4 {
            self.scratch = value as u32;
        }
    }

    fn activate(&mut self, features: u64) {
        self.activated = Some(features);
    }

    fn reset(&mut self) {
        self.resets += 1;
        self.activated = None;
    }

    fn notify<M: GuestMemory + ?Sized>(
        &mut self,
        q: usize,
        ctx: &mut QueueContext<'_, M>,
    ) -> NotifyResult {
        self.notified.push(q);
        if q == 0 {
            let upper = self.activated.unwrap_or(0) & ECHO_F_UPPER != 0;
            while let Some(chain) = ctx.pop(0) {
                let mem = ctx.memory();
                let Ok(mut data) = chain.read_readable(mem, crate::virtio::MAX_READ) else {
                    let _ = ctx.push_used(0, chain.head, 0);
                    continue;
                };
                if data.first() == Some(&CROSS) {
                    self.events.push(data.clone());
                }
                if upper {
                    data.make_ascii_uppercase();
                }
                let n = chain.write_writable(mem, &data).unwrap_or(0);
                let _ = ctx.push_used(0, chain.head, n);
                self.answered += 1;
            }
        }
        self.flush_events(ctx);
        self.next_result.take().unwrap_or(NotifyResult::Done)
    }

    fn poll<M: GuestMemory + ?Sized>(&mut self, ctx: &mut QueueContext<'_, M>) -> NotifyResult {
        self.flush_events(ctx);
        self.next_result.take().unwrap_or(NotifyResult::Done)
    }

    fn queue_reset(&mut self, q: usize) {
        self.queue_resets.push(q);
    }
}

/// A split ring as the guest driver sees it.
#[derive(Debug, Clone, Copy)]
pub struct Ring {
    /// Queue size.
    pub size: u16,
    /// Descriptor table.
    pub desc: u64,
    /// Driver ring.
    pub avail: u64,
    /// Device ring.
    pub used: u64,
    /// The driver's next avail idx.
    pub avail_idx: u16,
    /// Used entries already collected.
    pub last_used: u16,
}

impl Ring {
    /// A ring of `size` entries laid out from `base` (16-aligned).
    pub fn new(base: u64, size: u16) -> Self {
        let avail = base + 16 * u64::from(size);
        let used = (avail + 6 + 2 * u64::from(size) + 3) & !3;
        Self {
            size,
            desc: base,
            avail,
            used,
            avail_idx: 0,
            last_used: 0,
        }
    }

    /// Writes descriptor `i`.
    pub fn desc(&self, mem: &VecMemory, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let gpa = self.desc + 16 * u64::from(i);
        mem.write_u64(gpa, addr).unwrap();
        mem.write_u32(gpa + 8, len).unwrap();
        mem.write_u16(gpa + 12, flags).unwrap();
        mem.write_u16(gpa + 14, next).unwrap();
    }

    /// Writes a chain of `(addr, len, writable)` buffers from descriptor
    /// `first` on (consecutive indices, wrapping) and returns its head.
    pub fn chain(&self, mem: &VecMemory, first: u16, bufs: &[(u64, u32, bool)]) -> u16 {
        for (k, &(addr, len, writable)) in bufs.iter().enumerate() {
            let i = (first + k as u16) % self.size;
            let last = k + 1 == bufs.len();
            let mut flags = if writable { VIRTQ_DESC_F_WRITE } else { 0 };
            if !last {
                flags |= VIRTQ_DESC_F_NEXT;
            }
            self.desc(mem, i, addr, len, flags, (i + 1) % self.size);
        }
        first
    }

    /// Makes chain `head` available.
    pub fn publish(&mut self, mem: &VecMemory, head: u16) {
        let slot = u64::from(self.avail_idx % self.size);
        mem.write_u16(self.avail + 4 + 2 * slot, head).unwrap();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        mem.write_u16(self.avail + 2, self.avail_idx).unwrap();
    }

    /// Sets the driver ring's flags.
    pub fn set_avail_flags(&self, mem: &VecMemory, flags: u16) {
        mem.write_u16(self.avail, flags).unwrap();
    }

    /// The device's `used.idx`.
    pub fn used_idx(&self, mem: &VecMemory) -> u16 {
        mem.read_u16(self.used + 2).unwrap()
    }

    /// Collects the next used element `(id, len)`, if any.
    pub fn take_used(&mut self, mem: &VecMemory) -> Option<(u32, u32)> {
        if self.used_idx(mem) == self.last_used {
            return None;
        }
        let slot = u64::from(self.last_used % self.size);
        let gpa = self.used + 4 + 8 * slot;
        self.last_used = self.last_used.wrapping_add(1);
        Some((mem.read_u32(gpa).unwrap(), mem.read_u32(gpa + 4).unwrap()))
    }
}

/// Where queue `q`'s rings live in the fake RAM.
pub fn ring_base(q: usize) -> u64 {
    RAM_BASE + 0x1_0000 * q as u64
}

/// Buffers for requests and responses live from here on.
pub const BUF_BASE: u64 = RAM_BASE + 0x8_0000;

/// The echo device behind the transport, with its RAM.
pub struct Guest {
    /// The guest's RAM.
    pub mem: VecMemory,
    /// The device.
    pub t: MmioTransport<Echo>,
}

impl Guest {
    /// A fresh device and zeroed RAM.
    pub fn new() -> Self {
        Self::with(Echo::default())
    }

    /// A fresh transport around `echo`.
    pub fn with(echo: Echo) -> Self {
        Self {
            mem: VecMemory::new(RAM_BASE, RAM_SIZE),
            t: MmioTransport::new(echo),
        }
    }

    /// A 32-bit register read.
    pub fn rd(&mut self, reg: Register) -> u32 {
        self.t.read(reg.offset(), 4) as u32
    }

    /// A 32-bit register write.
    pub fn wr(&mut self, reg: Register, value: u32) -> TransportAction {
        self.t.write(&self.mem, reg.offset(), 4, u64::from(value))
    }

    /// Adds status bits (as a driver does).
    pub fn add_status(&mut self, bits: u32) -> TransportAction {
        let s = self.rd(Register::Status);
        self.wr(Register::Status, s | bits)
    }

    /// Writes the driver's features, both halves.
    pub fn set_driver_features(&mut self, f: u64) {
        self.wr(Register::DriverFeaturesSel, 0);
        self.wr(Register::DriverFeatures, f as u32);
        self.wr(Register::DriverFeaturesSel, 1);
        self.wr(Register::DriverFeatures, (f >> 32) as u32);
    }

    /// ACKNOWLEDGE, DRIVER, features `f`, FEATURES_OK; returns whether
    /// FEATURES_OK stuck.
    pub fn negotiate(&mut self, f: u64) -> bool {
        self.wr(Register::Status, 0);
        self.add_status(STATUS_ACKNOWLEDGE);
        self.add_status(STATUS_DRIVER);
        self.set_driver_features(f);
        self.add_status(STATUS_FEATURES_OK);
        self.rd(Register::Status) & STATUS_FEATURES_OK != 0
    }

    /// Programs queue `q` with `ring` and sets QueueReady.
    pub fn setup_queue(&mut self, q: u32, ring: &Ring) -> TransportAction {
        self.wr(Register::QueueSel, q);
        self.wr(Register::QueueNum, u32::from(ring.size));
        self.wr(Register::QueueDescLow, ring.desc as u32);
        self.wr(Register::QueueDescHigh, (ring.desc >> 32) as u32);
        self.wr(Register::QueueDriverLow, ring.avail as u32);
        self.wr(Register::QueueDriverHigh, (ring.avail >> 32) as u32);
        self.wr(Register::QueueDeviceLow, ring.used as u32);
        self.wr(Register::QueueDeviceHigh, (ring.used >> 32) as u32);
        self.wr(Register::QueueReady, 1)
    }

    /// The full driver initialisation with VERSION_1 | RING_RESET | `f`,
    /// both queues of size 8, DRIVER_OK; returns the two rings.
    pub fn init(&mut self, f: u64) -> (Ring, Ring) {
        assert!(self.negotiate(F_VERSION_1 | F_RING_RESET | f));
        let r0 = Ring::new(ring_base(0), 8);
        let r1 = Ring::new(ring_base(1), 8);
        self.setup_queue(0, &r0);
        self.setup_queue(1, &r1);
        self.add_status(STATUS_DRIVER_OK);
        assert!(self.t.running());
        (r0, r1)
    }

    /// Notifies queue `q`.
    pub fn kick(&mut self, q: u32) -> TransportAction {
        self.wr(Register::QueueNotify, q)
    }

    /// Whether DEVICE_NEEDS_RESET is set.
    pub fn needs_reset(&mut self) -> bool {
        self.rd(Register::Status) & STATUS_DEVICE_NEEDS_RESET != 0
    }
}
