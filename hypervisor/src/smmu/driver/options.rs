//! [`ProbeOptions`] (tunables of the probe) and [`GerrorReport`] (what
//! the global error handler found).

use core::fmt;

#[cfg(doc)]
use super::Smmu;
use crate::smmu::cmd::{CMD_DWORDS, DEFAULT_PAGE_LIMIT};
use crate::smmu::error::cerror;
use crate::smmu::regs::*;

/// Tunables of [`Smmu::probe_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeOptions {
    /// Register reads before a poll gives up (CR0ACK, GBPA, CMD_SYNC,
    /// room in the command queue). With [`SmmuRegs::relax`] waiting 1 µs
    /// the default is about a second, Linux's `ARM_SMMU_POLL_TIMEOUT_US`.
    pub poll_limit: u32,
    /// Upper bound on log2 of the command queue entries (IDR1.CMDQS may
    /// allow more).
    pub cmdq_log2_max: u32,
    /// Upper bound on log2 of the event queue entries (IDR1.EVENTQS).
    pub evtq_log2_max: u32,
    /// Without range invalidation: pages above which one TLBI_S12_VMALL
    /// replaces per-page TLBI_S2_IPA commands.
    pub tlbi_page_limit: u64,
    /// Coherency as firmware describes it (`dma-coherent` in the device
    /// tree), which wins over IDR0.COHACC as in Linux; `None`: trust
    /// IDR0.COHACC.
    pub coherent: Option<bool>,
}

impl ProbeOptions {
    /// 10^6 polls, 256 commands, 1 024 events (32 KiB: a burst of faults,
    /// such as the 128 events of one 4 KiB DMA, does not overflow it), 64
    /// pages, IDR0.COHACC.
    pub const DEFAULT: ProbeOptions = ProbeOptions {
        poll_limit: 1_000_000,
        cmdq_log2_max: 8,
        evtq_log2_max: 10,
        tlbi_page_limit: DEFAULT_PAGE_LIMIT,
        coherent: None,
    };
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What [`Smmu::handle_gerror`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GerrorReport {
    /// GERROR bits that were active (and are now acknowledged).
    pub active: u32,
    /// The command skipped for GERROR.CMDQ_ERR: CMDQ_CONS.ERR and the
    /// command.
    pub cmdq_error: Option<(u8, [u64; CMD_DWORDS])>,
    /// The SMMU entered service failure mode; it has been disabled (all
    /// traffic aborts through GBPA).
    pub service_failure: bool,
}

impl GerrorReport {
    /// No error was active.
    pub fn is_empty(&self) -> bool {
        self.active == 0
    }
}

impl fmt::Display for GerrorReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.active == 0 {
            return f.write_str("no global error");
        }
        let names = [
            (GERROR_CMDQ_ERR, "CMDQ_ERR"),
            (GERROR_EVTQ_ABT_ERR, "EVTQ_ABT_ERR (events lost)"),
            (GERROR_PRIQ_ABT_ERR, "PRIQ_ABT_ERR"),
            (GERROR_MSI_CMDQ_ABT_ERR, "MSI_CMDQ_ABT_ERR"),
            (GERROR_MSI_EVTQ_ABT_ERR, "MSI_EVTQ_ABT_ERR"),
            (GERROR_MSI_PRIQ_ABT_ERR, "MSI_PRIQ_ABT_ERR"),
            (GERROR_MSI_GERROR_ABT_ERR, "MSI_GERROR_ABT_ERR"),
            (GERROR_SFM_ERR, "SFM_ERR (service failure, SMMU disabled)"),
        ];
        write!(f, "global errors {:#x}:", self.active)?;
        for (bit, name) in names {
            if self.active & bit != 0 {
                write!(f, " {name}")?;
            }
        }
        if let Some((code, cmd)) = self.cmdq_error {
            write!(
                f,
                "; skipped command {:#018x} {:#018x} ({})",
                cmd[0],
                cmd[1],
                cerror::name(code)
            )?;
        }
        Ok(())
    }
}
