//! Image header and entry points.
//!
//! The first 64 bytes are an arm64 Linux `Image` header, so QEMU `-kernel`
//! and U-Boot `booti` start us with the DTB address in x0. The primary entry
//! applies the image's own relative relocations (it is linked at 0 and may be
//! loaded anywhere), clears .bss, takes the boot stack and enables FP/SIMD at
//! the current exception level before calling Rust with the MMU still off.
//! Secondary CPUs enter at `secondary_entry` through PSCI `CPU_ON` with a
//! pointer to a [`SecondaryBoot`] in x0 and switch on the MMU with the
//! primary's translation settings before calling Rust.

use core::arch::global_asm;

// The boot flow of the layer above (`boot`), called from the assembly
// below by symbol: `arch` names nothing above it.
unsafe extern "C" {
    /// Entered at an exception level other than 2, with the DTB address.
    safe fn partita_wrong_el(dtb: usize) -> !;
    /// First Rust code on the boot CPU: DTB address and load address.
    safe fn partita_primary_main(dtb: usize, load_addr: usize) -> !;
    /// First Rust code on a secondary CPU, with its boot block.
    safe fn partita_secondary_main(boot: &SecondaryBoot) -> !;
}

/// The boot CPU's stack, in .bss.
#[repr(C, align(16))]
struct Stack([u8; BOOT_STACK_SIZE]);

static mut BOOT_STACK: Stack = Stack([0; BOOT_STACK_SIZE]);

/// Size of the boot CPU's stack.
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

/// What a secondary CPU needs before it can run Rust code with the MMU on.
///
/// Written by the boot CPU, cleaned to the point of coherency, and read by
/// the secondary with its MMU and caches still off. The field order is part
/// of the contract with the assembly below.
#[repr(C)]
#[derive(Debug)]
pub struct SecondaryBoot {
    /// Top of the stack the CPU switches to.
    pub stack_top: u64,
    /// TTBR0_EL2 value (root of the EL2 page table).
    pub ttbr0: u64,
    /// TCR_EL2 value.
    pub tcr: u64,
    /// MAIR_EL2 value.
    pub mair: u64,
    /// SCTLR_EL2 value that turns the MMU and caches on.
    pub sctlr: u64,
    /// Logical index of the CPU (its position in the DT's /cpus).
    pub cpu_index: u64,
    /// The CPU's MPIDR affinity value as named in the DT.
    pub mpidr: u64,
}

/// Physical address of the secondary entry point (identity mapped).
pub fn secondary_entry_address() -> u64 {
    unsafe extern "C" {
        fn secondary_entry();
    }
    secondary_entry as *const () as usize as u64
}

// Image header, then the primary and secondary entry code.
global_asm!(
    r#"
    .section .text.head, "ax"
    .global _start
_start:
    b       primary_entry           // code0
    .long   0                       // code1
    .quad   0                       // text_offset
    .quad   _image_size             // image_size, .bss included
    .quad   0xa                     // flags: little endian, 4 KiB pages, anywhere in RAM
    .quad   0                       // res2
    .quad   0                       // res3
    .quad   0                       // res4
    .ascii  "ARM\x64"               // magic
    .long   0                       // res5

primary_entry:
    mov     x19, x0                 // DTB physical address
    adr     x20, _start             // load address of the image

    // Apply R_AARCH64_RELATIVE relocations: *(base + offset) = base + addend.
    adrp    x1, __rela_start
    add     x1, x1, :lo12:__rela_start
    adrp    x2, __rela_end
    add     x2, x2, :lo12:__rela_end
1:  cmp     x1, x2
    b.hs    2f
    ldp     x3, x4, [x1], #16       // r_offset, r_info
    ldr     x5, [x1], #8            // r_addend
    cmp     w4, #1027               // R_AARCH64_RELATIVE
    b.ne    1b
    add     x5, x5, x20
    str     x5, [x20, x3]
    b       1b
2:
    // Clear .bss (the boot stack lives there too).
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
3:  cmp     x1, x2
    b.hs    4f
    stp     xzr, xzr, [x1], #16
    b       3b
4:
    adrp    x1, {boot_stack}
    add     x1, x1, :lo12:{boot_stack}
    add     sp, x1, #{boot_stack_size}

    // The hypervisor is built soft-float and never touches FP/SIMD; at EL1
    // (refusal path) make sure nothing traps anyway.
    mrs     x1, CurrentEL
    lsr     x1, x1, #2
    cmp     x1, #2
    b.eq    5f
    cmp     x1, #1
    b.ne    6f
    mov     x2, #(3 << 20)          // CPACR_EL1.FPEN = 0b11
    msr     cpacr_el1, x2
    isb
6:  mov     x0, x19
    bl      {wrong_el}              // prints why and parks; never returns
    b       .
5:
    bl      el2_reset_state
    mov     x0, x19
    mov     x1, x20
    bl      {primary_main}
    b       .

    .text
    .global secondary_entry
    .balign 8
secondary_entry:
    mov     x19, x0                 // &SecondaryBoot
    bl      el2_reset_state
    ldp     x1, x2, [x19, #0]       // stack_top, ttbr0
    ldp     x3, x4, [x19, #16]      // tcr, mair
    ldr     x5, [x19, #32]          // sctlr
    mov     sp, x1
    msr     mair_el2, x4
    msr     tcr_el2, x3
    msr     ttbr0_el2, x2
    isb
    tlbi    alle2
    dsb     nsh
    isb
    msr     sctlr_el2, x5
    isb
    mov     x0, x19
    bl      {secondary_main}
    b       .

// Known EL2 state: MMU and caches off, no FP trap, AArch64 lower ELs,
// exception vectors installed. Clobbers x0.
el2_reset_state:
    movz    x0, #0x0830             // SCTLR_EL2 RES1 bits; M, C, I off
    movk    x0, #0x30c5, lsl #16
    msr     sctlr_el2, x0
    mov     x0, #0x33ff             // CPTR_EL2 RES1 bits; TFP off: guests use FP/SIMD untrapped
    msr     cptr_el2, x0
    mov     x0, #(1 << 31)          // HCR_EL2.RW: EL1 is AArch64
    msr     hcr_el2, x0
    adrp    x0, el2_vectors
    add     x0, x0, :lo12:el2_vectors
    msr     vbar_el2, x0
    isb
    ret
"#,
    boot_stack = sym BOOT_STACK,
    boot_stack_size = const BOOT_STACK_SIZE,
    wrong_el = sym partita_wrong_el,
    primary_main = sym partita_primary_main,
    secondary_main = sym partita_secondary_main,
);

/// Top of the boot CPU's stack.
pub fn boot_stack_top() -> u64 {
    (&raw const BOOT_STACK as u64) + BOOT_STACK_SIZE as u64
}
