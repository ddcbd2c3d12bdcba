//! The operations of a probed [`Smmu`]: attaching and detaching streams,
//! TLB invalidation, event draining, global errors, interrupts.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use super::{CfgiBatch, GerrorReport, Smmu, write_ack};
use crate::smmu::cmd::{Cmd, plan_s2_invalidation};
use crate::smmu::dma::{CacheOps, DmaMemory};
use crate::smmu::error::SmmuError;
use crate::smmu::queue::EventBatch;
use crate::smmu::regs::*;
use crate::smmu::ste::{S2Config, STE_DWORDS, Ste};
use crate::smmu::streams::{SidRange, normalize};
use crate::smmu::streamtable::SPLIT;

impl<R: SmmuRegs, M: DmaMemory, C: CacheOps + Clone> Smmu<R, M, C> {
    /// `sids` as sorted, merged ranges, or the first StreamID the table
    /// does not cover. Memory for the ranges only: consecutive StreamIDs
    /// given one by one are merged as they come.
    fn checked_ranges(
        &self,
        sids: impl IntoIterator<Item = impl Into<SidRange>>,
    ) -> Result<Vec<SidRange>, SmmuError> {
        let mut ranges: Vec<SidRange> = Vec::new();
        for r in sids {
            let r: SidRange = r.into();
            match ranges.last_mut() {
                Some(last)
                    if r.first <= r.last
                        && last.first <= r.first
                        && u64::from(r.first) <= u64::from(last.last) + 1 =>
                {
                    last.last = last.last.max(r.last);
                }
                _ => ranges.push(r),
            }
        }
        normalize(&mut ranges);
        for r in &ranges {
            self.strtab.check_range(*r)?;
        }
        Ok(ranges)
    }

    /// Points every stream of `sids` (StreamIDs or ranges of them) at the
    /// stage-2 table of `cfg`. Nothing changes if `cfg` or a StreamID is
    /// refused. Batched version of the live-STE update sequence, each step
    /// one walk over the ranges: (1) entries in use (translating or
    /// bypass) get word 0 = abort, CFGI, one CMD_SYNC; (2) words 1-7 of
    /// the new entry, CFGI, CMD_SYNC; (3) word 0, CFGI, CMD_SYNC. CFGI is
    /// one CFGI_STE per stream, or one CFGI_ALL for a step changing more
    /// than [`super::CFGI_STE_LIMIT`] streams; a CFGI_STE is non-leaf for
    /// the first stream of a level-2 table created here (its level-1
    /// descriptor may be cached). Entries already equal to the target are
    /// left alone. The level-2 tables the ranges need are allocated first
    /// (the memory the entries take); beyond that the work is one pass per
    /// step over the entries and the memory is the ranges. Moving streams
    /// away from another VMID leaves that VMID's TLB entries: invalidate
    /// it ([`Smmu::invalidate_vmid`]) before reusing its tables.
    pub fn attach_stage2(
        &mut self,
        sids: impl IntoIterator<Item = impl Into<SidRange>>,
        cfg: &S2Config,
    ) -> Result<(), SmmuError> {
        cfg.check(&self.features)?;
        let ranges = self.checked_ranges(sids)?;
        let new = Ste::stage2(cfg, self.ste_opts);
        let mut created = Vec::new();
        for r in &ranges {
            self.strtab
                .populate(&mut self.mem, &self.sync, *r, &mut created)?;
        }
        // (1) Live entries that change go offline. An entry differs from
        // `new` from here until step 3 exactly when it has to change:
        // step 1 only turns word 0 of such entries to abort (never the
        // target's word 0), step 2 leaves word 0 alone.
        let mut cfgi = CfgiBatch::new();
        for r in &ranges {
            for e in self.strtab.entries(*r) {
                let old = e.read();
                if old != new && old.config().uses_more_than_word0() {
                    e.write(&self.sync, &Ste::ABORT, 0..1);
                    cfgi.push(e.sid, true);
                }
            }
        }
        if !cfgi.is_empty() {
            self.issue(cfgi.cmds())?;
        }
        // (2) Words 1-7.
        let mut cfgi = CfgiBatch::new();
        let mut fresh = FreshTables::new(&created);
        for r in &ranges {
            for e in self.strtab.entries(*r) {
                if e.read() != new {
                    e.write(&self.sync, &new, 1..STE_DWORDS);
                    cfgi.push(e.sid, !fresh.first_of(e.sid));
                }
            }
        }
        if cfgi.is_empty() {
            return Ok(());
        }
        self.issue(cfgi.cmds())?;
        // (3) Word 0: the entries of step 2 are the ones whose word 0 is
        // not yet the target's.
        let mut cfgi = CfgiBatch::new();
        let mut fresh = FreshTables::new(&created);
        for r in &ranges {
            for e in self.strtab.entries(*r) {
                if e.word0() != new.0[0] {
                    e.write(&self.sync, &new, 0..1);
                    cfgi.push(e.sid, !fresh.first_of(e.sid));
                }
            }
        }
        self.issue(cfgi.cmds())
    }

    /// Makes every stream of `sids` (StreamIDs or ranges of them) abort:
    /// word 0 = abort first (one single-copy-atomic write), then words 1-7
    /// cleared; CFGI (one CFGI_STE per stream, one CFGI_ALL beyond
    /// [`super::CFGI_STE_LIMIT`] streams) and CMD_SYNC; then
    /// TLBI_S12_VMALL for each VMID the streams translated with and
    /// CMD_SYNC (after the sync, so that no walk through the old entries
    /// can refill the TLB behind the invalidation). Streams already
    /// aborting are left alone, and so are streams without an entry (no
    /// level-2 table: they abort already): the walk visits only the
    /// level-2 tables that exist, so a 65536-stream range costs what its
    /// few configured tables cost, and allocates only the merged ranges.
    /// Nothing changes if a StreamID is refused.
    pub fn detach(
        &mut self,
        sids: impl IntoIterator<Item = impl Into<SidRange>>,
    ) -> Result<(), SmmuError> {
        let ranges = self.checked_ranges(sids)?;
        let mut cfgi = CfgiBatch::new();
        let mut vmids = BTreeSet::new();
        for r in &ranges {
            for e in self.strtab.entries(*r) {
                let old = e.read();
                if old == Ste::ABORT {
                    continue;
                }
                if let Some(cfg) = old.s2_config() {
                    vmids.insert(cfg.vmid);
                }
                e.write(&self.sync, &Ste::ABORT, 0..1);
                e.write(&self.sync, &Ste::ABORT, 1..STE_DWORDS);
                cfgi.push(e.sid, true);
            }
        }
        if cfgi.is_empty() {
            return Ok(());
        }
        self.issue(cfgi.cmds())?;
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

/// The level-2 tables an attach created (level-1 indices, increasing),
/// walked along with the streams (in increasing order) to find the first
/// stream of each: its CFGI_STE must not be leaf-only.
struct FreshTables<'a> {
    rest: &'a [u32],
}

impl<'a> FreshTables<'a> {
    fn new(created: &'a [u32]) -> Self {
        Self { rest: created }
    }

    /// Whether `sid` is the first stream visited in a created table
    /// (called for increasing `sid`).
    fn first_of(&mut self, sid: u32) -> bool {
        let l1 = sid >> SPLIT;
        while let [first, tail @ ..] = self.rest {
            if *first > l1 {
                return false;
            }
            self.rest = tail;
            if *first == l1 {
                return true;
            }
        }
        false
    }
}
