//! vCPUs starting and stopping: the idle loop of a CPU waiting for a start
//! request, the entry into a vCPU, and the stop of one vCPU, of a whole
//! guest (power-off) or a guest's restart, while other guests run on.

use super::guest::Guest;
use super::irq::ICH_HCR_EN;
use super::machine::Machine;
use super::psci::VcpuPower;
use super::vcpu::request;
use crate::arch::frame::{SPSR_EL1H, TrapFrame};
use crate::arch::{Arch, Cpu};
use crate::mm::accounting::Owner;
use crate::mm::heap;
use core::sync::atomic::Ordering;
use log::{error, info, warn};

/// How long a guest's power-off or reset waits for its other vCPUs to stop
/// before it says so and kicks them again (it waits on: [`Machine::stop_others`]).
const STOP_TIMEOUT_US: u64 = 1_000_000;

/// List register bits: HW (61) and the state (62-63).
const LR_HW: u64 = 1 << 61;
const LR_STATE_SHIFT: u64 = 62;

/// What an idle CPU does next.
// The frame is built once per vCPU entry and consumed at once: no gain in
// boxing it.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Idle {
    /// Enter its vCPU with these registers (the CPU is configured for it).
    Enter(TrapFrame),
    /// Wait for an interrupt, then look again.
    Wait,
}

impl Machine {
    /// One round of the idle loop of this CPU: its vCPU is entered when a
    /// start request waits; otherwise pending physical interrupts are taken
    /// (the kick that woke it, the hypervisor's own), the boot CPU drains
    /// the SMMU event queues, and the CPU should wait.
    pub fn idle(&self) -> Idle {
        if let Some((g, v)) = self.current() {
            let slot = &g.vcpus[v];
            let req = slot.requests().take(Ordering::AcqRel);
            if req & request::START != 0 && req & request::STOP == 0 {
                return Idle::Enter(self.prepare_entry(g, v));
            }
        }
        // Take the kick that woke us, so the next WFI really waits.
        self.take_interrupts(|_| false);
        if Cpu::cpu_index() == 0 {
            self.smmus.poll_events();
        }
        Idle::Wait
    }

    /// Configures this CPU for vCPU `v` of `g` and returns its first
    /// registers: entry point and context from its start request.
    fn prepare_entry(&self, g: &Guest, v: usize) -> TrapFrame {
        let slot = &g.vcpus[v];
        // From here until the vCPU stops, this CPU works for the guest: what
        // its exits allocate is charged to it.
        heap::set_owner(g.owner());
        Cpu::configure_guest(g.vttbr, g.vtcr, v);
        Cpu::enable_virtual_interface(ICH_HCR_EN);
        // Empty since the vCPU stopped (`stop_here`).
        for intid in self.local_queue().clear() {
            Cpu::gic_deactivate(intid);
        }
        slot.sgis().take(Ordering::Relaxed);
        let mut frame = TrapFrame {
            elr: slot.entry.load(Ordering::Acquire),
            spsr: SPSR_EL1H,
            ..Default::default()
        };
        frame.x[0] = slot.context.load(Ordering::Acquire);
        slot.set_power(VcpuPower::On);
        info!(
            "guest '{}': vcpu {v} starts on cpu {} at {:#x}",
            g.name(),
            Cpu::cpu_index(),
            frame.elr
        );
        frame
    }

    /// Stops the vCPU running here: its list registers and queue are
    /// emptied (hardware interrupts acknowledged for it are deactivated so
    /// they can fire again), the virtual interface is disabled and the vCPU
    /// is off. The caller returns [`crate::arch::exit::Action::Stop`].
    pub(super) fn stop_here(&self, g: &Guest, v: usize) {
        for n in 0..Cpu::lr_count() {
            let lr = Cpu::read_lr(n);
            if lr & LR_HW != 0 && lr >> LR_STATE_SHIFT != 0 {
                Cpu::gic_deactivate(((lr >> 32) & 0x3ff) as u32);
            }
            Cpu::write_lr(n, 0);
        }
        Cpu::set_ich_hcr(0);
        for intid in self.local_queue().clear() {
            Cpu::gic_deactivate(intid);
        }
        g.vcpus[v].set_power(VcpuPower::Off);
        heap::set_owner(Owner::Hypervisor);
    }

    /// Stops every other vCPU of the guest and waits until they are off.
    ///
    /// There is no giving up: what follows (the images reloaded, the
    /// streams detached, the interrupts reset) must not run beside a vCPU
    /// of the old guest. A vCPU answers a kick at its next exit, and a
    /// guest cannot hold off the kick (physical interrupts are taken at
    /// EL2), so only a host stall delays it (a loaded host under TCG); one
    /// still running after [`STOP_TIMEOUT_US`] is named in a warning and
    /// kicked again, every [`STOP_TIMEOUT_US`] times ten after that.
    fn stop_others(&self, g: &Guest, me: usize) {
        for (i, s) in g.vcpus.iter().enumerate() {
            if i != me && s.power() != VcpuPower::Off {
                s.requests().fetch_or(request::STOP, Ordering::Release);
                self.kick(s.pcpu);
            }
        }
        let start = Cpu::uptime_us();
        let mut warn_after = STOP_TIMEOUT_US;
        while let Some((i, s)) = g
            .vcpus
            .iter()
            .enumerate()
            .find(|(i, s)| *i != me && s.power() == VcpuPower::On)
        {
            let waited = Cpu::uptime_us().saturating_sub(start);
            if waited > warn_after {
                warn!(
                    "guest '{}': vcpu {i} has not stopped after {} ms; kicked again, waiting",
                    g.name(),
                    waited / 1000
                );
                self.kick(s.pcpu);
                warn_after = waited + 10 * STOP_TIMEOUT_US;
            }
            core::hint::spin_loop();
        }
        for s in &g.vcpus {
            s.requests().take(Ordering::Release);
            if s.power() == VcpuPower::OnPending {
                s.set_power(VcpuPower::Off);
            }
        }
    }

    /// Guest `g` powers off (from its vCPU `v`): its vCPUs stop, its
    /// streams abort again, its interrupts are disabled, its counters are
    /// logged. When it was the last guest, the machine should power off
    /// ([`Machine::all_off`]).
    pub(super) fn guest_off(&self, g: &Guest, v: usize, why: &str) {
        if g.stopping.swap(true, Ordering::AcqRel) {
            self.stop_here(g, v);
            return;
        }
        self.stop_others(g, v);
        // Its PCI functions stop decoding and mastering before their
        // streams go back to abort.
        if let Some(b) = &g.vpci {
            b.quiesce();
        }
        // Errors are logged by the manager (streams it could not confirm).
        let _ = g.dma.detach();
        g.faults.clear();
        g.reset_interrupts(self.gic);
        info!(
            "guest '{}' {why} ({} DMA fault(s) reported by the SMMU)",
            g.name(),
            g.counters.dma_faults.load(Ordering::Relaxed)
        );
        g.log_device_reports();
        g.log_hypervisor_ram();
        if self.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            info!("no guest left running: powering off");
            self.all_off.store(true, Ordering::Release);
        }
        self.stop_here(g, v);
    }

    /// Guest `g` resets (from its vCPU `v`) and starts again: its vCPUs
    /// stop, no device may write into its memory while its images are
    /// reloaded, its emulated devices and interrupts go back to their
    /// power-on state, then its boot vCPU is started.
    pub(super) fn guest_restart(&self, g: &Guest, v: usize) {
        if g.stopping.swap(true, Ordering::AcqRel) {
            self.stop_here(g, v);
            return;
        }
        self.stop_others(g, v);
        g.reset_devices(self.gic);
        // Errors are logged by the manager (streams it could not confirm).
        let _ = g.dma.detach();
        g.faults.clear();
        g.reset_interrupts(self.gic);
        g.log_hypervisor_ram();
        info!("guest '{}' reset: restarting", g.name());
        g.load_images();
        if let Err(e) = g.dma.attach(!g.has_viommu()) {
            error!(
                "guest '{}': its devices cannot DMA after the reset: {e}",
                g.name()
            );
        }
        g.request_boot();
        g.stopping.store(false, Ordering::Release);
        self.kick(g.vcpus[0].pcpu);
        self.stop_here(g, v);
    }
}
