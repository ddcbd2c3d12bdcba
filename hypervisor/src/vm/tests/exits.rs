//! Exits handled by the machine: MMIO through the device table, calls,
//! system registers, and what cannot be emulated.

use super::*;
use crate::arch::exit::{AbortError, Action, Exit, MmioAccess, SysReg, SysRegAccess};
use crate::arch::fake::Op;
use crate::arch::frame::TrapFrame;

const GICD: u64 = 0x0800_0000;

fn load(ipa: u64, width: u8, reg: u8) -> Exit {
    Exit::Mmio(MmioAccess::new(ipa, width, false, reg, false, true))
}

fn store(ipa: u64, width: u8, reg: u8) -> Exit {
    Exit::Mmio(MmioAccess::new(ipa, width, true, reg, false, true))
}

fn one_guest(cpus: &[u32]) -> (World, &'static Machine) {
    let w = World::new();
    let g = w.guest(0, config("a", cpus, true));
    let m = w.machine(vec![g]);
    (w, m)
}

#[test]
fn gic_registers_are_read_and_written_through_the_table() {
    let (w, m) = one_guest(&[0, 1]);
    let frame = TrapFrame::default();
    // GICD_TYPER: ITLinesNumber for 256 SPIs, CPUNumber unused with ARE.
    let a = m.handle_exit(&frame, load(GICD + 4, 4, 5)).unwrap();
    assert!(matches!(a, Action::Load { reg: 5, value } if value & 0x1f == 8));
    // Enabling the UART's SPI (33, owned) reaches the physical GIC.
    let mut frame = TrapFrame::default();
    frame.x[2] = 1 << 1;
    let a = m.handle_exit(&frame, store(GICD + 0x104, 4, 2)).unwrap();
    assert_eq!(a, Action::Advance);
    assert!(w.gic.take().contains(&("enable", 33, 0, true)));
}

#[test]
fn an_unclaimed_address_gets_an_abort() {
    let (_w, m) = one_guest(&[0]);
    let frame = TrapFrame {
        far: 0xffff_0000_1234,
        ..Default::default()
    };
    assert_eq!(
        m.handle_exit(&frame, store(0x0c00_0000, 4, 1)),
        Some(Action::InjectDataAbort {
            far: 0xffff_0000_1234,
            write: true
        })
    );
    // Past the last vCPU's redistributor frame: nobody's.
    assert_eq!(
        m.handle_exit(&frame, load(0x080a_0000 + 0x2_0000, 4, 1)),
        Some(Action::InjectDataAbort {
            far: 0xffff_0000_1234,
            write: false
        })
    );
    let bad = Exit::BadDataAbort {
        why: AbortError::NoSyndrome,
        far: 7,
        write: false,
    };
    assert_eq!(
        m.handle_exit(&frame, bad),
        Some(Action::InjectDataAbort {
            far: 7,
            write: false
        })
    );
}

#[test]
fn calls_return_psci_results() {
    let (_w, m) = one_guest(&[0]);
    let mut frame = TrapFrame::default();
    frame.x[0] = 0x8400_0000; // PSCI_VERSION
    assert_eq!(
        m.handle_exit(&frame, Exit::Hvc { imm: 0 }),
        Some(Action::Return {
            x0: 0x1_0001,
            advance: false
        })
    );
    assert_eq!(
        m.handle_exit(&frame, Exit::Smc { imm: 0 }),
        Some(Action::Return {
            x0: 0x1_0001,
            advance: true
        }),
        "a trapped SMC skips the instruction"
    );
    assert_eq!(
        m.handle_exit(&frame, Exit::Hvc { imm: 1 }),
        Some(Action::Return {
            x0: u64::MAX, // NOT_SUPPORTED
            advance: false
        })
    );
}

#[test]
fn sgis_reach_their_target_vcpus() {
    let (_w, m) = one_guest(&[0, 2]);
    fake::take_ops();
    let mut frame = TrapFrame::default();
    // SGI 3 to vCPU 1 (target list bit 1).
    frame.x[4] = 3 << 24 | 0b10;
    let sgi1r = Exit::SysReg(SysRegAccess {
        reg: SysReg::ICC_SGI1R_EL1,
        rt: 4,
        read: false,
    });
    assert_eq!(m.handle_exit(&frame, sgi1r), Some(Action::Advance));
    let g = &m.guests()[0];
    assert_eq!(
        g.vcpus[1]
            .sgis()
            .load(core::sync::atomic::Ordering::Relaxed),
        1 << 3
    );
    assert_eq!(
        g.vcpus[0]
            .sgis()
            .load(core::sync::atomic::Ordering::Relaxed),
        0
    );
    assert!(
        fake::take_ops().contains(&Op::SendSgi {
            sgi: crate::gic::KICK_SGI,
            mpidr: 0x102
        }),
        "vCPU 1's CPU (2) is kicked"
    );
    // IRM: all but self.
    frame.x[4] = 5 << 24 | 1 << 40;
    m.handle_exit(&frame, sgi1r);
    assert_eq!(
        g.vcpus[1]
            .sgis()
            .load(core::sync::atomic::Ordering::Relaxed),
        1 << 3 | 1 << 5
    );
    assert_eq!(
        g.vcpus[0]
            .sgis()
            .load(core::sync::atomic::Ordering::Relaxed),
        0
    );
    // Affinity 1 set: no such vCPU, nothing raised.
    frame.x[4] = 6 << 24 | 1 << 16 | 1;
    m.handle_exit(&frame, sgi1r);
    assert_eq!(
        g.vcpus[0]
            .sgis()
            .load(core::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[test]
fn actlr_reads_as_zero_and_ignores_writes() {
    let (_w, m) = one_guest(&[0]);
    let frame = TrapFrame::default();
    let access = |read| {
        Exit::SysReg(SysRegAccess {
            reg: SysReg::ACTLR_EL1,
            rt: 7,
            read,
        })
    };
    assert_eq!(
        m.handle_exit(&frame, access(true)),
        Some(Action::Load { reg: 7, value: 0 })
    );
    assert_eq!(m.handle_exit(&frame, access(false)), Some(Action::Advance));
}

#[test]
fn other_traps_are_undefined() {
    let (_w, m) = one_guest(&[0]);
    let frame = TrapFrame::default();
    let read_sgi = Exit::SysReg(SysRegAccess {
        reg: SysReg::ICC_SGI1R_EL1,
        rt: 0,
        read: true,
    });
    assert_eq!(
        m.handle_exit(&frame, read_sgi),
        Some(Action::InjectUndefined)
    );
    assert_eq!(
        m.handle_exit(&frame, Exit::Unexpected { ec: 0x07 }),
        Some(Action::InjectUndefined)
    );
    assert_eq!(
        m.handle_exit(&frame, Exit::SError),
        Some(Action::InjectSError)
    );
    assert_eq!(m.handle_exit(&frame, Exit::Fiq), Some(Action::Resume));
}

#[test]
fn an_instruction_fetch_outside_ram_gets_a_prefetch_abort() {
    // Issue 18: a branch to an address the guest's stage 2 does not map
    // was answered with an undefined instruction; the architecture (and
    // QEMU, and KVM) give a prefetch abort with FAR = the address.
    let (_w, m) = one_guest(&[0]);
    let frame = TrapFrame {
        elr: 0xffff_f000,
        ..Default::default()
    };
    assert_eq!(
        m.handle_exit(
            &frame,
            Exit::InstructionAbort {
                far: 0xffff_f000,
                ipa: 0xffff_f000
            }
        ),
        Some(Action::InjectPrefetchAbort { far: 0xffff_f000 })
    );
}

#[test]
fn a_cpu_without_a_vcpu_has_no_guest_exit() {
    let (_w, m) = one_guest(&[0]);
    on_cpu(3);
    assert_eq!(m.handle_exit(&TrapFrame::default(), Exit::Wfx), None);
}

#[test]
fn a_guest_cannot_flood_the_console() {
    use crate::smmu::tests::logcapture::capture;
    use crate::vm::ratelimit::{BURST, PER_SECOND};
    let (_w, m) = one_guest(&[0]);
    fake::with(|s| s.tick_us = 0);
    let frame = TrapFrame::default();
    let (_, lines) = capture(|| {
        for _ in 0..1000 {
            m.handle_exit(&frame, store(0x0c00_0000, 4, 1));
        }
    });
    assert_eq!(lines.len(), BURST as usize, "{lines:?}");
    // A second later the guest may speak again, and is told how many
    // lines it lost.
    fake::with(|s| s.now_us += 1_000_000);
    let (_, lines) = capture(|| {
        for _ in 0..1000 {
            m.handle_exit(&frame, store(0x0c00_0000, 4, 1));
        }
    });
    assert_eq!(lines.len(), PER_SECOND as usize + 1, "{lines:?}");
    assert!(
        lines[0].contains("980 more message(s) suppressed"),
        "{}",
        lines[0]
    );
}
