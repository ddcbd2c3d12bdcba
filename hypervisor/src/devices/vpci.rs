//! A guest's virtual PCIe host bridge: one ECAM window (bus 0) whose
//! configuration accesses go to the guest's [`VirtualBus`]: the physical
//! functions given to it, filtered (`pci::view`). Their BARs are mapped at
//! stage 2 where the hypervisor placed them and their INTx lines are the
//! guest's hardware-linked SPIs, so the bridge itself only serves
//! configuration space. When the guest stops or restarts it stops every
//! function (`pci::reset`: decoding and bus mastering off, then FLR where
//! offered), taking the host bridge's shared configuration lock for each
//! access only, never through a reset's wait.

use super::{AccessCtx, Effect, MmioDevice};
use crate::arch::{Arch, Cpu};
use crate::pci::config::{ConfigAccess, PerAccess};
use crate::pci::reset::reset_function;
use crate::pci::vbus::{Slot, VirtualBus};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use log::info;
use spin::Mutex;

/// Size of the window: the ECAM space of one bus.
pub const VPCI_WINDOW: u64 = 1 << 20;

/// The bridge (see the module documentation).
pub struct VirtualBridge {
    bus: Mutex<VirtualBus<dyn ConfigAccess + Send>>,
}

impl VirtualBridge {
    /// The bridge of `bus`.
    pub fn new(bus: VirtualBus<dyn ConfigAccess + Send>) -> Self {
        VirtualBridge {
            bus: Mutex::new(bus),
        }
    }

    /// Stops every physical function of the bus (the guest stops or
    /// restarts: no DMA of the old guest may land later): decoding and bus
    /// mastering off, then the strongest reset it offers (`pci::reset`;
    /// the CPU waits the 100 ms a reset needs), each logged.
    pub fn quiesce(&self) {
        self.quiesce_with(&mut wait_ms);
    }

    /// [`VirtualBridge::quiesce`], waiting with `wait(ms)`.
    pub fn quiesce_with(&self, wait: &mut dyn FnMut(u64)) {
        let bus = self.bus.lock();
        for slot in bus.slots() {
            if let Slot::Assigned { view, host } = slot {
                let bars: Vec<(u16, u32)> = view.placed_bars().collect();
                // The host bridge is locked per access, not through the
                // reset's waits (other guests share it).
                let mut cfg = PerAccess(*host);
                let kind = reset_function(&mut cfg, view.bdf(), &bars, view.alone_below(), wait);
                info!("PCI {} stopped: {kind}", view.bdf());
            }
        }
    }
}

/// Waits `ms` milliseconds on the CPU's counter (bounded: a counter that
/// does not move ends the wait after as many polls).
fn wait_ms(ms: u64) {
    let start = Cpu::uptime_us();
    for _ in 0..ms.saturating_mul(1_000_000) {
        if Cpu::uptime_us().saturating_sub(start) >= ms * 1000 {
            return;
        }
        core::hint::spin_loop();
    }
}

impl MmioDevice for VirtualBridge {
    fn name(&self) -> &'static str {
        "virtual PCIe host bridge"
    }

    fn read(&self, _ctx: &AccessCtx<'_>, offset: u64, width: usize) -> Option<u64> {
        let (value, _) = self.bus.lock().read(offset, width);
        Some(u64::from(value))
    }

    fn write(&self, ctx: &AccessCtx<'_>, offset: u64, width: usize, value: u64) -> Option<Effect> {
        let _ = self.bus.lock().write(ctx.mem, offset, width, value as u32);
        Some(Effect::None)
    }

    fn reset(&self, _ctx: &AccessCtx<'_>) {
        self.quiesce();
    }

    fn report(&self) -> Option<String> {
        let bus = self.bus.lock();
        let functions: alloc::vec::Vec<String> = bus
            .slots()
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Slot::Assigned { view, .. } => Some(format!("00:{i:02x}.0 = host {}", view.bdf())),
                Slot::Emulated(_) => None,
            })
            .collect();
        Some(format!("virtual PCI bus: {}", functions.join(", ")))
    }
}
