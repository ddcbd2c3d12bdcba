//! Guest exits: each decoded [`Exit`] handled and answered with the
//! [`Action`] the arch layer applies. MMIO goes to the guest's device
//! table, HVC/SMC to PSCI, a trapped SGI register write to the other vCPUs,
//! an instruction fetch from unmapped memory becomes a prefetch abort;
//! before any return to the guest, pending virtual interrupts are moved
//! into list registers.

use super::guest::Guest;
use super::machine::{Here, Machine};
use super::psci::{self, Outcome};
use super::ratelimit::guest_warn;
use crate::arch::exit::{
    AbortError, Action, Exit, MmioAccess, SysReg, SysRegAccess, apply, class_name,
};
use crate::arch::frame::TrapFrame;
use crate::arch::{Arch, Cpu};
use crate::config::ResetAction;
#[cfg(doc)]
use crate::devices::viommu_mmio::ViommuMmio;
use crate::devices::{AccessCtx, Effect, MmioDevice};
use crate::mm::layout::Region;
use crate::virtio::mmio::regs::Register;
use core::sync::atomic::Ordering;

/// Register `n` (0-31, 31 the zero register) as an operand.
#[inline(always)]
fn reg(frame: &TrapFrame, n: usize) -> u64 {
    frame.operand(n as u8)
}

/// The offset of `ipa` in `window`, if it is inside (the device table's
/// own test of a window).
#[inline(always)]
fn window_offset(window: Region, ipa: u64) -> Option<u64> {
    let off = ipa.wrapping_sub(window.base);
    (off < window.size).then_some(off)
}

impl Machine {
    /// Handles `exit` of the vCPU this CPU runs, whose registers are in
    /// `frame`. None when this CPU runs no vCPU (the exit cannot be the
    /// guest's: the caller treats it as fatal).
    #[inline(always)]
    pub fn handle_exit(&self, frame: &TrapFrame, exit: Exit) -> Option<Action> {
        let (here, g, v) = self.current_here()?;
        Some(self.answer::<true>(here, g, v, frame, exit))
    }

    /// [`Machine::handle_exit`] with every device access made through the
    /// device table's dynamic call, the guest's virtio-iommu's too (no
    /// dedicated path): the reference the host tests compare the
    /// dedicated path with.
    #[cfg(test)]
    pub(crate) fn handle_exit_general(&self, frame: &TrapFrame, exit: Exit) -> Option<Action> {
        let (here, g, v) = self.current_here()?;
        Some(self.answer::<false>(here, g, v, frame, exit))
    }

    /// [`Machine::handle_exit`] for the trap entry, with the answer
    /// applied ([`crate::arch::exit::apply`]: false when the vCPU
    /// stopped), and whether applying it wrote one of x19-x29 in the frame
    /// ([`Action::writes_callee_saved`]). The exit is the one `decode`
    /// makes of `frame`, decoded once the vCPU is found, so that each
    /// decoded kind branches straight to its handler. None when this CPU
    /// runs no vCPU.
    ///
    /// An emulated device access has a path of its own: a claimed access
    /// (a store, [`Action::Advance`], or a load, [`Action::Load`]) is
    /// applied to the frame where it is answered, before the return is
    /// prepared, so that no answer has to outlive that preparation and be
    /// dispatched again after it. The order does not matter: those two
    /// answers change only x0-x30 and ELR, and preparing the return reads
    /// only the frame's SPSR; when the vCPU stops instead (false), the
    /// frame is not used again. Any other answer (an abort for an
    /// unclaimed address) takes the general order.
    #[inline(always)]
    pub fn run_exit(
        &self,
        frame: &mut TrapFrame,
        decode: impl FnOnce(&TrapFrame) -> Exit,
    ) -> Option<(bool, bool)> {
        let (here, g, v) = self.current_here()?;
        let exit = decode(frame);
        if let Exit::Mmio(a) = exit {
            let action = self.mmio::<true>(here.ctx, g, v, frame, a);
            if let Action::Advance | Action::Load { .. } = action {
                let callee_saved = action.writes_callee_saved();
                apply::<Cpu>(frame, action);
                return Some((self.prepare_return(here, g, v, frame), callee_saved));
            }
            let action = self.ready_return(here, g, v, frame, exit, action);
            let callee_saved = action.writes_callee_saved();
            return Some((apply::<Cpu>(frame, action), callee_saved));
        }
        let action = self.answer::<true>(here, g, v, frame, exit);
        let callee_saved = action.writes_callee_saved();
        Some((apply::<Cpu>(frame, action), callee_saved))
    }

    /// The answer to `exit` of vCPU `v` of `g` (running here), the return
    /// to the guest prepared ([`Action::Stop`] if the vCPU stopped).
    #[inline(always)]
    fn answer<const DEDICATED: bool>(
        &self,
        here: Here<'_>,
        g: &Guest,
        v: usize,
        frame: &TrapFrame,
        exit: Exit,
    ) -> Action {
        let action = match exit {
            Exit::Mmio(a) => self.mmio::<DEDICATED>(here.ctx, g, v, frame, a),
            Exit::BadDataAbort { why, far, write } => bad_abort(g, v, frame, why, far, write),
            Exit::InstructionAbort { far, ipa } => prefetch_abort(g, v, far, ipa),
            Exit::Hvc { imm } => self.call(g, v, frame, imm, false),
            Exit::Smc { imm } => self.call(g, v, frame, imm, true),
            Exit::SysReg(s) => self.sysreg(g, v, frame, s),
            Exit::Wfx => Action::Advance,
            Exit::Irq => {
                self.take_guest_interrupts(g, v);
                if g.faults.pending() {
                    self.deliver_faults(g);
                }
                if let Some(c) = &g.console
                    && c.input_pending()
                {
                    self.deliver_console_input(g);
                }
                Action::Resume
            }
            Exit::Fiq | Exit::SError => async_exception(g, v, frame, exit == Exit::SError),
            Exit::Unexpected { ec } => unexpected(g, v, frame, ec),
        };
        self.ready_return(here, g, v, frame, exit, action)
    }

    /// `action`, the answer to `exit`, once the return to the guest is
    /// prepared ([`Action::Stop`] if the vCPU stopped).
    #[inline(always)]
    fn ready_return(
        &self,
        here: Here<'_>,
        g: &Guest,
        v: usize,
        frame: &TrapFrame,
        exit: Exit,
        action: Action,
    ) -> Action {
        if matches!(action, Action::Stop) {
            return Action::Stop;
        }
        // After a physical interrupt the general path straight away (one
        // was usually queued for the guest); else its inline test first.
        let resume = if matches!(exit, Exit::Irq) {
            self.prepare_return_general_inline(here, g, v, frame)
        } else {
            self.prepare_return(here, g, v, frame)
        };
        if !resume {
            return Action::Stop;
        }
        action
    }

    /// A load or store to the guest's emulated devices, with the vCPU's
    /// access context `ctx` (made once, at machine build: vCPU `v`, `g`'s
    /// RAM, the machine's GIC side). (No closures and no message on this
    /// path: the access stays in registers; the unclaimed case is out of
    /// line.)
    ///
    /// The dedicated path of the request path: when the address is in the
    /// window of the guest's own virtio-iommu (either transport; the
    /// device knows its window, the one the device table holds it at),
    /// the access is made on the device's concrete type, its lock and
    /// register decode inlined here, without the table's lookup and its
    /// dynamic call; on virtio-mmio the request path's own store (4 bytes
    /// at QueueNotify) goes straight to [`ViommuMmio::queue_notify`], the
    /// register's low 16 bits its queue index, without the mask to the
    /// store's width and the transport's register decode (what `write`
    /// does at that offset and width). Anything else goes through the
    /// table. Both are the
    /// one generic [`Machine::access`], after the one decode of the
    /// syndrome (ISV and S1PTW checked there; SRT, width, direction and
    /// extension read in `access`) and the same window check (offset =
    /// address - base, below the size): windows never overlap, so the
    /// table would find the same device at the same offset. `DEDICATED`
    /// false (host tests) sends every access through the table: the
    /// reference the dedicated path is compared with.
    #[inline(always)]
    fn mmio<const DEDICATED: bool>(
        &self,
        ctx: &AccessCtx<'_>,
        g: &Guest,
        v: usize,
        frame: &TrapFrame,
        a: MmioAccess,
    ) -> Action {
        let answer = if DEDICATED
            && let Some(viommu) = g.viommu.as_deref()
            && let Some(off) = window_offset(viommu.window(), a.ipa)
        {
            if a.write() && a.width() == 4 && off == Register::QueueNotify.offset() {
                // The request path's store: its queue index is the
                // register's low 16 bits, no mask to the store's width
                // needed (the same as `access` at this offset and width).
                let effect = viommu.queue_notify(reg(frame, usize::from(a.reg())));
                self.apply_effect(g, effect);
                Some(Action::Advance)
            } else {
                self.access(ctx, g, frame, a, viommu, off)
            }
        } else if DEDICATED
            && let Some(viommu) = g.viommu_pci.as_deref()
            && let Some(off) = window_offset(viommu.window(), a.ipa)
        {
            self.access(ctx, g, frame, a, viommu, off)
        } else if let Some((dev, off)) = g.devices.find(a.ipa) {
            self.access(ctx, g, frame, a, dev, off)
        } else {
            None
        };
        if let Some(action) = answer {
            return action;
        }
        unclaimed(g, v, frame, a);
        Action::InjectDataAbort {
            far: frame.far,
            write: a.write(),
        }
    }

    /// The access `a` made on `dev` at offset `off` of its window: a store
    /// of the source register's low bytes (its effect carried out), or a
    /// load whose value goes to the destination register, extended as the
    /// syndrome says. None when the device does not claim the offset.
    #[inline(always)]
    fn access<D: MmioDevice + ?Sized>(
        &self,
        ctx: &AccessCtx<'_>,
        g: &Guest,
        frame: &TrapFrame,
        a: MmioAccess,
        dev: &D,
        off: u64,
    ) -> Option<Action> {
        let width = usize::from(a.width());
        if a.write() {
            let value = a.store_value(reg(frame, usize::from(a.reg())));
            let effect = dev.write(ctx, off, width, value)?;
            self.apply_effect(g, effect);
            Some(Action::Advance)
        } else {
            let raw = dev.read(ctx, off, width)?;
            Some(Action::Load {
                reg: a.reg(),
                value: a.load_value(raw),
            })
        }
    }

    /// Carries out what a device asked for.
    pub(super) fn apply_effect(&self, g: &Guest, effect: Effect) {
        match effect {
            Effect::None => {}
            Effect::RaiseSpi(intid) => self.raise_virtual_spi(g, intid),
        }
    }

    /// A trapped system-register access: ICC_SGI1R_EL1 writes are the
    /// guest's SGIs; the group-1 CPU interface registers trap while a
    /// level-triggered hardware interrupt is watched (see
    /// [`Machine::cpu_interface_access`]); ACTLR_EL1 reads as zero and
    /// ignores writes (the implementation-defined controls stay the
    /// hypervisor's); anything else is undefined.
    fn sysreg(&self, g: &Guest, v: usize, frame: &TrapFrame, s: SysRegAccess) -> Action {
        if !s.read && s.reg == SysReg::ICC_SGI1R_EL1 {
            self.send_virtual_sgi(g, v, reg(frame, s.rt));
            return Action::Advance;
        }
        if s.reg.is_icc_group1() {
            return self.cpu_interface_access(g, v);
        }
        if s.reg == SysReg::ACTLR_EL1 {
            return if s.read {
                Action::Load {
                    reg: s.rt as u8,
                    value: 0,
                }
            } else {
                Action::Advance
            };
        }
        guest_warn!(
            g,
            "guest '{}': vcpu {v}: trapped system register access ({:?}, {}) at {:#x}; undefined instruction injected",
            g.name(),
            s.reg,
            if s.read { "read" } else { "write" },
            frame.elr
        );
        Action::InjectUndefined
    }

    /// An HVC or trapped SMC: PSCI and SMCCC with immediate 0.
    fn call(&self, g: &Guest, v: usize, frame: &TrapFrame, imm: u16, smc: bool) -> Action {
        let ret = |x0: i64| Action::Return {
            x0: x0 as u64,
            advance: smc, // a trapped SMC returns to the next instruction
        };
        if imm != 0 {
            return ret(psci::ret::NOT_SUPPORTED);
        }
        match psci::handle(g, [frame.x[0], frame.x[1], frame.x[2], frame.x[3]]) {
            Outcome::Return(r) => ret(r),
            Outcome::Suspend => {
                Cpu::wait_for_interrupt();
                ret(psci::ret::SUCCESS)
            }
            Outcome::StartVcpu {
                vcpu,
                entry,
                context,
            } => {
                let slot = &g.vcpus[vcpu];
                slot.request_start(entry, context);
                self.kick(slot.pcpu);
                ret(psci::ret::SUCCESS)
            }
            Outcome::StopVcpu => {
                self.stop_here(g, v);
                Action::Stop
            }
            Outcome::SystemOff => {
                self.guest_off(g, v, "powered off");
                Action::Stop
            }
            Outcome::SystemReset => {
                match g.config.on_reset {
                    ResetAction::PowerOff => self.guest_off(g, v, "reset; on_reset = poweroff"),
                    ResetAction::Restart => self.guest_restart(g, v),
                }
                Action::Stop
            }
        }
    }

    /// ICC_SGI1R_EL1 written with `value` by vCPU `me`: the SGI is raised
    /// on each target vCPU, whose CPU is kicked.
    fn send_virtual_sgi(&self, g: &Guest, me: usize, value: u64) {
        let intid = ((value >> 24) & 0xf) as u32;
        let raise = |t: usize| {
            g.vcpus[t].sgis().fetch_or(1 << intid, Ordering::AcqRel);
            self.kick(g.vcpus[t].pcpu);
        };
        if value & (1 << 40) != 0 {
            // IRM: every vCPU but the sender.
            (0..g.vcpus.len()).filter(|&t| t != me).for_each(raise);
            return;
        }
        // Our vCPUs have Aff1-3 = 0; RS selects the block of 16.
        if (value >> 16) & 0xff != 0 || (value >> 32) & 0xff != 0 || (value >> 48) & 0xff != 0 {
            return;
        }
        let rs = ((value >> 44) & 0xf) as usize;
        (0..16)
            .filter(|b| value & (1 << b) != 0)
            .map(|b| rs * 16 + b)
            .filter(|&t| t < g.vcpus.len())
            .for_each(raise);
    }
}

/// An access no emulated device claims, reported: the guest gets an
/// external abort.
#[cold]
#[inline(never)]
fn unclaimed(g: &Guest, v: usize, frame: &TrapFrame, a: MmioAccess) {
    guest_warn!(
        g,
        "guest '{}': vcpu {v}: {} of {} bytes at unclaimed address {:#x} (pc {:#x}); abort injected",
        g.name(),
        if a.write() { "write" } else { "read" },
        a.width(),
        a.ipa,
        frame.elr
    );
}

/// A data abort that cannot be emulated: an external abort to the guest.
#[cold]
#[inline(never)]
fn bad_abort(
    g: &Guest,
    v: usize,
    frame: &TrapFrame,
    why: AbortError,
    far: u64,
    write: bool,
) -> Action {
    guest_warn!(
        g,
        "guest '{}': vcpu {v}: data abort at pc {:#x} cannot be emulated: {why}; abort injected",
        g.name(),
        frame.elr
    );
    Action::InjectDataAbort { far, write }
}

/// An instruction fetch from guest-physical memory that is not RAM (no
/// mapping at all, or an emulated device's window, which cannot be
/// executed): a prefetch abort to the guest, as on hardware where nothing
/// answers at the address.
#[cold]
#[inline(never)]
fn prefetch_abort(g: &Guest, v: usize, far: u64, ipa: u64) -> Action {
    guest_warn!(
        g,
        "guest '{}': vcpu {v}: instruction fetch at {far:#x} (guest-physical {ipa:#x}) outside its RAM; prefetch abort injected",
        g.name()
    );
    Action::InjectPrefetchAbort { far }
}

/// A guest's FIQ or SError must not take the CPU down: it is reported and
/// the guest goes on (it sees no FIQ; an SError is passed on as a virtual
/// SError for its own handler).
#[cold]
#[inline(never)]
fn async_exception(g: &Guest, v: usize, frame: &TrapFrame, serror: bool) -> Action {
    guest_warn!(
        g,
        "guest '{}': vcpu {v}: {} at pc {:#x} (ESR {:#x})",
        g.name(),
        if serror { "SError" } else { "FIQ" },
        frame.elr,
        frame.esr
    );
    if serror {
        Action::InjectSError
    } else {
        Action::Resume
    }
}

/// Any other exception class: undefined instruction.
#[cold]
#[inline(never)]
fn unexpected(g: &Guest, v: usize, frame: &TrapFrame, ec: u8) -> Action {
    guest_warn!(
        g,
        "guest '{}': vcpu {v}: unexpected exception class {ec:#x} ({}) at {:#x}; undefined instruction injected",
        g.name(),
        class_name(ec),
        frame.elr
    );
    Action::InjectUndefined
}
