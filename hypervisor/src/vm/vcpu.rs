//! One vCPU as the other CPUs see it: where it runs, its power state, and
//! the mailboxes through which other CPUs ask it to start or stop and
//! raise its interrupts.

use super::psci::VcpuPower;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use spin::Mutex;

/// Requests a vCPU's physical CPU acts on when kicked.
pub mod request {
    /// Start the vCPU (entry and context are in the slot).
    pub const START: u32 = 1;
    /// Stop the vCPU (guest off or reset).
    pub const STOP: u32 = 2;
    /// Power the whole guest off (asked at the hypervisor's console).
    pub const POWER_OFF: u32 = 4;
    /// Restart the whole guest (asked at the hypervisor's console).
    pub const RESTART: u32 = 8;
}

/// Most virtual SPIs of emulated devices pending for one vCPU.
pub const MAX_PENDING_SPIS: usize = 16;

/// One vCPU: where it runs and how others talk to it.
pub struct VcpuSlot {
    /// Physical CPU (logical index) it runs on.
    pub pcpu: usize,
    /// [`VcpuPower`] as u8.
    power: AtomicU8,
    /// Entry point for the next start.
    pub entry: AtomicU64,
    /// x0 for the next start.
    pub context: AtomicU64,
    /// Virtual SGIs raised by other vCPUs, one bit per SGI.
    pub sgis: AtomicU32,
    /// Pending [`request`] bits.
    pub requests: AtomicU32,
    /// Virtual SPIs raised for this vCPU from another CPU (emulated devices).
    pub spis: Mutex<heapless::Vec<u32, MAX_PENDING_SPIS>>,
    /// Set when `spis` may be non-empty, so that the exit path takes the
    /// lock only then.
    pub spis_pending: AtomicBool,
}

impl VcpuSlot {
    /// A vCPU on physical CPU `pcpu`, off.
    pub fn new(pcpu: usize) -> Self {
        VcpuSlot {
            pcpu,
            power: AtomicU8::new(0),
            entry: AtomicU64::new(0),
            context: AtomicU64::new(0),
            sgis: AtomicU32::new(0),
            requests: AtomicU32::new(0),
            spis: Mutex::new(heapless::Vec::new()),
            spis_pending: AtomicBool::new(false),
        }
    }

    /// Current power state.
    pub fn power(&self) -> VcpuPower {
        match self.power.load(Ordering::Acquire) {
            0 => VcpuPower::Off,
            1 => VcpuPower::On,
            _ => VcpuPower::OnPending,
        }
    }

    /// Sets the power state.
    pub fn set_power(&self, p: VcpuPower) {
        let v = match p {
            VcpuPower::Off => 0,
            VcpuPower::On => 1,
            VcpuPower::OnPending => 2,
        };
        self.power.store(v, Ordering::Release);
    }

    /// Asks the vCPU to start at `entry` with `context` in x0: it is
    /// on-pending until its CPU acts on the request (the caller kicks it).
    pub fn request_start(&self, entry: u64, context: u64) {
        self.entry.store(entry, Ordering::Relaxed);
        self.context.store(context, Ordering::Relaxed);
        self.set_power(VcpuPower::OnPending);
        self.requests.fetch_or(request::START, Ordering::Release);
    }
}
