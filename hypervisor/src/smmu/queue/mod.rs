//! The command and event queues: circular buffers in memory whose PROD and
//! CONS indices live in SMMU registers. An index holds `log2` bits of
//! position and, just above them, a wrap bit that flips on every lap, so
//! that "full" (same position, different wrap) and "empty" (same position
//! and wrap) differ.
//!
//! This module holds what both queues share: [`QueueMemory`], the
//! [`Ring`] arithmetic and [`DmaQueue`]; the `cmdq` and `evtq` submodules
//! hold [`CommandQueue`] and [`EventQueue`].

mod cmdq;
mod evtq;

pub use cmdq::{CommandQueue, SyncStart};
pub use evtq::{EventBatch, EventQueue};

use super::cmd::{CMD_DWORDS, Cmd};
use super::dma::{CacheOps, CacheSync, DmaBlock, DmaMemory, Slots16};
use super::regs::{Q_BASE_ADDR_MASK, Q_BASE_LOG2SIZE_MASK, Q_BASE_RWA};

/// Largest queue size handled (log2 of entries).
pub const MAX_LOG2: u32 = 20;

/// The memory behind a queue: entries addressed by position
/// (`0..entries`), each a fixed number of 64-bit words.
pub trait QueueMemory {
    /// Reads entry `index` into `out`.
    fn read_entry(&self, index: u32, out: &mut [u64]);
    /// Writes `words` to entry `index`.
    fn write_entry(&mut self, index: u32, words: &[u64]);
    /// Writes the command `cmd` at `index` (wrapping): what
    /// [`QueueMemory::write_entry`] of its words does.
    fn write_cmd(&mut self, index: u32, cmd: &[u64; CMD_DWORDS]) {
        self.write_entry(index, cmd);
    }
    /// Writes `cmds` from `index` on, then `last` after them (wrapping):
    /// what [`QueueMemory::write_cmd`] of each, in order, does.
    fn write_cmds(&mut self, index: u32, cmds: &[Cmd], last: Cmd) {
        let mut at = index;
        for cmd in cmds {
            self.write_cmd(at, &cmd.0);
            at = at.wrapping_add(1);
        }
        self.write_cmd(at, &last.0);
    }
    /// [`QueueMemory::write_cmds`] when the memory writes commands
    /// straight into its slots (no call): true when written, false when
    /// nothing was (the caller then writes them another way). By default
    /// `write_cmds` itself.
    fn write_cmds_direct(&mut self, index: u32, cmds: &[Cmd], last: Cmd) -> bool {
        self.write_cmds(index, cmds, last);
        true
    }
    /// Makes CPU writes to `count` entries from `index` (wrapping)
    /// visible to the SMMU.
    fn to_device(&self, _index: u32, _count: u32) {}
    /// Makes SMMU writes to `count` entries from `index` (wrapping)
    /// visible to the CPU.
    fn to_cpu(&self, _index: u32, _count: u32) {}
}

/// Position arithmetic of a queue of `1 << log2` entries. The masks are
/// computed once, when the ring is made (not at every use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ring {
    log2: u32,
    /// Position and wrap bit: `(2 << log2) - 1`.
    mask: u32,
    /// Entries: `1 << log2`.
    size: u32,
}

impl Ring {
    /// A ring of `1 << log2` entries (`log2` capped at [`MAX_LOG2`]).
    pub fn new(log2: u32) -> Self {
        let log2 = log2.min(MAX_LOG2);
        Self {
            log2,
            mask: (2 << log2) - 1,
            size: 1 << log2,
        }
    }

    /// log2 of the number of entries.
    pub fn log2(&self) -> u32 {
        self.log2
    }

    /// Number of entries.
    #[inline]
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Mask of position and wrap bit.
    #[inline]
    pub fn mask(&self) -> u32 {
        self.mask
    }

    /// Position of index `p` in the buffer.
    #[inline]
    pub fn index(&self, p: u32) -> u32 {
        p & (self.size - 1)
    }

    /// Index `p` advanced by `n`.
    pub fn add(&self, p: u32, n: u32) -> u32 {
        (p & self.mask()).wrapping_add(n) & self.mask()
    }

    /// Entries between `cons` and `prod` (may exceed the size if the
    /// indices are inconsistent).
    pub fn used(&self, prod: u32, cons: u32) -> u32 {
        // The same as masking both first: the mask is 2^k - 1.
        prod.wrapping_sub(cons) & self.mask
    }

    /// Free entries.
    pub fn space(&self, prod: u32, cons: u32) -> u32 {
        self.size().saturating_sub(self.used(prod, cons))
    }

    /// Same position, different wrap.
    pub fn is_full(&self, prod: u32, cons: u32) -> bool {
        self.used(prod, cons) == self.size()
    }

    /// Same position and wrap.
    pub fn is_empty(&self, prod: u32, cons: u32) -> bool {
        self.used(prod, cons) == 0
    }

    /// Whether `cons` has moved past the entry at index `p`, given the
    /// current `prod` (`p` lies between the old CONS and `prod`).
    pub fn consumed(&self, prod: u32, cons: u32, p: u32) -> bool {
        self.used(prod, cons) < self.used(prod, p)
    }
}

/// Queue memory allocated from [`DmaMemory`], with cache maintenance for
/// a non-coherent SMMU.
#[derive(Debug)]
pub struct DmaQueue<C> {
    block: DmaBlock,
    dwords: usize,
    ring: Ring,
    sync: CacheSync<C>,
    /// A command queue's block as its entries (entries of
    /// [`CMD_DWORDS`] words, the block exactly their size).
    slots: Option<Slots16>,
}

impl<C: CacheOps> DmaQueue<C> {
    /// Allocates `1 << log2` entries of `dwords` words, aligned to the
    /// queue size (at least 64 bytes) as the base registers need.
    pub fn alloc(
        mem: &mut impl DmaMemory,
        log2: u32,
        dwords: usize,
        sync: CacheSync<C>,
    ) -> Option<Self> {
        let ring = Ring::new(log2);
        let bytes = (ring.size() as usize).checked_mul(dwords.checked_mul(8)?)?;
        let block = DmaBlock::alloc(mem, bytes, bytes.max(64))?;
        let slots = if dwords == CMD_DWORDS {
            block.slots16(ring.size())
        } else {
            None
        };
        Some(Self {
            block,
            dwords,
            ring,
            sync,
            slots,
        })
    }

    /// The CMDQ_BASE / EVTQ_BASE value: RWA hint, address, LOG2SIZE.
    pub fn base_reg(&self) -> u64 {
        Q_BASE_RWA
            | (self.block.phys() & Q_BASE_ADDR_MASK)
            | (u64::from(self.ring.log2()) & Q_BASE_LOG2SIZE_MASK)
    }

    /// Physical address of entry 0.
    pub fn phys(&self) -> u64 {
        self.block.phys()
    }

    /// Size in bytes.
    pub fn bytes(&self) -> usize {
        self.block.len()
    }

    fn entry_bytes(&self) -> usize {
        self.dwords * 8
    }

    /// Runs `f(phys, len)` over the (at most two) contiguous pieces of
    /// `count` entries from `index`.
    fn pieces(&self, index: u32, count: u32, f: impl Fn(u64, usize)) {
        let size = self.ring.size();
        let count = count.min(size);
        let index = self.ring.index(index);
        let first = count.min(size - index);
        let eb = self.entry_bytes() as u64;
        f(
            self.block.phys() + u64::from(index) * eb,
            first as usize * self.entry_bytes(),
        );
        if count > first {
            f(
                self.block.phys(),
                (count - first) as usize * self.entry_bytes(),
            );
        }
    }

    /// Whether commands are written through the queue's 16-byte slots
    /// (a command queue whose block passed the checks of
    /// [`DmaBlock::slots16`]) rather than entry by entry.
    pub fn has_slots(&self) -> bool {
        self.slots.is_some()
    }

    /// Makes the whole queue consistent before the SMMU first uses it.
    pub fn flush_all(&self) {
        self.sync.to_cpu(self.block.phys(), self.block.len());
    }
}

impl<C: CacheOps> DmaQueue<C> {
    /// [`QueueMemory::write_cmds`] entry by entry (a queue without
    /// slots). Out of line: `last` is put in memory here, not on the
    /// stack of every sync.
    #[inline(never)]
    fn write_cmds_each(&mut self, index: u32, cmds: &[Cmd], last: Cmd) {
        let mut at = index;
        for cmd in cmds {
            self.write_entry(at, &cmd.0);
            at = at.wrapping_add(1);
        }
        self.write_entry(at, &last.0);
    }
}

impl<C: CacheOps> QueueMemory for DmaQueue<C> {
    fn read_entry(&self, index: u32, out: &mut [u64]) {
        let base = self.ring.index(index) as usize * self.entry_bytes();
        for (i, w) in out.iter_mut().take(self.dwords).enumerate() {
            *w = self.block.read_u64(base + i * 8);
        }
    }

    fn write_entry(&mut self, index: u32, words: &[u64]) {
        let base = self.ring.index(index) as usize * self.entry_bytes();
        let words = words.get(..self.dwords).unwrap_or(words);
        self.block.write_words(base, words);
    }

    #[inline(always)]
    fn write_cmd(&mut self, index: u32, cmd: &[u64; CMD_DWORDS]) {
        // A command queue: its slots (the block checked once, at alloc).
        match &self.slots {
            Some(slots) => slots.write(index, cmd),
            None => self.write_entry(index, cmd),
        }
    }

    #[inline(always)]
    fn write_cmds(&mut self, index: u32, cmds: &[Cmd], last: Cmd) {
        let Some(slots) = self.slots else {
            return self.write_cmds_each(index, cmds, last);
        };
        slots.write_cmds(index, cmds, &last.0);
    }

    #[inline(always)]
    fn write_cmds_direct(&mut self, index: u32, cmds: &[Cmd], last: Cmd) -> bool {
        match self.slots {
            Some(slots) => {
                slots.write_cmds(index, cmds, &last.0);
                true
            }
            None => false,
        }
    }

    fn to_device(&self, index: u32, count: u32) {
        // A coherent SMMU needs no maintenance: no pieces to compute.
        if !self.sync.coherent() {
            self.pieces(index, count, |p, l| self.sync.to_device(p, l));
        }
    }

    fn to_cpu(&self, index: u32, count: u32) {
        if !self.sync.coherent() {
            self.pieces(index, count, |p, l| self.sync.to_cpu(p, l));
        }
    }
}
