//! The boot flow on the target, from the first Rust instruction to running
//! guests: MMU, console, heap, host DT, CPUs, SMMUs, summary, then the
//! machine; the trap handler and each CPU's idle loop. What can be planned
//! without the hardware is in [`super::plan`].

use super::plan::{build_guests, free_ram, plan_guests};
use crate::arch::aarch64::{cache, cpu, entry, mmu, psci};
use crate::arch::exit;
use crate::arch::frame::{CrashReport, TrapFrame, VectorKind};
use crate::arch::{Arch, Cpu};
use crate::cmdline::{IdleAction, Options};
use crate::fdt::Conduit;
use crate::fdt::{self, HostDt};
use crate::gic::{hyp_irq, phys};
use crate::mm::{el2map, heap, layout};
use crate::pci::config::ConfigAccess;
use crate::pci::ecam::Ecam;
use crate::pci::enumerate::enumerate;
use crate::pci::host::PciHost;
use crate::smmu::HwSmmuManager;
use crate::smmu::manager::{SmmuInterrupt, SmmuParts};
use crate::vm::build::BuildCtx;
use crate::vm::dma::{FaultRouter, SmmuPort};
use crate::vm::machine::{MAX_CPUS, Machine};
use crate::vm::power::Idle;
use crate::vm::viommu::vmids::VmidPool;
use crate::{console, smp, summary};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use log::{error, info, warn};
use spin::{Mutex, Once};

/// The PSCI conduit of the firmware, once known.
static CONDUIT: Once<Option<Conduit>> = Once::new();

/// Powers the machine off through PSCI (parks if that fails).
pub fn power_off() -> ! {
    if let Some(Some(c)) = CONDUIT.get() {
        let e = psci::system_off(*c);
        error!("PSCI SYSTEM_OFF failed: {e}");
    } else {
        error!("cannot power off without PSCI");
    }
    cpu::park()
}

/// Entered at any EL other than 2: say so on the console and stop.
#[unsafe(no_mangle)]
pub extern "C" fn partita_wrong_el(dtb: usize) -> ! {
    let el = cpu::current_el();
    // SAFETY: the boot loader passed the DTB address in x0.
    let dt = unsafe { fdt::early::from_ptr(dtb) };
    if let Some(out) = dt.ok().and_then(early_output) {
        // SAFETY: the boot CPU is alone and the MMU is off.
        unsafe {
            console::early_print(
                out.0 as usize,
                out.1,
                format_args!(
                    "\npartita: entered at EL{el}, must be entered at EL2 \
                     (QEMU needs -M virt,virtualization=on); stopping\n"
                ),
            )
        };
    }
    cpu::park();
}

/// First Rust code on the boot CPU, at EL2 with the MMU off.
#[unsafe(no_mangle)]
pub extern "C" fn partita_primary_main(dtb: usize, _load_addr: usize) -> ! {
    cpu::set_cpu_index(0);
    // SAFETY: the boot loader passed the DTB address in x0.
    let dt = match unsafe { fdt::early::from_ptr(dtb) } {
        Ok(dt) => dt,
        Err(_) => cpu::park(), // no DT: no console to complain on
    };
    let console = early_output(dt);
    let uart = console.map(|(base, _)| base);
    let early = |args: core::fmt::Arguments| {
        if let Some((base, kind)) = console {
            // SAFETY: the boot CPU is alone and the MMU is off.
            unsafe { console::early_print(base as usize, kind, args) };
        }
    };
    let ram = match fdt::early::memory_regions(dt) {
        Ok(ram) if !ram.is_empty() => ram,
        Ok(_) => {
            early(format_args!(
                "partita: the device tree has no /memory node; stopping\n"
            ));
            cpu::park();
        }
        Err(e) => {
            early(format_args!(
                "partita: cannot read /memory from the device tree: {e}; stopping\n"
            ));
            cpu::park();
        }
    };
    // SAFETY: boot CPU, MMU off, called once; the entry code has applied
    // the relocations, so the relocated data may become read-only.
    let (map, cfg) = match unsafe { el2map::build_boot_map(&ram, uart) } {
        Ok(built) => built,
        Err(e) => {
            early(format_args!(
                "partita: cannot build the EL2 page table: {e}; stopping\n"
            ));
            cpu::park();
        }
    };
    let img = el2map::image_layout().whole();
    // SAFETY: everything in the image was written with caches off; dropping
    // stale lines from the boot loader's time loses nothing.
    unsafe { cache::invalidate_to_poc(img.base as usize, img.size as usize) };
    // SAFETY: the boot map identity-maps all RAM, which holds the image,
    // its stack and the tables; the code is executable, the stack, .bss
    // and the tables writable.
    unsafe { mmu::enable(&cfg) };

    heap::init();
    el2map::install(map);
    if let Some((base, kind)) = console {
        // SAFETY: the boot map has the UART page as device memory.
        unsafe { console::init(base as usize, kind) };
    }
    main(dt, img)
}

/// The console UART and its driver, when it has one. When the UART
/// `stdout-path` names has no driver, nothing is ever written to it: the
/// reason is printed once on another UART with a driver (the lowest
/// `serialN` alias), if the device tree has one, and partita runs without
/// a console.
fn early_output(dt: &[u8]) -> Option<(u64, platform::uart::UartKind)> {
    let uart = fdt::early::console(dt)?;
    match uart.driver {
        Ok(kind) => Some((uart.base, kind)),
        Err(e) => {
            if let Some((base, kind)) = fdt::early::other_output(dt, uart.base) {
                // SAFETY: the boot CPU is alone and the MMU is off; the
                // other UART is not the console, which stays untouched.
                unsafe {
                    console::early_print(
                        base as usize,
                        kind,
                        format_args!(
                            "\n{}\n",
                            console::NoDriver {
                                uart: &uart,
                                why: e
                            }
                        ),
                    )
                };
            }
            None
        }
    }
}

/// The rest of the boot CPU's work, with MMU, console and heap up.
fn main(dtb: &'static [u8], img: layout::Region) -> ! {
    let hw = match HostDt::parse(dtb) {
        Ok(hw) => hw,
        Err(e) => {
            crate::println!("partita: the host device tree is unusable: {e}; stopping");
            cpu::park();
        }
    };
    let opts = Options::parse(hw.chosen.bootargs.as_deref().unwrap_or(""));
    console::logger::init(opts.log_level);
    crate::vm::irq::set_virq_via_hcr(opts.virq_via_hcr);
    crate::println!();
    crate::println!(
        "partita {}: arm64 EL2 hypervisor (static partitioning)",
        env!("CARGO_PKG_VERSION")
    );
    for w in opts.warnings.iter().chain(hw.warnings.iter()) {
        warn!("{w}");
    }
    if opts.virq_via_hcr {
        info!("virtual interrupts also signalled through HCR_EL2.VI (partita.virq=hcr)");
    }
    info!(
        "image at {:#x}..{:#x}, device tree at {:#x} ({} bytes)",
        img.base,
        img.end(),
        dtb.as_ptr() as usize,
        dtb.len()
    );
    el2map::log_plan();

    let mut free = free_ram(&hw, img, dtb);
    let planned = match hw.chosen.initrd {
        Some(initrd) => {
            // SAFETY: the initrd range is RAM the boot loader filled, kept
            // out of the heap and identity-mapped; nothing writes to it.
            let bytes: &'static [u8] = unsafe {
                core::slice::from_raw_parts(initrd.base as *const u8, initrd.size as usize)
            };
            plan_guests(&hw, bytes, &mut free)
        }
        None => Vec::new(),
    };
    grow_heap(&free);
    el2map::check_and_log(cpu::cpu_index(), true);
    if let Some(test) = opts.wx_test {
        el2map::fault_test(test);
    }

    let conduit = match &hw.psci {
        Some(p) => Some(p.conduit),
        None => {
            warn!("no /psci node: secondary CPUs stay off and SYSTEM_OFF is unavailable");
            None
        }
    };
    CONDUIT.call_once(|| conduit);
    set_stack_top(entry::boot_stack_top());
    let gic_ok = match hw.gic.as_ref().map(init_gic) {
        Some(Ok(())) => true,
        Some(Err(e)) => {
            error!("GIC: {e}; guests cannot run");
            false
        }
        None => {
            warn!("no GICv3 in the device tree: guests cannot run");
            false
        }
    };
    smp::bring_up(&hw, conduit);
    info!(
        "EL2 map check passed on {} of {} cpus",
        el2map::checks_passed(),
        smp::online()
    );
    // Before any guest exists: no unconfigured stream may reach memory.
    let hw: &'static HostDt = alloc::boxed::Box::leak(alloc::boxed::Box::new(hw));
    let smmus = probe_smmus(hw);
    let pci = probe_pci(hw);
    let port: &'static SmmuPort<_, _, _> =
        alloc::boxed::Box::leak(alloc::boxed::Box::new(SmmuPort { hw, pci, smmus }));

    let report = summary::probe(hw, smmus, pci.iter().map(|h| &h.topology).collect());
    crate::print!("{report}");

    if gic_ok && hw.chosen.initrd.is_some() {
        let guests = match phys::get() {
            Some(gic) => {
                let vmids = Arc::new(VmidPool::for_machine(Cpu::has_vmid16(), smmus.max_vmid()));
                let ctx = BuildCtx {
                    host: hw,
                    gic,
                    smmus: port,
                    vmids: &vmids,
                    pci,
                };
                // SAFETY: `plan_guests` carved each guest's RAM out of the
                // free RAM before the rest became the heap; the boot map
                // covers all RAM.
                unsafe { build_guests(&ctx, planned) }
            }
            None => Vec::new(),
        };
        if !guests.is_empty()
            && let Some(gic) = phys::get()
        {
            let m = MACHINE
                .call_once(|| Machine::new(guests, gic, port, crate::gic::hyp_irq::dispatch));
            // DMA faults on the guests' streams go to the machine.
            smmus.set_fault_sink(alloc::boxed::Box::leak(alloc::boxed::Box::new(
                FaultRouter { hw, machine: m },
            )));
            take_console_input(hw, m, gic);
            // The static cost of each guest, before any of them runs.
            for g in m.guests() {
                g.log_hypervisor_ram();
            }
            m.start();
            cpu_loop();
        }
        warn!("no guest could be started");
    }

    match (opts.idle, conduit) {
        (IdleAction::PowerOff, Some(c)) => {
            info!("no guest payload: powering off (partita.idle=poweroff)");
            let e = psci::system_off(c);
            error!("PSCI SYSTEM_OFF failed: {e}");
        }
        (IdleAction::PowerOff, None) => {
            error!("no guest payload: cannot power off without PSCI; idling");
        }
        (IdleAction::Idle, _) => info!("no guest payload: idling"),
    }
    loop {
        cpu::wait_for_interrupt();
    }
}

/// Maps the GIC's frames, resets its distributor and sets up this CPU's
/// redistributor and interface.
fn init_gic(gic: &fdt::Gic) -> Result<(), phys::GicError> {
    let (maintenance, why) = crate::gic::maintenance::choose(gic.maintenance.as_ref());
    if let Some(why) = why {
        warn!("{why}");
    }
    crate::gic::maintenance::set_maintenance_ppi(maintenance);
    for (base, size) in phys::frames(gic) {
        el2map::map_device(base, size).map_err(phys::GicError::Map)?;
    }
    // SAFETY: every frame the driver uses was just mapped as device memory.
    let g = unsafe { phys::init_distributor(gic) };
    g.init_cpu()
}

/// Hands the free ranges to the heap.
fn grow_heap(free: &[layout::Region]) {
    for r in free {
        // SAFETY: free RAM, identity-mapped by the boot map, used by nothing.
        unsafe { heap::add(r.base as usize, r.end() as usize) };
    }
    let (total, _) = heap::stats();
    info!("heap: {} MiB in {} free ranges", total >> 20, free.len());
}

/// The machine, once its guests are built.
static MACHINE: Once<Machine> = Once::new();

/// Per physical CPU: top of its EL2 stack (where guest entry resets the
/// stack to).
static STACK_TOP: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

fn set_stack_top(top: u64) {
    STACK_TOP[cpu::cpu_index() % MAX_CPUS].store(top, Ordering::Relaxed);
}

/// The loop of a physical CPU without a running vCPU: enters its vCPU
/// when asked to, otherwise waits for interrupts. Never returns.
fn cpu_loop() -> ! {
    loop {
        match MACHINE.get() {
            Some(m) => {
                if m.all_off() {
                    power_off();
                }
                if let Idle::Enter(frame) = m.idle() {
                    let top = STACK_TOP[cpu::cpu_index() % MAX_CPUS].load(Ordering::Relaxed);
                    // SAFETY: `idle` configured the CPU for the vCPU;
                    // nothing on this CPU's stack is needed any more (we
                    // never return to the caller).
                    unsafe { crate::arch::aarch64::virt::enter(&frame, top) }
                }
            }
            // No machine yet: take the kicks so the next WFI waits.
            None => crate::vm::irq::take_interrupts(hyp_irq::dispatch, |_| false),
        }
        Cpu::wait_for_interrupt();
    }
}

/// Entry from the vector table for a synchronous exception from the guest
/// (vector 8, which saves the frame in its own entry): decoded and handled
/// by the machine as [`partita_trap`] does. Returns nonzero when the
/// handling wrote one of x19-x29 in the frame: only then does the vector
/// restore them from it.
#[unsafe(no_mangle)]
pub extern "C" fn partita_guest_sync(frame: &mut TrapFrame) -> u64 {
    const KIND: u64 = 8;
    // SAFETY: a synchronous exception from a lower EL comes from a guest,
    // and guests are only entered by `cpu_loop` once it found the machine
    // initialised (`virt::enter` in its `Some(m)` arm): the check
    // `MACHINE.get()` would make has been made, and holds for good.
    let m = unsafe { MACHINE.get_unchecked() };
    let done = m.run_exit(frame, |f| {
        exit::decode_sync(f.esr, f.far, crate::arch::aarch64::virt::hpfar)
    });
    after_exit(m, frame, KIND, done.map(|(resume, _)| resume));
    done.map_or(1, |(_, callee_saved)| u64::from(callee_saved))
}

/// Entry from the vector table: a guest's exit is decoded and handled by
/// the machine; anything else is fatal.
#[unsafe(no_mangle)]
pub extern "C" fn partita_trap(frame: &mut TrapFrame, kind: u64) {
    let vector = VectorKind(kind);
    // Only exits from a lower EL in AArch64 (vectors 8-11) are the guest's.
    let Some(m) = MACHINE.get() else {
        fatal(frame, kind);
    };
    if kind & !3 != 8 {
        fatal(frame, kind);
    }
    let exit = exit::decode(
        vector,
        frame.esr,
        frame.far,
        crate::arch::aarch64::virt::hpfar,
    );
    let resume = m
        .handle_exit(frame, exit)
        .map(|a| exit::apply::<Cpu>(frame, a));
    after_exit(m, frame, kind, resume);
}

/// After an exit of the guest (vector `kind`) was handled and its answer
/// applied: None (no vCPU runs here) is fatal; false (the vCPU stopped)
/// sends the CPU back to its idle loop; true returns to the guest.
#[inline(always)]
fn after_exit(m: &Machine, frame: &TrapFrame, kind: u64, resume: Option<bool>) {
    match resume {
        None => fatal(frame, kind),
        Some(true) => {}
        Some(false) => {
            if m.all_off() {
                power_off();
            }
            cpu_loop();
        }
    }
}

/// Prints the crash report for an exception nobody handles and parks the CPU.
fn fatal(frame: &TrapFrame, kind: u64) -> ! {
    let kind = VectorKind(kind);
    console::emergency_print(format_args!(
        "\n{}cpu {} parked\n",
        CrashReport { kind, frame },
        cpu::cpu_index()
    ));
    cpu::park();
}

/// Maps the register block of every SMMUv3 of `hw` and probes them: after
/// this no unconfigured stream can reach memory. Their interrupts go to the
/// boot CPU; events are also drained when it idles.
fn probe_smmus(hw: &HostDt) -> &'static HwSmmuManager {
    let parts = hw.smmus.iter().filter_map(|s| {
        match el2map::map_device(s.base, s.size.max(fdt::SMMU_MIN_SIZE)) {
            // SAFETY: the register block was just mapped as device memory
            // and only the SMMU manager uses it.
            Ok(()) => Some(unsafe { SmmuParts::mapped(s) }),
            Err(e) => {
                error!("smmuv3 {:#x}: cannot map its registers: {e}", s.base);
                None
            }
        }
    });
    let smmus: &'static HwSmmuManager = SMMUS.call_once(|| HwSmmuManager::probe(parts));
    if let Some(gic) = phys::get() {
        smmus.enable_irqs(|irq| {
            let handler = match irq.kind {
                SmmuInterrupt::EventQueue => on_smmu_event_irq,
                SmmuInterrupt::GlobalError => on_smmu_gerror_irq,
            };
            hyp_irq::register(gic, irq.intid, true, 0, handler)
        });
    }
    smmus
}

/// When guests have emulated consoles and none is given the console UART,
/// the hypervisor takes its receive interrupt (on the boot CPU) and hands
/// what is typed to the machine.
fn take_console_input(hw: &HostDt, m: &Machine, gic: &'static phys::PhysGicDriver) {
    if m.guests().iter().all(|g| g.console.is_none()) {
        return;
    }
    let Some(uart) = &hw.stdout else { return };
    let given = m.guests().iter().any(|g| {
        g.config
            .devices
            .iter()
            .any(|d| uart.path == *d || uart.path.starts_with(&alloc::format!("{d}/")))
    });
    if given {
        warn!("the console UART is passed through: emulated consoles get no input");
        return;
    }
    let Some(intid) = uart.interrupt.as_ref().map(|i| i.intid()) else {
        warn!("the console UART has no interrupt: emulated consoles get no input");
        return;
    };
    if hyp_irq::register(gic, intid, false, 0, on_console_irq) {
        console::enable_input_interrupt();
        info!("console input goes to the guest with the focus; Ctrl-] h for the keys");
    } else {
        warn!("no room for the console UART's interrupt: emulated consoles get no input");
    }
}

fn on_console_irq(_intid: u32) {
    let mut buf = [0u8; 64];
    loop {
        let n = console::read_input(&mut buf);
        if n == 0 {
            break;
        }
        if let Some(m) = MACHINE.get() {
            m.console_input(&buf[..n]);
        }
    }
}

/// The SMMUs, once probed.
static SMMUS: Once<HwSmmuManager> = Once::new();

/// The PCIe host bridges as enumerated at boot.
static PCI: Once<Vec<PciHost>> = Once::new();

/// Maps the ECAM window of every PCIe host bridge of `hw` and enumerates
/// it: bus numbers, BARs placed in its windows, every endpoint left
/// without decoding or bus mastering until a guest that owns it enables
/// it (see `pci::enumerate`).
fn probe_pci(hw: &HostDt) -> &'static [PciHost] {
    PCI.call_once(|| {
        let mut all = Vec::new();
        for host in &hw.pcie {
            let first = host.bus_range.0.min(255) as u8;
            // The ECAM window may be smaller than the bus range says.
            let buses = (host.ecam.size >> 20).clamp(1, 256) as u32;
            let last = host.bus_range.1.min(u32::from(first) + buses - 1).min(255) as u8;
            let size = (u64::from(last - first) + 1) << 20;
            if let Err(e) = el2map::map_device(host.ecam.base, size) {
                error!(
                    "{}: cannot map its ECAM window: {e}; not enumerated",
                    host.path
                );
                continue;
            }
            // SAFETY: the window was just mapped as device memory for
            // buses first..=last; only this enumeration uses it now.
            let mut ecam = unsafe { Ecam::new(host.ecam.base, first, last) };
            let topology = enumerate(&mut ecam, host);
            let config: &'static Mutex<dyn ConfigAccess + Send> =
                alloc::boxed::Box::leak(alloc::boxed::Box::new(Mutex::new(ecam)));
            all.push(PciHost {
                path: host.path.clone(),
                topology,
                config,
                intx: Mutex::new(Vec::new()),
            });
        }
        all
    })
}

fn on_smmu_event_irq(intid: u32) {
    if let Some(s) = SMMUS.get() {
        s.handle_event_irq(intid);
    }
}

fn on_smmu_gerror_irq(intid: u32) {
    if let Some(s) = SMMUS.get() {
        s.handle_gerror_irq(intid);
    }
}

/// First Rust code on a secondary CPU, with its MMU on.
#[unsafe(no_mangle)]
pub extern "C" fn partita_secondary_main(boot: &entry::SecondaryBoot) -> ! {
    cpu::set_cpu_index(boot.cpu_index as usize);
    set_stack_top(boot.stack_top);
    if let Some(g) = phys::get()
        && let Err(e) = g.init_cpu()
    {
        error!("cpu {}: GIC: {e}", boot.cpu_index);
    }
    el2map::check_and_log(boot.cpu_index as usize, false);
    smp::report_online(boot.cpu_index as usize, boot.mpidr);
    cpu_loop()
}
