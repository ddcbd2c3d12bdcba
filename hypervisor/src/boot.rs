//! The boot flow, from the first Rust instruction to an idle (or, later,
//! guest-running) system: MMU, console, heap, host DT, CPUs, summary.

use crate::arch::aarch64::{cache, cpu, entry, mmu, psci};
use crate::cmdline::{IdleAction, Options};
use crate::config::{Bundle, BundleGuest, validate};
use crate::fdt::Conduit;
use crate::fdt::{self, HostDt};
use crate::gic::phys;
use crate::mm::accounting::Owner;
use crate::mm::{el2map, heap, layout};
use crate::vm::{guest::Guest, vcpu};
use crate::{console, smp, summary};
use alloc::vec::Vec;
use log::{error, info, warn};
use spin::Once;

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
    if let Some(uart) = dt.ok().and_then(fdt::early::stdout_uart) {
        // SAFETY: the boot CPU is alone and the MMU is off.
        unsafe {
            console::early_print(
                uart as usize,
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
    let uart = fdt::early::stdout_uart(dt);
    let early = |args: core::fmt::Arguments| {
        if let Some(u) = uart {
            // SAFETY: the boot CPU is alone and the MMU is off.
            unsafe { console::early_print(u as usize, args) };
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
    if let Some(u) = uart {
        // SAFETY: the boot map has the UART page as device memory.
        unsafe { console::init(u as usize) };
    }
    main(dt, img)
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
    crate::println!();
    crate::println!(
        "partita {}: arm64 EL2 hypervisor (static partitioning)",
        env!("CARGO_PKG_VERSION")
    );
    for w in opts.warnings.iter().chain(hw.warnings.iter()) {
        warn!("{w}");
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
        Some(initrd) => plan_guests(&hw, initrd, &mut free),
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
    vcpu::set_stack_top(entry::boot_stack_top());
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
    crate::smmu::manager::probe_all(hw);

    let report = summary::probe(hw);
    crate::print!("{report}");

    if gic_ok && hw.chosen.initrd.is_some() {
        let guests = start_guests(hw, planned);
        if !guests.is_empty() {
            let pcpus: Vec<usize> = guests
                .iter()
                .flat_map(|g| g.vcpus.iter().map(|v| v.pcpu))
                .collect();
            vcpu::install(guests);
            crate::smmu::manager::set_guests(vcpu::guests());
            // Each guest's virtio-iommu is charged to that guest.
            crate::vm::viommu::create_all(
                vcpu::guests(),
                crate::arch::aarch64::guest::has_vmid16(),
            );
            // The static cost of each guest, before any of them runs.
            for g in vcpu::guests() {
                g.log_hypervisor_ram();
            }
            if let Some(p) = phys::get() {
                for pcpu in pcpus.into_iter().filter(|&c| c != cpu::cpu_index()) {
                    crate::arch::aarch64::gicv3::send_sgi(crate::gic::KICK_SGI, p.cpu_mpidr(pcpu));
                }
            }
            vcpu::cpu_loop();
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
    for (base, size) in phys::frames(gic) {
        el2map::map_device(base, size).map_err(phys::GicError::Map)?;
    }
    // SAFETY: every frame the driver uses was just mapped as device memory.
    let g = unsafe { phys::init_distributor(gic) };
    g.init_cpu()
}

/// RAM that nothing uses: RAM minus the image, the DTB, the initrd and the
/// DT's reserved regions.
fn free_ram(hw: &HostDt, img: layout::Region, dtb: &[u8]) -> Vec<layout::Region> {
    let mut reserved: Vec<layout::Region> = hw.reserved.clone();
    reserved.push(img);
    reserved.push(layout::Region {
        base: dtb.as_ptr() as u64,
        size: dtb.len() as u64,
    });
    if let Some(initrd) = hw.chosen.initrd {
        reserved.push(initrd);
    }
    layout::free_ranges(&hw.memory, &reserved, 4096)
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

/// A guest of the payload that passed validation, with its RAM carved out.
struct Planned {
    index: usize,
    guest: BundleGuest<'static>,
    ram_pa: u64,
}

/// Reads the payload bundle (the initrd), checks every guest against the
/// live device tree and carves the RAM of those that can run out of `free`
/// (before the rest becomes the heap). A guest with any problem is refused
/// with the reason; the others go on.
fn plan_guests(
    hw: &HostDt,
    initrd: layout::Region,
    free: &mut Vec<layout::Region>,
) -> Vec<Planned> {
    // SAFETY: the initrd range is RAM the boot loader filled, kept out of
    // the heap and identity-mapped; nothing writes to it.
    let bytes: &'static [u8] =
        unsafe { core::slice::from_raw_parts(initrd.base as *const u8, initrd.size as usize) };
    let bundle = match Bundle::parse(bytes) {
        Ok(b) => b,
        Err(e) => {
            error!("guest payload rejected: {e}; no guest started");
            return Vec::new();
        }
    };
    info!(
        "guest payload: {} guest(s), {} bytes",
        bundle.guests.len(),
        initrd.size
    );
    let configs: Vec<_> = bundle.guests.iter().map(|g| g.config.clone()).collect();
    let errors = validate(&configs, hw);
    let mut refused = alloc::vec![false; configs.len()];
    for e in &errors {
        error!("{e}");
        match &e.guest {
            Some(g) if g.index < refused.len() => refused[g.index] = true,
            _ => refused.iter_mut().for_each(|r| *r = true),
        }
    }
    let mut planned = Vec::new();
    for (index, g) in bundle.guests.into_iter().enumerate() {
        let name = &g.config.name;
        if refused[index] {
            error!("guest '{name}' refused: its configuration does not fit this machine");
            continue;
        }
        match layout::carve(free, g.config.memory_size, GUEST_RAM_ALIGN) {
            Some(ram_pa) => planned.push(Planned {
                index,
                guest: g,
                ram_pa,
            }),
            None => error!(
                "guest '{name}' refused: not enough free contiguous RAM for {} MiB",
                g.config.memory_size >> 20
            ),
        }
    }
    planned
}

/// Alignment of guest RAM in host memory (2 MiB: block mappings).
const GUEST_RAM_ALIGN: u64 = 2 << 20;

/// Builds the planned guests; one that cannot be built is refused with the
/// reason (its RAM stays unused).
fn start_guests(hw: &'static HostDt, planned: Vec<Planned>) -> Vec<Guest> {
    let mut guests = Vec::new();
    for Planned {
        index,
        guest: g,
        ram_pa,
    } in planned
    {
        let name = g.config.name.clone();
        // Everything allocated while the guest is built is the guest's.
        let created = heap::charged_to(Owner::Guest(index), || {
            Guest::create(index, g.config, g.kernel, g.initrd, ram_pa, hw).and_then(|guest| {
                match crate::smmu::manager::attach_guest(hw, &guest, guest.config.viommu.is_none())
                {
                    Ok(()) => Ok(guest),
                    Err(e) => {
                        crate::smmu::manager::detach_guest(&guest);
                        Err(e)
                    }
                }
            })
        });
        match created {
            Ok(guest) => {
                info!(
                    "guest '{name}': {} vcpus on cpus {:?}, {} MiB at {:#x} (host {:#x}), devices {:?}",
                    guest.vcpus.len(),
                    guest.config.cpus,
                    guest.ram.size >> 20,
                    guest.ram.base,
                    guest.ram_pa,
                    guest.config.devices
                );
                guests.push(guest);
            }
            Err(e) => error!("guest '{name}' refused: {e}"),
        }
    }
    guests
}

/// First Rust code on a secondary CPU, with its MMU on.
#[unsafe(no_mangle)]
pub extern "C" fn partita_secondary_main(boot: &entry::SecondaryBoot) -> ! {
    cpu::set_cpu_index(boot.cpu_index as usize);
    vcpu::set_stack_top(boot.stack_top);
    if let Some(g) = phys::get()
        && let Err(e) = g.init_cpu()
    {
        error!("cpu {}: GIC: {e}", boot.cpu_index);
    }
    el2map::check_and_log(boot.cpu_index as usize, false);
    smp::report_online(boot.cpu_index as usize, boot.mpidr);
    vcpu::cpu_loop()
}
