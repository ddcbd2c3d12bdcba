//! Bringing the other CPUs up at EL2 with PSCI `CPU_ON`, one at a time, each
//! announcing itself on the console.

use crate::arch::aarch64::{
    cache, cpu,
    entry::{self, SecondaryBoot},
    psci,
};
use crate::fdt::{Conduit, HostDt};
use crate::mm::el2map;
use alloc::boxed::Box;
use alloc::vec;
use core::sync::atomic::{AtomicUsize, Ordering};
use log::{info, warn};

/// Stack size of each secondary CPU.
const STACK_SIZE: usize = 64 * 1024;
/// How long to wait for a started CPU to report, in microseconds.
const ONLINE_TIMEOUT_US: u64 = 2_000_000;

/// CPUs that have reported online (the boot CPU included).
static ONLINE: AtomicUsize = AtomicUsize::new(0);

/// Announces that CPU `index` runs at EL2 with its MMU on.
pub fn report_online(index: usize, mpidr: u64) {
    info!("cpu {index} online (mpidr {mpidr:#x})");
    ONLINE.fetch_add(1, Ordering::Release);
}

/// How many CPUs are online.
pub fn online() -> usize {
    ONLINE.load(Ordering::Acquire)
}

/// Starts every CPU of the DT other than this one, in DT order.
pub fn bring_up(hw: &HostDt, conduit: Option<Conduit>) {
    let me = cpu::mpidr();
    let boot_index = hw.cpus.iter().position(|c| c.mpidr == me).unwrap_or(0);
    cpu::set_cpu_index(boot_index);
    report_online(boot_index, me);
    let Some(conduit) = conduit else { return };
    let Some(cfg) = el2map::mmu_config() else {
        return;
    };
    for (index, c) in hw.cpus.iter().enumerate() {
        if c.mpidr == me {
            continue;
        }
        if c.enable_method.as_deref().is_some_and(|m| m != "psci") {
            warn!(
                "cpu {index} ({}) uses enable-method {:?}, not psci: left off",
                c.path, c.enable_method
            );
            continue;
        }
        let stack = vec![0u8; STACK_SIZE].into_boxed_slice();
        let stack_top = stack.as_ptr() as u64 + STACK_SIZE as u64;
        Box::leak(stack);
        let boot = Box::leak(Box::new(SecondaryBoot {
            stack_top,
            ttbr0: cfg.ttbr0,
            tcr: cfg.tcr,
            mair: cfg.mair,
            sctlr: cfg.sctlr,
            cpu_index: index as u64,
            mpidr: c.mpidr,
        }));
        // The CPU reads this with its caches off.
        cache::clean_to_poc(
            boot as *const _ as usize,
            core::mem::size_of::<SecondaryBoot>(),
        );
        let before = online();
        if let Err(e) = psci::cpu_on(
            conduit,
            c.mpidr,
            entry::secondary_entry_address(),
            boot as *const _ as u64,
        ) {
            warn!(
                "cpu {index} (mpidr {:#x}): PSCI CPU_ON failed: {e}",
                c.mpidr
            );
            continue;
        }
        let start = cpu::uptime_us();
        while online() == before {
            if cpu::uptime_us() - start > ONLINE_TIMEOUT_US {
                warn!("cpu {index} (mpidr {:#x}) did not come online", c.mpidr);
                break;
            }
            core::hint::spin_loop();
        }
    }
}
