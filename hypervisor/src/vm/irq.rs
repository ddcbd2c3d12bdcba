//! Interrupts of the vCPUs: physical interrupts acknowledged and passed
//! to the guest that owns them (hardware-linked, see [`crate::vgic::hw`]),
//! virtual SGIs and the virtual SPIs of emulated devices queued, and the
//! queue moved into list registers before each return to the guest.

use super::guest::Guest;
use super::machine::{Here, HypIrqHandler, Machine};
use super::ratelimit::guest_warn;
use super::vcpu::request;
use crate::arch::exit::{Action, spsr_irqs_masked};
use crate::arch::frame::TrapFrame;
use crate::arch::{Arch, Cpu};
use crate::gic::{KICK_SGI, maintenance_ppi};
use crate::vgic::SPI_BASE;
use crate::vgic::pending::{VirqRequest, fill_list_registers, fill_one_into_empty};
use core::sync::atomic::Ordering;
use log::warn;

/// ICH_HCR_EL2.NPIE: maintenance interrupt while no list register is
/// pending.
const ICH_HCR_NPIE: u64 = 1 << 3;

/// Signals the guests' virtual interrupts through HCR_EL2.VI too: for a
/// machine whose GIC does not wire its virtual IRQ output to the CPUs
/// (QEMU 10.0's `imx8mp-evk`), where a pending list register alone never
/// interrupts the guest. While a list register is pending, VI is set and
/// ICH_HCR_EL2.NPIE asks for a maintenance interrupt once none is (the
/// guest acknowledged them): the next return to the guest clears VI.
/// The guest still acknowledges and ends its interrupts through its
/// virtual CPU interface. Set once at boot (`partita.virq=hcr`).
pub fn set_virq_via_hcr(on: bool) {
    Cpu::set_virq_via_hcr(on);
}

/// Whether any list register holds a pending interrupt (state pending or
/// pending and active).
fn lrs_pending() -> bool {
    let n = Cpu::lr_count().min(16);
    let empty = Cpu::empty_lrs();
    (0..n).any(|i| empty & (1 << i) == 0 && Cpu::read_lr(i) & (1 << 62) != 0)
}

/// With [`set_virq_via_hcr`], mirrors the list registers' pending state
/// into HCR_EL2.VI and ICH_HCR_EL2.NPIE before a return to the guest (the
/// setting tested here, the mirror out of line).
#[inline(always)]
fn mirror_virq_line() {
    if Cpu::virq_via_hcr() {
        mirror_virq_line_now();
    }
}

/// [`mirror_virq_line`] once the setting is known to be on.
#[inline(never)]
fn mirror_virq_line_now() {
    let pending = lrs_pending();
    Cpu::set_virtual_irq_line(pending);
    let hcr = Cpu::ich_hcr();
    let want = if pending {
        hcr | ICH_HCR_NPIE
    } else {
        hcr & !ICH_HCR_NPIE
    };
    if want != hcr {
        Cpu::set_ich_hcr(want);
    }
}

/// The requests that stop the vCPU at its next return to the guest.
const STOP_REQUESTS: u32 = request::STOP | request::POWER_OFF | request::RESTART;

/// ICH_HCR_EL2.En: the virtual CPU interface is on.
pub(super) const ICH_HCR_EN: u64 = 1;
/// ICH_HCR_EL2.UIE: maintenance interrupt when the list registers run
/// (almost) empty, to refill them from the queue.
const ICH_HCR_UIE: u64 = 1 << 1;
/// ICH_HCR_EL2.TALL1: the guest's accesses to its group-1 CPU interface
/// registers (acknowledge, EOI, ...) trap to EL2.
const ICH_HCR_TALL1: u64 = 1 << 12;
/// INTIDs 1020..=1023: no interrupt (spurious).
const FIRST_SPECIAL_INTID: u32 = 1020;

/// ICH_HCR_EL2 while the guest runs: `more` requests wait for a list
/// register (underflow interrupt), `watch` traps its next CPU interface
/// access.
fn ich_hcr(more: bool, watch: bool) -> u64 {
    ICH_HCR_EN | if more { ICH_HCR_UIE } else { 0 } | if watch { ICH_HCR_TALL1 } else { 0 }
}

/// Acknowledges every pending physical interrupt of this CPU. Kicks and
/// the maintenance interrupt only wake the CPU; the hypervisor's own
/// interrupts go to their handlers (`hyp_irq`); any other is offered to
/// `guest`, which returns true when it takes over its deactivation. Used by
/// the machine, and by a CPU's idle loop before the machine exists.
pub fn take_interrupts(hyp_irq: HypIrqHandler, mut guest: impl FnMut(u32) -> bool) {
    loop {
        let intid = Cpu::gic_ack();
        if intid >= FIRST_SPECIAL_INTID {
            break;
        }
        Cpu::gic_priority_drop(intid);
        let maintenance = intid == maintenance_ppi();
        if maintenance && Cpu::virq_via_hcr() {
            // NPIE keeps it asserted until withdrawn; the return to the
            // guest sets it again if a list register is still pending.
            Cpu::set_ich_hcr(Cpu::ich_hcr() & !ICH_HCR_NPIE);
        }
        let hyp = intid == KICK_SGI || maintenance || hyp_irq(intid);
        if hyp || !guest(intid) {
            Cpu::gic_deactivate(intid);
        }
    }
}

impl Machine {
    /// [`take_interrupts`] with the machine's hypervisor interrupts.
    pub(super) fn take_interrupts(&self, guest: impl FnMut(u32) -> bool) {
        take_interrupts(self.hyp_irq, guest);
    }

    /// A physical interrupt while vCPU `v` of `g` ran: each one the guest
    /// owns is queued for it as a hardware-linked virtual interrupt (the
    /// guest's deactivation deactivates it), taking over the vGIC's latch
    /// of a level interrupt the guest made pending; others are deactivated.
    pub(super) fn take_guest_interrupts(&self, g: &Guest, v: usize) {
        let me = Cpu::cpu_index();
        self.take_interrupts(|intid| {
            let req = {
                let mut vgic = g.vgic.lock();
                vgic.hw_target(intid, me)
                    .and_then(|_| vgic.irq_mut(v, intid))
                    .map(|s| VirqRequest {
                        intid,
                        priority: s.priority,
                        hw: true,
                        level: !s.edge,
                        latched: core::mem::take(&mut s.latched),
                    })
            };
            match req {
                Some(req) => {
                    if self.local_queue().push(req) {
                        return true;
                    }
                    guest_warn!(
                        g,
                        "guest '{}': vcpu {v}: interrupt queue full, INTID {intid} dropped",
                        g.name()
                    );
                    false
                }
                None => {
                    // Not the guest's: never reaches it.
                    if intid >= SPI_BASE {
                        warn!("spurious physical INTID {intid} on cpu {me}; deactivated");
                    }
                    false
                }
            }
        });
    }

    /// Raises virtual SPI `intid` of an emulated device of guest `g` (not a
    /// hardware interrupt): queued on its target vCPU, whose CPU is kicked
    /// when it is another one.
    pub fn raise_virtual_spi(&self, g: &Guest, intid: u32) {
        let target = g.vgic.lock().spi(intid).map(|s| s.target).unwrap_or(0);
        let Some(slot) = g.vcpus.get(target) else {
            return;
        };
        let mut spis = slot.spis.lock();
        slot.spis_pending().fetch_or(1, Ordering::Release);
        if !spis.contains(&intid) && spis.push(intid).is_err() {
            guest_warn!(
                g,
                "guest '{}': vcpu {target}: too many pending virtual SPIs, INTID {intid} dropped",
                g.name()
            );
        }
        drop(spis);
        self.kick(slot.pcpu);
    }

    /// Before returning to vCPU `v` of `g` (its registers in `frame`): act
    /// on a stop request (false: the vCPU stopped), take the SGIs other
    /// vCPUs raised and the SPIs of emulated devices, and fill the list
    /// registers. A deferred level-triggered hardware request has its line
    /// sampled first; one placed while the guest masks IRQs is watched
    /// (ICH_HCR_EL2.TALL1, [`Machine::cpu_interface_access`]).
    ///
    /// When none of these has anything to do (no stop request, no SGI or
    /// SPI raised, nothing queued: most returns), the general path
    /// ([`Machine::prepare_return_general`]) would read exactly that and
    /// only mirror the virtual IRQ line; that case is tested here inline,
    /// with the same reads, and everything else takes the general path,
    /// which reads them again.
    #[inline(always)]
    pub(super) fn prepare_return(
        &self,
        here: Here<'_>,
        g: &Guest,
        v: usize,
        frame: &TrapFrame,
    ) -> bool {
        let slot = here.vcpu;
        if slot.quiet(STOP_REQUESTS) && here.queue().is_empty() {
            mirror_virq_line();
            return true;
        }
        self.prepare_return_general(here, g, v, frame)
    }

    /// [`Machine::prepare_return`] for any state: the stop requests, the
    /// SGIs and SPIs raised, the queue into the list registers, the mirror.
    #[inline(never)]
    pub(super) fn prepare_return_general(
        &self,
        here: Here<'_>,
        g: &Guest,
        v: usize,
        frame: &TrapFrame,
    ) -> bool {
        self.prepare_return_general_inline(here, g, v, frame)
    }

    /// [`Machine::prepare_return_general`] inline: for the return from a
    /// physical interrupt, which usually has queued one for the guest.
    #[inline(always)]
    pub(super) fn prepare_return_general_inline(
        &self,
        here: Here<'_>,
        g: &Guest,
        v: usize,
        frame: &TrapFrame,
    ) -> bool {
        let resume = self.fill_for_return(here, g, v, frame);
        if resume {
            mirror_virq_line();
        }
        resume
    }

    /// [`Machine::prepare_return`] but for the HCR_EL2.VI mirror.
    fn fill_for_return(&self, here: Here<'_>, g: &Guest, v: usize, frame: &TrapFrame) -> bool {
        let slot = &g.vcpus[v];
        if slot.requests().load(Ordering::Acquire) & STOP_REQUESTS != 0 {
            let req = slot.requests().fetch_and(!STOP_REQUESTS, Ordering::AcqRel);
            if req & request::STOP != 0 {
                self.stop_here(g, v);
            } else if req & request::RESTART != 0 {
                self.guest_restart(g, v);
            } else {
                self.guest_off(g, v, "stopped from the console");
            }
            return false;
        }
        let queue = here.queue();
        // A plain load first: the exchange only when another vCPU raised one.
        let sgis = if slot.sgis().load(Ordering::Relaxed) != 0 {
            slot.sgis().take(Ordering::AcqRel)
        } else {
            0
        };
        if sgis != 0 {
            let vgic = g.vgic.lock();
            for intid in (0..16u32).filter(|i| sgis & (1 << i) != 0) {
                match vgic.irq(v, intid) {
                    Some(s) if s.enabled => {
                        queue.push(VirqRequest {
                            intid,
                            priority: s.priority,
                            hw: false,
                            level: false,
                            latched: false,
                        });
                    }
                    // Disabled: it stays pending until the guest enables it.
                    _ => {
                        slot.sgis().fetch_or(1 << intid, Ordering::AcqRel);
                    }
                }
            }
        }
        if slot.spis_pending().load(Ordering::Acquire) != 0 {
            let mut spis = slot.spis.lock();
            slot.spis_pending().take(Ordering::Relaxed);
            if !spis.is_empty() {
                let vgic = g.vgic.lock();
                spis.retain(|&intid| match vgic.spi(intid) {
                    // Delivered when the guest has it enabled; kept pending otherwise.
                    Some(s) if s.enabled && vgic.group1_enabled() => {
                        queue.push(VirqRequest {
                            intid,
                            priority: s.priority,
                            hw: false,
                            level: false,
                            latched: false,
                        });
                        false
                    }
                    Some(_) => true,
                    None => false,
                });
                if !spis.is_empty() {
                    slot.spis_pending().fetch_or(1, Ordering::Relaxed);
                }
            }
        }
        if queue.is_empty() {
            return true;
        }
        let queue = if queue.take_recheck() {
            // (`queue` is not used again: the vGIC reaches it itself.)
            g.vgic.lock().resample_waiting(&self.gic_regs(v));
            self.local_queue()
        } else {
            queue
        };
        let n = Cpu::lr_count().min(16);
        let empty = Cpu::empty_lrs();
        let filled = match fill_one_into_empty(queue, n, empty, Cpu::write_lr) {
            Some(filled) => filled,
            None => {
                // Only the implemented list registers, collected: a zeroed
                // 16-entry array cost a 128-byte memset (~60 instructions)
                // on every injection.
                let lrs: heapless::Vec<u64, 16> = (0..n)
                    .map(|i| {
                        if empty & (1 << i) == 0 {
                            Cpu::read_lr(i)
                        } else {
                            0
                        }
                    })
                    .collect();
                fill_list_registers(queue, &lrs, Cpu::write_lr)
            }
        };
        if filled.level_hw && spsr_irqs_masked(frame.spsr) {
            queue.set_watch(true);
        }
        Cpu::set_ich_hcr(ich_hcr(filled.more, queue.watching()));
        true
    }

    /// A trapped access of vCPU `v` to its group-1 CPU interface, which
    /// ICH_HCR_EL2.TALL1 traps while a level-triggered hardware interrupt
    /// went into a list register with the guest's IRQs masked: the guest
    /// may have cleared the device since (a handler that deactivates before
    /// it clears the device). The lines of the waiting ones are sampled
    /// again and those that dropped withdrawn, the trap is turned off, and
    /// the guest retries the access: its acknowledge then finds only what
    /// is still pending (or nothing: a spurious INTID).
    pub(super) fn cpu_interface_access(&self, g: &Guest, v: usize) -> Action {
        self.local_queue().set_watch(false);
        g.vgic.lock().resample_waiting(&self.gic_regs(v));
        Cpu::set_ich_hcr(ich_hcr(!self.local_queue().is_empty(), false));
        mirror_virq_line();
        Action::Resume
    }
}
