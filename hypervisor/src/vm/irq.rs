//! Interrupts of the vCPUs: physical interrupts acknowledged and passed
//! to the guest that owns them (hardware-linked), virtual SGIs and the
//! virtual SPIs of emulated devices queued, and the queue moved into list
//! registers before each return to the guest.

use super::guest::Guest;
use super::machine::{HypIrqHandler, Machine};
use super::ratelimit::guest_warn;
use super::vcpu::request;
use crate::arch::{Arch, Cpu};
use crate::gic::{KICK_SGI, MAINTENANCE_PPI};
use crate::vgic::SPI_BASE;
use crate::vgic::pending::{VirqRequest, fill_list_registers};
use core::sync::atomic::Ordering;
use log::warn;

/// ICH_HCR_EL2.En: the virtual CPU interface is on.
pub(super) const ICH_HCR_EN: u64 = 1;
/// ICH_HCR_EL2.UIE: maintenance interrupt when the list registers run
/// (almost) empty, to refill them from the queue.
const ICH_HCR_UIE: u64 = 1 << 1;
/// INTIDs 1020..=1023: no interrupt (spurious).
const FIRST_SPECIAL_INTID: u32 = 1020;

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
        let hyp = intid == KICK_SGI || intid == MAINTENANCE_PPI || hyp_irq(intid);
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
    /// guest's deactivation deactivates it); others are deactivated.
    pub(super) fn take_guest_interrupts(&self, g: &Guest, v: usize) {
        let me = Cpu::cpu_index();
        self.take_interrupts(|intid| {
            let prio = {
                let vgic = g.vgic.lock();
                vgic.hw_target(intid, me)
                    .and_then(|_| vgic.irq(v, intid).map(|s| s.priority))
            };
            match prio {
                Some(priority) => {
                    let req = VirqRequest {
                        intid,
                        priority,
                        hw: true,
                    };
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
        slot.spis_pending.store(true, Ordering::Release);
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

    /// Before returning to vCPU `v` of `g`: act on a stop request (false:
    /// the vCPU stopped), take the SGIs other vCPUs raised and the SPIs of
    /// emulated devices, and fill the list registers.
    pub(super) fn prepare_return(&self, g: &Guest, v: usize) -> bool {
        let slot = &g.vcpus[v];
        if slot.requests.load(Ordering::Acquire)
            & (request::STOP | request::POWER_OFF | request::RESTART)
            != 0
        {
            let req = slot.requests.fetch_and(
                !(request::STOP | request::POWER_OFF | request::RESTART),
                Ordering::AcqRel,
            );
            if req & request::STOP != 0 {
                self.stop_here(g, v);
            } else if req & request::RESTART != 0 {
                self.guest_restart(g, v);
            } else {
                self.guest_off(g, v, "stopped from the console");
            }
            return false;
        }
        let queue = self.local_queue();
        // A plain load first: the exchange only when another vCPU raised one.
        let sgis = if slot.sgis.load(Ordering::Relaxed) != 0 {
            slot.sgis.swap(0, Ordering::AcqRel)
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
                        });
                    }
                    // Disabled: it stays pending until the guest enables it.
                    _ => {
                        slot.sgis.fetch_or(1 << intid, Ordering::AcqRel);
                    }
                }
            }
        }
        if slot.spis_pending.load(Ordering::Acquire) {
            let mut spis = slot.spis.lock();
            slot.spis_pending.store(false, Ordering::Relaxed);
            if !spis.is_empty() {
                let vgic = g.vgic.lock();
                spis.retain(|&intid| match vgic.spi(intid) {
                    // Delivered when the guest has it enabled; kept pending otherwise.
                    Some(s) if s.enabled && vgic.group1_enabled() => {
                        queue.push(VirqRequest {
                            intid,
                            priority: s.priority,
                            hw: false,
                        });
                        false
                    }
                    Some(_) => true,
                    None => false,
                });
                if !spis.is_empty() {
                    slot.spis_pending.store(true, Ordering::Relaxed);
                }
            }
        }
        if queue.is_empty() {
            return true;
        }
        let n = Cpu::lr_count().min(16);
        let empty = Cpu::empty_lrs();
        // Only the implemented list registers, collected: a zeroed
        // 16-entry array cost a 128-byte memset (~60 instructions) on every
        // injection.
        let lrs: heapless::Vec<u64, 16> = (0..n)
            .map(|i| {
                if empty & (1 << i) == 0 {
                    Cpu::read_lr(i)
                } else {
                    0
                }
            })
            .collect();
        let more = fill_list_registers(queue, &lrs, Cpu::write_lr);
        Cpu::set_ich_hcr(if more {
            ICH_HCR_EN | ICH_HCR_UIE
        } else {
            ICH_HCR_EN
        });
        true
    }
}
