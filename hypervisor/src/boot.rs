//! The boot flow, from the first Rust instruction to an idle (or, later,
//! guest-running) system: MMU, console, heap, host DT, CPUs, summary.

use crate::arch::aarch64::{cache, cpu, entry, mmu, psci};
use crate::cmdline::{IdleAction, Options};
use crate::fdt::{self, HostDt};
use crate::mm::{el2map, heap, layout};
use crate::{console, smp, summary};
use alloc::vec::Vec;
use log::{error, info, warn};

unsafe extern "C" {
    static _image_start: u8;
    static _image_end: u8;
}

/// Physical range of the loaded image, .bss included.
fn image_range() -> layout::Region {
    let start = &raw const _image_start as u64;
    let end = &raw const _image_end as u64;
    layout::Region {
        base: start,
        size: end - start,
    }
}

/// Entered at any EL other than 2: say so on the console and stop.
pub extern "C" fn wrong_el(dtb: usize) -> ! {
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
pub extern "C" fn primary_main(dtb: usize, _load_addr: usize) -> ! {
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
    // SAFETY: boot CPU, MMU off, called once.
    let (map, cfg) = match unsafe { el2map::build_boot_map(&ram, uart) } {
        Ok(built) => built,
        Err(e) => {
            early(format_args!(
                "partita: cannot build the EL2 page table: {e}; stopping\n"
            ));
            cpu::park();
        }
    };
    let img = image_range();
    // SAFETY: everything in the image was written with caches off; dropping
    // stale lines from the boot loader's time loses nothing.
    unsafe { cache::invalidate_to_poc(img.base as usize, img.size as usize) };
    // SAFETY: the boot map identity-maps all RAM, which holds the image,
    // its stack and the tables.
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

    grow_heap(&hw, img, dtb);

    let conduit = match &hw.psci {
        Some(p) => Some(p.conduit),
        None => {
            warn!("no /psci node: secondary CPUs stay off and SYSTEM_OFF is unavailable");
            None
        }
    };
    smp::bring_up(&hw, conduit);

    let report = summary::probe(&hw);
    crate::print!("{report}");

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

/// Hands every byte of RAM that nothing else uses to the heap: RAM minus
/// the image, the DTB, the initrd and the DT's reserved regions.
fn grow_heap(hw: &HostDt, img: layout::Region, dtb: &[u8]) {
    let mut reserved: Vec<layout::Region> = hw.reserved.clone();
    reserved.push(img);
    reserved.push(layout::Region {
        base: dtb.as_ptr() as u64,
        size: dtb.len() as u64,
    });
    if let Some(initrd) = hw.chosen.initrd {
        reserved.push(initrd);
    }
    let free = layout::free_ranges(&hw.memory, &reserved, 4096);
    for r in &free {
        // SAFETY: free RAM, identity-mapped by the boot map, used by nothing.
        unsafe { heap::add(r.base as usize, r.end() as usize) };
    }
    let (total, _) = heap::stats();
    info!("heap: {} MiB in {} free ranges", total >> 20, free.len());
}

/// First Rust code on a secondary CPU, with its MMU on.
pub extern "C" fn secondary_main(boot: &entry::SecondaryBoot) -> ! {
    cpu::set_cpu_index(boot.cpu_index as usize);
    smp::report_online(boot.cpu_index as usize, boot.mpidr);
    loop {
        cpu::wait_for_interrupt();
    }
}
