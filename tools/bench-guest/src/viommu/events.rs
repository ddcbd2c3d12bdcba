//! The event queue (queue 1) of the virtio-iommu: a few device-writable
//! buffers the device fills with fault reports, polled by
//! [`super::Viommu::next_fault`]. Set up with request queue 0, before
//! DRIVER_OK; the device only uses it when a DMA faults.

use super::{Desc, Transport};
use core::ptr::{addr_of_mut, read_volatile, write_volatile};
use virtio_defs::iommu::{self, FAULT_LEN};
use virtio_defs::ring::{RING_HEAD_LEN, VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_WRITE};

/// Entries of the event queue (each with its own buffer).
pub const EQSZ: usize = 8;

/// One fault report as the device wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultReport {
    /// `FAULT_R_*` reason.
    pub reason: u8,
    /// `FAULT_F_*` flags.
    pub flags: u32,
    /// The endpoint that faulted.
    pub endpoint: u32,
    /// The faulting address (valid with `FAULT_F_ADDRESS`).
    pub address: u64,
}

/// Bytes of descriptors and available ring before the pad.
const HEAD: usize = EQSZ * 16 + RING_HEAD_LEN as usize + 2 * EQSZ;

#[repr(C, align(4096))]
struct EventRings {
    desc: [Desc; EQSZ],
    avail_flags: u16,
    avail_idx: u16,
    avail_ring: [u16; EQSZ],
    _pad: [u8; 4096 - HEAD],
    used_flags: u16,
    used_idx: u16,
    used_ring: [[u32; 2]; EQSZ],
    bufs: [[u64; 8]; EQSZ],
}

static mut EVENTS: EventRings = EventRings {
    desc: [Desc {
        addr: 0,
        len: 0,
        flags: 0,
        next: 0,
    }; EQSZ],
    avail_flags: 0,
    avail_idx: 0,
    avail_ring: [0; EQSZ],
    _pad: [0; 4096 - HEAD],
    used_flags: 0,
    used_idx: 0,
    used_ring: [[0; 2]; EQSZ],
    bufs: [[0; 8]; EQSZ],
};

const _: () = assert!(FAULT_LEN <= 64);

/// The driver's side of the event queue: the next used entry to read.
pub struct Events {
    rings: *mut EventRings,
    used: u16,
}

impl Events {
    /// Configures queue 1 of the device behind `t` with every buffer
    /// available (call before DRIVER_OK). `None` when the queue is smaller
    /// than [`EQSZ`].
    pub fn setup(t: &mut impl Transport) -> Result<Option<Events>, &'static str> {
        if (t.queue_max(iommu::EVENT_QUEUE) as usize) < EQSZ {
            return Ok(None);
        }
        let rings = &raw mut EVENTS;
        // SAFETY: field addresses of a static, written before the device
        // may use the queue; no reference is formed.
        let (d, a, u) = unsafe {
            for i in 0..EQSZ {
                let desc = (addr_of_mut!((*rings).desc) as *mut Desc).add(i);
                let buf = (addr_of_mut!((*rings).bufs) as *mut [u64; 8]).add(i);
                write_volatile(addr_of_mut!((*desc).addr), buf as u64);
                write_volatile(addr_of_mut!((*desc).len), 64);
                write_volatile(addr_of_mut!((*desc).flags), VIRTQ_DESC_F_WRITE);
                let ring = addr_of_mut!((*rings).avail_ring) as *mut u16;
                write_volatile(ring.add(i), i as u16);
            }
            write_volatile(
                addr_of_mut!((*rings).avail_flags),
                VIRTQ_AVAIL_F_NO_INTERRUPT,
            );
            write_volatile(addr_of_mut!((*rings).avail_idx), EQSZ as u16);
            (
                addr_of_mut!((*rings).desc) as u64,
                addr_of_mut!((*rings).avail_flags) as u64,
                addr_of_mut!((*rings).used_flags) as u64,
            )
        };
        t.enable_queue(iommu::EVENT_QUEUE, EQSZ as u16, d, a, u)?;
        Ok(Some(Events { rings, used: 0 }))
    }

    /// The next fault report the device has written; its buffer is given
    /// back to the device (`t`: its transport, for the notify).
    pub fn next(&mut self, t: &impl Transport) -> Option<FaultReport> {
        let r = self.rings;
        // SAFETY: naturally aligned fields of the static rings; an entry is
        // read only after the device published it through used.idx, and its
        // buffer handed back only after it was read.
        let report = unsafe {
            if read_volatile(addr_of_mut!((*r).used_idx)) == self.used {
                return None;
            }
            let elem = (addr_of_mut!((*r).used_ring) as *const [u32; 2])
                .add(self.used as usize % EQSZ)
                .read_volatile();
            let id = elem[0] as usize % EQSZ;
            let buf = (addr_of_mut!((*r).bufs) as *const u64).add(8 * id);
            let (w0, w1) = (read_volatile(buf), read_volatile(buf.add(1)));
            let address = read_volatile(buf.add(2));
            self.used = self.used.wrapping_add(1);
            let avail = read_volatile(addr_of_mut!((*r).avail_idx));
            let ring = addr_of_mut!((*r).avail_ring) as *mut u16;
            write_volatile(ring.add(avail as usize % EQSZ), id as u16);
            write_volatile(addr_of_mut!((*r).avail_idx), avail.wrapping_add(1));
            core::arch::asm!("dsb sy");
            FaultReport {
                reason: w0 as u8,
                flags: (w0 >> 32) as u32,
                endpoint: w1 as u32,
                address,
            }
        };
        t.notify(iommu::EVENT_QUEUE);
        Some(report)
    }
}
