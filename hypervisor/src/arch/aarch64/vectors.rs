//! The EL2 exception vector table.
//!
//! Every entry saves the general-purpose registers and the syndrome
//! registers into a [`TrapFrame`] on the current stack and calls the
//! layer above, which decodes and handles the exit: a synchronous
//! exception from the guest (lower EL, AArch64: every MMIO access, call
//! and trapped instruction) saves in its own entry and calls
//! `partita_guest_sync` with the frame; every other entry calls
//! `partita_trap` with the frame and the vector's index. If that returns,
//! the (possibly modified) frame is restored and the exception returns;
//! after `partita_guest_sync`, x19-x29 are restored from the frame only
//! when it says it wrote one of them (a load into one): otherwise the
//! handler, which preserves them (AAPCS64 callee-saved), has left the
//! guest's values in them.

use crate::arch::frame::{TRAP_FRAME_SIZE, TrapFrame};
use core::arch::global_asm;

unsafe extern "C" {
    /// The trap handler of the layer above (`boot`): called with the saved
    /// frame and the vector's index (0-15).
    safe fn partita_trap(frame: &mut TrapFrame, kind: u64);
    /// The handler of a synchronous exception from the guest (vector 8):
    /// called with the saved frame; nonzero when it wrote one of x19-x29
    /// in the frame.
    safe fn partita_guest_sync(frame: &mut TrapFrame) -> u64;
}

// Keep the assembly below in step with the frame's layout.
const _: () = assert!(core::mem::size_of::<TrapFrame>() == TRAP_FRAME_SIZE);

global_asm!(
    r#"
// Saves x2-x29, ELR, SPSR, ESR and FAR into the frame at sp (reserved, x0
// and x1 already saved; x30 and SP are each entry's own: they share a
// pair); clobbers x1 and x2 only.
.macro SAVE_FROM_X2_TO_FAR
    stp     x2, x3, [sp, #16 * 1]
    stp     x4, x5, [sp, #16 * 2]
    stp     x6, x7, [sp, #16 * 3]
    stp     x8, x9, [sp, #16 * 4]
    stp     x10, x11, [sp, #16 * 5]
    stp     x12, x13, [sp, #16 * 6]
    stp     x14, x15, [sp, #16 * 7]
    stp     x16, x17, [sp, #16 * 8]
    stp     x18, x19, [sp, #16 * 9]
    stp     x20, x21, [sp, #16 * 10]
    stp     x22, x23, [sp, #16 * 11]
    stp     x24, x25, [sp, #16 * 12]
    stp     x26, x27, [sp, #16 * 13]
    stp     x28, x29, [sp, #16 * 14]
    mrs     x1, elr_el2
    mrs     x2, spsr_el2
    stp     x1, x2, [sp, #16 * 16]
    mrs     x1, esr_el2
    mrs     x2, far_el2
    stp     x1, x2, [sp, #16 * 17]
.endm

// Restores x30, ELR, SPSR and x0-x17 from the frame at sp (both returns
// below: the full one and the guest's synchronous one; x18 and x19-x29 are
// each return's own).
.macro RESTORE_X0_TO_X17_ELR_SPSR
    ldr     x30, [sp, #16 * 15]
    ldp     x2, x1, [sp, #16 * 16]  // elr, spsr
    msr     elr_el2, x2
    msr     spsr_el2, x1
    ldp     x0, x1, [sp, #0]
    ldp     x2, x3, [sp, #16 * 1]
    ldp     x4, x5, [sp, #16 * 2]
    ldp     x6, x7, [sp, #16 * 3]
    ldp     x8, x9, [sp, #16 * 4]
    ldp     x10, x11, [sp, #16 * 5]
    ldp     x12, x13, [sp, #16 * 6]
    ldp     x14, x15, [sp, #16 * 7]
    ldp     x16, x17, [sp, #16 * 8]
.endm

.macro EL2_VECTOR index
    .balign 0x80
    sub     sp, sp, #{frame_size}
    stp     x0, x1, [sp, #0]
    mov     x0, #\index
    b       el2_trap_save
.endm

// A synchronous exception from the guest: saved here, in the entry's own
// 32 instructions, and handed to its handler without a vector index.
.macro EL2_GUEST_SYNC_VECTOR
    .balign 0x80
    .global el2_guest_sync
el2_guest_sync:
    sub     sp, sp, #{frame_size}
    stp     x0, x1, [sp, #0]
    SAVE_FROM_X2_TO_FAR
    stp     x30, xzr, [sp, #16 * 15] // x30; SP 0 (the zero register's slot)
    mov     x0, sp
    bl      {guest_sync}
    // x19-x29 are the guest's again (callee-saved) unless the handler
    // wrote one in the frame (x0 != 0): only then restored from it. (The
    // common return is the one taken branch.)
    cbz     x0, el2_guest_return
    b       el2_trap_restore
    .org    el2_guest_sync + 0x80   // an error if the entry outgrew its slot
.endm

    .section .text.vectors, "ax"
    .balign 0x800
    .global el2_vectors
el2_vectors:
    EL2_VECTOR 0        // current EL, SP_EL0: sync
    EL2_VECTOR 1        //   irq
    EL2_VECTOR 2        //   fiq
    EL2_VECTOR 3        //   serror
    EL2_VECTOR 4        // current EL, SP_ELx: sync
    EL2_VECTOR 5        //   irq
    EL2_VECTOR 6        //   fiq
    EL2_VECTOR 7        //   serror
    EL2_GUEST_SYNC_VECTOR // lower EL, AArch64: sync (8)
    EL2_VECTOR 9        //   irq
    EL2_VECTOR 10       //   fiq
    EL2_VECTOR 11       //   serror
    EL2_VECTOR 12       // lower EL, AArch32: sync
    EL2_VECTOR 13       //   irq
    EL2_VECTOR 14       //   fiq
    EL2_VECTOR 15       //   serror

el2_trap_save:
    SAVE_FROM_X2_TO_FAR
    add     x2, sp, #{frame_size}
    stp     x30, x2, [sp, #16 * 15] // x30, the interrupted SP
    mov     x1, x0
    mov     x0, sp
    bl      {handler}
    .global el2_trap_restore
el2_trap_restore:
    RESTORE_X0_TO_X17_ELR_SPSR
    ldp     x18, x19, [sp, #16 * 9]
    ldp     x20, x21, [sp, #16 * 10]
    ldp     x22, x23, [sp, #16 * 11]
    ldp     x24, x25, [sp, #16 * 12]
    ldp     x26, x27, [sp, #16 * 13]
    ldp     x28, x29, [sp, #16 * 14]
    add     sp, sp, #{frame_size}
    eret

// The return of a guest's synchronous exception whose handler wrote none
// of x19-x29 in the frame: they hold the guest's values (the handler
// preserved them), the rest comes from the frame.
el2_guest_return:
    RESTORE_X0_TO_X17_ELR_SPSR
    ldr     x18, [sp, #16 * 9]
    add     sp, sp, #{frame_size}
    eret
"#,
    frame_size = const TRAP_FRAME_SIZE,
    handler = sym partita_trap,
    guest_sync = sym partita_guest_sync,
);
