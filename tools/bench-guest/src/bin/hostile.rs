//! partita hostile guest: a bare-metal arm64 `Image` that attacks the
//! hypervisor through its virtio-iommu and a DMA master, for the QEMU test
//! `tests/tests/hostile.rs` (see docs/security.md).
//!
//! It owns the PL011 and the PCIe host bridge with QEMU's `edu` device
//! (found by vendor/device ID on bus 0 through the ECAM window the DT
//! names; its endpoint comes from the bridge's `iommu-map`, like the bench
//! guest's). It runs the phases its command line lists
//! (`hostile.phases=refusals,huge,mmio,churn,domains,bypass,dma`; all of
//! them without the option), in that order, each bounded in requests and
//! every wait bounded in time, and prints one line per phase (or per
//! request that must be refused) with the statuses it got:
//!
//! - `refusals`: requests the spec says must fail (another guest's RAM,
//!   MMIO over RAM, misaligned, unknown domain or flags, overlap, 1 GiB past
//!   its RAM): `hostile refusal <what> status=<STATUS> expected=<STATUS>`;
//! - `huge`: MAPs of all its RAM at 4 KiB-aligned IOVAs ([`HUGE_MAPS`] of
//!   them, 65 536 PTEs each), then their UNMAPs;
//! - `mmio`: MAPs with the MMIO flag over the bridge's whole 64-bit window
//!   (512 GiB on QEMU virt), at a 4 KiB-aligned and at a window-aligned IOVA;
//! - `churn`: [`CHURN_PAIRS`] MAP+UNMAP pairs of 4 KiB at fresh 2 MiB-aligned
//!   IOVAs (each pair leaves an emptied table behind unless the hypervisor
//!   frees it);
//! - `domains`: ATTACH of [`DOMAIN_ATTACHES`] endpoints to as many new
//!   domains (past the device's domain range too), then their DETACH;
//! - `bypass`: [`BYPASS_TOGGLES`] writes of the config field `bypass`;
//! - `dma`: `edu` (bus mastering enabled through its command register)
//!   DMAs to the other guest's RAM: through a domain (IOVAs nobody mapped:
//!   MAPPING faults on the event queue), unattached with `bypass` off (a
//!   DOMAIN fault), then with `bypass` on and unattached, through this
//!   guest's stage 2 at
//!   every 32 MiB of the host's RAM, 0x4000_0000..0x8000_0000 (the other
//!   guest's RAM, host- or guest-physical, lies there; this guest's RAM is
//!   at 0x8000_0000).
//!
//! Phase lines: `hostile <phase>: requests=N ok=N ioerr=N unsupp=N deverr=N
//! inval=N range=N noent=N fault=N nomem=N other=N max_trap_us=N ...`, then
//! `hostile done` and PSCI SYSTEM_OFF. A request not completed within
//! [`KICK_TIMEOUT_MS`] ends the run with `hostile error`.
//!
//! The hypervisor writes to the same UART from other CPUs (the other
//! guest's start, DMA fault reports): the guest keeps quiet for a while at
//! start and after each DMA so that the lines do not interleave.

#![no_std]
#![no_main]

use bench_guest::fdt::{self, Fdt};
use bench_guest::rt::{self, freq, now, power_off};
use bench_guest::viommu::{BATCH, Mmio, Viommu};
use bench_guest::{pci, uart};
use core::ptr::{read_volatile, write_volatile};
use virtio_defs::iommu;

/// Any exception ends the run (after saying so).
#[unsafe(no_mangle)]
extern "C" fn exception_entry() -> ! {
    rt::fatal_exception("hostile")
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    rt::fatal_panic("hostile")
}

fn fail(what: &str) -> ! {
    uart::puts("hostile error ");
    uart::puts(what);
    uart::puts("\n");
    power_off();
}

/// Longest wait for one notify's requests.
const KICK_TIMEOUT_MS: u64 = 10_000;
/// Longest wait for one `edu` DMA (QEMU's takes 100 ms of virtual time).
const DMA_TIMEOUT_MS: u64 = 3_000;
/// Quiet time before the first line (see `guest_main`).
const START_QUIET_MS: u64 = 500;
/// Quiet time after a DMA before this guest prints (see `Hostile::settle`).
const SETTLE_MS: u64 = 100;
/// MAPs of the whole RAM in `huge`.
const HUGE_MAPS: u64 = 48;
/// MAP+UNMAP pairs in `churn`.
const CHURN_PAIRS: u64 = 8192;
/// ATTACHes in `domains` (the device's domain range ends at 1023).
const DOMAIN_ATTACHES: u32 = 1100;
/// Writes of `bypass` in `bypass`.
const BYPASS_TOGGLES: u32 = 32;

/// QEMU's `edu`: PCI vendor and device ID.
const EDU_VENDOR: u16 = 0x1234;
const EDU_DEVICE: u16 = 0x11e8;
/// `edu` registers (BAR 0): identification, DMA source, destination,
/// count, command (bit 0 start/busy, bit 1 direction: device to RAM).
const EDU_ID: usize = 0x00;
const EDU_DMA_SRC: usize = 0x80;
const EDU_DMA_DST: usize = 0x88;
const EDU_DMA_CNT: usize = 0x90;
const EDU_DMA_CMD: usize = 0x98;
const EDU_CMD_START: u64 = 1;
const EDU_CMD_TO_RAM: u64 = 2;
/// The device's 4 KiB buffer, as a DMA address on its side.
const EDU_BUFFER: u64 = 0x4_0000;

/// The domain `edu` is attached to.
const EDU_DOMAIN: u32 = 1;
/// The host RAM of the test machine (QEMU virt, `-m 1G`), which holds the
/// other guest's RAM, and the step of the DMA sweep over it (any 2 MiB
/// aligned region of 32 MiB contains one multiple of it).
const HOST_RAM: (u64, u64) = (0x4000_0000, 0x8000_0000);
const SWEEP_STEP: u64 = 32 << 20;
/// The other guest's guest-physical RAM (tools/bench-guest/hostile.toml).
const OTHER_GUEST_RAM: u64 = 0x4000_0000;

const RW: u32 = iommu::MAP_F_READ | iommu::MAP_F_WRITE;
const MMIO: u32 = iommu::MAP_F_MMIO | RW;

/// Status names, as the spec spells them (index = status).
const STATUS_NAMES: [&str; 9] = [
    "OK", "IOERR", "UNSUPP", "DEVERR", "INVAL", "RANGE", "NOENT", "FAULT", "NOMEM",
];

fn status_name(s: u32) -> &'static str {
    STATUS_NAMES.get(s as usize).copied().unwrap_or("OTHER")
}

/// Statuses of a phase's requests, and its longest trap.
#[derive(Default)]
struct Tally {
    counts: [u64; 10],
    max_trap: u64,
}

impl Tally {
    fn add(&mut self, status: u32) {
        self.counts[(status as usize).min(9)] += 1;
    }

    fn trap(&mut self, ticks: u64) {
        self.max_trap = self.max_trap.max(ticks);
    }

    /// Prints `hostile <phase>: requests=N ok=N ... other=N max_trap_us=N`.
    fn print(&self, phase: &str) {
        uart::puts("hostile ");
        uart::puts(phase);
        uart::puts(": requests=");
        uart::dec(self.counts.iter().sum());
        for (i, n) in self.counts.iter().enumerate() {
            uart::puts(" ");
            uart::puts(match i {
                0 => "ok",
                1 => "ioerr",
                2 => "unsupp",
                3 => "deverr",
                4 => "inval",
                5 => "range",
                6 => "noent",
                7 => "fault",
                8 => "nomem",
                _ => "other",
            });
            uart::puts("=");
            uart::dec(*n);
        }
        uart::puts(" max_trap_us=");
        uart::dec(self.max_trap * 1_000_000 / freq());
    }
}

/// The guest's state: device, RAM, bridge and `edu`.
struct Hostile {
    v: Viommu,
    ms: u64,
    ram: (u64, u64),
    pci: fdt::PciHost,
    edu_bar: usize,
    edu_ep: u32,
}

impl Hostile {
    /// Notifies and waits (bounded) for `n` requests in slots `0..n`;
    /// adds their statuses to `t` (or returns them through `out`).
    fn kick(&mut self, n: usize, t: &mut Tally, mut out: Option<&mut [u32]>) {
        let t0 = now();
        if !self.v.kick_bounded(KICK_TIMEOUT_MS * self.ms) {
            fail("a notify's requests did not complete in time");
        }
        t.trap(now() - t0);
        for i in 0..n {
            let s = self.v.status(i);
            t.add(s);
            if let Some(o) = out.as_deref_mut() {
                o[i] = s;
            }
        }
    }

    /// One request in slot 0: its status.
    fn one(&mut self, t: &mut Tally) -> u32 {
        let mut s = [0u32; 1];
        self.kick(1, t, Some(&mut s));
        s[0]
    }

    /// A request that must be refused with `expected`: prints
    /// `hostile refusal <what> status=<S> expected=<E>`.
    fn refusal(&mut self, what: &str, expected: u8, t: &mut Tally) {
        let s = self.one(t);
        uart::puts("hostile refusal ");
        uart::puts(what);
        uart::puts(" status=");
        uart::puts(status_name(s));
        uart::puts(" expected=");
        uart::puts(status_name(u32::from(expected)));
        uart::puts("\n");
        if s == u32::from(iommu::S_OK) {
            // Take back what should not have been granted.
            let mut ignore = Tally::default();
            self.v.unmap_in(0, EDU_DOMAIN, 0, 1 << 40);
            self.kick(1, &mut ignore, None);
        }
    }

    fn refusals(&mut self) {
        let mut t = Tally::default();
        let (base, size) = self.ram;
        self.v
            .map_in(0, EDU_DOMAIN, 0x1000, 0x1000, OTHER_GUEST_RAM, RW);
        self.refusal("other-guest-ram", iommu::S_RANGE, &mut t);
        self.v
            .map_in(0, EDU_DOMAIN, 0x1000, 0x1000, HOST_RAM.0 + 0x20_0000, RW);
        self.refusal("hypervisor-ram", iommu::S_RANGE, &mut t);
        self.v.map_in(0, EDU_DOMAIN, 0x1000, 1 << 30, base, RW);
        self.refusal("1g-past-own-ram", iommu::S_RANGE, &mut t);
        self.v.map_in(0, EDU_DOMAIN, 0x1000, 0x20_0000, base, MMIO);
        self.refusal("mmio-flag-over-ram", iommu::S_INVAL, &mut t);
        self.v
            .map_in(0, EDU_DOMAIN, 0x1000, 0x1000, base + 0x800, RW);
        self.refusal("misaligned-phys", iommu::S_RANGE, &mut t);
        self.v.map_in(0, 0, 0x1000, 0x1000, base, RW);
        self.refusal("domain-0", iommu::S_RANGE, &mut t);
        self.v.map_in(0, 5000, 0x1000, 0x1000, base, RW);
        self.refusal("domain-5000", iommu::S_RANGE, &mut t);
        self.v.map_in(0, 777, 0x1000, 0x1000, base, RW);
        self.refusal("unknown-domain", iommu::S_NOENT, &mut t);
        self.v
            .map_in(0, EDU_DOMAIN, 0x1000, 0x1000, base, 0x80 | RW);
        self.refusal("unknown-flags", iommu::S_INVAL, &mut t);
        self.v
            .map_in(0, EDU_DOMAIN, 0x1000, 0x1000, base + size, RW);
        self.refusal("past-own-ram", iommu::S_RANGE, &mut t);
        // An overlap: the first MAP is the guest's right, the second not.
        self.v.map_in(0, EDU_DOMAIN, 0x1000, 0x2000, base, RW);
        let first = self.one(&mut t);
        self.v.map_in(0, EDU_DOMAIN, 0x2000, 0x1000, base, RW);
        self.refusal("overlap", iommu::S_INVAL, &mut t);
        if first == u32::from(iommu::S_OK) {
            self.v.unmap_in(0, EDU_DOMAIN, 0x1000, 0x2000);
            self.one(&mut t);
        }
        t.print("refusals");
        uart::puts("\n");
    }

    fn huge(&mut self) {
        let mut t = Tally::default();
        let (base, size) = self.ram;
        let iova = |k: u64| 0x10_0000_0000 + k * 0x1000_0000 + 0x1000;
        let mut granted = 0u64;
        for k in 0..HUGE_MAPS {
            self.v.map_in(0, EDU_DOMAIN, iova(k), size, base, RW);
            if self.one(&mut t) == u32::from(iommu::S_OK) {
                granted |= 1 << k;
            }
        }
        t.print("huge");
        uart::puts(" map_bytes=");
        uart::dec(size);
        uart::puts("\n");
        let mut u = Tally::default();
        for k in (0..HUGE_MAPS).filter(|k| granted & (1 << k) != 0) {
            self.v.unmap_in(0, EDU_DOMAIN, iova(k), size);
            self.one(&mut u);
        }
        u.print("huge-unmap");
        uart::puts("\n");
    }

    fn mmio(&mut self) {
        let mut t = Tally::default();
        let (win, size) = (self.pci.mem64.cpu, self.pci.mem64.size);
        if size == 0 {
            fail("the PCIe host has no 64-bit window");
        }
        let mut statuses = [0u32; 2];
        // A 4 KiB-aligned IOVA: no block fits, every page is a PTE.
        self.v.map_in(0, EDU_DOMAIN, 0x1000, size, win, MMIO);
        statuses[0] = self.one(&mut t);
        // The window's own alignment: blocks fit.
        self.v.map_in(0, EDU_DOMAIN, win, size, win, MMIO);
        statuses[1] = self.one(&mut t);
        t.print("mmio");
        uart::puts(" window_bytes=");
        uart::dec(size);
        uart::puts(" misaligned=");
        uart::puts(status_name(statuses[0]));
        uart::puts(" aligned=");
        uart::puts(status_name(statuses[1]));
        uart::puts("\n");
        let mut u = Tally::default();
        for (s, iova) in statuses.iter().zip([0x1000, win]) {
            if *s == u32::from(iommu::S_OK) {
                self.v.unmap_in(0, EDU_DOMAIN, iova, size);
                self.one(&mut u);
            }
        }
    }

    fn churn(&mut self) {
        let mut t = Tally::default();
        let phys = self.ram.0 + 0x40_0000;
        for k in 0..CHURN_PAIRS {
            let iova = 0x40_0000_0000 + k * 0x20_0000;
            self.v.map_in(0, EDU_DOMAIN, iova, 0x1000, phys, RW);
            self.v.unmap_in(1, EDU_DOMAIN, iova, 0x1000);
            self.kick(2, &mut t, None);
        }
        t.print("churn");
        uart::puts(" pairs=");
        uart::dec(CHURN_PAIRS);
        uart::puts("\n");
    }

    fn domains(&mut self) {
        // Endpoints of buses 1.. (requester IDs the bridge's iommu-map
        // covers; no function answers there) to domains 2...
        let (mut inside, mut outside) = (Tally::default(), Tally::default());
        let last = 1023;
        let mut attached = 0u32;
        let mut i = 0u32;
        let mut st = [0u32; BATCH];
        while i < DOMAIN_ATTACHES {
            let n = (DOMAIN_ATTACHES - i).min(BATCH as u32);
            for k in 0..n {
                self.v.attach(k as usize, 2 + i + k, 0x100 + i + k);
            }
            let mut t = Tally::default();
            self.kick(n as usize, &mut t, Some(&mut st[..n as usize]));
            for k in 0..n {
                let s = st[k as usize];
                if 2 + i + k <= last {
                    inside.add(s);
                } else {
                    outside.add(s);
                }
                if s == u32::from(iommu::S_OK) {
                    attached += 1;
                }
            }
            inside.trap(t.max_trap);
            i += n;
        }
        inside.print("domains");
        uart::puts(" attached=");
        uart::dec(u64::from(attached));
        uart::puts("\n");
        outside.print("domains-out-of-range");
        uart::puts("\n");
        // Let go of every domain (DETACH of one never attached: INVAL).
        let mut d = Tally::default();
        let mut i = 0u32;
        while i < DOMAIN_ATTACHES.min(last - 1) {
            let n = (last - 1 - i).min(BATCH as u32);
            for k in 0..n {
                self.v.detach(k as usize, 2 + i + k, 0x100 + i + k);
            }
            self.kick(n as usize, &mut d, None);
            i += n;
        }
        d.print("domains-detach");
        uart::puts("\n");
    }

    fn bypass(&mut self) {
        let mut max = 0u64;
        let t0 = now();
        for k in 0..BYPASS_TOGGLES {
            let t = now();
            self.v.set_bypass(k % 2 == 0);
            max = max.max(now() - t);
        }
        let total = now() - t0;
        self.v.set_bypass(false);
        let f = freq();
        uart::puts("hostile bypass: writes=");
        uart::dec(u64::from(BYPASS_TOGGLES) + 1);
        uart::puts(" max_trap_us=");
        uart::dec(max * 1_000_000 / f);
        uart::puts(" total_ms=");
        uart::dec(total * 1000 / f);
        uart::puts(" readback=");
        uart::dec(u64::from(self.v.bypass()));
        uart::puts("\n");
    }

    /// Waits [`SETTLE_MS`]: the hypervisor reports a DMA fault from
    /// another CPU, on the same UART, and the lines must not interleave.
    fn settle(&self) {
        let t0 = now();
        while now() - t0 < SETTLE_MS * self.ms {
            core::hint::spin_loop();
        }
    }

    fn edu_write(&self, reg: usize, v: u64) {
        // SAFETY: a register of edu's BAR 0, which this guest placed.
        unsafe { write_volatile((self.edu_bar + reg) as *mut u64, v) }
    }

    fn edu_read(&self, reg: usize) -> u64 {
        // SAFETY: as for `edu_write`.
        unsafe { read_volatile((self.edu_bar + reg) as *const u64) }
    }

    /// One DMA of 4 KiB between edu's buffer and `addr` (to RAM when
    /// `to_ram`), waited for; prints `hostile dma <mode> <dir> <addr> done`
    /// (or `timeout`). Returns whether it completed.
    fn dma(&self, mode: &str, addr: u64, to_ram: bool) -> bool {
        let (src, dst) = if to_ram {
            (EDU_BUFFER, addr)
        } else {
            (addr, EDU_BUFFER)
        };
        self.edu_write(EDU_DMA_SRC, src);
        self.edu_write(EDU_DMA_DST, dst);
        self.edu_write(EDU_DMA_CNT, 0x1000);
        let cmd = EDU_CMD_START | if to_ram { EDU_CMD_TO_RAM } else { 0 };
        self.edu_write(EDU_DMA_CMD, cmd);
        let t0 = now();
        let done = loop {
            if self.edu_read(EDU_DMA_CMD) & EDU_CMD_START == 0 {
                break true;
            }
            if now() - t0 > DMA_TIMEOUT_MS * self.ms {
                break false;
            }
            core::hint::spin_loop();
        };
        self.settle();
        uart::puts("hostile dma ");
        uart::puts(mode);
        uart::puts(if to_ram { " write " } else { " read " });
        uart::hex(addr);
        uart::puts(if done { " done\n" } else { " timeout\n" });
        done
    }

    fn dma_phase(&mut self) {
        let mut t = Tally::default();
        let mut ok = 0u64;
        let mut sent = 0u64;
        // Attached to an empty domain: IOVAs nobody mapped, among them the
        // other guest's guest-physical RAM.
        for (addr, to_ram) in [
            (OTHER_GUEST_RAM, true),
            (OTHER_GUEST_RAM, false),
            (0x1000, true),
        ] {
            sent += 1;
            ok += u64::from(self.dma("domain", addr, to_ram));
        }
        let (mapping, _) = self.drain_faults();
        // Unattached with bypass off: translated by nothing, reported to
        // this guest as a DOMAIN fault.
        self.v.detach(0, EDU_DOMAIN, self.edu_ep);
        let s = self.one(&mut t);
        sent += 1;
        ok += u64::from(self.dma("unattached", OTHER_GUEST_RAM, true));
        let (_, domain) = self.drain_faults();
        // Unattached with bypass on: through this guest's stage 2, at every
        // step of the host's RAM.
        self.v.set_bypass(true);
        let mut addr = HOST_RAM.0;
        while addr < HOST_RAM.1 {
            sent += 1;
            ok += u64::from(self.dma("bypass", addr, true));
            addr += SWEEP_STEP;
        }
        sent += 1;
        ok += u64::from(self.dma("bypass", OTHER_GUEST_RAM, false));
        self.v.set_bypass(false);
        uart::puts("hostile dma: sent=");
        uart::dec(sent);
        uart::puts(" completed=");
        uart::dec(ok);
        uart::puts(" detach=");
        uart::puts(status_name(s));
        uart::puts(" mapping_faults=");
        uart::dec(mapping);
        uart::puts(" domain_faults=");
        uart::dec(domain);
        uart::puts("\n");
    }

    /// Reads every fault report `edu` caused from the event queue; returns
    /// how many gave reason MAPPING and how many DOMAIN.
    fn drain_faults(&mut self) -> (u64, u64) {
        let (mut mapping, mut domain) = (0, 0);
        while let Some(f) = self.v.next_fault() {
            if f.endpoint != self.edu_ep {
                continue;
            }
            match f.reason {
                iommu::FAULT_R_MAPPING => mapping += 1,
                iommu::FAULT_R_DOMAIN => domain += 1,
                _ => {}
            }
        }
        (mapping, domain)
    }
}

/// A phase: its name in `hostile.phases=` and what runs it.
type Phase = (&'static [u8], fn(&mut Hostile));

/// Whether phase `name` is selected by `hostile.phases=` (all without it).
fn selected(phases: Option<fdt::Bytes>, name: &[u8]) -> bool {
    phases.is_none_or(|p| p.has_item(name) || p.has_item(b"all"))
}

#[unsafe(no_mangle)]
extern "C" fn guest_main(dtb: usize) -> ! {
    let Some(dt) = Fdt::new(dtb) else {
        fail("no device tree at x0");
    };
    if let Some(smc) = dt.psci_method_is_smc() {
        rt::set_psci_smc(smc);
    }
    let ms = freq() / 1000;
    let phases = dt.bootargs().and_then(|b| fdt::arg(b, b"hostile.phases"));
    // The hypervisor logs the other guest's start on the same UART from
    // another CPU: let it finish before the first line.
    let t0 = now();
    while now() - t0 < START_QUIET_MS * ms {
        core::hint::spin_loop();
    }
    uart::puts("hostile start cntfrq=");
    uart::dec(freq());
    uart::puts("\n");

    let Some(host) = fdt::pci_host(dt) else {
        fail("no PCIe host bridge in the DT");
    };
    let Some(edu) = pci::find(host.ecam.0, host.buses.0, EDU_VENDOR, EDU_DEVICE) else {
        fail("no edu (1234:11e8) on the bridge's first bus");
    };
    if host.mem32.size < 1 << 20 {
        fail("the PCIe host has no 32-bit memory window for edu's BAR");
    }
    let bar = pci::enable(edu, host.mem32.cpu as u32) as usize;
    // SAFETY: edu's identification register, in the BAR just placed.
    let id = unsafe { read_volatile((bar + EDU_ID) as *const u32) };
    let (viommu, transport) = match fdt::viommu_of_rid(dt, edu.rid) {
        Ok(v) => match v.at {
            fdt::IommuAt::Mmio(base) => match Mmio::new(base as usize) {
                Ok(t) => (v, t),
                Err(why) => fail(why),
            },
            fdt::IommuAt::Pci(_) => {
                fail("the virtio-iommu is on virtio-pci: this guest drives virtio-mmio")
            }
        },
        Err(why) => fail(why),
    };
    let ram = dt
        .nodes(|n| {
            if n.depth != 1 || !n.name.starts(b"memory") {
                return None;
            }
            let r = dt.prop(n, b"reg").filter(|r| r.cells() >= 4)?;
            Some((r.cells_at(0, 2), r.cells_at(2, 2)))
        })
        .unwrap_or_else(|| fail("no /memory node"));
    uart::puts("hostile edu rid=");
    uart::hex(u64::from(edu.rid));
    uart::puts(" endpoint=");
    uart::hex(u64::from(viommu.endpoint));
    uart::puts(" bar0=");
    uart::hex(bar as u64);
    uart::puts(" id=");
    uart::hex(u64::from(id));
    uart::puts(" ram=");
    uart::hex(ram.0);
    uart::puts("+");
    uart::hex(ram.1);
    uart::puts(" ecam=");
    uart::hex(host.ecam.0);
    uart::puts(" mem64=");
    uart::hex(host.mem64.cpu);
    uart::puts("+");
    uart::hex(host.mem64.size);
    uart::puts("\n");

    let v = match Viommu::setup(transport) {
        Ok(v) => v,
        Err(why) => fail(why),
    };
    let mut h = Hostile {
        v,
        ms,
        ram,
        pci: host,
        edu_bar: bar,
        edu_ep: viommu.endpoint,
    };
    h.v.attach(0, EDU_DOMAIN, h.edu_ep);
    let mut t = Tally::default();
    if h.one(&mut t) != u32::from(iommu::S_OK) {
        fail("ATTACH of edu's endpoint refused");
    }
    let phase_list: [Phase; 7] = [
        (b"refusals", Hostile::refusals),
        (b"huge", Hostile::huge),
        (b"mmio", Hostile::mmio),
        (b"churn", Hostile::churn),
        (b"domains", Hostile::domains),
        (b"bypass", Hostile::bypass),
        (b"dma", Hostile::dma_phase),
    ];
    for (name, run) in phase_list {
        if selected(phases, name) {
            run(&mut h);
        }
    }
    uart::puts("hostile done\n");
    power_off();
}
