//! A polling driver of a virtio-iommu over any transport ([`Transport`]:
//! virtio-mmio version 2, [`Mmio`], or modern virtio-pci, [`pci::Pci`]):
//! the handshake (VERSION_1 + MAP_UNMAP), request queue 0 (128 entries in
//! a static, requests of two descriptors (request, status) in fixed slots,
//! the used ring polled: NO_INTERRUPT, the guests run with IRQs masked)
//! and the event queue's fault reports ([`events`]). The ring and request
//! code is the same for both transports; only the register accesses
//! differ.
//!
//! Register offsets, status bits, ring flags and virtio-iommu numbers come
//! from `virtio-defs` (hypervisor/virtio-defs), the crate the hypervisor's
//! device side is built on. With the MMU off every access is
//! Device-nGnRnE, so everything shared with the device is naturally aligned
//! and accessed with volatile loads and stores of its own width.

pub mod events;
pub mod pci;
pub mod transport;

use crate::rt;
use core::arch::asm;
use core::ptr::{addr_of_mut, read_volatile, write_volatile};
use events::{Events, FaultReport};
pub use transport::{Mmio, Transport, is_viommu, rd, wr};
use virtio_defs::features::F_VERSION_1;
use virtio_defs::iommu;
use virtio_defs::mmio::{STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FEATURES_OK};
use virtio_defs::ring::{
    AVAIL_ELEM_LEN, DESC_LEN, RING_HEAD_LEN, USED_ELEM_LEN, VIRTQ_AVAIL_F_NO_INTERRUPT,
    VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
};

/// Queue size used (power of two); 64 request chains of 2 descriptors.
pub const QSZ: usize = 128;
/// Request slots: requests that can be queued before one notify.
pub const BATCH: usize = 64;

#[repr(C, align(16))]
#[derive(Clone, Copy)]
struct Desc {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

/// Bytes of the available ring (flags, idx, ring; no used_event).
const AVAIL_BYTES: usize = RING_HEAD_LEN as usize + AVAIL_ELEM_LEN as usize * QSZ;

#[repr(C, align(4096))]
struct Rings {
    desc: [Desc; QSZ],
    avail_flags: u16,
    avail_idx: u16,
    avail_ring: [u16; QSZ],
    _pad: [u8; 4096 - AVAIL_BYTES],
    used_flags: u16,
    used_idx: u16,
    used_ring: [[u32; 2]; QSZ],
}

// The ring structures above are the split-ring layout of virtio-defs.
const _: () = assert!(size_of::<Desc>() == DESC_LEN as usize);
const _: () = assert!(size_of::<[u32; 2]>() == USED_ELEM_LEN as usize);

/// One request slot: 40 bytes of request (the largest, MAP) then status.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Slot {
    req: [u32; 10],
    status: [u32; 2],
    _pad: [u32; 4],
}

static mut RINGS: Rings = Rings {
    desc: [Desc {
        addr: 0,
        len: 0,
        flags: 0,
        next: 0,
    }; QSZ],
    avail_flags: 0,
    avail_idx: 0,
    avail_ring: [0; QSZ],
    _pad: [0; 4096 - AVAIL_BYTES],
    used_flags: 0,
    used_idx: 0,
    used_ring: [[0; 2]; QSZ],
};

static mut SLOTS: [Slot; BATCH] = [Slot {
    req: [0; 10],
    status: [0; 2],
    _pad: [0; 4],
}; BATCH];

const T_ATTACH: u32 = iommu::T_ATTACH as u32;
const T_DETACH: u32 = iommu::T_DETACH as u32;
const T_MAP: u32 = iommu::T_MAP as u32;
const T_UNMAP: u32 = iommu::T_UNMAP as u32;
/// Device-writable size of every request: the tail.
const TAIL_LEN: u32 = iommu::TAIL_LEN as u32;

/// A status no device writes: what a slot holds until its request completes.
pub const NOT_DONE: u32 = 0xff;

/// The driver side of request queue 0, over transport `T`.
pub struct Viommu<T: Transport = Mmio> {
    t: T,
    rings: *mut Rings,
    slots: *mut Slot,
    /// Driver copy of avail.idx.
    avail: u16,
    /// Requests that completed with a non-zero status (counted by [`Viommu::kick`]).
    pub errors: u32,
    /// The last non-zero status [`Viommu::kick`] saw.
    pub last_bad_status: u32,
    /// The maximum size of queue 0.
    pub queue_num_max: u32,
    /// The event queue (None: the device's is too small).
    events: Option<Events>,
}

/// The features the driver takes: VERSION_1 and MAP_UNMAP, nothing else.
const FEATURES: u64 = F_VERSION_1 | iommu::F_MAP_UNMAP;

/// Reads of the device status after a reset before giving up on it.
const RESET_POLLS: u32 = 1000;

impl<T: Transport> Viommu<T> {
    /// Sets the device behind `t` up: reset, handshake, queues 0 and 1,
    /// DRIVER_OK.
    pub fn setup(mut t: T) -> Result<Viommu<T>, &'static str> {
        let acked = STATUS_ACKNOWLEDGE | STATUS_DRIVER;
        t.set_status(0);
        // A device may take a while to reset (virtio 1.2, 4.1.4.3.2).
        if !(0..RESET_POLLS).any(|_| t.status() == 0) {
            return Err("the device status does not read 0 after the reset");
        }
        t.set_status(acked);
        let hi = t.device_features(1);
        let lo = t.device_features(0);
        let (want_hi, want_lo) = ((FEATURES >> 32) as u32, FEATURES as u32);
        if hi & want_hi != want_hi || lo & want_lo != want_lo {
            return Err("device lacks VERSION_1 or MAP_UNMAP");
        }
        t.set_driver_features(1, want_hi);
        t.set_driver_features(0, want_lo);
        t.set_status(acked | STATUS_FEATURES_OK);
        if t.status() & STATUS_FEATURES_OK == 0 {
            return Err("FEATURES_OK refused");
        }
        let max = t.queue_max(iommu::REQUEST_QUEUE);
        if (max as usize) < QSZ {
            return Err("queue 0 smaller than 128 entries");
        }
        let rings = &raw mut RINGS;
        // SAFETY: field addresses of a static; no reference is formed.
        let (d, a, u) = unsafe {
            (
                addr_of_mut!((*rings).desc) as u64,
                addr_of_mut!((*rings).avail_flags) as u64,
                addr_of_mut!((*rings).used_flags) as u64,
            )
        };
        // No interrupts wanted: the driver polls (and runs with IRQs masked).
        // SAFETY: as above.
        unsafe {
            write_volatile(
                addr_of_mut!((*rings).avail_flags),
                VIRTQ_AVAIL_F_NO_INTERRUPT,
            )
        };
        t.enable_queue(iommu::REQUEST_QUEUE, QSZ as u16, d, a, u)?;
        let events = Events::setup(&mut t)?;
        t.set_status(acked | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
        Ok(Viommu {
            t,
            rings,
            slots: (&raw mut SLOTS) as *mut Slot,
            avail: 0,
            errors: 0,
            last_bad_status: 0,
            queue_num_max: max,
            events,
        })
    }

    /// The transport.
    #[inline(always)]
    pub fn transport(&self) -> &T {
        &self.t
    }

    /// The next fault report on the event queue, if the device wrote one.
    pub fn next_fault(&mut self) -> Option<FaultReport> {
        self.events.as_mut()?.next(&self.t)
    }

    /// The device's `page_size_mask` (config space).
    pub fn page_size_mask(&self) -> u64 {
        let psm = iommu::config::OFF_PAGE_SIZE_MASK as u64;
        self.t.config_read(psm) as u64 | (self.t.config_read(psm + 4) as u64) << 32
    }

    /// Writes the config field `bypass` (a 32-bit access covering it).
    pub fn set_bypass(&self, on: bool) {
        self.t
            .config_write(iommu::config::OFF_BYPASS as u64, on as u32);
    }

    /// Reads the config field `bypass`.
    pub fn bypass(&self) -> u32 {
        self.t.config_read(iommu::config::OFF_BYPASS as u64) & 0xff
    }

    /// Writes request `i` (words of `req`, device-readable `len` bytes)
    /// into its slot and descriptors and publishes it in the avail ring
    /// (the avail index is written by `kick`).
    #[inline(always)]
    pub fn queue(&mut self, i: usize, req: &[u32], len: u32) {
        // SAFETY: single-threaded; slot and descriptor `i` are ours until used.
        unsafe {
            let slot = self.slots.add(i);
            let r = addr_of_mut!((*slot).req) as *mut u32;
            for (k, w) in req.iter().enumerate() {
                write_volatile(r.add(k), *w);
            }
            let st = addr_of_mut!((*slot).status) as *mut u32;
            write_volatile(st, NOT_DONE);
            let d = addr_of_mut!((*self.rings).desc) as *mut Desc;
            let d0 = d.add(2 * i);
            write_volatile(addr_of_mut!((*d0).addr), r as u64);
            write_volatile(addr_of_mut!((*d0).len), len);
            write_volatile(addr_of_mut!((*d0).flags), VIRTQ_DESC_F_NEXT);
            write_volatile(addr_of_mut!((*d0).next), (2 * i + 1) as u16);
            let d1 = d.add(2 * i + 1);
            write_volatile(addr_of_mut!((*d1).addr), st as u64);
            write_volatile(addr_of_mut!((*d1).len), TAIL_LEN);
            write_volatile(addr_of_mut!((*d1).flags), VIRTQ_DESC_F_WRITE);
            write_volatile(addr_of_mut!((*d1).next), 0);
            let ring = addr_of_mut!((*self.rings).avail_ring) as *mut u16;
            write_volatile(ring.add(self.avail as usize % QSZ), (2 * i) as u16);
        }
        self.avail = self.avail.wrapping_add(1);
    }

    /// Publishes the avail index and notifies queue 0.
    #[inline(always)]
    fn notify(&mut self) {
        // SAFETY: ring fields are naturally aligned; MMU off keeps order,
        // the DSB orders the ring writes before the notify anyway.
        unsafe {
            write_volatile(addr_of_mut!((*self.rings).avail_idx), self.avail);
            asm!("dsb sy");
        }
        self.t.notify(iommu::REQUEST_QUEUE);
    }

    /// Whether every published request has been used.
    #[inline(always)]
    fn all_used(&self) -> bool {
        // SAFETY: naturally aligned field of the static rings.
        unsafe { read_volatile(addr_of_mut!((*self.rings).used_idx)) == self.avail }
    }

    /// Publishes the avail index, notifies queue 0 and polls the used ring
    /// until every published request has completed; checks `n` statuses.
    #[inline(always)]
    pub fn kick(&mut self, n: usize) {
        self.notify();
        while !self.all_used() {
            core::hint::spin_loop();
        }
        for i in 0..n {
            let st = self.status(i);
            if st != u32::from(iommu::S_OK) {
                self.errors += 1;
                self.last_bad_status = st;
            }
        }
    }

    /// As [`Viommu::kick`] without the status check, but gives up after
    /// `timeout` counter ticks; returns whether everything completed.
    /// The wait starts after the notify returns (a notify handled in the
    /// trap has completed by then).
    pub fn kick_bounded(&mut self, timeout: u64) -> bool {
        self.notify();
        let t0 = rt::now();
        while !self.all_used() {
            if rt::now() - t0 > timeout {
                return false;
            }
            core::hint::spin_loop();
        }
        true
    }

    /// The status byte of slot `i` ([`NOT_DONE`] until completed).
    #[inline(always)]
    pub fn status(&self, i: usize) -> u32 {
        // SAFETY: naturally aligned field of a static slot.
        unsafe { read_volatile(addr_of_mut!((*self.slots.add(i)).status) as *const u32) & 0xff }
    }

    /// Queues a MAP of `[iova, iova + size)` to `phys` in `domain` with
    /// MAP flags `flags` into slot `i`.
    #[inline(always)]
    pub fn map_in(&mut self, i: usize, domain: u32, iova: u64, size: u64, phys: u64, flags: u32) {
        let end = iova.wrapping_add(size).wrapping_sub(1);
        let req = [
            T_MAP,
            domain,
            iova as u32,
            (iova >> 32) as u32,
            end as u32,
            (end >> 32) as u32,
            phys as u32,
            (phys >> 32) as u32,
            flags,
            0, // padding to the slot's 40 bytes
        ];
        self.queue(i, &req, iommu::MAP_LEN as u32);
    }

    /// Queues an UNMAP of `[iova, iova + size)` in `domain` into slot `i`.
    #[inline(always)]
    pub fn unmap_in(&mut self, i: usize, domain: u32, iova: u64, size: u64) {
        let end = iova.wrapping_add(size).wrapping_sub(1);
        let req = [
            T_UNMAP,
            domain,
            iova as u32,
            (iova >> 32) as u32,
            end as u32,
            (end >> 32) as u32,
            0, // reserved
            0, // padding
        ];
        self.queue(i, &req, iommu::UNMAP_LEN as u32);
    }

    /// Queues an ATTACH of `endpoint` to `domain` (flags 0) into slot `i`.
    pub fn attach(&mut self, i: usize, domain: u32, endpoint: u32) {
        self.queue(
            i,
            &[T_ATTACH, domain, endpoint, 0, 0, 0],
            iommu::ATTACH_LEN as u32,
        );
    }

    /// Queues a DETACH of `endpoint` from `domain` into slot `i`.
    pub fn detach(&mut self, i: usize, domain: u32, endpoint: u32) {
        self.queue(
            i,
            &[T_DETACH, domain, endpoint, 0, 0, 0],
            iommu::DETACH_LEN as u32,
        );
    }
}
