//! Hardware-linked interrupts through the machine: what the guest reads of
//! their pending and active state, level-triggered interrupts withdrawn
//! once their line dropped, and which exits read the physical GIC.

use super::*;
use crate::arch::exit::{Action, Exit, MmioAccess, SysReg, SysRegAccess};
use crate::arch::fake::Op;
use crate::arch::frame::TrapFrame;
use crate::gic::maintenance::DEFAULT_MAINTENANCE_PPI as MAINTENANCE_PPI;
use core::sync::atomic::Ordering;

pub(super) const GICD: u64 = 0x0800_0000;
/// vCPU 0's redistributor (its SGI frame at + 64 KiB).
const GICR0: u64 = 0x080a_0000;
/// The UART's SPI (passed through, level-triggered) and the virtual
/// timer's PPI.
pub(super) const UART: u32 = 33;
const VTIMER: u32 = 27;
/// ICH_HCR_EL2.TALL1.
const TALL1: u64 = 1 << 12;
/// SPSR of the guest at EL1 with IRQs masked (in a handler), unmasked.
pub(super) const MASKED: u64 = 0x3c5;
pub(super) const UNMASKED: u64 = 0x5;

/// A guest on CPUs 0 and 1, vCPU 0 running here; the UART's SPI enabled
/// and group 1 on when `enable`.
pub(super) fn guest(enable: bool) -> (World, &'static Machine) {
    let w = World::new();
    let g = w.guest(0, config("a", &[0, 1], true));
    if enable {
        let mut vgic = g.vgic.lock();
        vgic.dist_write(&w.regs(), 0x0, 4, 0b10);
        vgic.dist_write(&w.regs(), 0x104, 4, 1 << 1);
        vgic.redist_write(&w.regs(), 0, 0x1_0100, 4, 0xffff);
    }
    let m = w.machine(vec![g]);
    fake::take_ops();
    w.gic.take();
    (w, m)
}

pub(super) fn frame(spsr: u64) -> TrapFrame {
    TrapFrame {
        spsr,
        ..Default::default()
    }
}

/// A 32-bit load of the guest's GIC register at `ipa` into x0.
pub(super) fn read(m: &Machine, ipa: u64) -> u64 {
    let exit = Exit::Mmio(MmioAccess::new(ipa, 4, false, 0, false, false));
    match m.handle_exit(&frame(UNMASKED), exit) {
        Some(Action::Load { reg: 0, value }) => value,
        a => panic!("load of {ipa:#x}: {a:?}"),
    }
}

/// A 32-bit store of `value` to the guest's GIC register at `ipa`.
fn write(m: &Machine, ipa: u64, value: u64) {
    let mut f = frame(UNMASKED);
    f.x[1] = value;
    let exit = Exit::Mmio(MmioAccess::new(ipa, 4, true, 1, false, false));
    assert_eq!(m.handle_exit(&f, exit), Some(Action::Advance));
}

/// The physical GIC signals `intid`: the hypervisor acknowledges it (the
/// test sets what the physical GIC then holds: active, and pending while a
/// level line stays high) in an IRQ exit taken with the guest's `spsr`.
pub(super) fn physical_irq(w: &World, m: &Machine, intid: u32, line_high: bool, spsr: u64) {
    w.gic.set_state(intid, 0, line_high, true);
    fake::with(|s| s.pending_irqs.extend([intid, 1023]));
    assert_eq!(m.handle_exit(&frame(spsr), Exit::Irq), Some(Action::Resume));
}

/// The guest acknowledges the interrupt in list register `n`.
fn guest_acknowledges(n: usize) {
    fake::with(|s| s.lrs[n] = s.lrs[n] & !(3 << 62) | 1 << 63);
}

/// The guest deactivates the interrupt in list register `n` (HW = 1: the
/// physical interrupt is deactivated with it).
fn guest_deactivates(w: &World, n: usize) {
    let lr = fake::with(|s| core::mem::take(&mut s.lrs[n]));
    let pintid = ((lr >> 32) & 0x3ff) as u32;
    let (pending, _) = w.gic.state(pintid, 0);
    w.gic.set_state(pintid, 0, pending, false);
}

/// The guest reads ICC_IAR1_EL1 (into x0).
pub(super) fn acknowledge_access() -> Exit {
    Exit::SysReg(SysRegAccess {
        reg: SysReg::ICC_IAR1_EL1,
        rt: 0,
        read: true,
    })
}

pub(super) fn lr(n: usize) -> u64 {
    fake::with(|s| s.lrs[n])
}

fn ich_hcr() -> u64 {
    fake::with(|s| s.ich_hcr)
}

/// The reads of the physical GIC's state since the last call.
fn physical_reads(w: &World) -> Vec<(&'static str, u32)> {
    w.gic
        .take()
        .into_iter()
        .filter(|o| o.0.ends_with('?'))
        .map(|o| (o.0, o.1))
        .collect()
}

// --- issue 18, item 2: the pending state of forwarded interrupts --------

#[test]
fn a_disabled_passed_through_spi_reads_pending_as_the_physical_gic_has_it() {
    let (w, m) = guest(false);
    // The UART raised its line; the guest keeps the SPI disabled and polls.
    w.gic.set_state(UART, 0, true, false);
    assert_eq!(read(m, GICD + 0x204) & (1 << 1), 1 << 1, "ISPENDR1");
    assert_eq!(read(m, GICD + 0x284) & (1 << 1), 1 << 1, "ICPENDR1");
    assert_eq!(read(m, GICD + 0x304) & (1 << 1), 0, "ISACTIVER1");
    // The guest clears it: on the physical GIC.
    write(m, GICD + 0x284, 1 << 1);
    assert!(w.gic.take().contains(&("pending", UART, 0, false)));
    assert_eq!(read(m, GICD + 0x204) & (1 << 1), 0);
    // And sets it.
    write(m, GICD + 0x204, 1 << 1);
    assert!(w.gic.take().contains(&("pending", UART, 0, true)));
}

#[test]
fn a_disabled_timer_ppi_reads_pending_in_the_redistributor() {
    let (w, m) = guest(false);
    w.gic.set_state(VTIMER, 0, true, false);
    let ispendr0 = read(m, GICR0 + 0x1_0200);
    assert_eq!(ispendr0, 1 << VTIMER, "only the owned, pending PPI");
    w.gic.set_state(VTIMER, 0, false, true);
    assert_eq!(read(m, GICR0 + 0x1_0200), 0);
    assert_eq!(read(m, GICR0 + 0x1_0300), 1 << VTIMER, "ISACTIVER0");
    // Clearing the active state reaches vCPU 0's CPU's redistributor.
    write(m, GICR0 + 0x1_0380, 1 << VTIMER);
    assert!(w.gic.take().contains(&("active", VTIMER, 0, false)));
}

#[test]
fn a_forwarded_interrupt_reads_pending_then_active_as_the_guest_takes_it() {
    let (w, m) = guest(true);
    physical_irq(&w, m, UART, true, UNMASKED);
    // In a list register, not yet taken: pending, not active (the
    // physical active bit is the hypervisor's acknowledge).
    assert_eq!(read(m, GICD + 0x204) & 2, 2);
    assert_eq!(read(m, GICD + 0x304) & 2, 0);
    guest_acknowledges(0);
    assert_eq!(read(m, GICD + 0x304) & 2, 2, "active");
    assert_eq!(read(m, GICD + 0x204) & 2, 2, "and pending: line high");
    // The handler clears the device, then deactivates.
    w.gic.set_state(UART, 0, false, true);
    assert_eq!(read(m, GICD + 0x204) & 2, 0);
    guest_deactivates(&w, 0);
    assert_eq!(read(m, GICD + 0x304) & 2, 0);
}

// --- issue 18, item 3: a level interrupt delivered twice -----------------

#[test]
fn a_level_interrupt_deactivated_before_its_device_is_cleared_is_not_delivered_again() {
    let (w, m) = guest(true);
    physical_irq(&w, m, UART, true, UNMASKED);
    assert_eq!(lr(0) as u32, UART);
    // The guest's handler acknowledges it and deactivates it before it
    // clears the device: the line is still high, the physical GIC signals
    // the interrupt again at once, while the handler runs (IRQs masked).
    guest_acknowledges(0);
    guest_deactivates(&w, 0);
    physical_irq(&w, m, UART, true, MASKED);
    assert_eq!(lr(0) >> 62, 0b01, "pending again: the line is high");
    assert_ne!(ich_hcr() & TALL1, 0, "its acknowledge will trap");
    // The handler clears the device (no exit: the device is the guest's),
    // returns, and the guest takes the virtual interrupt: its acknowledge
    // traps.
    w.gic.set_state(UART, 0, false, true);
    fake::take_ops();
    let a = m.handle_exit(&frame(MASKED), acknowledge_access());
    assert_eq!(a, Some(Action::Resume), "the access is retried");
    // The line had dropped: withdrawn, physical interrupt deactivated, no
    // more trapping. The retried acknowledge finds nothing (spurious).
    assert_eq!(lr(0) >> 62, 0, "withdrawn");
    assert!(fake::take_ops().contains(&Op::Deactivate(UART)));
    assert_eq!(ich_hcr() & TALL1, 0);
    assert_eq!(read(m, GICD + 0x204) & 2, 0, "not pending");
}

#[test]
fn a_level_interrupt_still_asserted_at_the_acknowledge_is_delivered() {
    let (w, m) = guest(true);
    physical_irq(&w, m, UART, true, MASKED);
    assert_ne!(ich_hcr() & TALL1, 0);
    fake::take_ops();
    let a = m.handle_exit(&frame(MASKED), acknowledge_access());
    assert_eq!(a, Some(Action::Resume));
    assert_eq!(lr(0) >> 62, 0b01, "still pending: the guest takes it");
    assert!(!fake::take_ops().contains(&Op::Deactivate(UART)));
    assert_eq!(ich_hcr() & TALL1, 0, "trapped once only");
}

#[test]
fn interrupts_taken_with_irqs_unmasked_or_edge_triggered_do_not_trap() {
    let (w, m) = guest(true);
    physical_irq(&w, m, UART, true, UNMASKED);
    assert_eq!(ich_hcr() & TALL1, 0, "the guest takes it at once");
    // An edge-triggered interrupt has no line to drop.
    let g = &m.guests()[0];
    g.vgic.lock().dist_write(&w.regs(), 0xc08, 4, 2 << 2);
    guest_acknowledges(0);
    guest_deactivates(&w, 0);
    physical_irq(&w, m, UART, false, MASKED);
    assert_eq!(lr(0) as u32, UART);
    assert_eq!(ich_hcr() & TALL1, 0);
}

#[test]
fn a_waiting_level_interrupt_whose_line_dropped_is_withdrawn_when_polled() {
    let (w, m) = guest(true);
    physical_irq(&w, m, UART, true, MASKED);
    // The guest, IRQs still masked, clears the device and polls.
    w.gic.set_state(UART, 0, false, true);
    fake::take_ops();
    assert_eq!(read(m, GICD + 0x204) & 2, 0);
    assert_eq!(lr(0) >> 62, 0, "withdrawn");
    assert!(fake::take_ops().contains(&Op::Deactivate(UART)));
}

#[test]
fn a_deferred_level_interrupt_whose_line_dropped_is_not_delivered() {
    let (w, m) = guest(true);
    let g = &m.guests()[0];
    // Four SGIs fill the four list registers.
    g.vcpus[0].sgis().store(0b1111, Ordering::Relaxed);
    m.handle_exit(&frame(UNMASKED), Exit::Wfx);
    // The UART's interrupt waits for a list register.
    physical_irq(&w, m, UART, true, UNMASKED);
    assert!((0..4).all(|n| lr(n) as u32 != UART));
    // Its line drops; the guest takes the SGIs; the maintenance interrupt
    // refills the list registers: the UART's is withdrawn, not delivered.
    w.gic.set_state(UART, 0, false, true);
    fake::with(|s| s.lrs.iter_mut().for_each(|lr| *lr = 0));
    fake::with(|s| s.pending_irqs.push_back(MAINTENANCE_PPI));
    fake::take_ops();
    m.handle_exit(&frame(UNMASKED), Exit::Irq);
    let ops = fake::take_ops();
    assert!(ops.contains(&Op::Deactivate(UART)));
    assert!(
        !ops.iter()
            .any(|o| matches!(o, Op::WriteLr(_, v) if *v as u32 == UART))
    );
}

#[test]
fn a_level_interrupt_the_guest_made_pending_is_delivered_though_its_line_is_low() {
    let (w, m) = guest(true);
    write(m, GICD + 0x204, 1 << 1);
    assert!(w.gic.take().contains(&("pending", UART, 0, true)));
    // The physical GIC signals it; its acknowledge ends the physical latch
    // (the line is low), the copy carries the guest's.
    physical_irq(&w, m, UART, false, MASKED);
    let g = &m.guests()[0];
    assert!(
        !g.vgic.lock().spi(UART).unwrap().latched,
        "moved to the copy"
    );
    assert_eq!(read(m, GICD + 0x204) & 2, 2, "still pending");
    let a = m.handle_exit(&frame(MASKED), acknowledge_access());
    assert_eq!(a, Some(Action::Resume));
    assert_eq!(lr(0) >> 62, 0b01, "not withdrawn: the guest takes it");
    assert!(!fake::take_ops().contains(&Op::Deactivate(UART)));
}

// --- where the physical GIC is read ----------------------------------------

#[test]
fn ordinary_exits_never_read_the_physical_gic() {
    let (w, m) = guest(true);
    // A null exit (the virtio-iommu's MagicValue), a WFI, SGIs.
    read(m, VIOMMU_BASE);
    m.handle_exit(&frame(UNMASKED), Exit::Wfx);
    m.guests()[0].vcpus[0].sgis().store(1, Ordering::Relaxed);
    m.handle_exit(&frame(UNMASKED), Exit::Wfx);
    // Forwarded interrupts, with IRQs unmasked and masked, and the guest's
    // deactivation.
    physical_irq(&w, m, UART, true, UNMASKED);
    guest_acknowledges(1);
    guest_deactivates(&w, 1);
    physical_irq(&w, m, UART, true, MASKED);
    physical_irq(&w, m, VTIMER, true, UNMASKED);
    assert_eq!(physical_reads(&w), []);
    // Enables and priorities do not read it either.
    write(m, GICD + 0x104, 1 << 1);
    write(m, GICD + 0x420, 0x8080);
    assert_eq!(physical_reads(&w), []);
}

#[test]
fn a_stopping_vcpu_deactivates_the_hardware_interrupts_it_held() {
    let (w, m) = guest(true);
    let g = &m.guests()[0];
    g.vcpus[0].sgis().store(0b111, Ordering::Relaxed);
    m.handle_exit(&frame(UNMASKED), Exit::Wfx);
    physical_irq(&w, m, VTIMER, true, UNMASKED); // the fourth list register
    physical_irq(&w, m, UART, true, UNMASKED); // queued
    fake::take_ops();
    let mut off = frame(UNMASKED);
    off.x[0] = 0x8400_0002; // PSCI CPU_OFF
    assert_eq!(
        m.handle_exit(&off, Exit::Hvc { imm: 0 }),
        Some(Action::Stop)
    );
    let ops = fake::take_ops();
    assert!(ops.contains(&Op::Deactivate(VTIMER)), "in a list register");
    assert!(ops.contains(&Op::Deactivate(UART)), "queued");
}

// --- virtual interrupts of the accessing vCPU ----------------------------

#[test]
fn a_disabled_sgi_reads_pending_and_a_taken_one_active() {
    let (_w, m) = guest(true);
    let g = &m.guests()[0];
    // SGI 2 disabled, raised: it waits outside the queue.
    write(m, GICR0 + 0x1_0180, 1 << 2);
    g.vcpus[0].sgis().fetch_or(1 << 2, Ordering::AcqRel);
    assert_eq!(read(m, GICR0 + 0x1_0200) & 0xffff, 1 << 2, "ISPENDR0");
    assert_eq!(read(m, GICR0 + 0x1_0300) & 0xffff, 0, "ISACTIVER0");
    // Enabled, it reaches a list register; taken by the guest, active.
    write(m, GICR0 + 0x1_0100, 1 << 2);
    m.handle_exit(&frame(UNMASKED), Exit::Wfx);
    let n = (0..4)
        .find(|&n| lr(n) as u32 == 2)
        .expect("SGI 2 in a list register");
    assert_eq!(
        read(m, GICR0 + 0x1_0200) & 0xffff,
        1 << 2,
        "pending in its LR"
    );
    guest_acknowledges(n);
    assert_eq!(read(m, GICR0 + 0x1_0200) & 0xffff, 0);
    assert_eq!(read(m, GICR0 + 0x1_0300) & 0xffff, 1 << 2, "active");
    // vCPU 1's redistributor: its copies are not on this CPU.
    assert_eq!(read(m, GICR0 + 0x2_0000 + 0x1_0300) & 0xffff, 0);
}

#[test]
fn the_counters_give_the_physical_state_of_each_owned_spi() {
    // What Ctrl-] c prints after the console counters: a level line held
    // high by its device reads pending, whether or not the guest has the
    // interrupt active (docs/pci.md, "Known problem").
    let (w, m) = guest(true);
    let g = &m.guests[0];
    // The UART and the PCIe host bridge's four INTx lines are the guest's.
    let rest = " 35:- 36:- 37:- 38:-";
    assert_eq!(m.spi_states(g), format!(" 33:-{rest}"));
    w.gic.set_state(UART, 0, true, false);
    assert_eq!(m.spi_states(g), format!(" 33:p{rest}"));
    w.gic.set_state(UART, 0, true, true);
    assert_eq!(m.spi_states(g), format!(" 33:pa{rest}"));
    w.gic.set_state(UART, 0, false, true);
    assert_eq!(m.spi_states(g), format!(" 33:a{rest}"));
    // Reading is all it does.
    let ops = w.gic.take();
    assert!(ops.iter().all(|op| op.0.ends_with('?')), "{ops:?}");
}
