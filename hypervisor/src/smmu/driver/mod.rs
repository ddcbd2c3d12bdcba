//! [`Smmu`]: one SMMUv3 driven as a stage-2-only DMA translator.
//!
//! Probe follows Linux's `arm_smmu_device_reset`, with the hypervisor's
//! choices: every stream aborts until it is attached (STE abort, GBPA
//! abort while the SMMU is off), CR2.PTM set (the SMMU ignores the CPUs'
//! broadcast TLB invalidations; every change is invalidated with explicit
//! commands), no ATS, PRI or MSIs (wired interrupts or polling).
//!
//! Not thread-safe by itself: one `Smmu` sits behind a lock, and every
//! method runs to completion (bounded polls) before it returns.

mod ops;
mod options;

pub use options::{GerrorReport, ProbeOptions};

use super::cmd::{CMD_DWORDS, Cmd};
use super::dma::{CacheOps, CacheSync, DmaMemory};
use super::error::SmmuError;
use super::event::EVT_DWORDS;
use super::idregs::Features;
use super::queue::{CommandQueue, DmaQueue, EventQueue, SyncStart};
use super::regs::*;
use super::ste::{Ste, SteOptions};
use super::streamtable::StreamTable;

/// Writes `value` to `reg` and polls `ack` until it reads back `value`.
fn write_ack(
    regs: &mut impl SmmuRegs,
    reg: usize,
    ack: usize,
    value: u32,
    limit: u32,
    name: &'static str,
) -> Result<(), SmmuError> {
    regs.write32(reg, value);
    poll32(regs, ack, limit, |v| v == value)
        .map(|_| ())
        .ok_or(SmmuError::AckTimeout { register: name })
}

/// Sets GBPA.ABORT: while SMMUEN is 0 every transaction is aborted.
fn gbpa_abort(regs: &mut impl SmmuRegs, limit: u32) -> Result<(), SmmuError> {
    let timeout = SmmuError::AckTimeout { register: "GBPA" };
    let v = poll32(regs, GBPA, limit, |v| v & GBPA_UPDATE == 0).ok_or(timeout)?;
    regs.write32(GBPA, v | GBPA_ABORT | GBPA_UPDATE);
    poll32(regs, GBPA, limit, |v| v & GBPA_UPDATE == 0).ok_or(timeout)?;
    Ok(())
}

/// Streams per step of an STE update above which one CFGI_ALL replaces
/// the CFGI_STE commands (as [`ProbeOptions::tlbi_page_limit`] does for
/// TLB invalidation): a guest's whole bus range costs one command, not
/// one per stream, and the batch never needs more than this many.
pub const CFGI_STE_LIMIT: usize = 32;

/// The configuration invalidations of one step of an STE update: one
/// CFGI_STE per stream up to [`CFGI_STE_LIMIT`] streams, one CFGI_ALL
/// (CFGI_STE_RANGE over every StreamID, level-1 descriptors included)
/// beyond. Fixed size, on the stack.
struct CfgiBatch {
    cmds: [Cmd; CFGI_STE_LIMIT],
    streams: usize,
}

impl CfgiBatch {
    const fn new() -> Self {
        Self {
            cmds: [Cmd::sync(); CFGI_STE_LIMIT],
            streams: 0,
        }
    }

    /// Adds stream `sid`; `leaf`: its level-1 descriptor is unchanged.
    fn push(&mut self, sid: u32, leaf: bool) {
        if let Some(slot) = self.cmds.get_mut(self.streams) {
            *slot = Cmd::cfgi_ste(sid, leaf);
        } else {
            self.cmds[0] = Cmd::cfgi_all();
        }
        self.streams += 1;
    }

    fn is_empty(&self) -> bool {
        self.streams == 0
    }

    /// The commands (without the CMD_SYNC).
    fn cmds(&self) -> &[Cmd] {
        if self.streams > CFGI_STE_LIMIT {
            &self.cmds[..1]
        } else {
            &self.cmds[..self.streams]
        }
    }
}

/// One probed, enabled SMMUv3.
pub struct Smmu<R, M, C> {
    regs: R,
    mem: M,
    sync: CacheSync<C>,
    features: Features,
    hyp: bool,
    ste_opts: SteOptions,
    opts: ProbeOptions,
    strtab: StreamTable,
    cmdq: CommandQueue<DmaQueue<C>>,
    evtq: EventQueue<DmaQueue<C>>,
}

impl<R: SmmuRegs, M: DmaMemory, C: CacheOps + Clone> Smmu<R, M, C> {
    /// [`Smmu::probe_with`] with [`ProbeOptions::DEFAULT`].
    pub fn probe(regs: R, mem: M, cache: C, features: &Features) -> Result<Self, SmmuError> {
        Self::probe_with(regs, mem, cache, features, ProbeOptions::DEFAULT)
    }

    /// Resets and enables the SMMU described by `features` (decoded from
    /// its IDRs): refuses one without stage 2, AArch64 tables or the 4 KiB
    /// granule; sets GBPA.ABORT and disables it (CR0 = 0) and its
    /// interrupts; allocates the queues and the stream table (every stream
    /// aborts); programs CR1 (write-back inner shareable when coherent,
    /// non-cacheable otherwise), CR2 (RECINVSID and PTM; E2H off), the
    /// table and queue bases; enables the command queue and invalidates
    /// everything cached (CFGI_ALL, TLBI_EL2_ALL when IDR0.HYP,
    /// TLBI_NSNH_ALL, CMD_SYNC); enables the event queue, then
    /// translation. On error the SMMU is left disabled (aborting traffic
    /// if GBPA could be set) and the DMA memory allocated so far stays
    /// allocated.
    pub fn probe_with(
        mut regs: R,
        mut mem: M,
        cache: C,
        features: &Features,
        opts: ProbeOptions,
    ) -> Result<Self, SmmuError> {
        if let Some(why) = features.unusable_reason() {
            return Err(SmmuError::Unusable(why));
        }
        let limit = opts.poll_limit;
        let hyp = regs.read32(IDR0) & IDR0_HYP != 0;
        let coherent = opts.coherent.unwrap_or(features.coherent);
        let ste_opts = SteOptions {
            coherent_walk: coherent,
            shcfg_incoming: regs.read32(IDR1) & IDR1_ATTR_TYPES_OVR != 0,
        };
        let sync = CacheSync::new(cache, coherent);

        gbpa_abort(&mut regs, limit)?;
        write_ack(&mut regs, CR0, CR0ACK, 0, limit, "CR0ACK")?;
        write_ack(&mut regs, IRQ_CTRL, IRQ_CTRLACK, 0, limit, "IRQ_CTRLACK")?;
        regs.write64(GERROR_IRQ_CFG0, 0);
        regs.write64(EVTQ_IRQ_CFG0, 0);

        let cmdq_log2 = features.cmdq_log2.min(opts.cmdq_log2_max);
        let evtq_log2 = features.evtq_log2.min(opts.evtq_log2_max);
        let cmdq_mem = DmaQueue::alloc(&mut mem, cmdq_log2, CMD_DWORDS, sync.clone()).ok_or(
            SmmuError::NoMemory {
                what: "command queue",
            },
        )?;
        let evtq_mem = DmaQueue::alloc(&mut mem, evtq_log2, EVT_DWORDS, sync.clone()).ok_or(
            SmmuError::NoMemory {
                what: "event queue",
            },
        )?;
        cmdq_mem.flush_all();
        evtq_mem.flush_all();
        let strtab = StreamTable::new(&mut mem, &sync, features.sid_bits, features.st_levels)?;

        regs.write32(CR1, cr1(coherent));
        regs.write32(CR2, CR2_RECINVSID | CR2_PTM);
        regs.write64(STRTAB_BASE, strtab.base_reg());
        regs.write32(STRTAB_BASE_CFG, strtab.base_cfg_reg());
        regs.write64(CMDQ_BASE, cmdq_mem.base_reg());
        regs.write32(CMDQ_PROD, 0);
        regs.write32(CMDQ_CONS, 0);
        write_ack(&mut regs, CR0, CR0ACK, CR0_CMDQEN, limit, "CR0ACK")?;

        let mut cmdq = CommandQueue::new(cmdq_mem, cmdq_log2);
        let mut invalidate = alloc::vec![Cmd::cfgi_all()];
        if hyp {
            invalidate.push(Cmd::tlbi_el2_all());
        }
        invalidate.push(Cmd::tlbi_nsnh_all());
        cmdq.submit(&mut regs, &invalidate, limit)?;
        cmdq.sync(&mut regs, limit)?;

        regs.write64(EVTQ_BASE, evtq_mem.base_reg());
        regs.write32(EVTQ_PROD, 0);
        regs.write32(EVTQ_CONS, 0);
        let queues = CR0_CMDQEN | CR0_EVTQEN;
        write_ack(&mut regs, CR0, CR0ACK, queues, limit, "CR0ACK")?;
        write_ack(&mut regs, CR0, CR0ACK, queues | CR0_SMMUEN, limit, "CR0ACK")?;

        Ok(Self {
            regs,
            mem,
            sync,
            features: *features,
            hyp,
            ste_opts,
            opts,
            strtab,
            cmdq,
            evtq: EventQueue::new(evtq_mem, evtq_log2),
        })
    }

    /// What the SMMU implements.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// Whether the SMMU snoops the CPU caches. When it does not, the
    /// caller must clean every stage-2 page-table change to the point of
    /// coherency before invalidating (the driver already does so for the
    /// stream table and the queues).
    pub fn coherent(&self) -> bool {
        self.sync.coherent()
    }

    /// IDR0.HYP (TLBI_EL2_ALL issued at probe).
    pub fn hyp(&self) -> bool {
        self.hyp
    }

    /// How STEs are built for this SMMU.
    pub fn ste_options(&self) -> SteOptions {
        self.ste_opts
    }

    /// The stream table.
    pub fn stream_table(&self) -> &StreamTable {
        &self.strtab
    }

    /// `sid`'s STE (`None`: no level-2 table yet, the stream aborts).
    pub fn ste(&self, sid: u32) -> Result<Option<Ste>, SmmuError> {
        self.strtab.ste(sid)
    }

    /// Submits `cmds` followed by a CMD_SYNC and waits for completion.
    #[inline]
    pub fn issue(&mut self, cmds: &[Cmd]) -> Result<(), SmmuError> {
        let limit = self.opts.poll_limit;
        self.cmdq.sync_after(&mut self.regs, cmds, limit)
    }

    /// [`Smmu::issue`]'s usual work, with no call
    /// ([`CommandQueue::sync_start`]): [`SyncStart::Done`] when it is all
    /// done, else [`Smmu::issue_rest`] finishes it.
    #[inline(always)]
    pub fn issue_start(&mut self, cmds: &[Cmd]) -> SyncStart {
        self.cmdq.sync_start(&mut self.regs, cmds)
    }

    /// Finishes [`Smmu::issue`] after [`Smmu::issue_start`] answered
    /// `started` for the same `cmds` ([`CommandQueue::sync_rest`]).
    pub fn issue_rest(&mut self, cmds: &[Cmd], started: SyncStart) -> Result<(), SmmuError> {
        let limit = self.opts.poll_limit;
        self.cmdq.sync_rest(&mut self.regs, cmds, started, limit)
    }

    fn check_vmid(&self, vmid: u16) -> Result<(), SmmuError> {
        if !self.features.vmid16 && vmid > 0xff {
            return Err(SmmuError::BadConfig("16-bit VMID without IDR0.VMID16"));
        }
        Ok(())
    }
}
