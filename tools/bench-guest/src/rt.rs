//! The runtime every guest of this crate shares: the arm64 `Image` header
//! and entry code (stack, BSS, exception vectors, then `guest_main(dtb)`),
//! PSCI power calls through the conduit the DT names, and the virtual
//! counter.
//!
//! A binary defines two symbols the entry code calls:
//! `extern "C" fn guest_main(dtb: usize) -> !` and
//! `extern "C" fn exception_entry() -> !` (every exception, at any level
//! and of any kind, branches to it; the guest runs with IRQs masked).
//! The MMU stays off: every access is Device-nGnRnE.

use core::arch::{asm, global_asm};
use core::ptr::{read_volatile, write_volatile};

global_asm!(
    r#"
    .section .text.head, "ax"
    .global _start
_start:
    b       1f                  // code0
    .word   0                   // code1
    .quad   __text_offset       // text_offset (build.rs, per binary)
    .quad   __image_size        // image_size (bss and stack included)
    .quad   0xa                 // flags: LE, 4 KiB pages, anywhere
    .quad   0, 0, 0             // res2..res4
    .ascii  "ARM\x64"           // magic
    .word   0                   // res5
1:
    msr     daifset, #0xf
    mov     x19, x0
    adrp    x1, __stack_top
    add     x1, x1, :lo12:__stack_top
    mov     sp, x1
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
2:  cmp     x1, x2
    b.hs    3f
    str     xzr, [x1], #8
    b       2b
3:  adrp    x1, vectors
    add     x1, x1, :lo12:vectors
    msr     vbar_el1, x1
    isb
    mov     x0, x19
    bl      guest_main
4:  wfe
    b       4b

    .section .text.vectors, "ax"
    .balign 2048
vectors:
    .rept 16
    .balign 128
    b       exception_entry
    .endr
    "#
);

/// Reports an exception on the console as `<who> error exception esr=..
/// far=.. elr=..` and powers off: the fatal handler of the guests that
/// print.
pub fn fatal_exception(who: &str) -> ! {
    let (esr, far, elr) = exception_syndrome();
    crate::uart::puts(who);
    crate::uart::puts(" error exception esr=");
    crate::uart::hex(esr);
    crate::uart::puts(" far=");
    crate::uart::hex(far);
    crate::uart::puts(" elr=");
    crate::uart::hex(elr);
    crate::uart::puts("\n");
    power_off();
}

/// Reports a panic as `<who> error panic` and powers off.
pub fn fatal_panic(who: &str) -> ! {
    crate::uart::puts(who);
    crate::uart::puts(" error panic\n");
    power_off();
}

/// The syndrome of the exception being taken: (ESR_EL1, FAR_EL1, ELR_EL1).
pub fn exception_syndrome() -> (u64, u64, u64) {
    let (esr, far, elr): (u64, u64, u64);
    // SAFETY: reads of EL1 system registers.
    unsafe {
        asm!("mrs {}, esr_el1", out(reg) esr);
        asm!("mrs {}, far_el1", out(reg) far);
        asm!("mrs {}, elr_el1", out(reg) elr);
    }
    (esr, far, elr)
}

// ---------------------------------------------------------------- PSCI

/// PSCI SYSTEM_OFF.
pub const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;
/// PSCI SYSTEM_RESET.
pub const PSCI_SYSTEM_RESET: u64 = 0x8400_0009;
/// PSCI PSCI_VERSION.
pub const PSCI_VERSION: u64 = 0x8400_0000;

/// The PSCI conduit: false = HVC, true = SMC (from the DT /psci `method`).
static mut PSCI_SMC: bool = false;

/// Sets the PSCI conduit (call once, before any PSCI call; one CPU).
pub fn set_psci_smc(smc: bool) {
    // SAFETY: written once at start-up by the only CPU the guest runs on.
    unsafe { write_volatile(&raw mut PSCI_SMC, smc) };
}

/// Whether PSCI calls use SMC (else HVC).
pub fn psci_smc() -> bool {
    // SAFETY: plain read of a static written at start-up.
    unsafe { read_volatile(&raw const PSCI_SMC) }
}

/// A PSCI call with function `id` and no arguments; returns x0.
#[inline(always)]
pub fn psci_call(id: u64) -> u64 {
    let ret: u64;
    // SAFETY: a PSCI call; x0-x3 are clobbered by the SMCCC convention.
    unsafe {
        if psci_smc() {
            asm!("smc #0", inout("x0") id => ret, out("x1") _, out("x2") _, out("x3") _);
        } else {
            asm!("hvc #0", inout("x0") id => ret, out("x1") _, out("x2") _, out("x3") _);
        }
    }
    ret
}

/// A PSCI call with function `id` and arguments `args` (x1..x3); returns x0.
#[inline(always)]
pub fn psci_call3(id: u64, args: [u64; 3]) -> u64 {
    let ret: u64;
    // SAFETY: a PSCI call; x0-x3 are clobbered by the SMCCC convention.
    unsafe {
        if psci_smc() {
            asm!("smc #0", inout("x0") id => ret, inout("x1") args[0] => _,
                 inout("x2") args[1] => _, inout("x3") args[2] => _);
        } else {
            asm!("hvc #0", inout("x0") id => ret, inout("x1") args[0] => _,
                 inout("x2") args[1] => _, inout("x3") args[2] => _);
        }
    }
    ret
}

/// PSCI SYSTEM_OFF; waits forever if it returns.
pub fn power_off() -> ! {
    psci_call(PSCI_SYSTEM_OFF);
    park()
}

/// PSCI SYSTEM_RESET; waits forever if it returns.
pub fn reset() -> ! {
    psci_call(PSCI_SYSTEM_RESET);
    park()
}

/// Waits for events forever.
pub fn park() -> ! {
    loop {
        // SAFETY: waits for an event; nothing else.
        unsafe { asm!("wfe") };
    }
}

// ---------------------------------------------------------------- timing

/// The virtual counter, after an ISB so that it is not read early.
#[inline(always)]
pub fn now() -> u64 {
    let t: u64;
    // SAFETY: reads CNTVCT_EL0, allowed at EL1.
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) t) };
    t
}

/// The counter frequency in Hz.
pub fn freq() -> u64 {
    let f: u64;
    // SAFETY: reads CNTFRQ_EL0.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) f) };
    f
}
