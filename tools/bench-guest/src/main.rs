//! partita bench guest: a bare-metal arm64 `Image` that drives a virtio-iommu
//! on virtio-mmio (version 2) or modern virtio-pci directly and times
//! MAP/UNMAP requests with the virtual counter (CNTVCT_EL0).
//!
//! The same binary runs (a) as a guest of partita (the device is the
//! hypervisor's: its `iommu@...` virtio-mmio node, or with `transport =
//! "pci"` the `virtio,pci-iommu` function of the guest's virtual PCI bus)
//! and (b) directly on QEMU `virt` with QEMU's own `virtio-iommu-device`
//! (its virtio-mmio slot, given `#iommu-cells` by the DT `cargo xtask
//! bench` passes with `-dtb`) or `virtio-iommu-pci` (QEMU's DT describes
//! it). All find it the same way: the endpoint is the first function of
//! the PCIe host's first bus that is neither a bridge nor the virtio-iommu
//! (QEMU's NIC at 00:01.0; under partita with a virtual bus, its first
//! function); the host's `iommu-map` maps its requester ID to a phandle and
//! an endpoint ID; the node with that phandle must have `#iommu-cells =
//! <1>` and be `virtio,mmio` (its `reg` is the device) or
//! `virtio,pci-iommu` (its `reg` names the function, whose BARs are found
//! through its capabilities and, on bare QEMU where nobody assigned them,
//! placed by the guest in the host's memory windows: `virtio_pci_probe`).
//! The endpoint is what the guest ATTACHes.
//! Under `-icount shift=0` one guest nanosecond is one executed instruction
//! (the hypervisor's EL2 instructions included), so the figures repeat.
//!
//! Output, one line per workload, on the PL011 at 0x0900_0000:
//! `bench <name> ns_per_op=<ns>.<tenths> reps=<n> ...`, then `bench done`,
//! then PSCI SYSTEM_OFF through the conduit the DT's /psci node names.
//! The workloads and their timed loops are the same code on both
//! transports (the driver is generic over them); `null_exit` reads
//! MagicValue on virtio-mmio and `device_feature_select` of the common
//! configuration on virtio-pci.
//!
//! The MMU stays off: every access is Device-nGnRnE, so everything shared
//! with the device is naturally aligned and accessed with volatile loads and
//! stores of its own width.

#![no_std]
#![no_main]

use bench_guest::fdt::{self, IommuAt};
use bench_guest::rt::{self, freq, now, power_off};
use bench_guest::viommu::pci::Pci;
use bench_guest::viommu::{BATCH, Mmio, Transport, Viommu, is_viommu};
use bench_guest::{pci, uart};
use core::fmt::Write as _;
use core::ptr::read_volatile;
use virtio_defs::iommu;
use virtio_defs::mmio;

/// Any exception is fatal: print the syndrome and power off.
#[unsafe(no_mangle)]
extern "C" fn exception_entry() -> ! {
    rt::fatal_exception("bench")
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    rt::fatal_panic("bench")
}

/// Counter ticks to tenths of a nanosecond.
fn tenth_ns(ticks: u64, freq: u64) -> u64 {
    ((ticks as u128) * 10_000_000_000u128 / (freq as u128)) as u64
}

const DOMAIN: u32 = 1;
/// Read and write: what every bench mapping allows.
const RW: u32 = iommu::MAP_F_READ | iommu::MAP_F_WRITE;

/// The device the DT leads to, with the endpoint ID to attach.
enum Found {
    /// On virtio-mmio.
    Mmio(Mmio, u32),
    /// On virtio-pci.
    Pci(Pci, u32),
}

/// Prints a DT name.
fn name(b: fdt::Bytes) {
    uart::bytes((0..b.len).map(|i| b.at(i)));
}

/// Prints a requester ID as `BB:DD.F`.
fn bdf(rid: u32) {
    let hex2 = |v: u32| {
        let d = |n: u32| b"0123456789abcdef"[n as usize & 0xf];
        uart::bytes([d(v >> 4), d(v)].into_iter());
    };
    hex2(rid >> 8);
    uart::puts(":");
    hex2(rid >> 3 & 0x1f);
    uart::puts(".");
    uart::dec(u64::from(rid & 7));
}

/// The virtio-iommu of the DT's PCIe host's first endpoint, ready for
/// [`Viommu::setup`] (see the top of this file). Without one in the DT the
/// guest fails, naming any virtio-mmio virtio-iommu a scan of QEMU virt's
/// slots finds (a hint for the DT, never used as the device).
///
/// Not inlined: inlined into `guest_main` (with the DT walk) it changed the
/// register allocation of the timed loops (67 -> 71 instructions per 4 KiB
/// pair on the reference), which is not what this function is about.
#[inline(never)]
fn find_device(dtb: usize) -> Found {
    let why = match locate(dtb) {
        Ok(found) => return found,
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

/// [`find_device`]'s walk: host, endpoint, `iommu-map`, transport.
fn locate(dtb: usize) -> Result<Found, &'static str> {
    let dt = fdt::Fdt::new(dtb).ok_or("no device tree at x0")?;
    let host = fdt::pci_host(dt).ok_or("the DT has no PCIe host with a two-cell reg")?;
    let ep = pci::first_endpoint(host.ecam.0, host.buses.0)
        .ok_or("no endpoint function on the PCIe host's first bus")?;
    let v = fdt::viommu_of_rid(dt, ep.rid)?;
    uart::puts("bench dt viommu=/");
    if let IommuAt::Pci(_) = v.at {
        // A child of the PCIe host.
        name(v.pci.name);
        uart::puts("/");
    }
    name(v.node.name);
    uart::puts(" iommu-map of /");
    name(v.pci.name);
    uart::puts(" rid=");
    uart::hex(u64::from(ep.rid));
    uart::puts(" endpoint=");
    uart::hex(u64::from(v.endpoint));
    uart::puts("\n");
    match v.at {
        IommuAt::Mmio(base) => Ok(Found::Mmio(Mmio::new(base as usize)?, v.endpoint)),
        IommuAt::Pci(rid) => {
            let f = pci::at(host.ecam.0, rid);
            let layout = virtio_pci_probe::probe(&f, &host.windows()).map_err(|e| {
                let _ = writeln!(
                    uart::Uart,
                    "bench pci probe of the virtio-iommu function: {e}"
                );
                "the virtio,pci-iommu node's function is no usable virtio-pci virtio-iommu"
            })?;
            uart::puts("bench pci function=");
            bdf(rid);
            uart::puts(" common=");
            uart::hex(layout.common);
            uart::puts(" notify=");
            uart::hex(layout.notify);
            uart::puts(" multiplier=");
            uart::dec(u64::from(layout.notify_off_multiplier));
            uart::puts(" bars_placed_by_guest=");
            uart::hex(u64::from(layout.placed));
            uart::puts("\n");
            Ok(Found::Pci(Pci::new(layout)?, v.endpoint))
        }
    }
}

fn fail(what: &str) -> ! {
    uart::puts("bench error ");
    uart::puts(what);
    uart::puts("\n");
    power_off();
}

/// Sets the device up (see [`Viommu::setup`]) and prints what it offers.
fn setup<T: Transport>(t: T, transport: &str) -> Viommu<T> {
    let v = match Viommu::setup(t) {
        Ok(v) => v,
        Err(why) => fail(why),
    };
    uart::puts("bench device base=");
    uart::hex(v.transport().base());
    uart::puts(" transport=");
    uart::puts(transport);
    uart::puts(" page_size_mask=");
    uart::hex(v.page_size_mask());
    uart::puts(" queue_num_max=");
    uart::dec(v.queue_num_max as u64);
    uart::puts("\n");
    v
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

/// A word of guest RAM the loop baseline reads.
static RAM_PROBE: u32 = 0;

#[unsafe(no_mangle)]
extern "C" fn guest_main(dtb: usize) -> ! {
    if let Some(smc) = fdt::Fdt::new(dtb).and_then(|dt| dt.psci_method_is_smc()) {
        rt::set_psci_smc(smc);
    }
    let f = freq();
    uart::puts("bench start cntfrq=");
    uart::dec(f);
    uart::puts(" psci=");
    uart::puts(if rt::psci_smc() { "smc" } else { "hvc" });
    uart::puts("\n");

    match find_device(dtb) {
        Found::Mmio(t, endpoint) => run(t, "mmio", endpoint),
        Found::Pci(t, endpoint) => run(t, "pci", endpoint),
    }
}

/// Sets the device up, ATTACHes `endpoint` to domain 1, then times every
/// workload and powers off.
///
/// The driver is made here, a local of this function whose address never
/// escapes once `setup` is inlined: passed in by value (through memory),
/// its fields were reloaded after every volatile store of the timed loops
/// (67 -> 81 instructions per 4 KiB pair on the reference).
fn run<T: Transport>(t: T, transport: &str, endpoint: u32) -> ! {
    let f = freq();
    let mut v = setup(t, transport);
    v.attach(0, DOMAIN, endpoint);
    v.kick(1);
    if v.errors != 0 {
        uart::puts("bench error attach status=");
        uart::dec(v.last_bad_status as u64);
        uart::puts("\n");
        power_off();
    }

    // Loop overhead baseline: the same loop reading guest RAM.
    let probe = &raw const RAM_PROBE;
    let t0 = now();
    for _ in 0..REPS_NULL {
        // SAFETY: aligned read of our own static.
        unsafe { read_volatile(probe) };
    }
    report("loop_baseline", now() - t0, REPS_NULL, f, 0);

    // Null exit: a register read without side effects (trapped under
    // partita): MagicValue, or the common configuration's
    // device_feature_select.
    let t0 = now();
    for _ in 0..REPS_NULL {
        v.transport().null_read();
    }
    report("null_exit", now() - t0, REPS_NULL, f, 0);

    for (name, iova, size) in [
        ("map_unmap_4k", IOVA_4K, 0x1000u64),
        ("map_unmap_2m", IOVA_2M, 0x20_0000u64),
    ] {
        // Warm-up (first-touch page-table allocations in the device).
        for _ in 0..4 {
            v.map_in(0, DOMAIN, iova, size, PHYS, RW);
            v.kick(1);
            v.unmap_in(0, DOMAIN, iova, size);
            v.kick(1);
        }
        v.errors = 0;
        let t0 = now();
        for _ in 0..REPS_PAIR {
            v.map_in(0, DOMAIN, iova, size, PHYS, RW);
            v.kick(1);
            v.unmap_in(0, DOMAIN, iova, size);
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
            v.map_in(
                i,
                DOMAIN,
                IOVA_BATCH + (i as u64) * 0x1000,
                0x1000,
                PHYS + (i as u64) * 0x1000,
                RW,
            );
        }
        v.kick(BATCH);
        let t1 = now();
        for i in 0..BATCH {
            v.unmap_in(i, DOMAIN, IOVA_BATCH + (i as u64) * 0x1000, 0x1000);
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
