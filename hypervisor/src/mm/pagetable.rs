//! One translation-table implementation (4 KiB granule, VMSAv8-64) for every
//! table the hypervisor builds: its own EL2 stage-1 map and the stage-2
//! tables that the CPU (VTTBR_EL2) and the SMMU walk. Only the leaf
//! attribute encoding differs between them; it comes from a [`Format`].
//!
//! Tables are reached through [`TableMemory`], so the same code runs at EL2
//! (identity-mapped physical memory) and in host unit tests (a fake).
//!
//! Every table below the root keeps the number of its valid entries in the
//! IGNORED bits \[11:2\] of the table descriptor that points at it (the
//! walkers of the CPU and the SMMU skip them). With a [`TableMemory`] that
//! [retires](TableMemory::retires) tables, [`PageTable::unmap`] unlinks a
//! table as soon as it is empty and hands it to
//! [`TableMemory::retire_table`], which frees it only after the caller's
//! TLB invalidation: a MAP/UNMAP loop holds steady memory.

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
/// Live-entry count of the next-level table, in a table descriptor's
/// IGNORED bits \[11:2\] (up to 1023; a table has at most 512 entries).
const COUNT_SHIFT: u32 = 2;
const COUNT_MASK: u64 = 0x3ff << COUNT_SHIFT;

/// Adds one to (`up`) or takes one from the live-entry count of the table
/// whose descriptor is at `slot`; returns the new count. `slot` is null for
/// the root, which keeps no count (reported as 1: never empty).
///
/// # Safety
/// `slot` is null or points at a valid table descriptor of a live table.
unsafe fn count_step(slot: *mut u64, up: bool) -> u64 {
    if slot.is_null() {
        return 1;
    }
    // SAFETY: per the function's contract.
    let d = unsafe { slot.read_volatile() };
    let n = (d & COUNT_MASK) >> COUNT_SHIFT;
    let n = if up {
        (n + 1).min(0x3ff)
    } else {
        n.saturating_sub(1)
    };
    // SAFETY: as above. A single store: a walker sees the old or the new
    // descriptor, with the same address and type either way.
    unsafe { slot.write_volatile((d & !COUNT_MASK) | (n << COUNT_SHIFT)) };
    n
}

/// One step of the live-entry count in the table descriptor at `slot`, as
/// [`count_step`] takes it for a table below the root (`slot` never null),
/// in one add: up (`step` [`COUNT_ONE`]) saturating at the field's top,
/// down (`step` the negation of [`COUNT_ONE`]) at 0; returns the new
/// descriptor. What the remembered table's map and unmap use.
///
/// # Safety
/// `slot` points at a valid table descriptor of a live table.
#[inline(always)]
unsafe fn count_add(slot: *mut u64, step: u64, saturated: u64) -> u64 {
    // SAFETY: per the function's contract.
    let d = unsafe { slot.read_volatile() };
    let d = if d & COUNT_MASK != saturated {
        d.wrapping_add(step)
    } else {
        d
    };
    // SAFETY: as above; a single store, as in `count_step`.
    unsafe { slot.write_volatile(d) };
    d
}

/// One live entry in a table descriptor's count.
const COUNT_ONE: u64 = 1 << COUNT_SHIFT;

/// The spare table of a [`PageTable`] (see its field): the VA its region
/// starts at and its level in one word, so that the unmap of a MAP+UNMAP
/// loop compares it with one comparison. The region is aligned to at
/// least 2 MiB and the level is at most 3: the two fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Spare(u64);

impl Spare {
    /// No spare: all ones is no table's key (its VA is not aligned).
    const NONE: Self = Self(u64::MAX);

    /// The key of the table at `level` covering the region from `va`.
    #[inline(always)]
    fn of(va: u64, level: usize) -> Self {
        Self(va | level as u64)
    }

    /// The spare's region VA and level, if there is one.
    fn get(self) -> Option<(u64, usize)> {
        (self != Self::NONE).then_some((self.0 & !3, (self.0 & 3) as usize))
    }
}

/// The live-entry count in table descriptor `desc`.
const fn count_of(desc: u64) -> u64 {
    (desc & COUNT_MASK) >> COUNT_SHIFT
}

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

/// The attribute bits of a leaf descriptor of format `F`, encoded once
/// (from [`Attrs`] by [`Format::encode`], or ahead of time by
/// [`Stage2::leaf`]): a caller that maps with a few fixed attributes keeps
/// their encodings instead of encoding on every map.
pub struct Leaf<F>(u64, PhantomData<fn() -> F>);

impl<F> Clone for Leaf<F> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<F> Copy for Leaf<F> {}

impl<F> core::fmt::Debug for Leaf<F> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Leaf({:#x})", self.0)
    }
}

impl<F> PartialEq for Leaf<F> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<F> Eq for Leaf<F> {}

impl<F: Format> From<Attrs> for Leaf<F> {
    #[inline(always)]
    fn from(a: Attrs) -> Self {
        Leaf(F::encode(a), PhantomData)
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

impl Stage2 {
    /// The attribute bits of a leaf descriptor with `a`.
    const fn bits(a: Attrs) -> u64 {
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

    /// [`Stage2::bits`] of every [`Attrs`], by [`Stage2::index`]: a leaf's
    /// encoding is one load on the request path.
    const BITS: [u64; 16] = {
        let mut t = [0; 16];
        let mut i = 0;
        while i < 16 {
            t[i] = Self::bits(Attrs {
                mem: if i & 1 != 0 {
                    MemType::Device
                } else {
                    MemType::Normal
                },
                read: i & 2 != 0,
                write: i & 4 != 0,
                exec: i & 8 != 0,
            });
            i += 1;
        }
        t
    };

    /// `a`'s leaf encoding, ahead of time (what [`Format::encode`] gives).
    pub const fn leaf(a: Attrs) -> Leaf<Stage2> {
        Leaf(Self::bits(a), PhantomData)
    }

    /// `a`'s index in [`Stage2::BITS`].
    const fn index(a: Attrs) -> usize {
        matches!(a.mem, MemType::Device) as usize
            | (a.read as usize) << 1
            | (a.write as usize) << 2
            | (a.exec as usize) << 3
    }
}

impl Format for Stage2 {
    #[inline(always)]
    fn encode(a: Attrs) -> u64 {
        Self::BITS[Self::index(a)]
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
    /// Whether tables emptied by [`PageTable::unmap`] (or left empty by a
    /// failed [`PageTable::map`]) are unlinked and handed to
    /// [`TableMemory::retire_table`]. The default keeps them linked until
    /// [`PageTable::destroy`].
    fn retires(&self) -> bool {
        false
    }
    /// Takes back a table page that was just unlinked, zeroed (all its
    /// entries invalid). Walkers may still hold it in their walk caches:
    /// the memory frees it only after the invalidation that follows.
    fn retire_table(&mut self, pa: u64) {
        let _ = pa;
    }
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
    /// The table the last one-descriptor unmap left empty, kept linked
    /// (the VA it covers and its level) so that the MAP that usually
    /// follows reuses it instead of retiring one table and taking another;
    /// at most one is kept, so memory stays bounded: the previous spare is
    /// retired (if still empty) when another table empties, and
    /// [`PageTable::release_spare`] retires it on demand.
    spare: Spare,
    /// The table the last one-descriptor map or unmap below the root
    /// walked to (a last-level table for a page, a level-2 table for a
    /// 2 MiB block): the next one at the same level in the region that
    /// table covers (consecutive IOVAs, the UNMAP of a pair) skips the
    /// walk. Valid while that table is linked:
    /// every path that unlinks a table or rewrites the root clears it
    /// ([`Self::clear_range`], [`Self::retire_if_empty`],
    /// [`Self::write_root`]); the one-descriptor paths only add or clear
    /// leaves, and a table is never replaced by a block while linked.
    last_leaf: LastLeaf,
    _format: PhantomData<F>,
}

/// A leaf of a table's remembered table that one unmap removes whole,
/// found by [`PageTable::one_leaf`] and removed by
/// [`PageTable::unmap_leaf`] (valid until the table changes).
#[derive(Debug, Clone, Copy)]
pub struct OneLeaf {
    /// The descriptor.
    slot: *mut u64,
    /// Its level.
    level: usize,
}

/// See [`PageTable`]'s `last_leaf`.
#[derive(Debug, Clone, Copy)]
struct LastLeaf {
    /// `(va >> shift) << 2 | level`: the region the table covers and the
    /// level of its descriptors (below the root, so at least 1), one
    /// comparison on the lookup path; [`LastLeaf::NONE`]'s key matches no
    /// request.
    key: u64,
    /// `log2(level_size(level - 1))`: the size of the region the table
    /// covers (kept, not computed, on the lookup path).
    shift: u32,
    /// `level_size(level)`: the size one of its descriptors maps (0 for
    /// [`LastLeaf::NONE`]).
    size: u64,
    /// The table's physical address.
    table: u64,
    /// Address of the descriptor pointing at it (its live-entry count),
    /// as an integer so that the table stays `Send`.
    slot: usize,
}

impl LastLeaf {
    /// No table remembered: all ones is no request's key, whatever `va`
    /// (with this shift of 63 a key is at most 7, and `va >> 63` at most
    /// 1, never `u64::MAX >> 2`).
    const NONE: Self = Self {
        key: u64::MAX,
        shift: 63,
        size: 0,
        table: 0,
        slot: 0,
    };

    /// The key of `va`'s table at `level` for a region of `1 << shift`.
    #[inline(always)]
    fn key(va: u64, shift: u32, level: usize) -> u64 {
        ((va >> shift) << 2) | level as u64
    }
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
            spare: Spare::NONE,
            last_leaf: LastLeaf::NONE,
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
    ///
    /// Inlined: a one-descriptor map into the remembered table (see
    /// `last_leaf`), its descriptor free, is written here; everything
    /// else, errors included, is [`PageTable::map_general`]'s. What lets
    /// it in ([`Self::remembered_one`]) implies every check of the
    /// general path, so it answers and writes exactly as that path would.
    #[inline(always)]
    pub fn map(
        &mut self,
        mem: &mut impl TableMemory,
        va: u64,
        pa: u64,
        size: u64,
        attrs: impl Into<Leaf<F>>,
    ) -> Result<(), MapError> {
        let leaf = attrs.into();
        if self.map_remembered(mem, va, pa, size, leaf) {
            return Ok(());
        }
        self.map_general(mem, va, pa, size, leaf)
    }

    /// [`PageTable::map`]'s inlined case alone: writes the one free
    /// descriptor of the remembered table `[va, va + size)` -> `pa` is and
    /// returns true (what [`PageTable::map_general`] would write, and
    /// nothing retired or allocated), or changes nothing and returns false
    /// (the caller then calls [`PageTable::map_general`]).
    #[inline(always)]
    pub fn map_remembered(
        &mut self,
        mem: &mut impl TableMemory,
        va: u64,
        pa: u64,
        size: u64,
        leaf: Leaf<F>,
    ) -> bool {
        if let Some((slot, desc, level)) = self.remembered_one(mem, va, pa, size)
            && desc & VALID == 0
        {
            let ty = if level == 3 { TABLE_OR_PAGE } else { 0 };
            // SAFETY: `slot` is the free descriptor of `va` in the live
            // remembered table, whose own descriptor is `last_leaf.slot`.
            unsafe {
                slot.write_volatile((pa & OA_MASK) | leaf.0 | ty | VALID);
                count_add(self.last_leaf.slot as *mut u64, COUNT_ONE, COUNT_MASK);
            }
            return true;
        }
        false
    }

    /// The descriptor of `va` in the remembered table, its value and its
    /// level, when `[va, va + size)` -> `pa` is exactly one descriptor of
    /// that table (nothing is changed; `pa` 0 for an unmap).
    ///
    /// Its four tests imply every check of [`Self::map_general`] and
    /// [`Self::unmap_general`] before their walk, and that the walk
    /// reaches this table: `size` is the remembered table's descriptor
    /// size (a page or a block its level allows: only
    /// [`Self::single_level`]'s levels are remembered), so not 0 and a
    /// page multiple; `va` and `pa` are multiples of it, so page aligned;
    /// `pa` below 2^48 and a multiple of `size`, which divides 2^48, so
    /// `pa + size <= 2^48`; `va` inside the region of a table linked
    /// below the root, a region inside the input range whose size
    /// `size` divides, so `va + size <= 2^ia_bits`.
    #[inline(always)]
    fn remembered_one(
        &self,
        mem: &impl TableMemory,
        va: u64,
        pa: u64,
        size: u64,
    ) -> Option<(*mut u64, u64, usize)> {
        let last = self.last_leaf;
        if size != last.size
            || (va | pa) & size.wrapping_sub(1) != 0
            || pa >> 48 != 0
            || va >> last.shift != last.key >> 2
        {
            return None;
        }
        let level = (last.key & 3) as usize;
        // The remembered table is below the root: 512 entries.
        let idx = ((va >> (last.shift - 9)) as usize) & (ENTRIES - 1);
        // SAFETY: a live table page (see `last_leaf`), index in range.
        let p = unsafe { mem.table_ptr(last.table).add(idx) };
        // SAFETY: as above.
        Some((p, unsafe { p.read_volatile() }, level))
    }

    /// [`PageTable::map`], every case: the checks, the one-descriptor walk
    /// (from the remembered table or the root), the general walk.
    #[inline(never)]
    pub fn map_general(
        &mut self,
        mem: &mut impl TableMemory,
        va: u64,
        pa: u64,
        size: u64,
        attrs: impl Into<Leaf<F>>,
    ) -> Result<(), MapError> {
        self.check_range(va, size)?;
        if !pa.is_multiple_of(PAGE_SIZE) {
            return Err(MapError::Misaligned);
        }
        match pa.checked_add(size) {
            Some(end) if end <= 1 << 48 => {}
            _ => return Err(MapError::OutOfRange),
        }
        let leaf = attrs.into().0;
        // One descriptor: the shortcut walk, unless a table sits where the
        // leaf goes (then the general walk decides).
        if let Some(level) = self.single_level(va, pa, size)
            && let Some(result) = self.map_one(mem, va, pa, level, leaf)
        {
            if result == Err(MapError::NoMemory) && mem.retires() {
                // Tables allocated on the way are empty: take them back.
                self.clear_range(mem, va, va + size, true);
            }
            return result;
        }
        if self.any_mapped(mem, va, va + size) {
            return Err(MapError::AlreadyMapped);
        }
        let mut done = 0;
        let result = self.map_level(
            mem,
            self.root,
            core::ptr::null_mut(),
            self.start_level,
            va,
            pa,
            size,
            leaf,
            &mut done,
        );
        if result.is_err() {
            // Roll back what was mapped before running out of tables (the
            // range was free: everything in it is this call's), and with
            // a retiring memory the tables this call added, now empty.
            let retire = mem.retires();
            let end = if retire { va + size } else { va + done };
            if end > va {
                self.clear_range(mem, va, end, retire);
            }
        }
        result
    }

    /// How many leaf descriptors [`PageTable::map`] writes for
    /// `[va, va + size)` -> `pa` into free space (largest blocks the
    /// alignment of both sides allows): the cost of a map, known before
    /// doing it.
    pub fn leaf_count(&self, va: u64, pa: u64, size: u64) -> u64 {
        if size == PAGE_SIZE {
            return 1; // the usual request: no walk of the levels
        }
        let min = F::MIN_BLOCK_LEVEL.max(self.start_level);
        leaves(
            self.start_level,
            min,
            va,
            va.saturating_add(size),
            pa.wrapping_sub(va),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn map_level(
        &self,
        mem: &mut impl TableMemory,
        table: u64,
        slot: *mut u64,
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
                // SAFETY: as above; `slot` is this table's descriptor.
                unsafe {
                    ptr.add(idx)
                        .write_volatile((out & OA_MASK) | leaf | ty | VALID);
                    count_step(slot, true);
                };
                *done += next - cur;
            } else {
                let sub = if desc & VALID == 0 {
                    let t = mem.alloc_tables(1).ok_or(MapError::NoMemory)?;
                    // SAFETY: as above.
                    unsafe {
                        ptr.add(idx)
                            .write_volatile((t & OA_MASK) | TABLE_OR_PAGE | VALID);
                        count_step(slot, true);
                    };
                    t
                } else {
                    desc & OA_MASK
                };
                // SAFETY: idx is below the number of entries at this level.
                let sub_slot = unsafe { ptr.add(idx) };
                self.map_level(
                    mem,
                    sub,
                    sub_slot,
                    level + 1,
                    cur,
                    out,
                    next - cur,
                    leaf,
                    done,
                )?;
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
    /// walker can see a freed table, unless the memory
    /// [retires](TableMemory::retires) tables: then they are unlinked and
    /// retired, and the caller must invalidate walk caches too (not only
    /// leaf entries) before the memory frees them.
    ///
    /// Inlined: a one-descriptor unmap of a leaf in the remembered table
    /// (see `last_leaf`) is done here; everything else, errors included,
    /// is [`PageTable::unmap_general`]'s. What lets it in
    /// ([`Self::remembered_one`]) implies every check of the general path.
    #[inline]
    pub fn unmap(
        &mut self,
        mem: &mut impl TableMemory,
        va: u64,
        size: u64,
    ) -> Result<(), MapError> {
        if let Some(leaf) = self.one_leaf(mem, va, size) {
            // SAFETY: found just now, in this table, no change since.
            unsafe { self.unmap_leaf(mem, va, leaf) };
            return Ok(());
        }
        self.unmap_general(mem, va, size)
    }

    /// The leaf that is exactly `[va, va + size)` (a page or a block),
    /// when the remembered table holds it (nothing is changed; `None` says
    /// nothing). Unmapping such a range removes one leaf, so one
    /// invalidation by address covers every TLB entry it may have left,
    /// whatever its size; [`PageTable::unmap_leaf`] removes it without
    /// looking for it again.
    #[inline(always)]
    pub fn one_leaf(&self, mem: &impl TableMemory, va: u64, size: u64) -> Option<OneLeaf> {
        match self.remembered_one(mem, va, 0, size) {
            Some((slot, desc, level))
                if desc & VALID != 0 && (level == 3 || desc & TABLE_OR_PAGE == 0) =>
            {
                Some(OneLeaf { slot, level })
            }
            _ => None,
        }
    }

    /// [`PageTable::unmap`] of the leaf [`PageTable::one_leaf`] found for
    /// `va`: cleared, its table's live count stepped down, the table
    /// retired when it empties (unless it is the spare).
    ///
    /// # Safety
    /// `leaf` is what this table's `one_leaf` returned for `va` (with
    /// `mem`), and the table has not changed since.
    #[inline(always)]
    pub unsafe fn unmap_leaf(&mut self, mem: &mut impl TableMemory, va: u64, leaf: OneLeaf) {
        let OneLeaf { slot, level } = leaf;
        // SAFETY: `slot` is the leaf of `va` in the live remembered
        // table, whose own descriptor is `last_leaf.slot` (the caller's
        // contract: nothing changed since `one_leaf`).
        let emptied = unsafe {
            slot.write_volatile(0);
            count_add(self.last_leaf.slot as *mut u64, COUNT_ONE.wrapping_neg(), 0) & COUNT_MASK
                == 0
        };
        // Already the spare (a MAP+UNMAP loop empties the same table
        // each time): what `emptied` would leave, without its call.
        let shift = self.last_leaf.shift;
        if emptied && self.spare != Spare::of((va >> shift) << shift, level) {
            self.emptied(mem, va, level);
        }
    }

    /// [`PageTable::unmap`], every case: the checks, the one-descriptor
    /// walk (from the remembered table or the root), the general walk.
    #[inline(never)]
    pub fn unmap_general(
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
        let retire = mem.retires();
        self.clear_range(mem, va, va + size, retire);
        Ok(())
    }

    /// The level at which `[va, va + size)` -> `pa` is exactly one
    /// descriptor (a page, or a block the format allows), if it is: the
    /// case of [`Self::map_one`] and [`Self::unmap_one`], the virtio-iommu's
    /// usual request.
    fn single_level(&self, va: u64, pa: u64, size: u64) -> Option<usize> {
        // The level whose descriptor covers exactly `size` (no search).
        let level = match size {
            s if s == level_size(3) => 3,
            s if s == level_size(2) => 2,
            s if s == level_size(1) => 1,
            s if s == level_size(0) => 0,
            _ => return None,
        };
        if level < self.start_level {
            return None;
        }
        let ok = level == 3 || level >= F::MIN_BLOCK_LEVEL.max(self.start_level);
        (ok && (va | pa).is_multiple_of(size)).then_some(level)
    }

    /// The table holding `va`'s descriptor at `level`, walking down from
    /// the root; missing tables are allocated when `alloc`. `Err` with the
    /// blocking descriptor's level when a block or page maps `va` above
    /// `level`; `Ok(None)` when a table is missing and not allocated.
    /// `path` receives, per level, the table walked and the descriptor
    /// pointing at it (null for the root).
    fn table_for(
        &self,
        mem: &mut impl TableMemory,
        va: u64,
        level: usize,
        alloc: bool,
        path: &mut Path,
    ) -> Result<Option<u64>, MapError> {
        let mut table = self.root;
        let mut slot: *mut u64 = core::ptr::null_mut();
        path.tables[self.start_level] = table;
        path.slots[self.start_level] = slot;
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
                // SAFETY: as above; `slot` is this table's descriptor.
                unsafe {
                    ptr.add(idx)
                        .write_volatile((t & OA_MASK) | TABLE_OR_PAGE | VALID);
                    count_step(slot, true);
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
            // SAFETY: idx is below the number of entries at this level.
            slot = unsafe { ptr.add(idx) };
            path.tables[l + 1] = table;
            path.slots[l + 1] = slot;
        }
        Ok(Some(table))
    }

    /// [`Self::table_for`] for the one-descriptor paths: the table holding
    /// `va`'s descriptor at `level` and the descriptor pointing at it
    /// (null for the root). A table below the root comes from
    /// `last_leaf` when the previous walk went to the same one, and is
    /// remembered.
    #[inline]
    fn walk_to(
        &mut self,
        mem: &mut impl TableMemory,
        va: u64,
        level: usize,
        alloc: bool,
    ) -> Result<Option<(u64, *mut u64)>, MapError> {
        let last = self.last_leaf;
        if LastLeaf::key(va, last.shift, level) == last.key {
            return Ok(Some((last.table, last.slot as *mut u64)));
        }
        let mut path = Path::default();
        let Some(table) = self.table_for(mem, va, level, alloc, &mut path)? else {
            return Ok(None);
        };
        let slot = path.slots[level];
        if level > self.start_level {
            // The region a table of `level` descriptors covers (`level` is
            // at most 3: a shift of at most 48).
            let shift = 21 + 9 * (3 - level as u32);
            self.last_leaf = LastLeaf {
                key: LastLeaf::key(va, shift, level),
                shift,
                size: level_size(level),
                table,
                slot: slot as usize,
            };
        }
        Ok(Some((table, slot)))
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
        let (table, slot) = match self.walk_to(mem, va, level, true) {
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
        // SAFETY: live table page, index in range; `slot` is this table's
        // descriptor.
        unsafe {
            ptr.add(idx)
                .write_volatile((pa & OA_MASK) | leaf | ty | VALID);
            count_step(slot, true);
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
        let (table, slot) = match self.walk_to(mem, va, level, false) {
            Ok(Some(t)) => t,
            Ok(None) => return Some(Ok(())), // nothing mapped
            Err(e) => return Some(Err(e)),
        };
        let ptr = mem.table_ptr(table);
        let idx = self.index(level, va);
        // SAFETY: live table page, index in range.
        let desc = unsafe { ptr.add(idx).read_volatile() };
        if desc & VALID == 0 {
            return Some(Ok(()));
        }
        if level < 3 && desc & TABLE_OR_PAGE != 0 {
            return None;
        }
        // SAFETY: live table page, index in range.
        unsafe { ptr.add(idx).write_volatile(0) };
        // Count the entry out. A table it leaves empty stays linked as the
        // spare; the previous spare is retired if it is still empty.
        // SAFETY: `slot` is the live descriptor of this table.
        if unsafe { count_step(slot, false) } == 0 {
            self.emptied(mem, va, level);
        }
        Some(Ok(()))
    }

    /// After a one-descriptor unmap left `va`'s table at `level` empty: it
    /// stays linked as the spare; the previous spare is retired if it is
    /// still empty.
    fn emptied(&mut self, mem: &mut impl TableMemory, va: u64, level: usize) {
        if mem.retires() && level > self.start_level {
            let table_va = va & !(level_size(level - 1) - 1);
            let new = Spare::of(table_va, level);
            let old = core::mem::replace(&mut self.spare, new);
            if let Some((old_va, old_level)) = old.get()
                && old != new
            {
                self.retire_if_empty(mem, old_va, old_level);
            }
        }
    }

    /// The table at `level` covering `va`, if one is linked (for checks).
    #[cfg(test)]
    fn table_at(&self, mem: &impl TableMemory, va: u64, level: usize) -> Option<u64> {
        let mut table = self.root;
        for l in self.start_level..level {
            // SAFETY: a live table page of this PageTable; index in range.
            let desc = unsafe { mem.table_ptr(table).add(self.index(l, va)).read_volatile() };
            if desc & VALID == 0 || desc & TABLE_OR_PAGE == 0 {
                return None;
            }
            table = desc & OA_MASK;
        }
        Some(table)
    }

    /// Whether an emptied table is kept linked as the spare.
    pub fn has_spare(&self) -> bool {
        self.spare.get().is_some()
    }

    /// Retires the spare table (see the field) if it is still empty, and
    /// each parent this leaves empty: afterwards no emptied table stays
    /// linked. For memory that [retires](TableMemory::retires) tables.
    pub fn release_spare(&mut self, mem: &mut impl TableMemory) {
        if let Some((va, level)) = core::mem::replace(&mut self.spare, Spare::NONE).get() {
            self.retire_if_empty(mem, va, level);
        }
    }

    /// Unlinks and retires the table at `level` covering `va` if it is
    /// (still) empty, then each parent that this leaves empty.
    fn retire_if_empty(&mut self, mem: &mut impl TableMemory, va: u64, level: usize) {
        let mut path = Path::default();
        if !matches!(
            self.table_for(mem, va, level, false, &mut path),
            Ok(Some(_))
        ) {
            return; // gone already (a range unmap retired it)
        }
        // SAFETY: the path's slots are the live descriptors of its tables.
        if count_of(unsafe { path.slots[level].read_volatile() }) != 0 {
            return; // mapped into again since
        }
        self.last_leaf = LastLeaf::NONE; // a table is unlinked
        let mut l = level;
        loop {
            // SAFETY: as above; the descriptor is unlinked before the
            // table is handed over.
            unsafe { path.slots[l].write_volatile(0) };
            mem.retire_table(path.tables[l]);
            l -= 1;
            // SAFETY: as above: the parent lost one entry.
            if l <= self.start_level || unsafe { count_step(path.slots[l], false) } != 0 {
                break;
            }
        }
    }

    /// Clears every leaf in `[va, end)` from the root down; with `retire`,
    /// unlinks and retires every table the range leaves empty.
    fn clear_range(&mut self, mem: &mut impl TableMemory, va: u64, end: u64, retire: bool) {
        if retire {
            self.last_leaf = LastLeaf::NONE; // tables may be unlinked
        }
        self.unmap_level(
            mem,
            self.root,
            core::ptr::null_mut(),
            self.start_level,
            va,
            end,
            retire,
        );
    }

    /// Clears every leaf in `[va, end)` of `table` (whose descriptor is at
    /// `slot`, null for the root) and below; with `retire`, unlinks and
    /// retires every table below `table` in the range left empty.
    #[allow(clippy::too_many_arguments)]
    fn unmap_level(
        &self,
        mem: &mut impl TableMemory,
        table: u64,
        slot: *mut u64,
        level: usize,
        va: u64,
        end: u64,
        retire: bool,
    ) {
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
                    // SAFETY: index in range.
                    let sub_slot = unsafe { ptr.add(idx) };
                    self.unmap_level(mem, desc & OA_MASK, sub_slot, level + 1, cur, next, retire);
                    // SAFETY: live table page, index in range.
                    let now = unsafe { sub_slot.read_volatile() };
                    if retire && count_of(now) == 0 {
                        // SAFETY: as above; unlinked before handed over,
                        // and `slot` is this table's descriptor.
                        unsafe {
                            sub_slot.write_volatile(0);
                            count_step(slot, false);
                        }
                        mem.retire_table(now & OA_MASK);
                    }
                } else {
                    // SAFETY: live table page, index in range; `slot` is
                    // this table's descriptor.
                    unsafe {
                        ptr.add(idx).write_volatile(0);
                        count_step(slot, false);
                    }
                }
            }
            cur = next;
        }
    }

    /// Looks up `va`: the output address and attributes, if mapped.
    pub fn translate(&self, mem: &impl TableMemory, va: u64) -> Option<(u64, Attrs)> {
        self.translate_block(mem, va)
            .map(|(pa, attrs, _)| (pa, attrs))
    }

    /// Looks up `va`: the output address, the attributes and the size of
    /// the page or block mapping it (`va` may be anywhere inside it), if
    /// mapped. One walk answers for the whole block.
    pub fn translate_block(&self, mem: &impl TableMemory, va: u64) -> Option<(u64, Attrs, u64)> {
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
                size,
            ));
        }
    }

    /// Calls `f(va, pa, size, attrs)` for every leaf (page or block), in
    /// address order; returns the number of table pages linked in the
    /// table, the root included. A whole-table walk, for checks and
    /// reports, not for a request path.
    pub fn for_each_leaf(
        &self,
        mem: &impl TableMemory,
        mut f: impl FnMut(u64, u64, u64, Attrs),
    ) -> usize {
        fn walk<F: Format>(
            mem: &impl TableMemory,
            table: u64,
            level: usize,
            entries: usize,
            base: u64,
            f: &mut impl FnMut(u64, u64, u64, Attrs),
        ) -> usize {
            let mut tables = 0;
            let ptr = mem.table_ptr(table);
            for i in 0..entries {
                // SAFETY: live table page (or concatenated root), index in
                // range.
                let d = unsafe { ptr.add(i).read_volatile() };
                if d & VALID == 0 {
                    continue;
                }
                let va = base + i as u64 * level_size(level);
                if level < 3 && d & TABLE_OR_PAGE != 0 {
                    tables += 1 + walk::<F>(mem, d & OA_MASK, level + 1, ENTRIES, va, f);
                } else {
                    f(va, d & OA_MASK, level_size(level), F::decode(d));
                }
            }
            tables
        }
        let pages = self.root_entries.div_ceil(ENTRIES);
        pages
            + walk::<F>(
                mem,
                self.root,
                self.start_level,
                self.root_entries,
                0,
                &mut f,
            )
    }

    /// Number of root pages (more than one for a concatenated stage-2 root).
    fn root_pages(&self) -> usize {
        self.root_entries.div_ceil(ENTRIES)
    }

    /// Copies `source`'s root descriptors (same geometry) into this
    /// table's root: it then translates as `source` does, through
    /// `source`'s tables below the root. Only for a table nothing is
    /// mapped into by [`PageTable::map`]; what the copied descriptors point
    /// at belongs to `source` and must never be freed through this table
    /// (see [`crate::mm::mirror::MirrorTable`], the one user).
    pub(crate) fn copy_root_from(
        &mut self,
        mem: &impl TableMemory,
        source: &PageTable<F>,
        source_mem: &impl TableMemory,
    ) -> Result<(), MapError> {
        if source.root_entries != self.root_entries || source.start_level != self.start_level {
            return Err(MapError::OutOfRange);
        }
        self.write_root(mem, |off, i| {
            // SAFETY: `source`'s live root page at `off`, `i` in range.
            unsafe {
                source_mem
                    .table_ptr(source.root + off)
                    .add(i)
                    .read_volatile()
            }
        });
        Ok(())
    }

    /// Makes every root descriptor invalid without freeing anything they
    /// pointed at (undoes [`PageTable::copy_root_from`]).
    pub(crate) fn clear_root(&mut self, mem: &impl TableMemory) {
        self.write_root(mem, |_, _| 0);
    }

    /// Writes root descriptor `i` of the root page at offset `off` with
    /// `value(off, i)`, for every one.
    fn write_root(&mut self, mem: &impl TableMemory, value: impl Fn(u64, usize) -> u64) {
        self.last_leaf = LastLeaf::NONE;
        for p in 0..self.root_pages() {
            let off = p as u64 * PAGE_SIZE;
            let dst = mem.table_ptr(self.root + off);
            for i in 0..ENTRIES.min(self.root_entries) {
                // SAFETY: a live root page of this table, `i` in range (a
                // one-page root has `root_entries` descriptors). One store
                // per descriptor: a walker sees the old or the new one.
                unsafe { dst.add(i).write_volatile(value(off, i)) };
            }
        }
    }

    /// Frees every table page, the root included.
    pub fn destroy(self, mem: &mut impl TableMemory) {
        let pages = self.root_pages();
        for p in 0..pages {
            free_children(mem, self.root + p as u64 * PAGE_SIZE, self.start_level);
        }
        mem.free_tables(self.root, pages);
    }
}

/// The tables and table descriptors of one walk, by level (the root's
/// descriptor is null).
struct Path {
    tables: [u64; 4],
    slots: [*mut u64; 4],
}

impl Default for Path {
    fn default() -> Self {
        Path {
            tables: [0; 4],
            slots: [core::ptr::null_mut(); 4],
        }
    }
}

/// Leaf descriptors a map of `[cur, end)` writes from `level` down, with
/// blocks allowed from `min` and output = input + `off` (wrapping).
fn leaves(level: usize, min: usize, cur: u64, end: u64, off: u64) -> u64 {
    if cur >= end {
        return 0;
    }
    if level >= 3 {
        return (end - cur).div_ceil(PAGE_SIZE);
    }
    let bs = level_size(level);
    if level < min || !off.is_multiple_of(bs) {
        return leaves(level + 1, min, cur, end, off);
    }
    let first = cur.div_ceil(bs).saturating_mul(bs);
    let last = end / bs * bs;
    if first >= last {
        return leaves(level + 1, min, cur, end, off);
    }
    (last - first) / bs
        + leaves(level + 1, min, cur, first, off)
        + leaves(level + 1, min, last, end, off)
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
