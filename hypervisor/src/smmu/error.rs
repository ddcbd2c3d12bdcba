//! [`SmmuError`]: every way an SMMU operation can fail.

use core::fmt;

/// `CMDQ_CONS.ERR` codes (the `CERROR_*` values of the architecture).
pub mod cerror {
    /// No error.
    pub const NONE: u8 = 0;
    /// Illegal command (unknown opcode or bad field).
    pub const ILL: u8 = 1;
    /// Abort on command fetch (the queue memory was not readable).
    pub const ABT: u8 = 2;
    /// ATC invalidation completion timeout (ATS only; never issued here).
    pub const ATC_INV_SYNC: u8 = 3;

    /// A short description of `code`.
    pub fn name(code: u8) -> &'static str {
        match code {
            NONE => "no error",
            ILL => "illegal command",
            ABT => "abort on command fetch",
            ATC_INV_SYNC => "ATC invalidation timeout",
            _ => "unknown command error",
        }
    }
}

/// Why an SMMU operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmmuError {
    /// The SMMU cannot serve as the stage-2 backend (the reason from
    /// [`crate::smmu::idregs::Features::unusable_reason`]).
    Unusable(&'static str),
    /// Allocating DMA memory for `what` failed, or the memory handed out
    /// was unusable (misaligned, null).
    NoMemory {
        /// The structure being allocated.
        what: &'static str,
    },
    /// A register did not acknowledge a write within the poll limit
    /// (`CR0ACK`, `IRQ_CTRLACK`, `GBPA.UPDATE`).
    AckTimeout {
        /// The register waited on.
        register: &'static str,
    },
    /// A `CMD_SYNC` was not consumed within the poll limit.
    SyncTimeout,
    /// The command queue stayed full for the whole poll limit.
    QueueFullTimeout,
    /// The SMMU stopped on a command (`CMDQ_CONS.ERR`); the command was
    /// skipped (replaced by a `CMD_SYNC`) or retried and the queue runs
    /// again. The commands after it were executed.
    CommandError {
        /// `CMDQ_CONS.ERR` (see [`cerror`]).
        code: u8,
        /// The offending command as it sat in the queue.
        cmd: [u64; 2],
    },
    /// A stream ID beyond what the stream table covers.
    BadStreamId {
        /// The stream ID.
        sid: u32,
        /// Number of stream IDs covered (SIDs `0..limit` are valid).
        limit: u64,
    },
    /// A stage-2 configuration or VMID the SMMU cannot use.
    BadConfig(&'static str),
    /// An invalidation range that overflows or exceeds 52-bit addresses.
    BadRange,
}

impl fmt::Display for SmmuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SmmuError::Unusable(why) => write!(f, "SMMU unusable: {why}"),
            SmmuError::NoMemory { what } => write!(f, "no DMA memory for the {what}"),
            SmmuError::AckTimeout { register } => {
                write!(f, "SMMU did not acknowledge a write ({register})")
            }
            SmmuError::SyncTimeout => f.write_str("SMMU CMD_SYNC timed out"),
            SmmuError::QueueFullTimeout => f.write_str("SMMU command queue stayed full"),
            SmmuError::CommandError { code, cmd } => write!(
                f,
                "SMMU command error {code} ({}) on command {:#018x} {:#018x}",
                cerror::name(*code),
                cmd[0],
                cmd[1]
            ),
            SmmuError::BadStreamId { sid, limit } => {
                write!(
                    f,
                    "stream ID {sid:#x} beyond the stream table ({limit:#x} IDs)"
                )
            }
            SmmuError::BadConfig(why) => write!(f, "bad stage-2 configuration: {why}"),
            SmmuError::BadRange => f.write_str("invalidation range out of bounds"),
        }
    }
}

impl core::error::Error for SmmuError {}
