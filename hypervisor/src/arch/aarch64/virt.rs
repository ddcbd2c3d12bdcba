//! EL2 controls for running a guest at EL1: HCR/VTCR/VTTBR, the virtual
//! CPU identity, timers, stage-2 TLB maintenance and the first entry.

use super::sysreg::{isb, read_sysreg, write_sysreg};
use crate::arch::frame::{TRAP_FRAME_SIZE, TrapFrame};
use aarch64_cpu::asm::barrier;

/// HCR_EL2 for a guest: stage 2 on (VM), set/way invalidation upgraded
/// (SWIO), physical IRQ/FIQ/SError to EL2 (IMO/FMO/AMO), broadcast TLB and
/// barriers inner shareable (FB, BSU=IS), SMC trapped (TSC), ACTLR_EL1
/// trapped (TACR: implementation-defined controls are not the guest's; the
/// VM layer makes it read as zero and ignores writes), EL1 AArch64 (RW),
/// pointer-authentication keys and instructions untrapped (APK/API).
pub const HCR_GUEST: u64 = 1
    | (1 << 1)
    | (1 << 3)
    | (1 << 4)
    | (1 << 5)
    | (1 << 9)
    | (1 << 10)
    | (1 << 19)
    | (1 << 21)
    | (1 << 31)
    | (1 << 40)
    | (1 << 41);

pub use crate::arch::frame::SPSR_EL1H;

/// Whether the CPU has 16-bit VMIDs (ID_AA64MMFR1_EL1.VMIDBits == 2).
pub fn has_vmid16() -> bool {
    (read_sysreg!("id_aa64mmfr1_el1") >> 4) & 0xf == 2
}

/// VTCR_EL2 for a 4 KiB-granule stage 2 of `ipa_bits` starting at
/// `start_level` (1 or 2), walked write-back inner shareable.
pub fn vtcr(ipa_bits: u32, start_level: usize) -> u64 {
    let sl0 = match start_level {
        0 => 2,
        1 => 1,
        _ => 0,
    };
    let ps = (read_sysreg!("id_aa64mmfr0_el1") & 0xf).min(6);
    let vs = if has_vmid16() { 1 << 19 } else { 0 };
    (1 << 31)
        | vs
        | (ps << 16)
        | (0b11 << 12)
        | (0b01 << 10)
        | (0b01 << 8)
        | (sl0 << 6)
        | (64 - ipa_bits as u64)
}

/// HCR_EL2.VI: a virtual IRQ is pending for EL1.
const HCR_VI: u64 = 1 << 7;

/// Whether virtual IRQs are also signalled through HCR_EL2.VI (every
/// CPU: set at boot, before the other CPUs start).
pub static VIRQ_VIA_HCR: core::sync::atomic::AtomicBool =
    core::sync::atomic::AtomicBool::new(false);

/// Sets or clears HCR_EL2.VI (written only when it changes).
pub fn set_virtual_irq_line(pending: bool) {
    let hcr = read_sysreg!("hcr_el2");
    let want = if pending { hcr | HCR_VI } else { hcr & !HCR_VI };
    if want != hcr {
        write_sysreg!("hcr_el2", want);
    }
}

/// Makes this CPU run guest code with the given stage 2 and identity.
pub fn configure(vttbr: u64, vtcr: u64, vcpu_index: usize) {
    write_sysreg!("vtcr_el2", vtcr);
    write_sysreg!("vttbr_el2", vttbr);
    let midr = read_sysreg!("midr_el1");
    write_sysreg!("vpidr_el2", midr);
    write_sysreg!("vmpidr_el2", (1 << 31) | vcpu_index as u64);
    // Guests use both EL1 timers and the counters directly.
    write_sysreg!("cnthctl_el2", 0b11);
    write_sysreg!("cntvoff_el2", 0);
    // The debug and PMU registers are the guest's (not trapped; with
    // MDCR_EL2.TDE and HCR_EL2.TGE clear the debug target is EL1, so the
    // guest's breakpoints and watchpoints never fire at EL2), and every
    // PMU counter is its (HPMN = N). The counters never count at EL2:
    // HPMD (PMUv3p1) for the event counters and HCCD (PMUv3p5) for the
    // cycle counter, so the guest cannot observe the hypervisor's work.
    let pmcr_n = (read_sysreg!("pmcr_el0") >> 11) & 0x1f;
    let pmuver = (read_sysreg!("id_aa64dfr0_el1") >> 8) & 0xf;
    let mut mdcr = pmcr_n;
    if pmuver != 0xf && pmuver >= 4 {
        mdcr |= 1 << 17; // HPMD
    }
    if pmuver != 0xf && pmuver >= 6 {
        mdcr |= 1 << 23; // HCCD
    }
    write_sysreg!("mdcr_el2", mdcr);
    // FP/SIMD, SVE and SME untrapped, at their longest vector lengths.
    let pfr0 = read_sysreg!("id_aa64pfr0_el1");
    let pfr1 = read_sysreg!("id_aa64pfr1_el1");
    write_sysreg!("cptr_el2", (1 << 13) | (1 << 9) | 0xff);
    isb();
    if (pfr0 >> 32) & 0xf != 0 {
        write_sysreg!("S3_4_C1_C2_0", 0xf); // ZCR_EL2.LEN
    }
    if (pfr1 >> 24) & 0xf != 0 {
        write_sysreg!("S3_4_C1_C2_6", 0xc000_000f); // SMCR_EL2: FA64, EZT0, LEN
    }
    // HCRX_EL2 (FEAT_HCX): without these enables the guest's memcpy/memset
    // instructions (FEAT_MOPS), TCR2_EL1 and SCTLR2_EL1 are UNDEFINED.
    if (read_sysreg!("id_aa64mmfr1_el1") >> 40) & 0xf != 0 {
        let mmfr3 = read_sysreg!("S3_0_C0_C7_3"); // ID_AA64MMFR3_EL1
        let isar2 = read_sysreg!("S3_0_C0_C6_2"); // ID_AA64ISAR2_EL1
        let mut hcrx = 0;
        if (isar2 >> 16) & 0xf != 0 {
            hcrx |= 1 << 11; // MSCEn
        }
        if mmfr3 & 0xf != 0 {
            hcrx |= 1 << 14; // TCR2En
        }
        if (mmfr3 >> 4) & 0xf != 0 {
            hcrx |= 1 << 15; // SCTLR2En
        }
        write_sysreg!("S3_4_C1_C2_2", hcrx); // HCRX_EL2
    }
    write_sysreg!("sctlr_el1", 0x30d0_0800); // RES1, MMU and caches off
    write_sysreg!("hcr_el2", HCR_GUEST);
    isb();
    invalidate_guest_tlbs();
}

/// Invalidates all stage-1 and stage-2 TLB entries of the current VMID,
/// on every CPU of the inner-shareable domain.
pub fn invalidate_guest_tlbs() {
    barrier::dsb(barrier::ISHST);
    // SAFETY: TLB maintenance has no effect on memory contents.
    unsafe { core::arch::asm!("tlbi vmalls12e1is", options(nostack)) };
    barrier::dsb(barrier::ISH);
    isb();
}

/// HPFAR_EL2: the faulting IPA of a stage-2 abort, bits [47:12] in [43:4].
pub fn hpfar() -> u64 {
    read_sysreg!("hpfar_el2")
}

/// Enters the guest with the register state in `frame` on a fresh stack
/// whose top is `stack_top`; returns only through exceptions.
///
/// # Safety
/// The CPU must be configured for the guest (see [`configure`]) and
/// `stack_top` must be this CPU's EL2 stack, nothing on it still needed.
pub unsafe fn enter(frame: &TrapFrame, stack_top: u64) -> ! {
    // SAFETY: the caller guarantees the stack may be reused; the frame is
    // copied before the restore path pops it and erets to the guest.
    unsafe {
        core::arch::asm!(
            "sub sp, x1, #{size}",
            "mov x2, #0",
            "1: ldr x3, [x0, x2]",
            "str x3, [sp, x2]",
            "add x2, x2, #8",
            "cmp x2, #{size}",
            "b.lo 1b",
            "b el2_trap_restore",
            in("x0") frame as *const TrapFrame,
            in("x1") stack_top,
            size = const TRAP_FRAME_SIZE,
            options(noreturn),
        )
    }
}

/// Makes the guest take a synchronous exception to EL1 at the instruction
/// in `frame`: ESR_EL1/FAR_EL1/ELR_EL1/SPSR_EL1 are set as the hardware
/// would, and the frame resumes at the right VBAR_EL1 vector with all
/// interrupts masked.
pub fn inject_sync_exception(frame: &mut TrapFrame, esr: u64, far: u64) {
    let vbar = read_sysreg!("vbar_el1");
    let offset = match frame.spsr & 0x1f {
        0b00100 => 0x000,            // EL1t
        0b00101 => 0x200,            // EL1h
        m if m & 0x10 != 0 => 0x600, // AArch32 EL0
        _ => 0x400,                  // AArch64 EL0
    };
    write_sysreg!("esr_el1", esr);
    write_sysreg!("far_el1", far);
    write_sysreg!("elr_el1", frame.elr);
    write_sysreg!("spsr_el1", frame.spsr);
    frame.spsr = SPSR_EL1H;
    frame.elr = vbar + offset;
}

/// Cleans `[start, start + len)` to the point of coherency and invalidates
/// the instruction cache, so a guest starting with its MMU and caches off
/// sees (and executes) what the hypervisor copied there.
pub fn publish_guest_image(start: usize, len: usize) {
    super::cache::clean_to_poc(start, len);
    // SAFETY: invalidating the instruction cache only discards cached code.
    unsafe { core::arch::asm!("ic ialluis", "dsb ish", "isb", options(nostack)) };
}

/// Makes a virtual SError pending for the guest (HCR_EL2.VSE); it is taken
/// when the guest unmasks SErrors.
pub fn inject_virtual_serror() {
    write_sysreg!("hcr_el2", read_sysreg!("hcr_el2") | (1 << 8));
    isb();
}
