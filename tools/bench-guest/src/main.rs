//! partita bench guest: a bare-metal arm64 `Image` that drives a virtio-iommu
//! on virtio-mmio (version 2) directly and times MAP/UNMAP requests with the
//! virtual counter (CNTVCT_EL0).
//!
//! The same binary runs (a) as a guest of partita (the device is the
//! hypervisor's `iommu@...` node of the guest DT) and (b) directly on QEMU
//! `virt` with QEMU's own `virtio-iommu-device` (its virtio-mmio slot, given
//! `#iommu-cells` by the DT `cargo xtask bench` passes with `-dtb`). Both
//! find it the same way: the PCIe host's `iommu-map` maps the requester ID
//! of 00:01.0 to a phandle and an endpoint ID; the node with that phandle
//! must be `compatible = "virtio,mmio"` with `#iommu-cells = <1>`, its `reg`
//! is the device and the endpoint is what the guest ATTACHes.
//! Under `-icount shift=0` one guest nanosecond is one executed instruction
//! (the hypervisor's EL2 instructions included), so the figures repeat.
//!
//! Output, one line per workload, on the PL011 at 0x0900_0000:
//! `bench <name> ns_per_op=<ns>.<tenths> reps=<n> ...`, then `bench done`,
//! then PSCI SYSTEM_OFF through the conduit the DT's /psci node names.
//!
//! The MMU stays off: every access is Device-nGnRnE, so everything shared
//! with the device is naturally aligned and accessed with volatile loads and
//! stores of its own width.

#![no_std]
#![no_main]

mod fdt;
mod uart;

use core::arch::{asm, global_asm};
use core::ptr::{addr_of_mut, read_volatile, write_volatile};
use virtio_defs::features::F_VERSION_1;
use virtio_defs::iommu;
use virtio_defs::mmio::{
    self, STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FEATURES_OK, offset,
};
use virtio_defs::ring::{
    AVAIL_ELEM_LEN, DESC_LEN, RING_HEAD_LEN, USED_ELEM_LEN, VIRTQ_AVAIL_F_NO_INTERRUPT,
    VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
};

global_asm!(
    r#"
    .section .text.head, "ax"
    .global _start
_start:
    b       1f                  // code0
    .word   0                   // code1
    .quad   0                   // text_offset: load at the RAM base
    .quad   __image_size        // image_size (bss and stack included)
    .quad   0xa                 // flags: LE, 4 KiB pages, anywhere
    .quad   0, 0, 0             // res2..res4
    .ascii  "ARM\x64"           // magic
    .word   0                   // res5
1:
    msr     daifset, #0xf
    mov     x19, x0
    adrp    x1, __stack_top
    add     x1, x1, :lo12:__stack_top
    mov     sp, x1
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
2:  cmp     x1, x2
    b.hs    3f
    str     xzr, [x1], #8
    b       2b
3:  adrp    x1, vectors
    add     x1, x1, :lo12:vectors
    msr     vbar_el1, x1
    isb
    mov     x0, x19
    bl      guest_main
4:  wfe
    b       4b

    .section .text.vectors, "ax"
    .balign 2048
vectors:
    .rept 16
    .balign 128
    b       exception_entry
    .endr
    "#
);

/// Any exception is fatal: print the syndrome and power off.
#[unsafe(no_mangle)]
extern "C" fn exception_entry() -> ! {
    let (esr, far, elr): (u64, u64, u64);
    // SAFETY: reads of EL1 system registers.
    unsafe {
        asm!("mrs {}, esr_el1", out(reg) esr);
        asm!("mrs {}, far_el1", out(reg) far);
        asm!("mrs {}, elr_el1", out(reg) elr);
    }
    uart::puts("bench error exception esr=");
    uart::hex(esr);
    uart::puts(" far=");
    uart::hex(far);
    uart::puts(" elr=");
    uart::hex(elr);
    uart::puts("\n");
    power_off();
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    uart::puts("bench error panic\n");
    power_off();
}

// ---------------------------------------------------------------- PSCI

/// The PSCI conduit: false = HVC, true = SMC (from the DT /psci `method`).
static mut PSCI_SMC: bool = false;

/// PSCI SYSTEM_OFF; spins if it returns.
fn power_off() -> ! {
    // SAFETY: PSCI_SMC is written once before any call; single CPU.
    let smc = unsafe { read_volatile(&raw const PSCI_SMC) };
    // SAFETY: SYSTEM_OFF does not return on success; x0-x3 are clobbered.
    unsafe {
        if smc {
            asm!("smc #0", inout("x0") 0x8400_0008u64 => _, out("x1") _, out("x2") _, out("x3") _);
        } else {
            asm!("hvc #0", inout("x0") 0x8400_0008u64 => _, out("x1") _, out("x2") _, out("x3") _);
        }
    }
    uart::puts("bench error system_off returned\n");
    loop {
        // SAFETY: waits for an event; nothing else.
        unsafe { asm!("wfe") };
    }
}

// ---------------------------------------------------------------- timing

/// The virtual counter, after an ISB so that it is not read early.
#[inline(always)]
fn now() -> u64 {
    let t: u64;
    // SAFETY: reads CNTVCT_EL0, allowed at EL1.
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) t) };
    t
}

/// The counter frequency in Hz.
fn freq() -> u64 {
    let f: u64;
    // SAFETY: reads CNTFRQ_EL0.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) f) };
    f
}

/// Counter ticks to tenths of a nanosecond.
fn tenth_ns(ticks: u64, freq: u64) -> u64 {
    ((ticks as u128) * 10_000_000_000u128 / (freq as u128)) as u64
}

// ---------------------------------------------------------------- virtio-mmio
//
// Register offsets, status bits, ring flags and virtio-iommu numbers come
// from `virtio-defs` (hypervisor/virtio-defs), the crate the hypervisor's
// device side is built on.

/// Reads the 32-bit register at `off` (a [`offset`] constant) of the window.
fn rd(base: usize, off: u64) -> u32 {
    // SAFETY: `base` is a virtio-mmio window (checked magic) or a probe of one.
    unsafe { read_volatile((base + off as usize) as *const u32) }
}

/// Writes the 32-bit register at `off` of the window.
fn wr(base: usize, off: u64, v: u32) {
    // SAFETY: as for `rd`.
    unsafe { write_volatile((base + off as usize) as *mut u32, v) }
}

/// Whether the window at `base` is a virtio-mmio virtio-iommu.
fn is_viommu(base: usize) -> bool {
    rd(base, offset::MAGIC_VALUE) == mmio::MAGIC && rd(base, offset::DEVICE_ID) == iommu::DEVICE_ID
}

/// Queue size used (power of two); 64 request chains of 2 descriptors.
const QSZ: usize = 128;
const BATCH: usize = 64;

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
const T_MAP: u32 = iommu::T_MAP as u32;
const T_UNMAP: u32 = iommu::T_UNMAP as u32;
/// Device-writable size of every request: the tail.
const TAIL_LEN: u32 = iommu::TAIL_LEN as u32;
const DOMAIN: u32 = 1;
/// The PCI function whose endpoint is attached: 00:01.0 (QEMU virt's
/// default NIC), requester ID bus << 8 | device << 3 | function.
const RID: u32 = 1 << 3;

/// The driver side of request queue 0.
struct Viommu {
    base: usize,
    rings: *mut Rings,
    slots: *mut Slot,
    /// Driver copy of avail.idx.
    avail: u16,
    /// Requests that completed with a non-zero status, or a wrong used length.
    errors: u32,
    last_bad_status: u32,
}

impl Viommu {
    /// Writes request `i` (words of `req`, device-readable `len` bytes)
    /// into its slot and descriptors and publishes it in the avail ring
    /// (the avail index is written by `kick`).
    #[inline(always)]
    fn queue(&mut self, i: usize, req: &[u32], len: u32) {
        // SAFETY: single-threaded; slot and descriptor `i` are ours until used.
        unsafe {
            let slot = self.slots.add(i);
            let r = addr_of_mut!((*slot).req) as *mut u32;
            for (k, w) in req.iter().enumerate() {
                write_volatile(r.add(k), *w);
            }
            let st = addr_of_mut!((*slot).status) as *mut u32;
            write_volatile(st, 0xff);
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

    /// Publishes the avail index, notifies queue 0 and polls the used ring
    /// until every published request has completed; checks `n` statuses.
    #[inline(always)]
    fn kick(&mut self, n: usize) {
        // SAFETY: ring fields are naturally aligned; MMU off keeps order,
        // the DSB orders the ring writes before the notify anyway.
        unsafe {
            write_volatile(addr_of_mut!((*self.rings).avail_idx), self.avail);
            asm!("dsb sy");
            wr(
                self.base,
                offset::QUEUE_NOTIFY,
                u32::from(iommu::REQUEST_QUEUE),
            );
            while read_volatile(addr_of_mut!((*self.rings).used_idx)) != self.avail {
                core::hint::spin_loop();
            }
            for i in 0..n {
                let st =
                    read_volatile(addr_of_mut!((*self.slots.add(i)).status) as *const u32) & 0xff;
                if st != u32::from(iommu::S_OK) {
                    self.errors += 1;
                    self.last_bad_status = st;
                }
            }
        }
    }

    fn map(&mut self, i: usize, iova: u64, size: u64, phys: u64) {
        let end = iova + size - 1;
        let req = [
            T_MAP,
            DOMAIN,
            iova as u32,
            (iova >> 32) as u32,
            end as u32,
            (end >> 32) as u32,
            phys as u32,
            (phys >> 32) as u32,
            iommu::MAP_F_READ | iommu::MAP_F_WRITE,
            0, // padding to the slot's 40 bytes
        ];
        self.queue(i, &req, iommu::MAP_LEN as u32);
    }

    fn unmap(&mut self, i: usize, iova: u64, size: u64) {
        let end = iova + size - 1;
        let req = [
            T_UNMAP,
            DOMAIN,
            iova as u32,
            (iova >> 32) as u32,
            end as u32,
            (end >> 32) as u32,
            0, // reserved
            0, // padding
        ];
        self.queue(i, &req, iommu::UNMAP_LEN as u32);
    }
}

/// The virtio-iommu virtio-mmio window and the endpoint ID of [`RID`], from
/// the DT (see the top of this file). Without one in the DT the guest fails,
/// naming any virtio-iommu a scan of QEMU virt's virtio-mmio slots finds (a
/// hint for the DT, never used as the device).
///
/// Not inlined: inlined into `guest_main` (with the DT walk) it changed the
/// register allocation of the timed loops (67 -> 71 instructions per 4 KiB
/// pair on the reference), which is not what this function is about.
#[inline(never)]
fn find_device(dtb: usize) -> (usize, u32) {
    let found = match fdt::Fdt::new(dtb) {
        None => Err("no device tree at x0"),
        Some(dt) => fdt::viommu_of_rid(dt, RID),
    };
    let why = match found {
        Ok(v) => {
            let base = v.base as usize;
            if is_viommu(base) {
                uart::puts("bench dt viommu=/");
                uart::bytes((0..v.node.name.len).map(|i| v.node.name.at(i)));
                uart::puts(" iommu-map of /");
                uart::bytes((0..v.pci.name.len).map(|i| v.pci.name.at(i)));
                uart::puts(" rid=");
                uart::hex(RID as u64);
                uart::puts(" endpoint=");
                uart::hex(v.endpoint as u64);
                uart::puts("\n");
                return (base, v.endpoint);
            }
            "the DT's virtio-iommu node has no virtio-mmio DeviceID 23 at its reg"
        }
        Err(why) => why,
    };
    uart::puts("bench error DT: ");
    uart::puts(why);
    uart::puts("\n");
    // The hint comes second: under partita the slots are not mapped and the
    // probe ends in the exception handler.
    match (0..32)
        .map(|n| 0x0a00_0000 + n * mmio::WINDOW_SIZE as usize)
        .find(|&b| is_viommu(b))
    {
        Some(b) => {
            uart::puts(
                "bench hint: a scan of QEMU virt's virtio-mmio slots finds a virtio-iommu at ",
            );
            uart::hex(b as u64);
            uart::puts(", which the DT does not describe\n");
        }
        None => uart::puts("bench hint: no virtio-iommu in QEMU virt's virtio-mmio slots either\n"),
    }
    power_off();
}

fn fail(what: &str) -> ! {
    uart::puts("bench error ");
    uart::puts(what);
    uart::puts("\n");
    power_off();
}

/// The features the guest takes: VERSION_1 and MAP_UNMAP, nothing else.
const FEATURES: u64 = F_VERSION_1 | iommu::F_MAP_UNMAP;

/// Sets the device up: reset, handshake, queue 0, DRIVER_OK.
fn setup(base: usize) -> Viommu {
    if rd(base, offset::VERSION) != mmio::VERSION {
        fail("virtio-mmio version is not 2 (legacy transport?)");
    }
    let acked = STATUS_ACKNOWLEDGE | STATUS_DRIVER;
    wr(base, offset::STATUS, 0);
    wr(base, offset::STATUS, acked);
    wr(base, offset::DEVICE_FEATURES_SEL, 1);
    let hi = rd(base, offset::DEVICE_FEATURES);
    wr(base, offset::DEVICE_FEATURES_SEL, 0);
    let lo = rd(base, offset::DEVICE_FEATURES);
    let (want_hi, want_lo) = ((FEATURES >> 32) as u32, FEATURES as u32);
    if hi & want_hi != want_hi || lo & want_lo != want_lo {
        fail("device lacks VERSION_1 or MAP_UNMAP");
    }
    wr(base, offset::DRIVER_FEATURES_SEL, 1);
    wr(base, offset::DRIVER_FEATURES, want_hi);
    wr(base, offset::DRIVER_FEATURES_SEL, 0);
    wr(base, offset::DRIVER_FEATURES, want_lo);
    wr(base, offset::STATUS, acked | STATUS_FEATURES_OK);
    if rd(base, offset::STATUS) & STATUS_FEATURES_OK == 0 {
        fail("FEATURES_OK refused");
    }
    wr(base, offset::QUEUE_SEL, u32::from(iommu::REQUEST_QUEUE));
    let max = rd(base, offset::QUEUE_NUM_MAX) as usize;
    if max < QSZ {
        fail("queue 0 smaller than 128 entries");
    }
    let rings = &raw mut RINGS;
    wr(base, offset::QUEUE_NUM, QSZ as u32);
    // SAFETY: field addresses of a static; no reference is formed.
    let (d, a, u) = unsafe {
        (
            addr_of_mut!((*rings).desc) as u64,
            addr_of_mut!((*rings).avail_flags) as u64,
            addr_of_mut!((*rings).used_flags) as u64,
        )
    };
    // No interrupts wanted: the guest polls (and runs with IRQs masked).
    // SAFETY: as above.
    unsafe {
        write_volatile(
            addr_of_mut!((*rings).avail_flags),
            VIRTQ_AVAIL_F_NO_INTERRUPT,
        )
    };
    for (low, high, v) in [
        (offset::QUEUE_DESC_LOW, offset::QUEUE_DESC_HIGH, d),
        (offset::QUEUE_DRIVER_LOW, offset::QUEUE_DRIVER_HIGH, a),
        (offset::QUEUE_DEVICE_LOW, offset::QUEUE_DEVICE_HIGH, u),
    ] {
        wr(base, low, v as u32);
        wr(base, high, (v >> 32) as u32);
    }
    wr(base, offset::QUEUE_READY, 1);
    wr(
        base,
        offset::STATUS,
        acked | STATUS_FEATURES_OK | STATUS_DRIVER_OK,
    );
    uart::puts("bench device base=");
    uart::hex(base as u64);
    uart::puts(" page_size_mask=");
    let psm = offset::CONFIG + iommu::config::OFF_PAGE_SIZE_MASK as u64;
    uart::hex(rd(base, psm) as u64 | (rd(base, psm + 4) as u64) << 32);
    uart::puts(" queue_num_max=");
    uart::dec(max as u64);
    uart::puts("\n");
    Viommu {
        base,
        rings,
        slots: (&raw mut SLOTS) as *mut Slot,
        avail: 0,
        errors: 0,
        last_bad_status: 0,
    }
}

/// Prints `bench NAME ns_per_op=X reps=N ticks=T errors=E`.
fn report(name: &str, ticks: u64, reps: u64, freq: u64, errors: u32) {
    let t = tenth_ns(ticks, freq) / reps;
    uart::puts("bench ");
    uart::puts(name);
    uart::puts(" ns_per_op=");
    uart::dec(t / 10);
    uart::puts(".");
    uart::dec(t % 10);
    uart::puts(" reps=");
    uart::dec(reps);
    uart::puts(" ticks=");
    uart::dec(ticks);
    uart::puts(" errors=");
    uart::dec(errors as u64);
    uart::puts("\n");
}

const IOVA_4K: u64 = 0x1000_0000;
const IOVA_2M: u64 = 0x2000_0000;
const IOVA_BATCH: u64 = 0x3000_0000;
/// Guest RAM 2 MiB aligned, well above the image (RAM is 0x4000_0000 +).
const PHYS: u64 = 0x4800_0000;

const REPS_PAIR: u64 = 1000;
const REPS_BATCH: u64 = 50;
const REPS_NULL: u64 = 5000;

#[unsafe(no_mangle)]
extern "C" fn guest_main(dtb: usize) -> ! {
    if let Some(smc) = fdt::Fdt::new(dtb).and_then(|dt| dt.psci_method_is_smc()) {
        // SAFETY: single CPU, before any power_off.
        unsafe { write_volatile(&raw mut PSCI_SMC, smc) };
    }
    let f = freq();
    uart::puts("bench start cntfrq=");
    uart::dec(f);
    uart::puts(" psci=");
    // SAFETY: plain read of a static written above.
    uart::puts(if unsafe { read_volatile(&raw const PSCI_SMC) } {
        "smc"
    } else {
        "hvc"
    });
    uart::puts("\n");

    let (base, endpoint) = find_device(dtb);
    let mut v = setup(base);

    // ATTACH the endpoint of 00:01.0 to domain 1.
    v.queue(
        0,
        &[T_ATTACH, DOMAIN, endpoint, 0, 0, 0],
        iommu::ATTACH_LEN as u32,
    );
    v.kick(1);
    if v.errors != 0 {
        uart::puts("bench error attach status=");
        uart::dec(v.last_bad_status as u64);
        uart::puts("\n");
        power_off();
    }

    // Loop overhead baseline: the same loop reading guest RAM.
    let probe = (&raw const RINGS) as *const u32;
    let t0 = now();
    for _ in 0..REPS_NULL {
        // SAFETY: aligned read of our own static.
        unsafe { read_volatile(probe) };
    }
    report("loop_baseline", now() - t0, REPS_NULL, f, 0);

    // Null exit: a read of MagicValue (trapped under partita).
    let t0 = now();
    for _ in 0..REPS_NULL {
        rd(base, offset::MAGIC_VALUE);
    }
    report("null_exit", now() - t0, REPS_NULL, f, 0);

    for (name, iova, size) in [
        ("map_unmap_4k", IOVA_4K, 0x1000u64),
        ("map_unmap_2m", IOVA_2M, 0x20_0000u64),
    ] {
        // Warm-up (first-touch page-table allocations in the device).
        for _ in 0..4 {
            v.map(0, iova, size, PHYS);
            v.kick(1);
            v.unmap(0, iova, size);
            v.kick(1);
        }
        v.errors = 0;
        let t0 = now();
        for _ in 0..REPS_PAIR {
            v.map(0, iova, size, PHYS);
            v.kick(1);
            v.unmap(0, iova, size);
            v.kick(1);
        }
        let t = now() - t0;
        report(name, t, REPS_PAIR, f, v.errors);
    }

    // 64 MAPs with one notify, then 64 UNMAPs with one notify.
    let (mut tmap, mut tunmap) = (0u64, 0u64);
    v.errors = 0;
    for rep in 0..REPS_BATCH + 2 {
        let t0 = now();
        for i in 0..BATCH {
            v.map(
                i,
                IOVA_BATCH + (i as u64) * 0x1000,
                0x1000,
                PHYS + (i as u64) * 0x1000,
            );
        }
        v.kick(BATCH);
        let t1 = now();
        for i in 0..BATCH {
            v.unmap(i, IOVA_BATCH + (i as u64) * 0x1000, 0x1000);
        }
        v.kick(BATCH);
        let t2 = now();
        if rep >= 2 {
            tmap += t1 - t0;
            tunmap += t2 - t1;
        }
    }
    report("map_batch_64", tmap, REPS_BATCH, f, v.errors);
    report("unmap_batch_64", tunmap, REPS_BATCH, f, v.errors);

    uart::puts("bench done\n");
    power_off();
}
