//! Synchronous exceptions the guest provokes and must see as the
//! architecture describes them: an undefined instruction, SVC, BRK, an
//! instruction fetch from an address nothing answers at (prefetch abort),
//! and loads and stores there (data aborts), with an instruction syndrome
//! (LDR, STR) and without one (LDP, post-indexed LDR).

use crate::cpu::{Resume, Taken, trap};
use crate::{Ctx, check, selected};
use core::arch::asm;

/// ESR.IL: a 32-bit instruction.
const IL: u64 = 1 << 25;
/// ESR.EC values.
const EC_UNKNOWN: u64 = 0x00;
const EC_SVC64: u64 = 0x15;
const EC_IABT_CUR: u64 = 0x21;
const EC_DABT_CUR: u64 = 0x25;
const EC_BRK64: u64 = 0x3c;
/// Fault status: synchronous external abort (what QEMU and KVM report for
/// an address nothing answers at).
const FSC_EXTERNAL: u64 = 0x10;
/// A data abort's ISS.ISV and ISS.WnR.
const ISV: u64 = 1 << 24;
const WNR: u64 = 1 << 6;
/// Where the prefetch-abort check branches to (below 4 GiB, above RAM on
/// QEMU virt and in the guest: nothing there).
const NOWHERE: u64 = 0xffff_f000;

/// Runs the group.
pub fn run(ctx: &Ctx) {
    if selected("exc.undef") {
        let (t, at) = trap(Resume::Skip, || {
            let at: u64;
            // SAFETY: UDF raises an undefined-instruction exception; the
            // handler skips it.
            unsafe { asm!("adr {a}, 2f", "2: udf #0x1234", a = out(reg) at) };
            at
        });
        let ok = t.count == 1 && t.ec() == EC_UNKNOWN && t.esr & IL != 0 && t.elr == at;
        check!(
            "exc.undef",
            ok,
            "esr={:#x} elr={:#x} taken={} (expected EC 0x0, IL, elr={at:#x})",
            t.esr,
            t.elr,
            t.count
        );
    }
    if selected("exc.svc") {
        let (t, after) = trap(Resume::Stay, || {
            let after: u64;
            // SAFETY: SVC to EL1, whose handler returns past it.
            unsafe { asm!("adr {a}, 2f", "svc #0x42", "2:", a = out(reg) after) };
            after
        });
        let ok = t.count == 1 && t.ec() == EC_SVC64 && t.iss() & 0xffff == 0x42 && t.elr == after;
        check!(
            "exc.svc",
            ok,
            "esr={:#x} elr={:#x} taken={} (expected EC 0x15, imm 0x42, elr={after:#x})",
            t.esr,
            t.elr,
            t.count
        );
    }
    if selected("exc.brk") {
        let (t, at) = trap(Resume::Skip, || {
            let at: u64;
            // SAFETY: BRK raises a breakpoint exception; the handler skips it.
            unsafe { asm!("adr {a}, 2f", "2: brk #0x7", a = out(reg) at) };
            at
        });
        let ok = t.count == 1 && t.ec() == EC_BRK64 && t.iss() & 0xffff == 7 && t.elr == at;
        check!(
            "exc.brk",
            ok,
            "esr={:#x} elr={:#x} taken={} (expected EC 0x3c, imm 7, elr={at:#x})",
            t.esr,
            t.elr,
            t.count
        );
    }
    if selected("exc.prefetch_abort") {
        let (t, ()) = trap(Resume::Link, || {
            // SAFETY: the branch faults on the fetch; the handler returns
            // to x30, past the BLR. Every caller-saved register is
            // declared clobbered.
            unsafe { asm!("blr {t}", t = in(reg) NOWHERE, clobber_abi("C")) };
        });
        let ok = t.count == 1
            && t.ec() == EC_IABT_CUR
            && t.esr & IL != 0
            && t.fsc() == FSC_EXTERNAL
            && t.far == NOWHERE
            && t.elr == NOWHERE;
        check!(
            "exc.prefetch_abort",
            ok,
            "esr={:#x} far={:#x} elr={:#x} taken={} (expected EC 0x21, IL, IFSC 0x10, far=elr={NOWHERE:#x})",
            t.esr,
            t.far,
            t.elr,
            t.count
        );
    }
    let a = ctx.unmapped;
    // A data abort at `a` taken at `at`: EC 0x25, external abort, WnR as
    // given, FAR = a; `extra` is what else the check requires.
    let dabt = |name: &str, t: &Taken, at: u64, write: bool, extra: bool| {
        let ok = extra
            && t.count == 1
            && t.ec() == EC_DABT_CUR
            && t.fsc() == FSC_EXTERNAL
            && (t.esr & WNR != 0) == write
            && t.far == a
            && t.elr == at;
        check!(
            name,
            ok,
            "esr={:#x} far={:#x} elr={:#x} isv={} taken={} (expected EC 0x25, DFSC 0x10, WnR={}, far={a:#x}, elr={at:#x})",
            t.esr,
            t.far,
            t.elr,
            u8::from(t.esr & ISV != 0),
            t.count,
            u8::from(write)
        );
    };
    if selected("exc.dabt_ldr") {
        let (t, at) = trap(Resume::Skip, || {
            let at: u64;
            // SAFETY: the load faults (nothing at `a`); the handler skips it.
            unsafe {
                asm!("adr {at}, 2f", "2: ldr {v}, [{a}]", at = out(reg) at, v = out(reg) _, a = in(reg) a)
            };
            at
        });
        dabt("exc.dabt_ldr", &t, at, false, true);
    }
    if selected("exc.dabt_str") {
        let (t, at) = trap(Resume::Skip, || {
            let at: u64;
            // SAFETY: the store faults (nothing at `a`); the handler skips it.
            unsafe {
                asm!("adr {at}, 2f", "2: str {v}, [{a}]", at = out(reg) at, v = in(reg) 0x55u64, a = in(reg) a)
            };
            at
        });
        dabt("exc.dabt_str", &t, at, true, true);
    }
    if selected("exc.dabt_ldp") {
        let (t, at) = trap(Resume::Skip, || {
            let at: u64;
            // SAFETY: the load pair faults (no syndrome: ISV = 0); the
            // handler skips it.
            unsafe {
                asm!("adr {at}, 2f", "2: ldp {v}, {w}, [{a}]", at = out(reg) at, v = out(reg) _, w = out(reg) _, a = in(reg) a)
            };
            at
        });
        dabt("exc.dabt_ldp", &t, at, false, true);
    }
    if selected("exc.dabt_post_index") {
        let (t, (at, base)) = trap(Resume::Skip, || {
            let at: u64;
            let mut base = a;
            // SAFETY: the post-indexed load faults (no syndrome: ISV = 0);
            // the handler skips it; the base must not have moved.
            unsafe {
                asm!("adr {at}, 2f", "2: ldr {v}, [{a}], #8", at = out(reg) at, v = out(reg) _, a = inout(reg) base)
            };
            (at, base)
        });
        dabt("exc.dabt_post_index", &t, at, false, base == a);
    }
}
