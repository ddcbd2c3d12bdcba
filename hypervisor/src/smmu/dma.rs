//! Memory shared with the SMMU: where it comes from ([`DmaMemory`]), how
//! CPU writes reach a non-coherent SMMU ([`CacheOps`], [`CacheSync`]) and a
//! bounds-checked handle on one allocation ([`DmaBlock`]), and that block
//! seen as 16-byte slots ([`Slots16`], a command queue's entries).

use super::cmd::Cmd;
use core::ptr::NonNull;

/// Memory the SMMU reads and writes: the stream table and the queues.
///
/// # Safety
///
/// An implementation guarantees that for every block `alloc_zeroed(bytes,
/// align)` returns at physical address `p`:
/// - `p` is a multiple of `align`, and the block is zero-filled;
/// - for every `off < bytes`, `ptr(p + off)` is a pointer valid for reads
///   and writes (volatile, up to 8 bytes at 8-byte aligned offsets) for as
///   long as the implementation lives, and `ptr(p + off) == ptr(p) + off`;
/// - `ptr(p)` is at least 8-byte aligned;
/// - blocks never overlap each other or memory Rust code owns elsewhere,
///   and `p` is the address the SMMU uses for that memory.
pub unsafe trait DmaMemory {
    /// Allocates `bytes` zeroed bytes aligned to `align` (a power of two);
    /// returns the physical address, or `None` when out of memory.
    fn alloc_zeroed(&mut self, bytes: usize, align: usize) -> Option<u64>;
    /// The CPU pointer to physical address `phys` of an allocated block.
    fn ptr(&self, phys: u64) -> *mut u8;
}

/// Data-cache maintenance by physical address, for an SMMU whose accesses
/// do not snoop the CPU caches. Only called when the SMMU is not coherent.
pub trait CacheOps {
    /// Cleans `[phys, phys + len)` to the point of coherency (`DC CVAC`),
    /// then completes it (`DSB`): CPU writes become visible to the SMMU.
    fn clean(&self, phys: u64, len: usize);
    /// Cleans and invalidates `[phys, phys + len)` to the point of
    /// coherency (`DC CIVAC`, `DSB`): later CPU reads see what the SMMU
    /// wrote.
    fn clean_invalidate(&self, phys: u64, len: usize);
}

/// [`CacheOps`] that does nothing, for coherent SMMUs.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCacheOps;

impl CacheOps for NoCacheOps {
    fn clean(&self, _phys: u64, _len: usize) {}
    fn clean_invalidate(&self, _phys: u64, _len: usize) {}
}

/// [`CacheOps`] applied only when the SMMU is not coherent.
#[derive(Debug, Clone)]
pub struct CacheSync<C> {
    cache: C,
    coherent: bool,
}

impl<C: CacheOps> CacheSync<C> {
    /// Cache maintenance `cache`, used only when `coherent` is false.
    pub fn new(cache: C, coherent: bool) -> Self {
        Self { cache, coherent }
    }

    /// Whether the SMMU snoops the CPU caches.
    pub fn coherent(&self) -> bool {
        self.coherent
    }

    /// Makes CPU writes to `[phys, phys + len)` visible to the SMMU.
    pub fn to_device(&self, phys: u64, len: usize) {
        if !self.coherent && len > 0 {
            self.cache.clean(phys, len);
        }
    }

    /// Makes SMMU writes to `[phys, phys + len)` visible to the CPU.
    pub fn to_cpu(&self, phys: u64, len: usize) {
        if !self.coherent && len > 0 {
            self.cache.clean_invalidate(phys, len);
        }
    }
}

/// One block from [`DmaMemory`]: its physical address, CPU pointer and
/// length. Word accesses are bounds-checked and volatile.
#[derive(Debug, Clone, Copy)]
pub struct DmaBlock {
    phys: u64,
    ptr: *mut u8,
    len: usize,
}

// SAFETY: a DmaBlock is an address range in memory that `DmaMemory`
// guarantees stays valid and is not owned by any Rust object; moving the
// handle to another CPU does not change who may access it. It is not
// `Sync`: callers serialise accesses (the driver sits behind a lock).
unsafe impl Send for DmaBlock {}

impl DmaBlock {
    /// Allocates `len` zeroed bytes aligned to `align` (a power of two);
    /// `None` if the memory is exhausted or hands out a block that breaks
    /// the [`DmaMemory`] contract visibly (misaligned, null).
    pub fn alloc(mem: &mut impl DmaMemory, len: usize, align: usize) -> Option<Self> {
        if len == 0 || !align.is_power_of_two() {
            return None;
        }
        let phys = mem.alloc_zeroed(len, align)?;
        let ptr = mem.ptr(phys);
        if !phys.is_multiple_of(align as u64) || ptr.is_null() || !(ptr as usize).is_multiple_of(8)
        {
            return None;
        }
        Some(Self { phys, ptr, len })
    }

    /// Physical address of the first byte.
    pub fn phys(&self) -> u64 {
        self.phys
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the block is empty (never, for an allocated block).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn word(&self, off: usize) -> Option<*mut u64> {
        let end = off.checked_add(8)?;
        (off.is_multiple_of(8) && end <= self.len).then(|| {
            // SAFETY: off + 8 <= len, so the result stays inside the block.
            unsafe { self.ptr.add(off) }.cast::<u64>()
        })
    }

    /// Reads the 64-bit word at byte offset `off` (8-aligned); an offset
    /// outside the block reads 0.
    pub fn read_u64(&self, off: usize) -> u64 {
        debug_assert!(
            self.word(off).is_some(),
            "DMA read at {off:#x} out of bounds"
        );
        match self.word(off) {
            // SAFETY: in bounds and 8-aligned (block pointer 8-aligned,
            // offset a multiple of 8); DmaMemory keeps the block valid.
            Some(p) => u64::from_le(unsafe { p.read_volatile() }),
            None => 0,
        }
    }

    /// Writes `words` from byte offset `off` (8-aligned) on, each as one
    /// single-copy-atomic store, as [`DmaBlock::write_u64`] of each word
    /// at its offset would: one bounds check for all when they all fit
    /// (a queue entry), else word by word (a word outside is ignored).
    pub fn write_words(&self, off: usize, words: &[u64]) {
        let fits = off
            .checked_add(words.len() * 8)
            .is_some_and(|end| end <= self.len);
        if fits && off.is_multiple_of(8) {
            // SAFETY: off + 8 * len <= block length, so every word stays
            // inside the block; 8-aligned as in read_u64.
            let p = unsafe { self.ptr.add(off) }.cast::<u64>();
            for (i, w) in words.iter().enumerate() {
                // SAFETY: as above, i < words.len().
                unsafe { p.add(i).write_volatile(w.to_le()) }
            }
        } else {
            for (i, w) in words.iter().enumerate() {
                self.write_u64(off.wrapping_add(i * 8), *w);
            }
        }
    }

    /// Writes the 64-bit word at byte offset `off` (8-aligned) as one
    /// single-copy-atomic store; an offset outside the block is ignored.
    pub fn write_u64(&self, off: usize, value: u64) {
        debug_assert!(
            self.word(off).is_some(),
            "DMA write at {off:#x} out of bounds"
        );
        if let Some(p) = self.word(off) {
            // SAFETY: as in read_u64.
            unsafe { p.write_volatile(value.to_le()) }
        }
    }
}

/// A [`DmaBlock`] seen as a power-of-two number of 16-byte slots (the
/// entries of a command queue). Made only by [`DmaBlock::slots16`], when
/// the block is exactly that long: a slot index masked to the count is
/// inside the block, so a slot is written without a bounds check.
#[derive(Debug, Clone, Copy)]
pub struct Slots16 {
    /// The block's first word (8-aligned). Non-null, so that an
    /// `Option<Slots16>` is tested on the pointer itself (no tag of its
    /// own to load).
    ptr: NonNull<u64>,
    /// Slot count - 1.
    imask: u32,
}

// SAFETY: as for DmaBlock: an address range `DmaMemory` keeps valid and
// no Rust object owns; callers serialise accesses.
unsafe impl Send for Slots16 {}

impl DmaBlock {
    /// The block as `count` 16-byte slots, if `count` is a power of two,
    /// the block is exactly `count * 16` bytes long and its first byte is
    /// 16-aligned (as a queue's block, aligned to its size, is).
    pub fn slots16(&self, count: u32) -> Option<Slots16> {
        let exact = (count as usize).checked_mul(16) == Some(self.len);
        // 16-aligned too: a slot is written as one 16-byte store pair.
        let aligned = (self.ptr as usize).is_multiple_of(16);
        let ptr = NonNull::new(self.ptr.cast::<u64>())?;
        (count.is_power_of_two() && exact && aligned).then_some(Slots16 {
            ptr,
            imask: count - 1,
        })
    }
}

impl Slots16 {
    /// Writes `words` to slot `index` modulo the slot count, each word as
    /// one single-copy-atomic store (what [`DmaBlock::write_words`] at
    /// the slot's offset does).
    #[inline(always)]
    pub fn write(&self, index: u32, words: &[u64; 2]) {
        let word = (index & self.imask) as usize * 2;
        // SAFETY: `index & imask` < count and the block is count * 16
        // bytes (checked in `slots16`): both words lie inside it, 8-aligned
        // (the block pointer is); DmaMemory keeps the block valid.
        unsafe {
            let p = self.ptr.as_ptr().add(word);
            p.write_volatile(words[0].to_le());
            p.add(1).write_volatile(words[1].to_le());
        }
    }

    /// Writes each of `cmds` to the slots from `index` on (wrapping),
    /// then `last` after them: what [`Slots16::write`] of each, in order,
    /// does. When all of them fit before the block's end (every sync but
    /// the one that reaches it) they are one 16-byte store per slot (a
    /// store pair whose two words are each single-copy atomic): one
    /// command and the last without a loop, more in a loop of two
    /// commands a turn; across the end, two runs.
    #[inline(always)]
    pub fn write_cmds(&self, index: u32, cmds: &[Cmd], last: &[u64; 2]) {
        let start = (index & self.imask) as usize;
        // `start` < 2^32 and a slice's length < 2^60: no overflow.
        if start + cmds.len() <= self.imask as usize {
            // SAFETY: the slots `start..=start + cmds.len()` are inside
            // the block (the last one is at most `imask`); the block is
            // 16-aligned (checked in `slots16`), so is every slot;
            // DmaMemory keeps it valid.
            unsafe {
                let mut p = self.ptr.as_ptr().add(start * 2).cast::<u128>();
                if let [cmd] = cmds {
                    // One command (an UNMAP notify's `TLBI_S2_IPA`): its
                    // store and the last's, no loop.
                    p.write_volatile(entry(&cmd.0));
                    p.add(1).write_volatile(entry(last));
                    return;
                }
                // Two commands a turn (a batch's list), in order.
                let (pairs, rest) = cmds.as_chunks::<2>();
                for [a, b] in pairs {
                    p.write_volatile(entry(&a.0));
                    p.add(1).write_volatile(entry(&b.0));
                    p = p.add(2);
                }
                for cmd in rest {
                    p.write_volatile(entry(&cmd.0));
                    p = p.add(1);
                }
                p.write_volatile(entry(last));
            }
            return;
        }
        let count = self.imask as usize + 1;
        if cmds.len() < count {
            // Across the block's end (a batch's sync, now and then): a run
            // to the end, then one from slot 0, each of fewer than `count`.
            let (run, wrapped) = cmds.split_at(count - start);
            // SAFETY: `start + run.len() == count` and `wrapped.len() <
            // count`: both runs lie inside the block.
            unsafe {
                self.write_run(start, run);
                self.write_run(0, wrapped);
            }
            return self.write(index.wrapping_add(cmds.len() as u32), last);
        }
        // More than the slots hold (no sync writes that many at once).
        let mut at = index;
        for cmd in cmds {
            self.write(at, &cmd.0);
            at = at.wrapping_add(1);
        }
        self.write(at, last);
    }

    /// Writes `run` to the slots `slot..slot + run.len()`, one 16-byte
    /// store each.
    ///
    /// # Safety
    ///
    /// `slot + run.len()` is at most the slot count.
    #[inline(always)]
    unsafe fn write_run(&self, slot: usize, run: &[Cmd]) {
        // SAFETY: the caller keeps the run inside the block; the block is
        // 16-aligned (checked in `slots16`), so is every slot; DmaMemory
        // keeps it valid.
        unsafe {
            let mut p = self.ptr.as_ptr().add(slot * 2).cast::<u128>();
            for cmd in run {
                p.write_volatile(entry(&cmd.0));
                p = p.add(1);
            }
        }
    }
}

/// A 16-byte entry as one 128-bit value whose little-endian bytes are
/// `words[0]`'s then `words[1]`'s (the SMMU's layout).
#[inline(always)]
fn entry(words: &[u64; 2]) -> u128 {
    (u128::from(words[1]) << 64 | u128::from(words[0])).to_le()
}
