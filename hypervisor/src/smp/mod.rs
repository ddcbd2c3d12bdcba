//! Bringing the other CPUs up at EL2 with PSCI `CPU_ON`, one at a time, each
//! announcing itself on the console.
//!
//! Which CPUs are started, in which order, and how long each is waited for
//! is plain logic ([`start_secondaries`]), tested on the host; starting one
//! CPU (its stack, its boot block, the firmware call) is a [`CpuStarter`].
//! On the target, `bring_up` starts them with PSCI (in `hw`).

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod hw;
#[cfg(test)]
mod tests;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use hw::bring_up;

use crate::arch::{Arch, Cpu};
use crate::fdt::host::Cpu as DtCpu;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicUsize, Ordering};
use log::{info, warn};

/// How long to wait for a started CPU to report, in microseconds.
pub const ONLINE_TIMEOUT_US: u64 = 2_000_000;

/// A count of the CPUs that reported online.
#[derive(Debug, Default)]
pub struct OnlineCount(AtomicUsize);

impl OnlineCount {
    /// No CPU online.
    pub const fn new() -> OnlineCount {
        OnlineCount(AtomicUsize::new(0))
    }

    /// Announces that CPU `index` runs at EL2 with its MMU on.
    pub fn report(&self, index: usize, mpidr: u64) {
        info!("cpu {index} online (mpidr {mpidr:#x})");
        self.0.fetch_add(1, Ordering::Release);
    }

    /// How many CPUs reported.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

/// CPUs that have reported online (the boot CPU included).
static ONLINE: OnlineCount = OnlineCount::new();

/// Announces that CPU `index` runs at EL2 with its MMU on.
pub fn report_online(index: usize, mpidr: u64) {
    ONLINE.report(index, mpidr);
}

/// How many CPUs are online.
pub fn online() -> usize {
    ONLINE.get()
}

/// Starts one CPU.
pub trait CpuStarter {
    /// Why the firmware refused.
    type Error: fmt::Display;

    /// Starts CPU `index` (affinity `mpidr`) at the secondary entry; once
    /// up, it reports itself online. Returns when the firmware accepted.
    fn start(&mut self, index: usize, mpidr: u64) -> Result<(), Self::Error>;
}

/// What became of a CPU [`start_secondaries`] considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Started and reported online.
    Online,
    /// Its `enable-method` is not `psci`: left off.
    NotPsci,
    /// The firmware refused to start it.
    Refused,
    /// Started, but it did not report within [`ONLINE_TIMEOUT_US`].
    Timeout,
}

/// The index of the CPU with affinity `me` among `cpus` (the DT's order):
/// the boot CPU's logical index. 0 when the DT does not list it.
pub fn boot_index(cpus: &[DtCpu], me: u64) -> usize {
    cpus.iter().position(|c| c.mpidr == me).unwrap_or(0)
}

/// Starts every CPU of `cpus` other than `me` (this one), in DT order and
/// one at a time: each started CPU is waited for (it reports on `online`)
/// for up to [`ONLINE_TIMEOUT_US`] before the next one is started. A CPU
/// whose `enable-method` is not `psci` is left off. Returns what became
/// of each CPU other than this one, by DT index.
pub fn start_secondaries<S: CpuStarter>(
    cpus: &[DtCpu],
    me: u64,
    starter: &mut S,
    online: &OnlineCount,
) -> Vec<(usize, Outcome)> {
    let mut outcomes = Vec::new();
    for (index, c) in cpus.iter().enumerate() {
        if c.mpidr == me {
            continue;
        }
        let outcome = if c.enable_method.as_deref().is_some_and(|m| m != "psci") {
            warn!(
                "cpu {index} ({}) uses enable-method {:?}, not psci: left off",
                c.path, c.enable_method
            );
            Outcome::NotPsci
        } else {
            start_one(starter, index, c.mpidr, online)
        };
        outcomes.push((index, outcome));
    }
    outcomes
}

/// Starts CPU `index` and waits for it to report.
fn start_one<S: CpuStarter>(
    starter: &mut S,
    index: usize,
    mpidr: u64,
    online: &OnlineCount,
) -> Outcome {
    let before = online.get();
    if let Err(e) = starter.start(index, mpidr) {
        warn!("cpu {index} (mpidr {mpidr:#x}): PSCI CPU_ON failed: {e}");
        return Outcome::Refused;
    }
    let start = Cpu::uptime_us();
    while online.get() == before {
        if Cpu::uptime_us() - start > ONLINE_TIMEOUT_US {
            warn!("cpu {index} (mpidr {mpidr:#x}) did not come online");
            return Outcome::Timeout;
        }
        core::hint::spin_loop();
    }
    Outcome::Online
}
