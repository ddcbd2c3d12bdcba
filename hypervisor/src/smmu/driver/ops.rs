//! The operations of a probed [`Smmu`]: attaching and detaching streams,
//! TLB invalidation, event draining, global errors, interrupts.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use super::{GerrorReport, Smmu, write_ack};
use crate::smmu::cmd::{Cmd, plan_s2_invalidation};
use crate::smmu::dma::{CacheOps, DmaMemory};
use crate::smmu::error::SmmuError;
use crate::smmu::queue::EventBatch;
use crate::smmu::regs::*;
use crate::smmu::ste::{S2Config, STE_DWORDS, Ste};

impl<R: SmmuRegs, M: DmaMemory, C: CacheOps + Clone> Smmu<R, M, C> {
    /// Points every stream of `sids` at the stage-2 table of `cfg`. Nothing
    /// changes if `cfg` or a StreamID is refused. Batched version of the
    /// live-STE update sequence: (1) entries in use (translating or
    /// bypass) get word 0 = abort, CFGI_STE each, one CMD_SYNC; (2) words
    /// 1-7 of the new entry, CFGI_STE each, CMD_SYNC; (3) word 0, CFGI_STE
    /// each, CMD_SYNC. CFGI_STE is non-leaf for a stream whose level-2
    /// table was just created (its level-1 descriptor may be cached).
    /// Entries already equal to the target are left alone. Moving streams
    /// away from another VMID leaves that VMID's TLB entries: invalidate
    /// it ([`Smmu::invalidate_vmid`]) before reusing its tables.
    pub fn attach_stage2(
        &mut self,
        sids: impl IntoIterator<Item = u32>,
        cfg: &S2Config,
    ) -> Result<(), SmmuError> {
        cfg.check(&self.features)?;
        let sids: BTreeSet<u32> = sids.into_iter().collect();
        for &sid in &sids {
            self.strtab.check_sid(sid)?;
        }
        let new = Ste::stage2(cfg, self.ste_opts);
        let mut todo = Vec::new();
        let mut live = Vec::new();
        for &sid in &sids {
            let slot = self.strtab.slot(&mut self.mem, &self.sync, sid)?;
            let old = self.strtab.ste(sid)?.unwrap_or(Ste::ABORT);
            if old == new {
                continue;
            }
            if old.config().uses_more_than_word0() {
                live.push((sid, slot.new_l2));
            }
            todo.push((sid, slot.new_l2));
        }
        if !live.is_empty() {
            for &(sid, _) in &live {
                self.strtab.write(&self.sync, sid, &Ste::ABORT, 0..1)?;
            }
            self.cfgi(&live)?;
        }
        if todo.is_empty() {
            return Ok(());
        }
        for &(sid, _) in &todo {
            self.strtab.write(&self.sync, sid, &new, 1..STE_DWORDS)?;
        }
        self.cfgi(&todo)?;
        for &(sid, _) in &todo {
            self.strtab.write(&self.sync, sid, &new, 0..1)?;
        }
        self.cfgi(&todo)
    }

    /// Makes every stream of `sids` abort: word 0 = abort first (one
    /// single-copy-atomic write), then words 1-7 cleared; CFGI_STE each and
    /// CMD_SYNC; then TLBI_S12_VMALL for each VMID the streams translated
    /// with and CMD_SYNC (after the sync, so that no walk through the old
    /// entries can refill the TLB behind the invalidation). Streams already
    /// aborting are left alone. Nothing changes if a StreamID is refused.
    pub fn detach(&mut self, sids: impl IntoIterator<Item = u32>) -> Result<(), SmmuError> {
        let sids: BTreeSet<u32> = sids.into_iter().collect();
        for &sid in &sids {
            self.strtab.check_sid(sid)?;
        }
        let mut changed = Vec::new();
        let mut vmids = BTreeSet::new();
        for &sid in &sids {
            let Some(old) = self.strtab.ste(sid)? else {
                continue;
            };
            if old == Ste::ABORT {
                continue;
            }
            if let Some(cfg) = old.s2_config() {
                vmids.insert(cfg.vmid);
            }
            self.strtab.write(&self.sync, sid, &Ste::ABORT, 0..1)?;
            self.strtab
                .write(&self.sync, sid, &Ste::ABORT, 1..STE_DWORDS)?;
            changed.push((sid, false));
        }
        if changed.is_empty() {
            return Ok(());
        }
        self.cfgi(&changed)?;
        if vmids.is_empty() {
            return Ok(());
        }
        let tlbi: Vec<Cmd> = vmids.into_iter().map(Cmd::tlbi_s12_vmall).collect();
        self.issue(&tlbi)
    }

    /// Invalidates `vmid`'s TLB entries for `[ipa, ipa + len)` and waits:
    /// range commands with IDR3.RIL, else per-page commands up to
    /// [`super::ProbeOptions::tlbi_page_limit`], else the whole VMID. Leaf-only,
    /// matching `PageTable::unmap`, which clears leaf descriptors and keeps
    /// the tables. An empty range does nothing.
    pub fn invalidate_range(&mut self, vmid: u16, ipa: u64, len: u64) -> Result<(), SmmuError> {
        self.check_vmid(vmid)?;
        let cmds = plan_s2_invalidation(
            vmid,
            ipa,
            len,
            true,
            self.features.ril,
            self.opts.tlbi_page_limit,
        )?;
        if cmds.is_empty() {
            return Ok(());
        }
        self.issue(&cmds)
    }

    /// Invalidates every TLB entry of `vmid` and waits (a domain is being
    /// destroyed, or its tables freed).
    pub fn invalidate_vmid(&mut self, vmid: u16) -> Result<(), SmmuError> {
        self.check_vmid(vmid)?;
        self.issue(&[Cmd::tlbi_s12_vmall(vmid)])
    }

    /// Reads every pending event record (see [`crate::smmu::queue::EventQueue::drain`]).
    pub fn drain_events(&mut self) -> EventBatch {
        self.evtq.drain(&mut self.regs)
    }

    /// Handles and acknowledges active global errors: skips the command
    /// of a CMDQ_ERR (reported again by the next sync), disables the SMMU
    /// on service failure, and toggles GERRORN to match GERROR for every
    /// active bit.
    pub fn handle_gerror(&mut self) -> GerrorReport {
        let gerror = self.regs.read32(GERROR);
        let gerrorn = self.regs.read32(GERRORN);
        let active = (gerror ^ gerrorn) & GERROR_ERR_MASK;
        let mut report = GerrorReport {
            active,
            cmdq_error: None,
            service_failure: active & GERROR_SFM_ERR != 0,
        };
        if active == 0 {
            return report;
        }
        if active & GERROR_CMDQ_ERR != 0 {
            let skipped = self.cmdq.skip(&self.regs);
            self.cmdq.note_error(skipped);
            report.cmdq_error = Some(skipped);
        }
        self.regs.write32(GERRORN, gerrorn ^ active);
        if report.service_failure {
            // Best effort: GBPA already aborts, so a disabled SMMU blocks
            // every transaction.
            let _ = self.disable();
        }
        report
    }

    /// Turns the SMMU's wired interrupts on or off: event queue (records
    /// pending) and global errors. Edge-triggered on QEMU's virt machine.
    pub fn enable_irqs(&mut self, evtq: bool, gerror: bool) -> Result<(), SmmuError> {
        let mut v = 0;
        if evtq {
            v |= IRQ_CTRL_EVTQ_IRQEN;
        }
        if gerror {
            v |= IRQ_CTRL_GERROR_IRQEN;
        }
        let limit = self.opts.poll_limit;
        write_ack(
            &mut self.regs,
            IRQ_CTRL,
            IRQ_CTRLACK,
            v,
            limit,
            "IRQ_CTRLACK",
        )
    }

    /// Disables translation and the queues (CR0 = 0): every transaction
    /// aborts through GBPA.
    pub fn disable(&mut self) -> Result<(), SmmuError> {
        let limit = self.opts.poll_limit;
        write_ack(&mut self.regs, CR0, CR0ACK, 0, limit, "CR0ACK")
    }
}
