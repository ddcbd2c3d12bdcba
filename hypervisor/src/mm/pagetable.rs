//! One translation-table implementation (4 KiB granule, VMSAv8-64) for every
//! table the hypervisor builds: its own EL2 stage-1 map and the stage-2
//! tables that the CPU (VTTBR_EL2) and the SMMU walk. Only the leaf
//! attribute encoding differs between them; it comes from a [`Format`].
//!
//! Tables are reached through [`TableMemory`], so the same code runs at EL2
//! (identity-mapped physical memory) and in host unit tests (a fake).

use core::marker::PhantomData;

/// Translation granule and page size.
pub const PAGE_SIZE: u64 = 4096;
/// Descriptors per table.
const ENTRIES: usize = 512;
/// Output-address bits of a descriptor ([47:12]).
const OA_MASK: u64 = 0x0000_ffff_ffff_f000;
const VALID: u64 = 1;
/// Table (levels 0-2) or page (level 3) descriptor type bit.
const TABLE_OR_PAGE: u64 = 1 << 1;

/// Memory type of a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemType {
    /// Normal memory, inner and outer write-back cacheable, inner shareable.
    Normal,
    /// Device-nGnRE memory (MMIO).
    Device,
}

/// Memory type and permissions of a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attrs {
    /// Memory type.
    pub mem: MemType,
    /// Reads allowed (stage 2 only; stage 1 always readable).
    pub read: bool,
    /// Writes allowed.
    pub write: bool,
    /// Instruction fetches allowed.
    pub exec: bool,
}

impl Attrs {
    /// Normal memory, read and write, not executable.
    pub const RW: Attrs = Attrs {
        mem: MemType::Normal,
        read: true,
        write: true,
        exec: false,
    };
    /// Normal memory, read-only, not executable.
    pub const RO: Attrs = Attrs {
        mem: MemType::Normal,
        read: true,
        write: false,
        exec: false,
    };
    /// Normal memory, read-only and executable (code).
    pub const RX: Attrs = Attrs {
        mem: MemType::Normal,
        read: true,
        write: false,
        exec: true,
    };
    /// Normal memory, read, write and execute (guest RAM at stage 2; never
    /// in the hypervisor's own map, which is W^X).
    pub const RWX: Attrs = Attrs {
        mem: MemType::Normal,
        read: true,
        write: true,
        exec: true,
    };
    /// Device memory, read and write, never executable.
    pub const DEVICE: Attrs = Attrs {
        mem: MemType::Device,
        read: true,
        write: true,
        exec: false,
    };
}

impl Attrs {
    /// True when the mapping allows both writes and instruction fetches.
    pub const fn writable_and_executable(&self) -> bool {
        self.write && self.exec
    }

    /// The permissions as `ls -l` writes them: `r-x`, `r--`, `rw-`, ...
    pub const fn perms(&self) -> &'static str {
        match (self.read, self.write, self.exec) {
            (true, true, true) => "rwx",
            (true, true, false) => "rw-",
            (true, false, true) => "r-x",
            (true, false, false) => "r--",
            (false, true, true) => "-wx",
            (false, true, false) => "-w-",
            (false, false, true) => "--x",
            (false, false, false) => "---",
        }
    }
}

/// How leaf descriptors of one translation regime encode [`Attrs`].
pub trait Format {
    /// Lowest level at which block descriptors are allowed (1 for 4 KiB).
    const MIN_BLOCK_LEVEL: usize = 1;
    /// Attribute bits of a leaf descriptor (everything but address and type).
    fn encode(attrs: Attrs) -> u64;
    /// Decodes the attribute bits of a leaf descriptor.
    fn decode(desc: u64) -> Attrs;
}

/// The EL2 stage-1 regime (TTBR0_EL2, no VHE). MAIR_EL2 index 0 must be
/// Device-nGnRE and index 1 Normal write-back (see [`Stage1El2::MAIR`]).
pub struct Stage1El2;

impl Stage1El2 {
    /// MAIR_EL2 value matching this encoding: Attr0 = Device-nGnRE (0x04),
    /// Attr1 = Normal inner/outer write-back read/write-allocate (0xff).
    pub const MAIR: u64 = crate::arch::EL2_MAIR;
}

impl Format for Stage1El2 {
    fn encode(a: Attrs) -> u64 {
        let mut d = 1 << 10; // AF
        d |= 1 << 6; // AP[1]: RES1 in the EL2 regime
        if !a.write {
            d |= 1 << 7; // AP[2]: read-only
        }
        match a.mem {
            MemType::Normal => d |= (1 << 2) | (0b11 << 8), // AttrIndx 1, inner shareable
            MemType::Device => {}                           // AttrIndx 0
        }
        if !a.exec {
            d |= 1 << 54; // XN
        }
        d
    }

    fn decode(d: u64) -> Attrs {
        Attrs {
            mem: if (d >> 2) & 7 == 1 {
                MemType::Normal
            } else {
                MemType::Device
            },
            read: true,
            write: d & (1 << 7) == 0,
            exec: d & (1 << 54) == 0,
        }
    }
}

/// The stage-2 regime, shared by the CPU (VTTBR_EL2) and the SMMU.
pub struct Stage2;

impl Format for Stage2 {
    fn encode(a: Attrs) -> u64 {
        let mut d = 1 << 10; // AF
        if a.read {
            d |= 1 << 6; // S2AP read
        }
        if a.write {
            d |= 1 << 7; // S2AP write
        }
        match a.mem {
            MemType::Normal => d |= (0b1111 << 2) | (0b11 << 8),
            MemType::Device => d |= 0b0001 << 2,
        }
        if !a.exec {
            d |= 0b10 << 53; // XN[1:0] = 0b10: not executable at EL1 or EL0
        }
        d
    }

    fn decode(d: u64) -> Attrs {
        Attrs {
            mem: if (d >> 2) & 0xf == 0b1111 {
                MemType::Normal
            } else {
                MemType::Device
            },
            read: d & (1 << 6) != 0,
            write: d & (1 << 7) != 0,
            exec: (d >> 53) & 0b11 == 0,
        }
    }
}

/// Where table pages come from and how they are reached.
pub trait TableMemory {
    /// Allocates `pages` zeroed, physically contiguous table pages aligned
    /// to `pages * 4 KiB` (more than one only for a concatenated stage-2
    /// root); returns the physical address of the first.
    fn alloc_tables(&mut self, pages: usize) -> Option<u64>;
    /// Returns pages obtained from [`TableMemory::alloc_tables`].
    fn free_tables(&mut self, pa: u64, pages: usize);
    /// Pointer through which the table page at physical `pa` is read and
    /// written. `pa` is always an address this memory handed out.
    fn table_ptr(&self, pa: u64) -> *mut u64;
}

/// Why a map or unmap request was refused. Nothing is changed when one is
/// returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// An address or size is not a multiple of the page size, or size is 0.
    Misaligned,
    /// The range does not fit in the table's input address space, or the
    /// output address exceeds 48 bits.
    OutOfRange,
    /// Part of the range is already mapped.
    AlreadyMapped,
    /// Unmapping the range would split a larger block mapping.
    WouldSplit,
    /// No memory for a new table.
    NoMemory,
}

impl core::fmt::Display for MapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            MapError::Misaligned => "address or size not page aligned",
            MapError::OutOfRange => "address outside the translation range",
            MapError::AlreadyMapped => "range already mapped",
            MapError::WouldSplit => "range would split a block mapping",
            MapError::NoMemory => "out of memory for page tables",
        })
    }
}

impl core::error::Error for MapError {}

/// Bytes covered by one descriptor at `level`.
const fn level_size(level: usize) -> u64 {
    1 << (12 + 9 * (3 - level))
}

/// A translation table of format `F`.
pub struct PageTable<F: Format> {
    root: u64,
    start_level: usize,
    root_entries: usize,
    ia_bits: u32,
    _format: PhantomData<F>,
}

impl<F: Format> PageTable<F> {
    /// Creates an empty table translating `ia_bits` of input address,
    /// starting its walk at `start_level`. When the root level needs more
    /// than 512 entries the root is made of concatenated pages (stage 2
    /// allows up to 16).
    pub fn new(
        mem: &mut impl TableMemory,
        ia_bits: u32,
        start_level: usize,
    ) -> Result<Self, MapError> {
        if start_level > 3 || ia_bits > 48 || ia_bits <= 12 + 9 * (3 - start_level as u32) {
            return Err(MapError::OutOfRange);
        }
        let root_bits = ia_bits - (12 + 9 * (3 - start_level as u32));
        if root_bits > 13 {
            return Err(MapError::OutOfRange);
        }
        let root_entries = 1usize << root_bits;
        let pages = root_entries.div_ceil(ENTRIES);
        let root = mem.alloc_tables(pages).ok_or(MapError::NoMemory)?;
        Ok(PageTable {
            root,
            start_level,
            root_entries,
            ia_bits,
            _format: PhantomData,
        })
    }

    /// Physical address of the root table (for TTBR/VTTBR/S2TTB).
    pub fn root(&self) -> u64 {
        self.root
    }

    /// Level at which the walk starts.
    pub fn start_level(&self) -> usize {
        self.start_level
    }

    /// Size of the input address space in bits.
    pub fn ia_bits(&self) -> u32 {
        self.ia_bits
    }

    fn check_range(&self, va: u64, size: u64) -> Result<(), MapError> {
        if size == 0 || !va.is_multiple_of(PAGE_SIZE) || !size.is_multiple_of(PAGE_SIZE) {
            return Err(MapError::Misaligned);
        }
        let end = va.checked_add(size).ok_or(MapError::OutOfRange)?;
        if end > 1u64 << self.ia_bits {
            return Err(MapError::OutOfRange);
        }
        Ok(())
    }

    fn entries_at(&self, level: usize) -> usize {
        if level == self.start_level {
            self.root_entries
        } else {
            ENTRIES
        }
    }

    fn index(&self, level: usize, va: u64) -> usize {
        ((va / level_size(level)) as usize) & (self.entries_at(level) - 1)
    }

    /// Maps `[va, va + size)` to `[pa, pa + size)` with `attrs`, using the
    /// largest blocks that alignment allows. Fails without changing anything
    /// if any page of the range is already mapped.
    pub fn map(
        &mut self,
        mem: &mut impl TableMemory,
        va: u64,
        pa: u64,
        size: u64,
        attrs: Attrs,
    ) -> Result<(), MapError> {
        self.check_range(va, size)?;
        if !pa.is_multiple_of(PAGE_SIZE) {
            return Err(MapError::Misaligned);
        }
        match pa.checked_add(size) {
            Some(end) if end <= 1 << 48 => {}
            _ => return Err(MapError::OutOfRange),
        }
        let leaf = F::encode(attrs);
        // One descriptor: the shortcut walk, unless a table sits where the
        // leaf goes (then the general walk decides).
        if let Some(level) = self.single_level(va, pa, size)
            && let Some(result) = self.map_one(mem, va, pa, level, leaf)
        {
            return result;
        }
        if self.any_mapped(mem, va, va + size) {
            return Err(MapError::AlreadyMapped);
        }
        let mut done = 0;
        let result = self.map_level(
            mem,
            self.root,
            self.start_level,
            va,
            pa,
            size,
            leaf,
            &mut done,
        );
        if result.is_err() && done > 0 {
            // Roll back what was mapped before running out of tables.
            let _ = self.unmap_level(mem, self.root, self.start_level, va, va + done);
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn map_level(
        &self,
        mem: &mut impl TableMemory,
        table: u64,
        level: usize,
        va: u64,
        pa: u64,
        size: u64,
        leaf: u64,
        done: &mut u64,
    ) -> Result<(), MapError> {
        let block = level_size(level);
        let end = va + size;
        let mut cur = va;
        while cur < end {
            let next = ((cur / block) + 1).saturating_mul(block).min(end);
            let out = pa + (cur - va);
            let idx = self.index(level, cur);
            let ptr = mem.table_ptr(table);
            // SAFETY: `table` is a live table page of this PageTable and idx
            // is below the number of entries at this level.
            let desc = unsafe { ptr.add(idx).read_volatile() };
            let whole =
                cur.is_multiple_of(block) && next - cur == block && out.is_multiple_of(block);
            if whole && (level == 3 || level >= F::MIN_BLOCK_LEVEL) && desc & VALID == 0 {
                let ty = if level == 3 { TABLE_OR_PAGE } else { 0 };
                // SAFETY: as above.
                unsafe {
                    ptr.add(idx)
                        .write_volatile((out & OA_MASK) | leaf | ty | VALID)
                };
                *done += next - cur;
            } else {
                let sub = if desc & VALID == 0 {
                    let t = mem.alloc_tables(1).ok_or(MapError::NoMemory)?;
                    // SAFETY: as above.
                    unsafe {
                        ptr.add(idx)
                            .write_volatile((t & OA_MASK) | TABLE_OR_PAGE | VALID)
                    };
                    t
                } else {
                    desc & OA_MASK
                };
                self.map_level(mem, sub, level + 1, cur, out, next - cur, leaf, done)?;
            }
            cur = next;
        }
        Ok(())
    }

    /// Whether any leaf descriptor meeting `[va, end)` satisfies
    /// `pred(covers_whole_leaf)`: the one read-only walk behind the overlap
    /// check of [`PageTable::map`] and the split check of
    /// [`PageTable::unmap`].
    fn any_leaf(
        &self,
        mem: &impl TableMemory,
        table: u64,
        level: usize,
        va: u64,
        end: u64,
        pred: &impl Fn(bool) -> bool,
    ) -> bool {
        let block = level_size(level);
        let mut cur = va;
        while cur < end {
            let next = ((cur / block) + 1).saturating_mul(block).min(end);
            // SAFETY: live table page, index in range.
            let desc = unsafe {
                mem.table_ptr(table)
                    .add(self.index(level, cur))
                    .read_volatile()
            };
            if desc & VALID != 0 {
                let found = if level < 3 && desc & TABLE_OR_PAGE != 0 {
                    self.any_leaf(mem, desc & OA_MASK, level + 1, cur, next, pred)
                } else {
                    pred(cur.is_multiple_of(block) && next - cur == block)
                };
                if found {
                    return true;
                }
            }
            cur = next;
        }
        false
    }

    fn any_mapped(&self, mem: &impl TableMemory, va: u64, end: u64) -> bool {
        self.any_leaf(mem, self.root, self.start_level, va, end, &|_| true)
    }

    fn splits_block(&self, mem: &impl TableMemory, va: u64, end: u64) -> bool {
        self.any_leaf(mem, self.root, self.start_level, va, end, &|whole| !whole)
    }

    /// Removes every mapping inside `[va, va + size)`; unmapped holes are
    /// fine. Fails without changing anything if a block mapping straddles an
    /// end of the range. The caller invalidates TLBs afterwards. Emptied
    /// intermediate tables stay allocated until [`PageTable::destroy`], so no
    /// walker can see a freed table.
    pub fn unmap(
        &mut self,
        mem: &mut impl TableMemory,
        va: u64,
        size: u64,
    ) -> Result<(), MapError> {
        self.check_range(va, size)?;
        if let Some(level) = self.single_level(va, va, size)
            && let Some(result) = self.unmap_one(mem, va, level)
        {
            return result;
        }
        if self.splits_block(mem, va, va + size) {
            return Err(MapError::WouldSplit);
        }
        self.unmap_level(mem, self.root, self.start_level, va, va + size)
    }

    /// The level at which `[va, va + size)` -> `pa` is exactly one
    /// descriptor (a page, or a block the format allows), if it is: the
    /// case of [`Self::map_one`] and [`Self::unmap_one`], the virtio-iommu's
    /// usual request.
    fn single_level(&self, va: u64, pa: u64, size: u64) -> Option<usize> {
        let level = (self.start_level..=3).find(|&l| level_size(l) == size)?;
        let ok = level == 3 || level >= F::MIN_BLOCK_LEVEL.max(self.start_level);
        (ok && (va | pa).is_multiple_of(size)).then_some(level)
    }

    /// The table holding `va`'s descriptor at `level`, walking down from
    /// the root; missing tables are allocated when `alloc`. `Err` with the
    /// blocking descriptor's level when a block or page maps `va` above
    /// `level`; `Ok(None)` when a table is missing and not allocated.
    fn table_for(
        &self,
        mem: &mut impl TableMemory,
        va: u64,
        level: usize,
        alloc: bool,
    ) -> Result<Option<u64>, MapError> {
        let mut table = self.root;
        for l in self.start_level..level {
            let ptr = mem.table_ptr(table);
            let idx = self.index(l, va);
            // SAFETY: a live table page of this PageTable; idx is below the
            // number of entries at this level.
            let desc = unsafe { ptr.add(idx).read_volatile() };
            table = if desc & VALID == 0 {
                if !alloc {
                    return Ok(None);
                }
                let t = mem.alloc_tables(1).ok_or(MapError::NoMemory)?;
                // SAFETY: as above.
                unsafe {
                    ptr.add(idx)
                        .write_volatile((t & OA_MASK) | TABLE_OR_PAGE | VALID)
                };
                t
            } else if desc & TABLE_OR_PAGE == 0 {
                // A block above `level` covers `va`.
                return Err(if alloc {
                    MapError::AlreadyMapped
                } else {
                    MapError::WouldSplit
                });
            } else {
                desc & OA_MASK
            };
        }
        Ok(Some(table))
    }

    /// Maps the one descriptor at `level`: `None` when a table sits where
    /// the leaf goes (something may be mapped below it; the general walk
    /// finds out). Tables allocated on the way stay, as in the general
    /// walk's failure paths.
    fn map_one(
        &mut self,
        mem: &mut impl TableMemory,
        va: u64,
        pa: u64,
        level: usize,
        leaf: u64,
    ) -> Option<Result<(), MapError>> {
        let table = match self.table_for(mem, va, level, true) {
            Ok(Some(t)) => t,
            Ok(None) => return Some(Err(MapError::NoMemory)),
            Err(e) => return Some(Err(e)),
        };
        let ptr = mem.table_ptr(table);
        let idx = self.index(level, va);
        // SAFETY: live table page, index in range.
        let desc = unsafe { ptr.add(idx).read_volatile() };
        if desc & VALID != 0 {
            return if level < 3 && desc & TABLE_OR_PAGE != 0 {
                None
            } else {
                Some(Err(MapError::AlreadyMapped))
            };
        }
        let ty = if level == 3 { TABLE_OR_PAGE } else { 0 };
        // SAFETY: live table page, index in range.
        unsafe {
            ptr.add(idx)
                .write_volatile((pa & OA_MASK) | leaf | ty | VALID)
        };
        Some(Ok(()))
    }

    /// Unmaps the one descriptor at `level`: `None` when a table sits
    /// there (mappings below it: the general walk removes them).
    fn unmap_one(
        &mut self,
        mem: &mut impl TableMemory,
        va: u64,
        level: usize,
    ) -> Option<Result<(), MapError>> {
        let table = match self.table_for(mem, va, level, false) {
            Ok(Some(t)) => t,
            Ok(None) => return Some(Ok(())), // nothing mapped
            Err(e) => return Some(Err(e)),
        };
        let ptr = mem.table_ptr(table);
        let idx = self.index(level, va);
        // SAFETY: live table page, index in range.
        let desc = unsafe { ptr.add(idx).read_volatile() };
        if desc & VALID != 0 && level < 3 && desc & TABLE_OR_PAGE != 0 {
            return None;
        }
        // SAFETY: live table page, index in range.
        unsafe { ptr.add(idx).write_volatile(0) };
        Some(Ok(()))
    }

    fn unmap_level(
        &self,
        mem: &mut impl TableMemory,
        table: u64,
        level: usize,
        va: u64,
        end: u64,
    ) -> Result<(), MapError> {
        let block = level_size(level);
        let mut cur = va;
        while cur < end {
            let next = ((cur / block) + 1).saturating_mul(block).min(end);
            let ptr = mem.table_ptr(table);
            let idx = self.index(level, cur);
            // SAFETY: live table page, index in range.
            let desc = unsafe { ptr.add(idx).read_volatile() };
            if desc & VALID != 0 {
                if level < 3 && desc & TABLE_OR_PAGE != 0 {
                    self.unmap_level(mem, desc & OA_MASK, level + 1, cur, next)?;
                } else {
                    // SAFETY: live table page, index in range.
                    unsafe { ptr.add(idx).write_volatile(0) };
                }
            }
            cur = next;
        }
        Ok(())
    }

    /// Looks up `va`: the output address and attributes, if mapped.
    pub fn translate(&self, mem: &impl TableMemory, va: u64) -> Option<(u64, Attrs)> {
        if va >= 1u64 << self.ia_bits {
            return None;
        }
        let mut table = self.root;
        let mut level = self.start_level;
        loop {
            // SAFETY: live table page, index in range.
            let desc = unsafe {
                mem.table_ptr(table)
                    .add(self.index(level, va))
                    .read_volatile()
            };
            if desc & VALID == 0 {
                return None;
            }
            if level < 3 && desc & TABLE_OR_PAGE != 0 {
                table = desc & OA_MASK;
                level += 1;
                continue;
            }
            let size = level_size(level);
            return Some((
                (desc & OA_MASK & !(size - 1)) | (va & (size - 1)),
                F::decode(desc),
            ));
        }
    }

    /// Frees every table page, the root included.
    pub fn destroy(self, mem: &mut impl TableMemory) {
        let pages = self.root_entries.div_ceil(ENTRIES);
        for p in 0..pages {
            free_children(mem, self.root + p as u64 * PAGE_SIZE, self.start_level);
        }
        mem.free_tables(self.root, pages);
    }
}

/// Frees every table below the table page at `table`.
fn free_children(mem: &mut impl TableMemory, table: u64, level: usize) {
    if level >= 3 {
        return;
    }
    for i in 0..ENTRIES {
        // SAFETY: live table page, index in range.
        let desc = unsafe { mem.table_ptr(table).add(i).read_volatile() };
        if desc & VALID != 0 && desc & TABLE_OR_PAGE != 0 {
            free_children(mem, desc & OA_MASK, level + 1);
            mem.free_tables(desc & OA_MASK, 1);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
