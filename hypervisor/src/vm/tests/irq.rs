//! Interrupt delivery: hardware interrupts the guest owns, kicks, virtual
//! SPIs of emulated devices, SGIs, and list-register overflow.

use super::*;
use crate::arch::exit::{Action, Exit};
use crate::arch::fake::Op;
use crate::arch::frame::TrapFrame;
use crate::gic::KICK_SGI;
use crate::gic::maintenance::DEFAULT_MAINTENANCE_PPI as MAINTENANCE_PPI;
use core::sync::atomic::Ordering;

/// A guest on CPU 0 with its UART SPI (33) enabled and group 1 on.
fn running_guest() -> (World, &'static Machine) {
    let w = World::new();
    let g = w.guest(0, config("a", &[0, 1], true));
    {
        let mut vgic = g.vgic.lock();
        vgic.dist_write(&w.regs(), 0x0, 4, 0b10); // EnableGrp1
        vgic.dist_write(&w.regs(), 0x104, 4, 1 << 1); // SPI 33 (the UART's)
        vgic.redist_write(&w.regs(), 0, 0x1_0100, 4, 0xffff); // SGIs enabled on vCPU 0
    }
    let m = w.machine(vec![g]);
    fake::take_ops();
    (w, m)
}

fn lr_writes(ops: &[Op]) -> Vec<(usize, u64)> {
    ops.iter()
        .filter_map(|o| match o {
            Op::WriteLr(n, v) => Some((*n, *v)),
            _ => None,
        })
        .collect()
}

#[test]
fn an_owned_hardware_interrupt_becomes_a_linked_list_register() {
    let (_w, m) = running_guest();
    fake::with(|s| s.pending_irqs.extend([33, KICK_SGI, 1023]));
    let a = m.handle_exit(&TrapFrame::default(), Exit::Irq);
    assert_eq!(a, Some(Action::Resume));
    let ops = fake::take_ops();
    assert!(ops.contains(&Op::PriorityDrop(33)));
    assert!(
        !ops.contains(&Op::Deactivate(33)),
        "the guest deactivates it"
    );
    assert!(ops.contains(&Op::Deactivate(KICK_SGI)));
    let lrs = lr_writes(&ops);
    assert_eq!(lrs.len(), 1);
    let lr = lrs[0].1;
    assert_eq!(lr as u32, 33);
    assert_ne!(lr & (1 << 61), 0, "HW bit");
    assert_eq!((lr >> 32) & 0x3ff, 33, "physical INTID");
    assert_eq!(lr >> 62, 0b01, "pending");
}

#[test]
fn with_virq_via_hcr_a_pending_list_register_also_raises_hcr_vi_until_taken() {
    let (_w, m) = running_guest();
    const NPIE: u64 = 1 << 3;
    // Off (the default): the list register alone signals the guest.
    fake::with(|s| s.pending_irqs.push_back(33));
    m.handle_exit(&TrapFrame::default(), Exit::Irq);
    assert!(!fake::with(|s| s.virq_line));
    assert_eq!(fake::with(|s| s.ich_hcr) & NPIE, 0);
    fake::with(|s| s.lrs.iter_mut().for_each(|lr| *lr = 0));
    fake::take_ops();

    // On (`partita.virq=hcr`): VI follows the pending list register, and
    // NPIE asks for the maintenance interrupt once nothing is pending.
    crate::vm::irq::set_virq_via_hcr(true);
    fake::with(|s| s.pending_irqs.push_back(33));
    m.handle_exit(&TrapFrame::default(), Exit::Irq);
    assert!(fake::with(|s| s.virq_line), "VI raised");
    assert_ne!(fake::with(|s| s.ich_hcr) & NPIE, 0, "NPIE requested");
    // The guest acknowledges it: the list register is active, not pending;
    // the maintenance interrupt comes, and VI and NPIE are withdrawn.
    fake::with(|s| {
        for lr in s.lrs.iter_mut().filter(|lr| **lr != 0) {
            *lr = *lr & !(0b11 << 62) | 0b10 << 62;
        }
        s.pending_irqs.push_back(MAINTENANCE_PPI);
    });
    m.handle_exit(&TrapFrame::default(), Exit::Irq);
    let ops = fake::take_ops();
    assert!(ops.contains(&Op::Deactivate(MAINTENANCE_PPI)));
    assert!(!fake::with(|s| s.virq_line), "VI withdrawn");
    assert_eq!(fake::with(|s| s.ich_hcr) & NPIE, 0, "NPIE withdrawn");
    crate::vm::irq::set_virq_via_hcr(false);
}

#[test]
fn an_interrupt_the_guest_does_not_own_is_deactivated() {
    let (_w, m) = running_guest();
    fake::with(|s| s.pending_irqs.extend([40, MAINTENANCE_PPI]));
    m.handle_exit(&TrapFrame::default(), Exit::Irq);
    let ops = fake::take_ops();
    assert!(ops.contains(&Op::Deactivate(40)));
    assert!(ops.contains(&Op::Deactivate(MAINTENANCE_PPI)));
    assert!(lr_writes(&ops).is_empty());
}

#[test]
fn sgis_beyond_the_list_registers_wait_for_the_maintenance_interrupt() {
    let (_w, m) = running_guest();
    let g = &m.guests()[0];
    // Six SGIs pending, four list registers.
    g.vcpus[0].sgis.store(0b11_1111, Ordering::Relaxed);
    m.handle_exit(&TrapFrame::default(), Exit::Wfx);
    let ops = fake::take_ops();
    assert_eq!(lr_writes(&ops).len(), 4);
    assert!(
        ops.contains(&Op::SetIchHcr(0b11)),
        "underflow interrupt requested (En | UIE)"
    );
    // The guest takes them all: the list registers empty.
    fake::with(|s| s.lrs.iter_mut().for_each(|lr| *lr = 0));
    fake::with(|s| s.pending_irqs.push_back(MAINTENANCE_PPI));
    m.handle_exit(&TrapFrame::default(), Exit::Irq);
    let ops = fake::take_ops();
    assert_eq!(lr_writes(&ops).len(), 2, "the other two");
    assert!(
        ops.contains(&Op::SetIchHcr(0b01)),
        "no more underflow interrupts"
    );
}

#[test]
fn a_disabled_sgi_stays_pending() {
    let (_w, m) = running_guest();
    let g = &m.guests()[0];
    g.vgic
        .lock()
        .redist_write(&_w.regs(), 0, 0x1_0180, 4, 1 << 2); // disable SGI 2
    g.vcpus[0].sgis.store(1 << 2, Ordering::Relaxed);
    m.handle_exit(&TrapFrame::default(), Exit::Wfx);
    assert!(lr_writes(&fake::take_ops()).is_empty());
    assert_eq!(g.vcpus[0].sgis.load(Ordering::Relaxed), 1 << 2);
}

#[test]
fn a_device_spi_is_delivered_once_the_guest_enables_it() {
    let (w, m) = running_guest();
    let g = &m.guests()[0];
    let intid = VIOMMU_SPI + 32;
    g.vgic.lock().dist_write(
        &w.regs(),
        0x180 + 4 * (intid as u64 / 32),
        4,
        1 << (intid % 32),
    );
    m.raise_virtual_spi(g, intid);
    m.handle_exit(&TrapFrame::default(), Exit::Wfx);
    assert!(
        lr_writes(&fake::take_ops()).is_empty(),
        "disabled: kept pending"
    );
    g.vgic.lock().dist_write(
        &w.regs(),
        0x100 + 4 * (intid as u64 / 32),
        4,
        1 << (intid % 32),
    );
    m.handle_exit(&TrapFrame::default(), Exit::Wfx);
    let lrs = lr_writes(&fake::take_ops());
    assert_eq!(lrs.len(), 1);
    assert_eq!(lrs[0].1 as u32, intid);
    assert_eq!(lrs[0].1 & (1 << 61), 0, "not hardware-linked");
}

#[test]
fn a_device_spi_for_another_cpu_kicks_it() {
    let (w, m) = running_guest();
    let g = &m.guests()[0];
    let intid = VIOMMU_SPI + 32;
    // Route it to vCPU 1 (physical CPU 1).
    g.vgic
        .lock()
        .dist_write(&w.regs(), 0x6000 + 8 * intid as u64, 8, 1);
    m.raise_virtual_spi(g, intid);
    assert!(fake::take_ops().contains(&Op::SendSgi {
        sgi: KICK_SGI,
        mpidr: 0x101
    }));
    assert!(g.vcpus[1].spis_pending.load(Ordering::Relaxed));
}
