//! The stream table: one [`Ste`] per StreamID, found by the SMMU from
//! STRTAB_BASE / STRTAB_BASE_CFG.
//!
//! Format choice: a linear table when it fits in [`LINEAR_MAX_BYTES`]
//! (64 KiB: StreamIDs of up to 10 bits) or when the SMMU has no two-level
//! support; otherwise two levels with [`SPLIT`] = 8 (Linux's choice): the
//! level-1 table holds one 8-byte descriptor (L2Ptr, Span) per 256
//! StreamIDs (one PCI bus), and each 16 KiB level-2 table is allocated
//! when a stream in its range is first configured, filled with abort
//! entries. StreamIDs whose level-2 table does not exist yet are
//! terminated too (with a `C_BAD_STREAMID` event).
//!
//! Coverage is capped so that no table is unreasonably large: a two-level
//! table covers at most [`MAX_2LVL_BITS`] bits (a 512 KiB level-1 table),
//! a linear-only SMMU at most [`MAX_LINEAR_BITS`] bits (4 MiB). StreamIDs
//! beyond the covered range are refused.

use alloc::collections::BTreeMap;

use super::dma::{CacheOps, CacheSync, DmaBlock, DmaMemory};
use super::error::SmmuError;
use super::idregs::StreamTableLevels;
use super::regs::{
    STRTAB_BASE_ADDR_MASK, STRTAB_BASE_CFG_FMT_SHIFT, STRTAB_BASE_CFG_SPLIT_SHIFT, STRTAB_BASE_RA,
    STRTAB_FMT_2LVL, STRTAB_FMT_LINEAR, genmask,
};
use super::ste::{STE_BYTES, STE_DWORDS, Ste};
use super::streams::SidRange;

/// StreamID bits resolved by a level-2 table.
pub const SPLIT: u32 = 8;
/// Largest linear table chosen when two levels are available.
pub const LINEAR_MAX_BYTES: usize = 64 * 1024;
/// StreamID bits a two-level table covers at most.
pub const MAX_2LVL_BITS: u32 = 24;
/// StreamID bits a linear table covers at most (linear-only SMMUs).
pub const MAX_LINEAR_BITS: u32 = 16;

/// Level-1 descriptor: Span bits 4:0 (level-2 entries = 2^(Span-1)).
const L1_SPAN: u64 = SPLIT as u64 + 1;
/// Level-1 descriptor: L2Ptr bits 51:6.
const L1_L2PTR_MASK: u64 = genmask(51, 6);
const L2_ENTRIES: usize = 1 << SPLIT;
const L2_BYTES: usize = L2_ENTRIES * STE_BYTES;

/// Bytes of one level-2 table (the StreamIDs of one PCI bus): what
/// configuring a stream on a bus not yet used may allocate.
pub const L2_TABLE_BYTES: u64 = L2_BYTES as u64;

/// Stream table layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamTableFormat {
    /// One array of STEs.
    Linear,
    /// Level-1 descriptors pointing at level-2 arrays of 256 STEs.
    TwoLevel,
}

/// The format and covered StreamID bits (LOG2SIZE) for an SMMU with
/// `sid_bits` of StreamID and the given table support.
pub fn choose_format(sid_bits: u32, levels: StreamTableLevels) -> (StreamTableFormat, u32) {
    let linear_fits = (STE_BYTES << sid_bits.min(32)) <= LINEAR_MAX_BYTES;
    if linear_fits || levels == StreamTableLevels::Linear {
        (StreamTableFormat::Linear, sid_bits.min(MAX_LINEAR_BITS))
    } else {
        (StreamTableFormat::TwoLevel, sid_bits.min(MAX_2LVL_BITS))
    }
}

/// The stream table in DMA memory.
#[derive(Debug)]
pub struct StreamTable {
    format: StreamTableFormat,
    log2size: u32,
    base: DmaBlock,
    /// Level-2 tables allocated so far, by level-1 index.
    l2: BTreeMap<u32, DmaBlock>,
}

/// Where one STE lives, once located.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SteSlot {
    /// Physical address of the STE.
    pub phys: u64,
    /// Its level-2 table was allocated by this lookup.
    pub new_l2: bool,
}

/// One STE that exists in the table (its level-2 table is allocated),
/// from [`StreamTable::entries`]: read and written in place, without
/// another lookup.
#[derive(Debug, Clone, Copy)]
pub struct SteRef {
    /// Its StreamID.
    pub sid: u32,
    block: DmaBlock,
    off: usize,
}

impl SteRef {
    /// The entry as it is in memory.
    pub fn read(&self) -> Ste {
        let mut ste = Ste::INVALID;
        for (i, w) in ste.0.iter_mut().enumerate() {
            *w = self.block.read_u64(self.off + i * 8);
        }
        ste
    }

    /// Word 0 (V, Config) as it is in memory.
    pub fn word0(&self) -> u64 {
        self.block.read_u64(self.off)
    }

    /// Writes words `words` of `ste`, in increasing order, and makes them
    /// visible to the SMMU (see [`StreamTable::write`]).
    pub fn write<C: CacheOps>(
        &self,
        sync: &CacheSync<C>,
        ste: &Ste,
        words: core::ops::Range<usize>,
    ) {
        let (start, end) = (words.start.min(STE_DWORDS), words.end.min(STE_DWORDS));
        write_words(&self.block, self.off, ste, start..end);
        if start < end {
            sync.to_device(
                self.block.phys() + (self.off + start * 8) as u64,
                (end - start) * 8,
            );
        }
    }
}

impl StreamTable {
    /// Allocates the table for `sid_bits` of StreamID (see
    /// [`choose_format`]): every linear entry is [`Ste::ABORT`], every
    /// level-1 descriptor invalid. The memory is made visible to the SMMU.
    pub fn new<C: CacheOps>(
        mem: &mut impl DmaMemory,
        sync: &CacheSync<C>,
        sid_bits: u32,
        levels: StreamTableLevels,
    ) -> Result<Self, SmmuError> {
        let (format, log2size) = choose_format(sid_bits, levels);
        let no_mem = SmmuError::NoMemory {
            what: "stream table",
        };
        let bytes = match format {
            StreamTableFormat::Linear => STE_BYTES << log2size,
            StreamTableFormat::TwoLevel => 8usize << (log2size - SPLIT),
        };
        let base = DmaBlock::alloc(mem, bytes, bytes.max(64)).ok_or(no_mem)?;
        let table = Self {
            format,
            log2size,
            base,
            l2: BTreeMap::new(),
        };
        if format == StreamTableFormat::Linear {
            for sid in 0..1usize << log2size {
                write_words(&base, sid * STE_BYTES, &Ste::ABORT, 0..STE_DWORDS);
            }
        }
        sync.to_device(base.phys(), bytes);
        Ok(table)
    }

    /// The layout.
    pub fn format(&self) -> StreamTableFormat {
        self.format
    }

    /// StreamID bits covered (STRTAB_BASE_CFG.LOG2SIZE).
    pub fn log2size(&self) -> u32 {
        self.log2size
    }

    /// Number of StreamIDs covered.
    pub fn sid_limit(&self) -> u64 {
        1u64 << self.log2size
    }

    /// The STRTAB_BASE value (RA hint and address).
    pub fn base_reg(&self) -> u64 {
        STRTAB_BASE_RA | (self.base.phys() & STRTAB_BASE_ADDR_MASK)
    }

    /// The STRTAB_BASE_CFG value (FMT, SPLIT, LOG2SIZE).
    pub fn base_cfg_reg(&self) -> u32 {
        match self.format {
            StreamTableFormat::Linear => {
                STRTAB_FMT_LINEAR << STRTAB_BASE_CFG_FMT_SHIFT | self.log2size
            }
            StreamTableFormat::TwoLevel => {
                STRTAB_FMT_2LVL << STRTAB_BASE_CFG_FMT_SHIFT
                    | SPLIT << STRTAB_BASE_CFG_SPLIT_SHIFT
                    | self.log2size
            }
        }
    }

    /// Fails for a StreamID the table does not cover.
    pub fn check_sid(&self, sid: u32) -> Result<(), SmmuError> {
        if u64::from(sid) < self.sid_limit() {
            Ok(())
        } else {
            Err(SmmuError::BadStreamId {
                sid,
                limit: self.sid_limit(),
            })
        }
    }

    /// Fails for a range reaching beyond the table, naming the first
    /// StreamID it does not cover. An empty range (`first > last`) passes.
    pub fn check_range(&self, r: SidRange) -> Result<(), SmmuError> {
        if r.first > r.last || u64::from(r.last) < self.sid_limit() {
            return Ok(());
        }
        let first_bad = u64::from(r.first).max(self.sid_limit());
        Err(SmmuError::BadStreamId {
            sid: first_bad as u32,
            limit: self.sid_limit(),
        })
    }

    /// Level-1 indices of the level-2 tables `r` spans, as a half-open
    /// range (empty for an empty range or one beyond the table).
    fn l1_span(&self, r: SidRange) -> core::ops::Range<u32> {
        if r.first > r.last || u64::from(r.first) >= self.sid_limit() {
            return 0..0;
        }
        let last = u64::from(r.last).min(self.sid_limit() - 1) as u32;
        (r.first >> SPLIT)..(last >> SPLIT) + 1
    }

    /// The STEs of `r` that exist, in increasing StreamID order: all of
    /// them in a linear table; in a two-level table those whose level-2
    /// table is allocated, found from the allocated tables, so the walk
    /// costs nothing for spans of `r` that were never configured.
    /// StreamIDs beyond the table are left out. Allocates nothing.
    pub fn entries(&self, r: SidRange) -> impl Iterator<Item = SteRef> + '_ {
        let valid = r.first <= r.last && u64::from(r.first) < self.sid_limit();
        let r = SidRange {
            first: r.first,
            last: u64::from(r.last).min(self.sid_limit().saturating_sub(1)) as u32,
        };
        let linear =
            (valid && self.format == StreamTableFormat::Linear).then_some((r, self.base, 0));
        let two_level = self.l2.range(self.l1_span(r)).map(move |(&l1, &block)| {
            let base = l1 << SPLIT;
            let span = SidRange {
                first: r.first.max(base),
                last: r.last.min(base | (L2_ENTRIES as u32 - 1)),
            };
            (span, block, base)
        });
        linear
            .into_iter()
            .chain(two_level)
            .flat_map(|(span, block, base)| {
                span.iter().map(move |sid| SteRef {
                    sid,
                    block,
                    off: (sid - base) as usize * STE_BYTES,
                })
            })
    }

    /// Allocates the level-2 tables `r` needs that do not exist yet (see
    /// [`StreamTable::slot`]) and appends their level-1 indices, in
    /// increasing order, to `created`. Nothing to do for a linear table.
    /// On failure the tables allocated so far stay (they only abort).
    pub fn populate<C: CacheOps>(
        &mut self,
        mem: &mut impl DmaMemory,
        sync: &CacheSync<C>,
        r: SidRange,
        created: &mut alloc::vec::Vec<u32>,
    ) -> Result<(), SmmuError> {
        self.check_range(r)?;
        if self.format == StreamTableFormat::Linear {
            return Ok(());
        }
        for l1 in self.l1_span(r) {
            if !self.l2.contains_key(&l1) {
                self.alloc_l2(mem, sync, l1)?;
                created.push(l1);
            }
        }
        Ok(())
    }

    /// Allocates level-2 table `l1` (all abort), makes it visible, then
    /// publishes it in its level-1 descriptor.
    fn alloc_l2<C: CacheOps>(
        &mut self,
        mem: &mut impl DmaMemory,
        sync: &CacheSync<C>,
        l1: u32,
    ) -> Result<DmaBlock, SmmuError> {
        let l2 = DmaBlock::alloc(mem, L2_BYTES, L2_BYTES).ok_or(SmmuError::NoMemory {
            what: "level-2 stream table",
        })?;
        for i in 0..L2_ENTRIES {
            write_words(&l2, i * STE_BYTES, &Ste::ABORT, 0..STE_DWORDS);
        }
        sync.to_device(l2.phys(), L2_BYTES);
        let l1_off = l1 as usize * 8;
        self.base
            .write_u64(l1_off, (l2.phys() & L1_L2PTR_MASK) | L1_SPAN);
        sync.to_device(self.base.phys() + l1_off as u64, 8);
        self.l2.insert(l1, l2);
        Ok(l2)
    }

    /// The block holding `sid`'s STE and the STE's offset in it.
    fn locate(&self, sid: u32) -> Option<(DmaBlock, usize)> {
        match self.format {
            StreamTableFormat::Linear => Some((self.base, sid as usize * STE_BYTES)),
            StreamTableFormat::TwoLevel => {
                let l2 = *self.l2.get(&(sid >> SPLIT))?;
                Some((l2, (sid as usize & (L2_ENTRIES - 1)) * STE_BYTES))
            }
        }
    }

    /// Locates `sid`'s STE, allocating its level-2 table (all abort, made
    /// visible before the level-1 descriptor that publishes it) when
    /// missing.
    pub fn slot<C: CacheOps>(
        &mut self,
        mem: &mut impl DmaMemory,
        sync: &CacheSync<C>,
        sid: u32,
    ) -> Result<SteSlot, SmmuError> {
        self.check_sid(sid)?;
        if let Some((block, off)) = self.locate(sid) {
            return Ok(SteSlot {
                phys: block.phys() + off as u64,
                new_l2: false,
            });
        }
        let l2 = self.alloc_l2(mem, sync, sid >> SPLIT)?;
        let off = (sid as usize & (L2_ENTRIES - 1)) * STE_BYTES;
        Ok(SteSlot {
            phys: l2.phys() + off as u64,
            new_l2: true,
        })
    }

    /// `sid`'s STE, or `None` when its level-2 table does not exist (the
    /// stream is terminated).
    pub fn ste(&self, sid: u32) -> Result<Option<Ste>, SmmuError> {
        self.check_sid(sid)?;
        Ok(self.locate(sid).map(|(block, off)| {
            let mut ste = Ste::INVALID;
            for (i, w) in ste.0.iter_mut().enumerate() {
                *w = block.read_u64(off + i * 8);
            }
            ste
        }))
    }

    /// Writes words `words` of `ste` into `sid`'s slot (located with
    /// [`StreamTable::slot`]) and makes them visible to the SMMU.
    pub fn write<C: CacheOps>(
        &self,
        sync: &CacheSync<C>,
        sid: u32,
        ste: &Ste,
        words: core::ops::Range<usize>,
    ) -> Result<(), SmmuError> {
        self.check_sid(sid)?;
        let (block, off) = self.locate(sid).ok_or(SmmuError::BadStreamId {
            sid,
            limit: self.sid_limit(),
        })?;
        let (start, end) = (words.start.min(STE_DWORDS), words.end.min(STE_DWORDS));
        write_words(&block, off, ste, start..end);
        if start < end {
            sync.to_device(block.phys() + (off + start * 8) as u64, (end - start) * 8);
        }
        Ok(())
    }

    /// Writes a whole STE for `sid` (allocating its level-2 table if
    /// needed): words 1-7 first, word 0 last. Only safe for an entry the
    /// SMMU is not using (or with the invalidation sequence of
    /// [`crate::smmu::Smmu::attach_stage2`] around it).
    pub fn set_ste<C: CacheOps>(
        &mut self,
        mem: &mut impl DmaMemory,
        sync: &CacheSync<C>,
        sid: u32,
        ste: &Ste,
    ) -> Result<(), SmmuError> {
        self.slot(mem, sync, sid)?;
        self.write(sync, sid, ste, 1..STE_DWORDS)?;
        self.write(sync, sid, ste, 0..1)
    }
}

/// Writes words `words` of `ste` at byte offset `off` of `block`, in
/// increasing order.
fn write_words(block: &DmaBlock, off: usize, ste: &Ste, words: core::ops::Range<usize>) {
    for i in words {
        block.write_u64(off + i * 8, ste.0[i]);
    }
}
