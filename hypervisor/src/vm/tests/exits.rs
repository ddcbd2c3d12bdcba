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

/// Differential: the trap's path for a device access ([`Machine::run_exit`]:
/// the dedicated path of the guest's virtio-iommu, its concrete device
/// called without the table's dynamic call, and a claimed access applied
/// before the return is prepared) against the general dispatch through the
/// device table, answered and then applied, on two identical machines fed
/// the same exits, with SGIs raised now and then (the general preparation
/// of the return). Each exit is decoded from a raw syndrome as the
/// trap entry decodes it, hostile ones included: ISV = 0, S1PTW, every
/// access size, sign extension, 32- and 64-bit registers, SRT = 31, the
/// registers x19-x29, addresses just outside the window and in the
/// configuration space, unaligned offsets. A scripted driver brings the
/// device up (status, features, queue 0 in guest RAM, DRIVER_OK) between
/// random accesses, with queue notifies, so that the transport's state
/// changes under both. Every answer, the frame it leaves once applied,
/// the fake CPU's and the recording GIC's and SMMU's logs, and every
/// register of both devices must agree.
#[test]
fn the_viommu_dedicated_path_answers_as_the_device_table() {
    use crate::arch::Cpu;
    use crate::arch::exit::{apply, decode_sync};
    use crate::devices::MmioDevice;
    use virtio_defs::mmio::offset as o;
    let wa = World::new();
    let ma = wa.machine(vec![wa.guest(0, config("a", &[0], true))]);
    let wb = World::new();
    let mb = wb.machine(vec![wb.guest(0, config("a", &[0], true))]);
    let mut rng = crate::test_rng::Rng(0x0d1f_f7a9_0001);
    // What building the guests logged.
    let _ = (fake::take_ops(), wa.gic.take(), wb.gic.take());
    let _ = (wa.dma.take(), wb.dma.take());
    // The driver's script: (offset, value) stores of 4 bytes.
    let q = RAM_BASE + 0x10_0000;
    let script: &[(u64, u64)] = &[
        (o::STATUS, 0),
        (o::STATUS, 1),
        (o::STATUS, 3),
        (o::DRIVER_FEATURES_SEL, 1),
        (o::DRIVER_FEATURES, 1),
        (o::DRIVER_FEATURES_SEL, 0),
        (o::DRIVER_FEATURES, 1 << 5 | 1 << 1),
        (o::STATUS, 11),
        (o::QUEUE_SEL, 0),
        (o::QUEUE_NUM, 8),
        (o::QUEUE_DESC_LOW, q),
        (o::QUEUE_DESC_HIGH, 0),
        (o::QUEUE_DRIVER_LOW, q + 0x1000),
        (o::QUEUE_DRIVER_HIGH, 0),
        (o::QUEUE_DEVICE_LOW, q + 0x2000),
        (o::QUEUE_DEVICE_HIGH, 0),
        (o::QUEUE_READY, 1),
        (o::STATUS, 15),
    ];
    let offsets = [
        o::MAGIC_VALUE,
        o::VERSION,
        o::DEVICE_ID,
        o::DEVICE_FEATURES,
        o::QUEUE_NUM_MAX,
        o::QUEUE_READY,
        o::QUEUE_NOTIFY,
        o::INTERRUPT_STATUS,
        o::INTERRUPT_ACK,
        o::STATUS,
        o::CONFIG_GENERATION,
        o::QUEUE_RESET,
        o::SHM_LEN_LOW, // reads all ones: the sign extension shows
        o::SHM_BASE_HIGH,
        0x100,
        0x104,
        0x108,
        0x1fc,
        0x1ff,
        0x200,
        0xffc,
        0x1000,
        0x52,
        0x4e,
    ];
    let mut compared = 0;
    // Queue notifies while the device ran (DRIVER_OK, not failed).
    let mut running_notifies = 0;
    let mut running = false;
    for step in 0..40_000 {
        let scripted = step % 50 < script.len();
        let (off, value) = if scripted {
            script[step % 50]
        } else {
            let off = if rng.chance(30) {
                o::QUEUE_NOTIFY
            } else if rng.chance(10) {
                rng.below(0x220)
            } else {
                rng.pick(&offsets)
            };
            let any = rng.next();
            (off, rng.pick(&[0, 1, 2, any]))
        };
        // Now and then the same hostile bytes in both guests' rings
        // (descriptors, available and used rings of queue 0).
        if rng.chance(5) {
            use crate::virtio::memory::GuestMemory;
            let at = q + rng.pick(&[0, 0x1000, 0x2000]) + rng.below(64);
            let bytes = rng.next().to_le_bytes();
            let n = 1 + rng.index(8);
            for g in [&ma.guests()[0], &mb.guests()[0]] {
                g.ram.write(at, &bytes[..n]).unwrap();
            }
        }
        // Below the window, by a little.
        let ipa = if !scripted && rng.chance(3) {
            VIOMMU_BASE - rng.pick(&[1, 4, 8])
        } else {
            VIOMMU_BASE + off
        };
        let write = scripted || rng.chance(50);
        let sas = if scripted { 2 } else { rng.below(4) };
        let srt = if scripted {
            rng.pick(&[0, 3, 19, 29])
        } else {
            rng.pick(&[0, 1, 7, 18, 19, 25, 29, 30, 31])
        };
        let mut esr = 0x24 << 26
            | 1 << 25
            | 1 << 24
            | sas << 22
            | u64::from(rng.chance(20)) << 21
            | srt << 16
            | u64::from(scripted || rng.chance(70)) << 15
            | u64::from(write) << 6
            | 0x07; // a level-3 translation fault
        if !scripted {
            match rng.below(12) {
                0 => esr &= !(1 << 24), // ISV = 0
                1 => esr |= 1 << 7,     // S1PTW
                2 => esr &= !(1 << 25), // a 16-bit instruction
                _ => {}
            }
        }
        let far = 0xffff_8000_0000_0000 | (ipa & 0xfff);
        let hpfar = (ipa >> 12) << 4;
        let mut frame = TrapFrame {
            elr: 0xffff_8000_0010_0000 + 4 * step as u64,
            spsr: 0x3c5,
            esr,
            far,
            ..Default::default()
        };
        for x in frame.x.iter_mut() {
            *x = rng.next();
        }
        if srt < 31 {
            frame.x[srt as usize] = value;
        }
        let exit = decode_sync(esr, far, || hpfar);
        let (mut fa, mut fb) = (frame.clone(), frame);
        // Now and then an SGI raised for the vCPU on both: the return
        // takes the general preparation (list registers filled).
        if rng.chance(3) {
            let sgi = 1 << rng.below(16);
            for m in [ma, mb] {
                m.guests()[0].vcpus[0]
                    .sgis()
                    .fetch_or(sgi, core::sync::atomic::Ordering::AcqRel);
            }
        }
        // The trap's own entry (dedicated path, a claimed access applied
        // before the return is prepared) against the table's dispatch,
        // answered, then applied.
        let a = ma.run_exit(&mut fa, |_| exit);
        let ops_a = fake::take_ops();
        let b = mb
            .handle_exit_general(&fb, exit)
            .map(|action| (apply::<Cpu>(&mut fb, action), action.writes_callee_saved()));
        let ops_b = fake::take_ops();
        assert_eq!(a, b, "step {step}: {exit:?}");
        assert_eq!(ops_a, ops_b, "step {step}: CPU operations");
        assert_eq!(wa.gic.take(), wb.gic.take(), "step {step}: GIC calls");
        assert_eq!(wa.dma.take(), wb.dma.take(), "step {step}: SMMU calls");
        assert_eq!(a.map(|(resume, _)| resume), Some(true), "step {step}");
        assert_eq!(fa.x, fb.x, "step {step}: registers");
        assert_eq!(
            (fa.elr, fa.spsr, fa.esr, fa.far),
            (fb.elr, fb.spsr, fb.esr, fb.far),
            "step {step}"
        );
        if matches!(exit, Exit::Mmio(_)) && ipa >= VIOMMU_BASE {
            compared += 1;
            if running && write && ipa == VIOMMU_BASE + o::QUEUE_NOTIFY {
                running_notifies += 1;
            }
        }
        // Every register of both devices (read without a trap).
        let (ga, gb) = (&ma.guests()[0], &mb.guests()[0]);
        let (da, db) = (ga.viommu.as_ref().unwrap(), gb.viommu.as_ref().unwrap());
        for r in (0..0x100).step_by(4).chain([0x100, 0x104, 0x108]) {
            let ctx_a = crate::devices::AccessCtx {
                vcpu: 0,
                mem: &ga.ram,
                gic: wa.port,
            };
            let ctx_b = crate::devices::AccessCtx {
                vcpu: 0,
                mem: &gb.ram,
                gic: wb.port,
            };
            let value = da.read(&ctx_a, r, 4);
            assert_eq!(value, db.read(&ctx_b, r, 4), "step {step}: register {r:#x}");
            if r == o::STATUS {
                running = value.is_some_and(|s| s & 0xc4 == 4);
            }
        }
    }
    assert!(compared > 20_000, "{compared} accesses to the window");
    assert!(
        running_notifies > 1_000,
        "{running_notifies} notifies of a running device"
    );
}
