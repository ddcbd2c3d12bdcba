//! Exits as values: a trap from the guest decoded once, at the trap entry,
//! from ESR_EL2, FAR_EL2 and HPFAR_EL2 into an [`Exit`]; the handlers above
//! answer with an [`Action`], which [`apply`] carries out on the saved
//! frame. This is the only place that knows exception-class numbers and
//! syndrome layouts (named by `aarch64-cpu`, the data-abort and system
//! register ISS fields declared here), including those of the exceptions
//! injected into the guest.

use super::Arch;
use super::frame::{TrapFrame, VectorKind};
use aarch64_cpu::registers::ESR_EL2;
use iss::{ISS_DATA_ABORT, ISS_SYSREG};
use tock_registers::LocalRegisterCopy;

/// ISS layouts aarch64-cpu does not declare.
mod iss {
    #![allow(missing_docs)]
    use tock_registers::register_bitfields;

    register_bitfields! [u64,
        /// ISS of a data abort (ESR_EL2.EC = 0x24/0x25).
        pub ISS_DATA_ABORT [
            /// The syndrome fields below are valid.
            ISV OFFSET(24) NUMBITS(1) [],
            /// Access size: 1 << SAS bytes.
            SAS OFFSET(22) NUMBITS(2) [],
            /// Sign-extend a load.
            SSE OFFSET(21) NUMBITS(1) [],
            /// Transfer register.
            SRT OFFSET(16) NUMBITS(5) [],
            /// 64-bit register.
            SF OFFSET(15) NUMBITS(1) [],
            /// Cache maintenance operation.
            CM OFFSET(8) NUMBITS(1) [],
            /// Fault on a stage-1 table walk.
            S1PTW OFFSET(7) NUMBITS(1) [],
            /// Write, not read.
            WNR OFFSET(6) NUMBITS(1) [],
            /// Fault status code.
            DFSC OFFSET(0) NUMBITS(6) []
        ],
        /// ISS of a trapped MSR/MRS (ESR_EL2.EC = 0x18).
        pub ISS_SYSREG [
            OP0 OFFSET(20) NUMBITS(2) [],
            OP2 OFFSET(17) NUMBITS(3) [],
            OP1 OFFSET(14) NUMBITS(3) [],
            CRN OFFSET(10) NUMBITS(4) [],
            RT OFFSET(5) NUMBITS(5) [],
            CRM OFFSET(1) NUMBITS(4) [],
            /// 1: MRS (read), 0: MSR (write).
            DIRECTION OFFSET(0) NUMBITS(1) []
        ]
    ];
}

/// One emulated load or store: the faulting guest-physical address and the
/// data abort's syndrome (ISS), whose fields are read where they are used
/// rather than unpacked at the trap entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioAccess {
    /// Guest-physical address.
    pub ipa: u64,
    /// ISS of the data abort, with ISV set (its syndrome fields valid).
    iss: u32,
}

impl MmioAccess {
    /// An access described field by field (tests and fakes; the trap
    /// entry decodes it from the syndrome). `width` is 1, 2, 4 or 8 (any
    /// other value is taken as the power of two below it, at most 8).
    pub fn new(
        ipa: u64,
        width: u8,
        write: bool,
        reg: u8,
        sign_extend: bool,
        sixty_four: bool,
    ) -> Self {
        let sas = u64::from(width.max(1).ilog2().min(3));
        let mut iss = LocalRegisterCopy::<u64, ISS_DATA_ABORT::Register>::new(0);
        iss.modify(
            ISS_DATA_ABORT::ISV::SET
                + ISS_DATA_ABORT::SAS.val(sas)
                + ISS_DATA_ABORT::SSE.val(u64::from(sign_extend))
                + ISS_DATA_ABORT::SRT.val(u64::from(reg & 31))
                + ISS_DATA_ABORT::SF.val(u64::from(sixty_four))
                + ISS_DATA_ABORT::WNR.val(u64::from(write)),
        );
        MmioAccess {
            ipa,
            iss: iss.get() as u32,
        }
    }

    #[inline(always)]
    fn field(&self, f: tock_registers::fields::Field<u64, ISS_DATA_ABORT::Register>) -> u64 {
        LocalRegisterCopy::<u64, ISS_DATA_ABORT::Register>::new(u64::from(self.iss)).read(f)
    }

    /// Access size in bytes (1, 2, 4 or 8).
    #[inline(always)]
    pub fn width(&self) -> u8 {
        1 << self.field(ISS_DATA_ABORT::SAS)
    }

    /// A store (true) or a load.
    #[inline(always)]
    pub fn write(&self) -> bool {
        self.field(ISS_DATA_ABORT::WNR) != 0
    }

    /// General-purpose register number (31 = xzr/wzr).
    #[inline(always)]
    pub fn reg(&self) -> u8 {
        self.field(ISS_DATA_ABORT::SRT) as u8
    }

    /// A load to sign-extend to the register width.
    #[inline(always)]
    pub fn sign_extend(&self) -> bool {
        self.field(ISS_DATA_ABORT::SSE) != 0
    }

    /// The register is 64 bits wide (else 32: the upper half is cleared).
    #[inline(always)]
    pub fn sixty_four(&self) -> bool {
        self.field(ISS_DATA_ABORT::SF) != 0
    }

    /// The value a load puts in the register, from the `width` bytes read:
    /// the low `width` bytes, sign- or zero-extended, and for a 32-bit
    /// register the upper half cleared.
    #[inline]
    pub fn load_value(&self, raw: u64) -> u64 {
        // Shift the loaded bytes to the top and back: one arithmetic or
        // logical shift extends them. 56, 48, 32 or 0 for 1, 2, 4 or 8
        // bytes.
        let shift = (64 - (8u32 << self.field(ISS_DATA_ABORT::SAS))) & 63;
        let top = raw << shift;
        let v = if self.sign_extend() {
            ((top as i64) >> shift) as u64
        } else {
            top >> shift
        };
        if self.sixty_four() {
            v
        } else {
            v & 0xffff_ffff
        }
    }

    /// The bytes a store writes, from the register's value.
    #[inline]
    pub fn store_value(&self, reg_value: u64) -> u64 {
        // All ones shifted down by 56, 48, 32 or 0 (as in `load_value`):
        // the mask of the low 1, 2, 4 or 8 bytes, with no branch.
        let shift = (64 - (8u32 << self.field(ISS_DATA_ABORT::SAS))) & 63;
        reg_value & (u64::MAX >> shift)
    }
}

/// Why a data abort cannot be emulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortError {
    /// ISV = 0: no instruction syndrome (e.g. a load pair, or a write-back
    /// addressing mode); the hypervisor does not decode instructions.
    NoSyndrome,
    /// A translation-table walk fault on the guest's own stage-1 tables
    /// (S1PTW), meaning its tables sit outside its memory.
    StageOneWalk,
}

impl core::fmt::Display for AbortError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            AbortError::NoSyndrome => "no instruction syndrome (ISV=0)",
            AbortError::StageOneWalk => "stage-1 table walk outside guest memory",
        })
    }
}

impl core::error::Error for AbortError {}

/// A trapped system-register access (MSR/MRS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysRegAccess {
    /// The register's encoding.
    pub reg: SysReg,
    /// The general-purpose register (31 = xzr).
    pub rt: usize,
    /// MRS (read) rather than MSR.
    pub read: bool,
}

/// A system register's encoding (op0, op1, CRn, CRm, op2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysReg {
    /// op0.
    pub op0: u8,
    /// op1.
    pub op1: u8,
    /// CRn.
    pub crn: u8,
    /// CRm.
    pub crm: u8,
    /// op2.
    pub op2: u8,
}

impl SysReg {
    /// ACTLR_EL1: implementation-defined controls (trapped by HCR_EL2.TACR).
    pub const ACTLR_EL1: SysReg = SysReg {
        op0: 3,
        op1: 0,
        crn: 1,
        crm: 0,
        op2: 1,
    };
    /// ICC_SGI1R_EL1: generate a group-1 SGI.
    pub const ICC_SGI1R_EL1: SysReg = SysReg {
        op0: 3,
        op1: 0,
        crn: 12,
        crm: 11,
        op2: 5,
    };
    /// ICC_IAR1_EL1: acknowledge a group-1 interrupt.
    pub const ICC_IAR1_EL1: SysReg = SysReg {
        op0: 3,
        op1: 0,
        crn: 12,
        crm: 12,
        op2: 0,
    };

    /// Whether this is one of the group-1 CPU interface registers that
    /// ICH_HCR_EL2.TALL1 traps: ICC_IAR1, EOIR1, HPPIR1, BPR1, IGRPEN1
    /// (CRm 12, op2 0-3 and 7) and ICC_AP1R0-3 (CRm 9, op2 0-3).
    pub fn is_icc_group1(self) -> bool {
        self.op0 == 3
            && self.op1 == 0
            && self.crn == 12
            && match self.crm {
                12 => matches!(self.op2, 0..=3 | 7),
                9 => self.op2 <= 3,
                _ => false,
            }
    }
}

/// A guest exit, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// A load or store to guest-physical memory its stage 2 does not map,
    /// with the syndrome needed to emulate it.
    Mmio(MmioAccess),
    /// A data abort that cannot be emulated.
    BadDataAbort {
        /// Why.
        why: AbortError,
        /// The faulting virtual address (FAR_EL2).
        far: u64,
        /// It was a write.
        write: bool,
    },
    /// An instruction fetch from guest-physical memory its stage 2 does
    /// not map (no RAM there: nothing can be executed).
    InstructionAbort {
        /// The faulting virtual address (FAR_EL2; ELR holds it too).
        far: u64,
        /// The guest-physical address (HPFAR_EL2), for messages.
        ipa: u64,
    },
    /// HVC from AArch64 (ELR already points past it).
    Hvc {
        /// The immediate.
        imm: u16,
    },
    /// A trapped SMC from AArch64 (ELR points at it).
    Smc {
        /// The immediate.
        imm: u16,
    },
    /// A trapped MSR/MRS.
    SysReg(SysRegAccess),
    /// A trapped WFI or WFE.
    Wfx,
    /// A physical IRQ while the guest ran.
    Irq,
    /// A physical FIQ while the guest ran.
    Fiq,
    /// A physical SError while the guest ran.
    SError,
    /// Any other synchronous exception.
    Unexpected {
        /// The exception class.
        ec: u8,
    },
}

/// Decodes a trap from the guest taken through vector `kind` (lower EL).
/// `hpfar` is only read for an abort.
#[inline(always)]
pub fn decode(kind: VectorKind, esr: u64, far: u64, hpfar: impl FnOnce() -> u64) -> Exit {
    match kind.0 % 4 {
        1 => Exit::Irq,
        2 => Exit::Fiq,
        3 => Exit::SError,
        _ => decode_sync(esr, far, hpfar),
    }
}

/// Decodes a synchronous exception from the guest (the vector of
/// [`decode`]'s synchronous kind). `hpfar` is only read for an abort.
///
/// The exit of every emulated device access, a data abort from the guest
/// with its syndrome valid (ISV) and not taken on a stage-1 table walk
/// (S1PTW), is recognised first by one masked compare of the whole
/// syndrome (exception class, ISV and S1PTW together); anything else goes
/// to [`decode_general`], which decodes that case the same way.
#[inline(always)]
pub fn decode_sync(esr: u64, far: u64, hpfar: impl FnOnce() -> u64) -> Exit {
    const EC_MASK: u64 = 0x3f << 26;
    const ISV: u64 = 1 << 24;
    const S1PTW: u64 = 1 << 7;
    const DATA_ABORT: u64 = ESR_EL2::EC::Value::DataAbortLowerEL as u64;
    if esr & (EC_MASK | ISV | S1PTW) == DATA_ABORT << 26 | ISV {
        return Exit::Mmio(MmioAccess {
            ipa: fault_ipa(hpfar(), far),
            iss: (esr & 0x1ff_ffff) as u32,
        });
    }
    decode_general(esr, far, hpfar)
}

/// [`decode_sync`] of any syndrome, class by class.
#[inline(always)]
fn decode_general(esr: u64, far: u64, hpfar: impl FnOnce() -> u64) -> Exit {
    use ESR_EL2::EC::Value as Ec;
    // The classes handled, as plain values to compare against (a match on
    // the raw field is cheaper than converting it into the enum first).
    const DATA_ABORT: u64 = Ec::DataAbortLowerEL as u64;
    const INSTR_ABORT: u64 = Ec::InstrAbortLowerEL as u64;
    const HVC64: u64 = Ec::HVC64 as u64;
    const SMC64: u64 = Ec::SMC64 as u64;
    const MSR_MRS: u64 = Ec::TrappedMsrMrs as u64;
    const WFX: u64 = Ec::TrappedWFIorWFE as u64;
    let esr_reg: LocalRegisterCopy<u64, ESR_EL2::Register> = LocalRegisterCopy::new(esr);
    let iss = esr_reg.read(ESR_EL2::ISS);
    let ec = esr_reg.read(ESR_EL2::EC);
    if ec == DATA_ABORT {
        let da: LocalRegisterCopy<u64, ISS_DATA_ABORT::Register> = LocalRegisterCopy::new(iss);
        let write = da.is_set(ISS_DATA_ABORT::WNR);
        if da.is_set(ISS_DATA_ABORT::S1PTW) {
            return Exit::BadDataAbort {
                why: AbortError::StageOneWalk,
                far,
                write,
            };
        }
        if !da.is_set(ISS_DATA_ABORT::ISV) {
            return Exit::BadDataAbort {
                why: AbortError::NoSyndrome,
                far,
                write,
            };
        }
        // The ISS is 25 bits: it fits; the fields are read from it later.
        return Exit::Mmio(MmioAccess {
            ipa: fault_ipa(hpfar(), far),
            iss: iss as u32,
        });
    }
    match ec {
        INSTR_ABORT => Exit::InstructionAbort {
            far,
            ipa: fault_ipa(hpfar(), far),
        },
        HVC64 => Exit::Hvc {
            imm: (iss & 0xffff) as u16,
        },
        SMC64 => Exit::Smc {
            imm: (iss & 0xffff) as u16,
        },
        MSR_MRS => {
            let s: LocalRegisterCopy<u64, ISS_SYSREG::Register> = LocalRegisterCopy::new(iss);
            Exit::SysReg(SysRegAccess {
                reg: SysReg {
                    op0: s.read(ISS_SYSREG::OP0) as u8,
                    op1: s.read(ISS_SYSREG::OP1) as u8,
                    crn: s.read(ISS_SYSREG::CRN) as u8,
                    crm: s.read(ISS_SYSREG::CRM) as u8,
                    op2: s.read(ISS_SYSREG::OP2) as u8,
                },
                rt: s.read(ISS_SYSREG::RT) as usize,
                read: s.is_set(ISS_SYSREG::DIRECTION),
            })
        }
        WFX => Exit::Wfx,
        _ => Exit::Unexpected { ec: ec as u8 },
    }
}

/// The faulting guest-physical address of a stage-2 abort: the page from
/// HPFAR_EL2 (bits [47:12] in [43:4]), the offset from FAR_EL2.
#[inline(always)]
fn fault_ipa(hpfar: u64, far: u64) -> u64 {
    ((hpfar >> 4) << 12) & 0x000f_ffff_ffff_f000 | (far & 0xfff)
}

/// What a handler wants done before the guest runs again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Return where the exit was taken (interrupts, HVC whose ELR already
    /// points past the call).
    Resume,
    /// Skip the trapping instruction.
    Advance,
    /// An emulated load: register `reg` (31 = discarded) gets `value`,
    /// then the instruction is skipped.
    Load {
        /// Destination register.
        reg: u8,
        /// Its new value.
        value: u64,
    },
    /// A call's result in x0; `advance` skips the calling instruction
    /// (a trapped SMC; an HVC has already advanced).
    Return {
        /// The result.
        x0: u64,
        /// Skip the call.
        advance: bool,
    },
    /// An undefined-instruction exception to the guest's EL1.
    InjectUndefined,
    /// A synchronous external abort on an instruction fetch (prefetch
    /// abort) to the guest's EL1, as QEMU and KVM report a fetch from an
    /// address nothing answers at.
    InjectPrefetchAbort {
        /// The faulting virtual address (FAR_EL1; ELR_EL1 holds it too).
        far: u64,
    },
    /// A synchronous external abort on a data access to the guest's EL1.
    InjectDataAbort {
        /// The faulting virtual address.
        far: u64,
        /// The access was a write.
        write: bool,
    },
    /// A virtual SError to the guest, then resume.
    InjectSError,
    /// The vCPU stops on this CPU: the CPU goes back to its idle loop.
    Stop,
}

impl Action {
    /// Whether [`apply`] writes one of x19-x29 in the frame (a load into
    /// one of them). The guest-sync vector restores those registers from
    /// the frame only then: otherwise the handler, which preserves them
    /// (AAPCS64 callee-saved), returns them as the guest left them.
    #[inline(always)]
    pub fn writes_callee_saved(&self) -> bool {
        matches!(self, Action::Load { reg, .. } if (19..=29).contains(reg))
    }
}

/// ESR_EL1 values the hypervisor injects.
mod inject {
    /// IL: a 32-bit instruction.
    pub const IL: u64 = 1 << 25;
    /// EC of an unknown-reason exception.
    pub const EC_UNKNOWN: u64 = 0x00;
    /// EC of an instruction abort from a lower EL (the guest's EL0).
    pub const EC_IABT_LOWER: u64 = 0x20;
    /// EC of an instruction abort at the same EL (the guest's EL1).
    pub const EC_IABT_CUR: u64 = 0x21;
    /// EC of a data abort from a lower EL (the guest's EL0).
    pub const EC_DABT_LOWER: u64 = 0x24;
    /// EC of a data abort at the same EL (the guest's EL1).
    pub const EC_DABT_CUR: u64 = 0x25;
    /// WnR in a data abort's ISS.
    pub const WNR: u64 = 1 << 6;
    /// DFSC/IFSC: synchronous external abort.
    pub const FSC_EXTERNAL: u64 = 0x10;
}

/// Whether a saved SPSR describes EL1 (rather than EL0).
pub fn spsr_is_el1(spsr: u64) -> bool {
    spsr & 0x1c == 0x4
}

/// Whether a saved SPSR has IRQs masked (PSTATE.I): the guest cannot take
/// a virtual interrupt until it unmasks them.
pub fn spsr_irqs_masked(spsr: u64) -> bool {
    spsr & (1 << 7) != 0
}

/// Moves the guest past the instruction that trapped: 4 bytes, or 2 for a
/// 16-bit instruction (ESR_EL2.IL clear; only T32 has them, and the
/// hypervisor does not run AArch32 guests, but the syndrome says which).
#[inline(always)]
fn skip_instruction(frame: &mut TrapFrame) {
    // 2 + 2 x IL: the bit added in, no select.
    const IL_SHIFT: u32 = inject::IL.trailing_zeros();
    frame.elr = frame
        .elr
        .wrapping_add(2 + ((frame.esr >> IL_SHIFT) & 1) * 2);
}

/// An emulated load's result into register `reg` (31: discarded), and
/// the loading instruction skipped.
#[inline(always)]
fn load(frame: &mut TrapFrame, reg: u8, value: u64) {
    if let Some(x) = frame.x.get_mut(usize::from(reg)) {
        *x = value; // 31 (xzr) is past the end: discarded
    }
    skip_instruction(frame);
}

/// Carries out `action` on the saved guest registers. Returns false for
/// [`Action::Stop`] (the caller must not return to the guest).
#[inline(always)]
pub fn apply<A: Arch>(frame: &mut TrapFrame, action: Action) -> bool {
    // The answer to every emulated load first, on its own (the same
    // work as its arm below).
    if let Action::Load { reg, value } = action {
        load(frame, reg, value);
        return true;
    }
    match action {
        Action::Resume => {}
        Action::Advance => skip_instruction(frame),
        Action::Load { reg, value } => load(frame, reg, value),
        Action::Return { x0, advance } => {
            frame.x[0] = x0;
            if advance {
                skip_instruction(frame);
            }
        }
        Action::InjectUndefined => {
            A::inject_sync_exception(frame, inject::EC_UNKNOWN << 26 | inject::IL, 0);
        }
        Action::InjectPrefetchAbort { far } => {
            let ec = if spsr_is_el1(frame.spsr) {
                inject::EC_IABT_CUR
            } else {
                inject::EC_IABT_LOWER
            };
            let esr = ec << 26 | inject::IL | inject::FSC_EXTERNAL;
            A::inject_sync_exception(frame, esr, far);
        }
        Action::InjectDataAbort { far, write } => {
            let ec = if spsr_is_el1(frame.spsr) {
                inject::EC_DABT_CUR
            } else {
                inject::EC_DABT_LOWER
            };
            let wnr = if write { inject::WNR } else { 0 };
            let esr = ec << 26 | inject::IL | wnr | inject::FSC_EXTERNAL;
            A::inject_sync_exception(frame, esr, far);
        }
        Action::InjectSError => A::inject_virtual_serror(),
        Action::Stop => return false,
    }
    true
}

/// The name of an exception class, for messages.
pub fn class_name(ec: u8) -> &'static str {
    super::frame::exception_class_name(ec)
}

#[cfg(test)]
mod tests;
