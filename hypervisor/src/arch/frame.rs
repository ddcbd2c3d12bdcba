//! Exceptions taken to EL2: the saved register frame, exception-class names
//! and the crash report printed for an exception the hypervisor cannot
//! handle. Plain data and formatting, compiled everywhere.

use core::fmt;

/// Size in bytes of a [`TrapFrame`]; the vector assembly depends on it.
pub const TRAP_FRAME_SIZE: usize = 36 * 8;

/// SPSR for entering a guest at EL1h with all interrupts masked.
pub const SPSR_EL1H: u64 = 0x3c5;

/// Registers saved by the EL2 vectors, in the order the assembly stores them.
///
/// `sp` follows `x30`, in the slot register number 31 would have: in the
/// frame of a guest's synchronous exception it is 0, so that an operand register
/// (0-31, 31 the zero register) is one indexed load, [`TrapFrame::operand`].
#[repr(C)]
#[derive(Debug, Clone, Default)]
pub struct TrapFrame {
    /// x0 to x30.
    pub x: [u64; 31],
    /// Stack pointer at the time of the exception (for EL2's own
    /// exceptions; 0 in the frame of a guest's synchronous exception, where
    /// it is the zero register's slot).
    pub sp: u64,
    /// ELR_EL2: where the exception was taken.
    pub elr: u64,
    /// SPSR_EL2: the interrupted PSTATE.
    pub spsr: u64,
    /// ESR_EL2: the syndrome.
    pub esr: u64,
    /// FAR_EL2: the faulting virtual address (for aborts).
    pub far: u64,
}

// `operand` reads register 31 from the `sp` slot: it must follow x30.
const _: () = assert!(core::mem::offset_of!(TrapFrame, sp) == 31 * 8);

impl TrapFrame {
    /// The value of register `n` (its low five bits, as a syndrome's
    /// register field gives it) as an instruction's operand: x0-x30, and
    /// 0 for 31 (the zero register). Register 31 is read from the `sp`
    /// slot, which the vector stores as 0 in the frame of a guest's
    /// synchronous exception (the only frames whose registers are operands), so every
    /// register is the same indexed load, without a test for 31.
    #[inline(always)]
    pub fn operand(&self, n: u8) -> u64 {
        debug_assert!(n & 31 < 31 || self.sp == 0, "an operand of an EL2 frame");
        let regs = (self as *const TrapFrame).cast::<u64>();
        // SAFETY: `TrapFrame` is `repr(C)` and made of `u64`s only: `x`
        // (31) at offset 0 and `sp` right after it (asserted above), so the
        // 32 words from the frame's start are x0-x30 and `sp`, in bounds of
        // `*self` for any `n & 31`.
        unsafe { *regs.add(usize::from(n & 31)) }
    }
}

/// Which of the 16 vector-table entries was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VectorKind(pub u64);

impl VectorKind {
    /// True for exceptions taken from EL2 itself (entries 0-7).
    pub fn from_current_el(self) -> bool {
        self.0 < 8
    }
}

impl fmt::Display for VectorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let origin = match self.0 / 4 {
            0 => "EL2 with SP_EL0",
            1 => "EL2",
            2 => "lower EL (AArch64)",
            _ => "lower EL (AArch32)",
        };
        let kind = ["synchronous", "IRQ", "FIQ", "SError"][(self.0 % 4) as usize];
        write!(f, "{kind} from {origin}")
    }
}

/// The exception class field of an ESR value.
pub fn exception_class(esr: u64) -> u8 {
    ((esr >> 26) & 0x3f) as u8
}

/// A human-readable name for an exception class (ESR_ELx.EC).
pub fn exception_class_name(ec: u8) -> &'static str {
    match ec {
        0x00 => "unknown reason",
        0x01 => "trapped WFI/WFE",
        0x07 => "trapped SVE/SIMD/FP access",
        0x0e => "illegal execution state",
        0x11 | 0x15 => "SVC",
        0x12 | 0x16 => "HVC",
        0x13 | 0x17 => "SMC",
        0x18 => "trapped MSR/MRS/system instruction",
        0x19 => "trapped SVE access",
        0x1c => "pointer authentication failure",
        0x20 => "instruction abort from a lower EL",
        0x21 => "instruction abort at the same EL",
        0x22 => "PC alignment fault",
        0x24 => "data abort from a lower EL",
        0x25 => "data abort at the same EL",
        0x26 => "SP alignment fault",
        0x2c => "trapped floating-point exception",
        0x2f => "SError",
        0x30 | 0x31 => "breakpoint",
        0x32 | 0x33 => "software step",
        0x34 | 0x35 => "watchpoint",
        0x3c => "BRK instruction",
        _ => "unallocated exception class",
    }
}

/// The fault status code (ISS[5:0]) of an instruction or data abort: what
/// went wrong and, for translation-table faults, at which level.
pub fn fault_status(fsc: u8) -> (&'static str, Option<u8>) {
    let level = Some(fsc & 3);
    match fsc {
        0x00..=0x03 => ("address size fault", level),
        0x04..=0x07 => ("translation fault", level),
        0x09..=0x0b => ("access flag fault", level),
        0x0d..=0x0f => ("permission fault", level),
        0x10 => ("synchronous external abort", None),
        0x11 => ("tag check fault", None),
        0x14..=0x17 => ("external abort on a table walk", level),
        0x18 => ("parity or ECC error", None),
        0x1c..=0x1f => ("parity or ECC error on a table walk", level),
        0x21 => ("alignment fault", None),
        0x30 => ("TLB conflict abort", None),
        _ => ("unknown fault status", None),
    }
}

/// The fault of an abort's syndrome, displayed as one line, e.g. `data
/// abort: permission fault (FSC 0x0f) at level 3, write` (no allocation:
/// it is part of the crash report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abort {
    esr: u64,
}

/// The abort an ESR value describes; `None` for other exception classes.
pub fn describe_abort(esr: u64) -> Option<Abort> {
    matches!(exception_class(esr), 0x20 | 0x21 | 0x24 | 0x25).then_some(Abort { esr })
}

impl fmt::Display for Abort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ec = exception_class(self.esr);
        let data = matches!(ec, 0x24 | 0x25);
        let fsc = (self.esr & 0x3f) as u8;
        let (name, level) = fault_status(fsc);
        let kind = if data {
            "data abort"
        } else {
            "instruction abort"
        };
        write!(f, "{kind}: {name} (FSC 0x{fsc:02x})")?;
        if let Some(l) = level {
            write!(f, " at level {l}")?;
        }
        if data {
            f.write_str(if self.esr & (1 << 8) != 0 {
                ", cache maintenance"
            } else if self.esr & (1 << 6) != 0 {
                ", write"
            } else {
                ", read"
            })?;
        }
        Ok(())
    }
}

/// The crash report for an exception the hypervisor cannot handle: the
/// vector, the exception class, ESR, FAR, ELR, SPSR and every register.
pub struct CrashReport<'a> {
    /// Which vector was taken.
    pub kind: VectorKind,
    /// The saved registers.
    pub frame: &'a TrapFrame,
}

impl fmt::Display for CrashReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fr = self.frame;
        let ec = exception_class(fr.esr);
        writeln!(f, "unhandled exception: {}", self.kind)?;
        writeln!(
            f,
            "  EC 0x{ec:02x} ({}), ESR 0x{:016x}, FAR 0x{:016x}",
            exception_class_name(ec),
            fr.esr,
            fr.far
        )?;
        if let Some(abort) = describe_abort(fr.esr) {
            writeln!(f, "  {abort}")?;
        }
        writeln!(
            f,
            "  ELR 0x{:016x}, SPSR 0x{:016x}, SP 0x{:016x}",
            fr.elr, fr.spsr, fr.sp
        )?;
        for row in 0..8 {
            for col in 0..4 {
                let i = row * 4 + col;
                if i < 31 {
                    write!(f, "  x{i:<2} 0x{:016x}", fr.x[i])?;
                }
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn decodes_exception_class() {
        assert_eq!(exception_class(0x9600_0045), 0x25);
        assert_eq!(exception_class_name(0x25), "data abort at the same EL");
        assert_eq!(exception_class_name(0x3f), "unallocated exception class");
    }

    #[test]
    fn crash_report_names_everything() {
        let mut frame = TrapFrame {
            esr: 0x9600_0045,
            far: 0xdead_0000,
            elr: 0x4008_1234,
            ..Default::default()
        };
        frame.x[30] = 0x1234;
        let text = format!(
            "{}",
            CrashReport {
                kind: VectorKind(4),
                frame: &frame
            }
        );
        assert!(text.contains("synchronous from EL2"));
        assert!(text.contains("EC 0x25 (data abort at the same EL)"));
        assert!(text.contains("ESR 0x0000000096000045"));
        assert!(text.contains("FAR 0x00000000dead0000"));
        assert!(text.contains("ELR 0x0000000040081234"));
        assert!(text.contains("x30 0x0000000000001234"));
    }

    #[test]
    fn describes_aborts() {
        // A store to a read-only page (EL2, level 3): EC 0x25, WnR, FSC 0x0f.
        assert_eq!(
            describe_abort(0x9600_004f)
                .map(|a| format!("{a}"))
                .as_deref(),
            Some("data abort: permission fault (FSC 0x0f) at level 3, write")
        );
        // An instruction fetch from an execute-never block at level 2.
        assert_eq!(
            describe_abort(0x8600_000e)
                .map(|a| format!("{a}"))
                .as_deref(),
            Some("instruction abort: permission fault (FSC 0x0e) at level 2")
        );
        assert_eq!(
            describe_abort(0x9200_0005)
                .map(|a| format!("{a}"))
                .as_deref(), // EC 0x24, level 1 translation, read
            Some("data abort: translation fault (FSC 0x05) at level 1, read")
        );
        assert_eq!(
            describe_abort(0x9600_0150)
                .map(|a| format!("{a}"))
                .as_deref(), // CM set: DC IVAC and friends
            Some("data abort: synchronous external abort (FSC 0x10), cache maintenance")
        );
        assert_eq!(describe_abort(0x5a00_0000), None); // HVC
        let frame = TrapFrame {
            esr: 0x9600_004f,
            ..Default::default()
        };
        let text = format!(
            "{}",
            CrashReport {
                kind: VectorKind(4),
                frame: &frame
            }
        );
        assert!(text.contains("\n  data abort: permission fault (FSC 0x0f) at level 3, write\n"));
    }

    #[test]
    fn operands_are_the_registers_and_zero_for_31() {
        let mut frame = TrapFrame {
            elr: 0xe1,
            spsr: 0x5b,
            ..Default::default()
        };
        for (i, x) in frame.x.iter_mut().enumerate() {
            *x = 0x1000 + i as u64;
        }
        for n in 0..31 {
            assert_eq!(frame.operand(n), 0x1000 + u64::from(n), "x{n}");
            // The syndrome's field is five bits: only those count.
            assert_eq!(frame.operand(n | 0x20), frame.operand(n));
        }
        assert_eq!(frame.operand(31), 0, "the zero register");
        assert_eq!(frame.operand(63), 0);
    }

    #[test]
    fn frame_size_matches_assembly() {
        assert_eq!(core::mem::size_of::<TrapFrame>(), TRAP_FRAME_SIZE);
    }
}
