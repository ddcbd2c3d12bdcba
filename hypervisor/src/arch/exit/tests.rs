//! Exit decoding and action application, against the fake CPU.

use super::*;
use crate::arch::fake::{self, Fake, Op};

fn esr(isv: bool, sas: u64, sse: bool, srt: u64, sf: bool, wnr: bool) -> u64 {
    (0x24 << 26)
        | (1 << 25)
        | (isv as u64) << 24
        | sas << 22
        | (sse as u64) << 21
        | srt << 16
        | (sf as u64) << 15
        | (wnr as u64) << 6
}

const SYNC: VectorKind = VectorKind(8);

fn mmio(esr: u64, hpfar: u64, far: u64) -> MmioAccess {
    match decode(SYNC, esr, far, || hpfar) {
        Exit::Mmio(a) => a,
        other => panic!("not an MMIO exit: {other:?}"),
    }
}

#[test]
fn decodes_a_32bit_store() {
    let a = mmio(
        esr(true, 2, false, 3, false, true),
        0x8_0000,
        0xffff_0000_0000_0104,
    );
    assert_eq!(a.ipa, 0x800_0104);
    assert_eq!(
        (a.width(), a.write(), a.reg(), a.sixty_four()),
        (4, true, 3, false)
    );
    assert_eq!(a.store_value(0x1234_5678_9abc_def0), 0x9abc_def0);
}

#[test]
fn sign_extends_byte_loads() {
    let a = mmio(esr(true, 0, true, 1, true, false), 0x90, 0x7);
    assert_eq!(a.ipa, 0x9007);
    assert_eq!(a.load_value(0x80), 0xffff_ffff_ffff_ff80);
    let w = MmioAccess::new(a.ipa, 1, false, 1, true, false);
    assert_eq!(w.load_value(0x80), 0xffff_ff80);
    let u = MmioAccess::new(a.ipa, 1, false, 1, false, true);
    assert_eq!(u.load_value(0x1ff), 0xff);
}

#[test]
fn refuses_what_it_cannot_emulate() {
    let no_isv = decode(SYNC, esr(false, 2, false, 0, false, true), 0x1234, || {
        panic!("HPFAR read for an abort without syndrome")
    });
    assert_eq!(
        no_isv,
        Exit::BadDataAbort {
            why: AbortError::NoSyndrome,
            far: 0x1234,
            write: true
        }
    );
    let walk = decode(SYNC, esr(true, 2, false, 0, false, false) | 1 << 7, 0, || 0);
    assert!(matches!(
        walk,
        Exit::BadDataAbort {
            why: AbortError::StageOneWalk,
            ..
        }
    ));
}

#[test]
fn decodes_calls_sysregs_and_the_rest() {
    assert_eq!(
        decode(SYNC, 0x16 << 26 | 0x1234, 0, || 0),
        Exit::Hvc { imm: 0x1234 }
    );
    assert_eq!(decode(SYNC, 0x17 << 26, 0, || 0), Exit::Smc { imm: 0 });
    // MSR ICC_SGI1R_EL1, x5
    let iss = 3 << 20 | 5 << 17 | 12 << 10 | 5 << 5 | 11 << 1;
    assert_eq!(
        decode(SYNC, 0x18 << 26 | iss, 0, || 0),
        Exit::SysReg(SysRegAccess {
            reg: SysReg::ICC_SGI1R_EL1,
            rt: 5,
            read: false
        })
    );
    assert_eq!(decode(SYNC, 0x01 << 26, 0, || 0), Exit::Wfx);
    assert_eq!(
        decode(SYNC, 0x07 << 26, 0, || 0),
        Exit::Unexpected { ec: 0x07 }
    );
    assert_eq!(decode(VectorKind(9), 0, 0, || 0), Exit::Irq);
    assert_eq!(decode(VectorKind(10), 0, 0, || 0), Exit::Fiq);
    assert_eq!(decode(VectorKind(11), 0, 0, || 0), Exit::SError);
}

#[test]
fn decodes_an_instruction_abort() {
    // A fetch at 0xffff_f000 (a BLR into nowhere): EC 0x20, IL, IFSC
    // translation fault level 1; HPFAR holds the page.
    let esr = 0x20 << 26 | 1 << 25 | 0x05;
    assert_eq!(
        decode(SYNC, esr, 0xffff_f000, || 0xffff_f000 >> 8),
        Exit::InstructionAbort {
            far: 0xffff_f000,
            ipa: 0xffff_f000
        }
    );
}

#[test]
fn applies_actions_to_the_frame() {
    fake::reset();
    let mut f = TrapFrame {
        elr: 0x1000,
        esr: 1 << 25, // IL: a 32-bit instruction
        ..Default::default()
    };
    assert!(apply::<Fake>(&mut f, Action::Advance));
    assert_eq!(f.elr, 0x1004);
    assert!(apply::<Fake>(&mut f, Action::Load { reg: 3, value: 7 }));
    assert_eq!((f.x[3], f.elr), (7, 0x1008));
    assert!(apply::<Fake>(&mut f, Action::Load { reg: 31, value: 9 }));
    assert_eq!(f.elr, 0x100c, "xzr loads are discarded");
    assert!(apply::<Fake>(
        &mut f,
        Action::Return {
            x0: 5,
            advance: false
        }
    ));
    assert_eq!((f.x[0], f.elr), (5, 0x100c));
    assert!(apply::<Fake>(
        &mut f,
        Action::Return {
            x0: 6,
            advance: true
        }
    ));
    assert_eq!((f.x[0], f.elr), (6, 0x1010));
    assert!(!apply::<Fake>(&mut f, Action::Stop));
    // ESR.IL clear: a 16-bit instruction is skipped by 2.
    f.esr = 0;
    assert!(apply::<Fake>(&mut f, Action::Advance));
    assert_eq!(f.elr, 0x1012);
}

#[test]
fn injects_aborts_by_the_guest_el() {
    fake::reset();
    fake::with(|s| s.vbar_el1 = 0x8000);
    let mut f = TrapFrame {
        elr: 0x1000,
        spsr: 0x3c5, // EL1h
        ..Default::default()
    };
    apply::<Fake>(
        &mut f,
        Action::InjectDataAbort {
            far: 0xdead,
            write: true,
        },
    );
    assert_eq!(
        fake::take_ops(),
        [Op::InjectSync {
            esr: 0x25 << 26 | 1 << 25 | 1 << 6 | 0x10,
            far: 0xdead
        }]
    );
    let mut f = TrapFrame {
        spsr: 0x0, // EL0t
        ..Default::default()
    };
    apply::<Fake>(
        &mut f,
        Action::InjectDataAbort {
            far: 1,
            write: false,
        },
    );
    apply::<Fake>(&mut f, Action::InjectUndefined);
    apply::<Fake>(&mut f, Action::InjectSError);
    let mut f = TrapFrame {
        spsr: 0x0, // EL0t
        ..Default::default()
    };
    apply::<Fake>(&mut f, Action::InjectPrefetchAbort { far: 2 });
    assert_eq!(
        fake::take_ops(),
        [
            Op::InjectSync {
                esr: 0x24 << 26 | 1 << 25 | 0x10,
                far: 1
            },
            Op::InjectSync {
                esr: 1 << 25,
                far: 0
            },
            Op::InjectSError,
            // From EL0: instruction abort from a lower EL.
            Op::InjectSync {
                esr: 0x20 << 26 | 1 << 25 | 0x10,
                far: 2
            },
        ]
    );
}

#[test]
fn injects_prefetch_aborts_as_qemu_and_kvm_do() {
    // From the guest's EL1: EC 0x21 (same EL), IL, IFSC 0x10 (synchronous
    // external abort), FAR the fetch address: what bare QEMU reports for a
    // fetch from an address nothing answers at (ESR 0x86000010), and what
    // KVM's inject_abt64 builds.
    fake::reset();
    let mut f = TrapFrame {
        elr: 0xffff_f000,
        spsr: 0x3c5, // EL1h
        ..Default::default()
    };
    assert!(apply::<Fake>(
        &mut f,
        Action::InjectPrefetchAbort { far: 0xffff_f000 }
    ));
    assert_eq!(
        fake::take_ops(),
        [Op::InjectSync {
            esr: 0x8600_0010,
            far: 0xffff_f000
        }]
    );
}

/// The access fields as the syndrome holds them, read field by field: the
/// reference for the accessors, which read them out of the kept ISS.
fn reference_fields(esr: u64) -> (u8, bool, u8, bool, bool) {
    (
        1 << ((esr >> 22) & 3),
        esr & (1 << 6) != 0,
        ((esr >> 16) & 31) as u8,
        esr & (1 << 21) != 0,
        esr & (1 << 15) != 0,
    )
}

/// The value a load leaves in its register, computed the plain way.
fn reference_load(esr: u64, raw: u64) -> u64 {
    let (width, _, _, sse, sf) = reference_fields(esr);
    let bits = 8 * u32::from(width);
    let low = if bits == 64 {
        raw
    } else {
        raw & ((1 << bits) - 1)
    };
    let v = if sse && bits < 64 && low & (1 << (bits - 1)) != 0 {
        low | !((1 << bits) - 1)
    } else {
        low
    };
    if sf { v } else { v & 0xffff_ffff }
}

/// Every data-abort syndrome (random ISS bits, hostile ones included: any
/// SAS, SRT 31, SSE on 64-bit loads, the reserved and FnV bits set) decodes
/// to an access whose fields and load and store values are those of the
/// syndrome read field by field; `MmioAccess::new` makes the same access.
#[test]
fn accesses_read_their_fields_from_the_syndrome() {
    let mut rng = crate::test_rng::Rng(0xe5_2024);
    for _ in 0..20_000 {
        let iss = rng.next() & 0x1ff_ffff & !(1 << 7) | 1 << 24; // ISV, not S1PTW
        let esr = 0x24 << 26 | 1 << 25 | iss;
        let far = rng.next();
        let hpfar = rng.next();
        let a = mmio(esr, hpfar, far);
        let (width, write, reg, sse, sf) = reference_fields(esr);
        assert_eq!(
            (
                a.width(),
                a.write(),
                a.reg(),
                a.sign_extend(),
                a.sixty_four()
            ),
            (width, write, reg, sse, sf),
            "ESR {esr:#x}"
        );
        assert_eq!(
            a.ipa,
            ((hpfar >> 4) << 12) & 0x000f_ffff_ffff_f000 | (far & 0xfff)
        );
        let raw = rng.next();
        assert_eq!(
            a.load_value(raw),
            reference_load(esr, raw),
            "ESR {esr:#x}, {raw:#x}"
        );
        let stored = if width == 8 {
            raw
        } else {
            raw & ((1 << (8 * u32::from(width))) - 1)
        };
        assert_eq!(a.store_value(raw), stored);
        let same = MmioAccess::new(a.ipa, width, write, reg, sse, sf);
        assert_eq!(
            (
                same.width(),
                same.write(),
                same.reg(),
                same.sign_extend(),
                same.sixty_four()
            ),
            (width, write, reg, sse, sf)
        );
        assert_eq!(same.load_value(raw), a.load_value(raw));
        // The synchronous vector's decode is the general one's.
        assert_eq!(decode_sync(esr, far, || hpfar), Exit::Mmio(a));
    }
}

/// Differential: the masked compare that recognises an emulated device
/// access gives, for any syndrome (every exception class, the data abort's
/// with ISV, S1PTW and every other ISS bit drawn at random), exactly the
/// exit of the class-by-class decode.
#[test]
fn the_device_access_compare_decodes_as_the_general_path() {
    let mut rng = crate::test_rng::Rng(0xdab7_0001);
    let mut mmio_exits = 0;
    for _ in 0..50_000 {
        let ec = if rng.chance(70) {
            0x24
        } else {
            rng.pick(&[0x00, 0x01, 0x16, 0x17, 0x18, 0x20, 0x25, 0x2f, 0x3f])
        };
        let mut esr = ec << 26 | rng.next() & 0x3ff_ffff | rng.next() & !0xffff_ffff;
        for bit in [7, 24] {
            if rng.chance(50) {
                esr ^= 1 << bit;
            }
        }
        let (far, hpfar) = (rng.next(), rng.next());
        let fast = decode_sync(esr, far, || hpfar);
        assert_eq!(fast, decode_general(esr, far, || hpfar), "ESR {esr:#x}");
        mmio_exits += usize::from(matches!(fast, Exit::Mmio(_)));
    }
    assert!(mmio_exits > 5_000, "device accesses drawn: {mmio_exits}");
}

/// The guest-sync vector restores x19-x29 from the frame only for an
/// answer that wrote one of them there: every `Action` against what
/// `apply` changes in a frame filled with a pattern.
#[test]
fn only_loads_into_x19_to_x29_write_callee_saved_registers() {
    let mut actions = vec![
        Action::Resume,
        Action::Advance,
        Action::Return {
            x0: 7,
            advance: true,
        },
        Action::InjectUndefined,
        Action::InjectPrefetchAbort { far: 0x1000 },
        Action::InjectDataAbort {
            far: 0x2000,
            write: true,
        },
        Action::InjectSError,
        Action::Stop,
    ];
    actions.extend((0..=31).map(|reg| Action::Load {
        reg,
        value: 0xdead_beef,
    }));
    for action in actions {
        let mut frame = TrapFrame::default();
        for (i, x) in frame.x.iter_mut().enumerate() {
            *x = 0x1000 + i as u64;
        }
        frame.spsr = 0x3c5;
        let before = frame.x;
        apply::<crate::arch::Cpu>(&mut frame, action);
        let wrote = (19..=29).any(|i| frame.x[i] != before[i]);
        assert_eq!(action.writes_callee_saved(), wrote, "{action:?}");
    }
}
