//! The command queue, produced by the CPU: entries are written, made
//! visible, then CMDQ_PROD is advanced; the SMMU advances CMDQ_CONS. When
//! it stops on a bad command (`CMDQ_CONS.ERR`, `GERROR.CMDQ_ERR`) the
//! command is skipped the way Linux does (`__arm_smmu_cmdq_skip_err`): an
//! illegal command is overwritten with a `CMD_SYNC`, a fetch abort is
//! retried as is, then the error is acknowledged in GERRORN and the SMMU
//! resumes from CONS.

use super::{QueueMemory, Ring};
use crate::smmu::cmd::{CMD_DWORDS, Cmd};
use crate::smmu::error::{SmmuError, cerror};
use crate::smmu::regs::{
    CMDQ_CONS, CMDQ_CONS_ERR_MASK, CMDQ_CONS_ERR_SHIFT, CMDQ_PROD, GERROR, GERROR_CMDQ_ERR,
    GERRORN, SmmuRegs,
};

/// Whether GERROR.CMDQ_ERR is active (differs from GERRORN).
fn cmdq_error_active(regs: &impl SmmuRegs) -> bool {
    (regs.read32(GERROR) ^ regs.read32(GERRORN)) & GERROR_CMDQ_ERR != 0
}

/// How far [`CommandQueue::sync_start`] took a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStart {
    /// The `CMD_SYNC` was consumed and no command error is kept: done.
    Done,
    /// The commands and the `CMD_SYNC` were published up to this PROD;
    /// the wait (or the kept error's report) is left.
    Published(u32),
    /// The queue had no room for them all (or its memory no direct
    /// write): nothing was written.
    NoRoom,
}

/// The command queue (single producer: the caller serialises).
#[derive(Debug)]
pub struct CommandQueue<M> {
    mem: M,
    ring: Ring,
    prod: u32,
    cons: u32,
    error: Option<(u8, [u64; CMD_DWORDS])>,
}

impl<M: QueueMemory> CommandQueue<M> {
    /// An empty queue of `1 << log2` commands in `mem`; CMDQ_PROD and
    /// CMDQ_CONS must be 0.
    pub fn new(mem: M, log2: u32) -> Self {
        Self {
            mem,
            ring: Ring::new(log2),
            prod: 0,
            cons: 0,
            error: None,
        }
    }

    /// The ring arithmetic.
    pub fn ring(&self) -> Ring {
        self.ring
    }

    /// The producer index last published.
    pub fn prod(&self) -> u32 {
        self.prod
    }

    /// The consumer index last read.
    pub fn cons(&self) -> u32 {
        self.cons
    }

    /// The queue memory.
    pub fn memory(&self) -> &M {
        &self.mem
    }

    /// Reads CMDQ_CONS (at most `limit` times) until `done(cons)` holds,
    /// skipping commands the SMMU stopped on. False on timeout.
    fn poll_cons(
        &mut self,
        regs: &mut impl SmmuRegs,
        limit: u32,
        done: impl Fn(u32) -> bool,
    ) -> bool {
        self.cons = regs.read32(CMDQ_CONS) & self.ring.mask();
        done(self.cons) || self.poll_more(regs, limit, done)
    }

    /// [`CommandQueue::poll_cons`] after its first read found `done`
    /// false: at most `limit` reads in all (at least one), a pause
    /// between two, a command error recovered from after each.
    #[inline(never)]
    fn poll_more(
        &mut self,
        regs: &mut impl SmmuRegs,
        limit: u32,
        done: impl Fn(u32) -> bool,
    ) -> bool {
        let mut left = limit.max(1);
        loop {
            if cmdq_error_active(regs) {
                self.recover(regs);
            }
            left -= 1;
            if left == 0 {
                return false;
            }
            regs.relax();
            self.cons = regs.read32(CMDQ_CONS) & self.ring.mask();
            if done(self.cons) {
                return true;
            }
        }
    }

    /// Writes `cmds` and publishes them. When the queue is full it waits
    /// (at most `poll_limit` reads of CMDQ_CONS each time) for the SMMU to
    /// make room. A command error met while waiting is recovered from and
    /// reported by the next [`CommandQueue::sync`].
    pub fn submit(
        &mut self,
        regs: &mut impl SmmuRegs,
        cmds: &[Cmd],
        poll_limit: u32,
    ) -> Result<(), SmmuError> {
        self.submit_parts(regs, [cmds, &[]], poll_limit)
    }

    /// Writes the commands of both parts, in order, and publishes them:
    /// one CMDQ_PROD write for all that fit in the queue's free room
    /// (waiting for room as [`CommandQueue::submit`] does). Out of line:
    /// a sync finds room for its commands (a drained queue) but at the
    /// queue's limits.
    #[inline(never)]
    fn submit_parts(
        &mut self,
        regs: &mut impl SmmuRegs,
        parts: [&[Cmd]; 2],
        poll_limit: u32,
    ) -> Result<(), SmmuError> {
        let ring = self.ring;
        let [mut first, mut second] = parts;
        while !(first.is_empty() && second.is_empty()) {
            if ring.space(self.prod, self.cons) == 0 {
                let prod = self.prod;
                if !self.poll_cons(regs, poll_limit, |cons| ring.space(prod, cons) > 0) {
                    return Err(SmmuError::QueueFullTimeout);
                }
            }
            let room = ring.space(self.prod, self.cons) as usize;
            let n1 = room.min(first.len());
            let n2 = (room - n1).min(second.len());
            let (now1, later1) = first.split_at(n1);
            let (now2, later2) = second.split_at(n2);
            for (k, cmd) in now1.iter().chain(now2).enumerate() {
                self.mem.write_cmd(ring.add(self.prod, k as u32), &cmd.0);
            }
            let n = (n1 + n2) as u32;
            self.mem.to_device(self.prod, n);
            self.prod = ring.add(self.prod, n);
            regs.write32(CMDQ_PROD, self.prod);
            (first, second) = (later1, later2);
        }
        Ok(())
    }

    /// Appends a `CMD_SYNC` and polls CMDQ_CONS (at most `poll_limit`
    /// reads) until the SMMU has consumed it, i.e. completed every earlier
    /// command. Errors: [`SmmuError::SyncTimeout`], or the first
    /// [`SmmuError::CommandError`] since the previous sync (reported once
    /// the queue has drained past this sync).
    pub fn sync(&mut self, regs: &mut impl SmmuRegs, poll_limit: u32) -> Result<(), SmmuError> {
        self.sync_after(regs, &[], poll_limit)
    }

    /// Writes `cmds` and a `CMD_SYNC` after them, published together (one
    /// CMDQ_PROD write when the queue has room for all), then waits as
    /// [`CommandQueue::sync`] does: [`CommandQueue::sync_start`], then
    /// [`CommandQueue::sync_rest`] unless it found the sync done.
    #[inline(always)]
    pub fn sync_after(
        &mut self,
        regs: &mut impl SmmuRegs,
        cmds: &[Cmd],
        poll_limit: u32,
    ) -> Result<(), SmmuError> {
        match self.sync_start(regs, cmds) {
            SyncStart::Done => Ok(()),
            started => self.sync_rest(regs, cmds, started, poll_limit),
        }
    }

    /// The usual sync's whole work, with no call: when the queue has room
    /// for `cmds` and a `CMD_SYNC` (it is drained by every sync) and its
    /// memory writes them directly ([`QueueMemory::write_cmds_direct`]),
    /// writes them in one pass, makes them visible together, writes CMDQ_PROD
    /// once and reads CMDQ_CONS once. [`SyncStart::Done`] when the SMMU
    /// has consumed the `CMD_SYNC` already and no command error is kept;
    /// else what [`CommandQueue::sync_rest`] must finish. Inlined into
    /// the kept queue's sync, whose frame then holds no register across
    /// a call (the rest is a tail call).
    #[inline(always)]
    pub fn sync_start(&mut self, regs: &mut impl SmmuRegs, cmds: &[Cmd]) -> SyncStart {
        let ring = self.ring;
        // `space(prod, cons) <= cmds.len()` without the saturation: the
        // used count is at most the mask (< 2^21), so the sum cannot
        // overflow, and a used count past the size (inconsistent indices,
        // no space) makes it true as the saturated space of 0 does.
        if ring.used(self.prod, self.cons) as usize + cmds.len() >= ring.size() as usize {
            // No room for all: nothing written, the rest does it in parts.
            return SyncStart::NoRoom;
        }
        let prod = self.prod;
        if !self.mem.write_cmds_direct(prod, cmds, Cmd::sync()) {
            // A memory without slots (nothing written): as without room.
            return SyncStart::NoRoom;
        }
        let n = cmds.len() as u32 + 1;
        self.mem.to_device(prod, n);
        // `ring.add(prod, n)` without masking `prod` first: PROD is kept
        // masked (0 at first, then only ever a masked sum).
        let next = prod.wrapping_add(n) & ring.mask();
        self.prod = next;
        regs.write32(CMDQ_PROD, next);
        // The CMD_SYNC is the last entry published (at PROD - 1): the SMMU
        // has consumed it (`ring.consumed(prod, cons, prod - 1)`) exactly
        // when CONS has reached PROD.
        let cons = regs.read32(CMDQ_CONS) & ring.mask();
        self.cons = cons;
        if cons == next && self.error.is_none() {
            return SyncStart::Done;
        }
        SyncStart::Published(next)
    }

    /// Finishes a sync [`CommandQueue::sync_start`] did not: with
    /// [`SyncStart::NoRoom`] writes `cmds` and the `CMD_SYNC` (in parts
    /// if the queue has no room for all),
    /// waiting for room (at most `poll_limit` reads of CMDQ_CONS each
    /// time); then polls CMDQ_CONS (at most `poll_limit` reads) until the
    /// `CMD_SYNC` is consumed, and reports the command error kept since
    /// the previous sync. Out of line: the usual sync does not come here.
    #[inline(never)]
    pub fn sync_rest(
        &mut self,
        regs: &mut impl SmmuRegs,
        cmds: &[Cmd],
        started: SyncStart,
        poll_limit: u32,
    ) -> Result<(), SmmuError> {
        let prod = match started {
            SyncStart::Done => self.prod,
            SyncStart::Published(prod) => prod,
            SyncStart::NoRoom => {
                self.submit_parts(regs, [cmds, &[Cmd::sync()]], poll_limit)?;
                self.cons = regs.read32(CMDQ_CONS) & self.ring.mask();
                self.prod
            }
        };
        if self.cons != prod && !self.poll_more(regs, poll_limit, |cons| cons == prod) {
            return Err(SmmuError::SyncTimeout);
        }
        match self.error.take() {
            None => Ok(()),
            Some((code, cmd)) => Err(SmmuError::CommandError { code, cmd }),
        }
    }

    /// Skips the command the SMMU stopped on without acknowledging the
    /// error: an illegal command (or an unknown code) is replaced by a
    /// `CMD_SYNC`; a fetch abort or ATC timeout is left to be retried.
    /// Returns `CMDQ_CONS.ERR` and the command as it was.
    pub fn skip(&mut self, regs: &impl SmmuRegs) -> (u8, [u64; CMD_DWORDS]) {
        let raw = regs.read32(CMDQ_CONS);
        let code = ((raw >> CMDQ_CONS_ERR_SHIFT) & CMDQ_CONS_ERR_MASK) as u8;
        let index = self.ring.index(raw);
        let mut cmd = [0; CMD_DWORDS];
        self.mem.read_entry(index, &mut cmd);
        if !matches!(code, cerror::NONE | cerror::ABT | cerror::ATC_INV_SYNC) {
            self.mem.write_entry(index, &Cmd::sync().0);
            self.mem.to_device(index, 1);
        }
        (code, cmd)
    }

    /// If GERROR.CMDQ_ERR is active: skips the command (see
    /// [`CommandQueue::skip`]), acknowledges CMDQ_ERR alone in GERRORN so
    /// that the SMMU resumes, and returns what was skipped. The first error
    /// is also kept for the next [`CommandQueue::sync`].
    #[cold]
    pub fn recover(&mut self, regs: &mut impl SmmuRegs) -> Option<(u8, [u64; CMD_DWORDS])> {
        let gerrorn = regs.read32(GERRORN);
        if (regs.read32(GERROR) ^ gerrorn) & GERROR_CMDQ_ERR == 0 {
            return None;
        }
        let skipped = self.skip(regs);
        regs.write32(GERRORN, gerrorn ^ GERROR_CMDQ_ERR);
        self.error.get_or_insert(skipped);
        Some(skipped)
    }

    /// Records an error recovered outside the queue (by the GERROR
    /// handler) so that the next sync reports it.
    pub fn note_error(&mut self, skipped: (u8, [u64; CMD_DWORDS])) {
        self.error.get_or_insert(skipped);
    }
}
