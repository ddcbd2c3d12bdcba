//! A level-triggered passed-through interrupt under random schedules: a
//! device line that rises and drops, the physical GIC signalling it, exits
//! of every kind, and a guest whose handler clears the device and
//! deactivates the interrupt in either order (Linux does both). However
//! they interleave, the guest never takes the interrupt more often than
//! the line rose: an interrupt whose line dropped is not delivered again
//! and again (an interrupt storm, "irq N: nobody cared"), and no copy is
//! left that the physical GIC cannot signal past.

use super::hw_irq::{MASKED, UART, UNMASKED, acknowledge_access, frame, guest, lr, physical_irq};
use super::io_budget::Rng;
use crate::arch::exit::Exit;
use crate::arch::fake::{self, Op};
use crate::vm::machine::Machine;
use crate::vm::tests::World;

/// ICH_HCR_EL2.TALL1.
const TALL1: u64 = 1 << 12;
/// List-register state: pending (01), active (10), both (11).
const LR_PENDING: u64 = 0b01;

/// The guest's handler of the interrupt, between its acknowledge and its
/// return.
struct Handler {
    /// The list register it acknowledged.
    lr: usize,
    /// It cleared the device (the line dropped).
    cleared: bool,
    /// It deactivated the interrupt (EOI).
    deactivated: bool,
}

/// The device, the physical GIC's bits for its SPI and the guest.
struct Model<'a> {
    w: &'a World,
    m: &'a Machine,
    line: bool,
    masked: bool,
    handler: Option<Handler>,
    rises: u32,
    taken: u32,
}

impl Model<'_> {
    fn spsr(&self) -> u64 {
        if self.masked { MASKED } else { UNMASKED }
    }

    /// The physical (pending, active) bits.
    fn phys(&self) -> (bool, bool) {
        self.w.gic.state(UART, 0)
    }

    fn set_line(&mut self, high: bool) {
        if high && !self.line {
            self.rises += 1;
        }
        self.line = high;
        let (_, active) = self.phys();
        self.w.gic.set_state(UART, 0, high, active);
    }

    /// What the hypervisor did to the physical GIC through the CPU
    /// interface: a deactivation (a withdrawn copy) clears the active bit.
    fn apply_cpu_ops(&mut self) {
        if fake::take_ops().contains(&Op::Deactivate(UART)) {
            self.w.gic.set_state(UART, 0, self.line, false);
        }
    }

    /// The list register holding the interrupt pending, if one.
    fn pending_lr(&self) -> Option<usize> {
        (0..4).find(|&n| lr(n) as u32 == UART && lr(n) >> 62 == LR_PENDING)
    }

    /// The guest, IRQs unmasked, takes its virtual IRQ: masked by the
    /// exception, it acknowledges (which may trap once).
    fn step_take(&mut self) {
        if self.masked || self.handler.is_some() || self.pending_lr().is_none() {
            return;
        }
        self.masked = true;
        if fake::with(|s| s.ich_hcr) & TALL1 != 0 {
            self.m.handle_exit(&frame(MASKED), acknowledge_access());
            self.apply_cpu_ops();
        }
        match self.pending_lr() {
            Some(n) => {
                fake::with(|s| s.lrs[n] = s.lrs[n] & !(3 << 62) | 1 << 63);
                self.taken += 1;
                self.handler = Some(Handler {
                    lr: n,
                    cleared: false,
                    deactivated: false,
                });
            }
            // Spurious (1023): back to where it was.
            None => self.masked = false,
        }
    }

    fn step(&mut self, rng: &mut Rng) {
        match rng.below(9) {
            // The device raises its line.
            0 => self.set_line(true),
            // The device drops it by itself (another vCPU polled it).
            1 if rng.below(4) == 0 => self.set_line(false),
            // The physical GIC signals it: pending, enabled, not active.
            2 => {
                let (pending, active) = self.phys();
                if pending && !active {
                    physical_irq(self.w, self.m, UART, self.line, self.spsr());
                    self.apply_cpu_ops();
                }
            }
            // The guest takes its virtual IRQ.
            3 => self.step_take(),
            // The handler clears its device.
            4 => {
                if let Some(h) = &mut self.handler {
                    h.cleared = true;
                    self.set_line(false);
                }
            }
            // The handler deactivates (HW = 1: the physical one too).
            5 => {
                if let Some(h) = self.handler.as_mut().filter(|h| !h.deactivated) {
                    h.deactivated = true;
                    let n = h.lr;
                    fake::with(|s| s.lrs[n] = 0);
                    let (pending, _) = self.phys();
                    self.w.gic.set_state(UART, 0, pending, false);
                }
            }
            // The handler returns once it did both.
            6 => {
                if self
                    .handler
                    .as_ref()
                    .is_some_and(|h| h.cleared && h.deactivated)
                {
                    self.handler = None;
                    self.masked = false;
                }
            }
            // An exit of another kind (WFI, a trapped access).
            7 => {
                self.m.handle_exit(&frame(self.spsr()), Exit::Wfx);
                self.apply_cpu_ops();
            }
            // The guest polls the pending bit (GICD_ISPENDR1).
            _ => {
                super::hw_irq::read(self.m, super::hw_irq::GICD + 0x204);
                self.apply_cpu_ops();
            }
        }
    }
}

#[test]
fn a_level_interrupt_is_taken_at_most_once_per_rise_of_its_line() {
    for seed in 1..=200u64 {
        let (w, m) = guest(true);
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut model = Model {
            w: &w,
            m,
            line: false,
            masked: false,
            handler: None,
            rises: 0,
            taken: 0,
        };
        for step in 0..400 {
            model.step(&mut rng);
            assert!(
                model.taken <= model.rises,
                "seed {seed}, step {step}: taken {} times, the line rose {} times",
                model.taken,
                model.rises
            );
            let copies = (0..4).filter(|&n| lr(n) as u32 == UART && lr(n) >> 62 != 0);
            assert!(copies.count() <= 1, "seed {seed}, step {step}: two copies");
        }
        // Quiet end: the line stays low, the guest handles what is left
        // and exits a few times. Nothing is taken beyond the rises, and
        // nothing stays active on the physical GIC (it could never signal
        // the interrupt again: a lost line).
        model.set_line(false);
        for _ in 0..8 {
            if let Some(h) = model.handler.as_mut() {
                h.cleared = true;
                if !h.deactivated {
                    h.deactivated = true;
                    let n = h.lr;
                    fake::with(|s| s.lrs[n] = 0);
                    w.gic.set_state(UART, 0, false, false);
                }
                model.handler = None;
                model.masked = false;
            }
            model.m.handle_exit(&frame(UNMASKED), Exit::Wfx);
            model.apply_cpu_ops();
            model.step_take();
        }
        assert!(model.taken <= model.rises, "seed {seed}: taken at the end");
        assert!(
            model.handler.is_none() && model.pending_lr().is_none(),
            "seed {seed}: drained"
        );
        assert_eq!(model.phys(), (false, false), "seed {seed}: left active");
    }
}
