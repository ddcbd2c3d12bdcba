//! The mappings of one domain: IOVA intervals that never overlap, in the
//! order of their first IOVA, with the common cases of a request path
//! cheap and every case bounded.
//!
//! Up to [`SMALL_MAX`] mappings live in a sorted ring buffer
//! (`VecDeque`): a MAP or UNMAP at either end (ascending or descending
//! IOVAs, FIFO or LIFO unmapping, the one mapping of a MAP+UNMAP pair)
//! costs a comparison or two, no search and no allocation; anywhere else a
//! binary search and a move of at most half the entries. Above
//! [`SMALL_MAX`] the mappings move into a B-tree (`BTreeMap`, O(log n) per
//! operation), so the work of one request stays bounded whatever the
//! number of mappings; at [`SMALL_MIN`] or fewer they move back.
//!
//! Memory: the ring grows by doubling and is reallocated to its entries
//! once it is less than a third full (one reallocation per third on the
//! way down, not one per half), but never below [`MIN_CAPACITY`]: room the
//! ring once needed up to that size stays, so a driver that maps a batch
//! and unmaps it again (Linux queues MAPs and syncs them with one notify;
//! a network driver refills its rings) does not reallocate and copy the
//! ring four times in each batch (8, 16, 32, 64 entries: about 16
//! instructions per MAP of a 64-MAP batch, measured). So a ring holds at
//! most three entries' room per mapping (`config::limits::HEAP_PER_IO_MAPPING`)
//! or [`MIN_CAPACITY`] entries (`config::limits::HEAP_PER_DOMAIN`), whichever
//! is more. The ring's growth is made by
//! [`Intervals::reserve`], before the backend changes anything (the model
//! answers NOMEM when it fails); the B-tree allocates its nodes as it
//! inserts, as the model's B-tree always did; a shrink that cannot
//! allocate is skipped.

use super::domain::Mapping;
use alloc::collections::{BTreeMap, VecDeque};

/// Most mappings kept in the ring; one more moves them into the B-tree.
pub const SMALL_MAX: usize = 128;
/// The B-tree moves back into a ring at this many mappings or fewer.
pub const SMALL_MIN: usize = 32;
/// Room a ring keeps once it has grown to it: it is never shrunk below
/// this many entries (2 KiB of 32-byte entries, part of a domain's share,
/// `config::limits::HEAP_PER_DOMAIN`). A ring that never needed more stays
/// as small as it grew.
pub const MIN_CAPACITY: usize = 64;

/// Where a mapping is (or goes): an index into the ring, or the first IOVA
/// in the B-tree. Valid until the set changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot(u64);

/// No memory for one more mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoRoom;

/// Which of its forms a set is in, for the paths past the inlined ones.
enum Repr<'a> {
    Small(&'a VecDeque<Mapping>),
    Large(&'a BTreeMap<u64, Mapping>),
}

/// [`Repr`], mutably.
enum ReprMut<'a> {
    Small(&'a mut VecDeque<Mapping>),
    Large(&'a mut BTreeMap<u64, Mapping>),
}

/// The mappings of one domain (see the module documentation).
///
/// Both forms are fields, one of them empty: the set is in the B-tree
/// exactly when the B-tree is not empty, and the ring is then empty with
/// nothing allocated. So a ring that is not empty is the set, and the
/// inlined paths look at the ring alone, with no test of the form.
pub struct Intervals {
    /// The ring (empty, with no room, while the B-tree holds the set).
    ring: VecDeque<Mapping>,
    /// The B-tree (empty while the ring holds the set).
    tree: BTreeMap<u64, Mapping>,
}

impl Default for Intervals {
    fn default() -> Self {
        Self::new()
    }
}

impl Intervals {
    /// No mappings (nothing allocated).
    pub const fn new() -> Self {
        Self {
            ring: VecDeque::new(),
            tree: BTreeMap::new(),
        }
    }

    /// The form the set is in.
    fn repr(&self) -> Repr<'_> {
        match self.tree.is_empty() {
            true => Repr::Small(&self.ring),
            false => Repr::Large(&self.tree),
        }
    }

    /// The form the set is in, mutably.
    fn repr_mut(&mut self) -> ReprMut<'_> {
        match self.tree.is_empty() {
            true => ReprMut::Small(&mut self.ring),
            false => ReprMut::Large(&mut self.tree),
        }
    }

    /// Number of mappings.
    pub fn len(&self) -> usize {
        self.ring.len() + self.tree.len()
    }

    /// Whether the mappings are in the B-tree (for tests).
    #[cfg(test)]
    pub fn is_large(&self) -> bool {
        !self.tree.is_empty()
    }

    /// Entries the ring has room for (0 in the B-tree; for tests).
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// The mappings, by first IOVA.
    pub fn iter(&self) -> impl Iterator<Item = Mapping> + '_ {
        let (small, large) = match self.repr() {
            Repr::Small(d) => (Some(d.iter().copied()), None),
            Repr::Large(t) => (None, Some(t.values().copied())),
        };
        small
            .into_iter()
            .flatten()
            .chain(large.into_iter().flatten())
    }

    /// Where a mapping of `[start, end]` goes, or `None` when a mapping
    /// meets that range.
    #[inline(always)]
    pub fn free_slot(&self, start: u64, end: u64) -> Option<Slot> {
        // A ring that is not empty is the set. The last mapping first:
        // the first is looked at only when the range is not past the last.
        let d = &self.ring;
        if let Some(last) = d.back() {
            // Ascending IOVAs, and the MAP of a MAP+UNMAP pair.
            if last.end < start {
                return Some(Slot(d.len() as u64));
            }
            // Descending IOVAs (Linux's allocator works top-down).
            if d.front().is_some_and(|first| first.start > end) {
                return Some(Slot(0));
            }
        } else if self.tree.is_empty() {
            // No mappings at all (the MAP of a MAP+UNMAP pair).
            return Some(Slot(0));
        }
        self.free_slot_search(start, end)
    }

    /// [`Intervals::free_slot`] past its inlined cases.
    #[inline(never)]
    fn free_slot_search(&self, start: u64, end: u64) -> Option<Slot> {
        match self.repr() {
            Repr::Small(d) => {
                let (Some(first), Some(last)) = (d.front(), d.back()) else {
                    return Some(Slot(0));
                };
                if last.end < start {
                    return Some(Slot(d.len() as u64));
                }
                if first.start > end {
                    return Some(Slot(0)); // descending IOVAs
                }
                // Only the last mapping starting at or before `end` can
                // meet the range.
                let i = d.partition_point(|m| m.start <= end);
                match i.checked_sub(1).and_then(|p| d.get(p)) {
                    Some(m) if m.end >= start => None,
                    _ => Some(Slot(i as u64)),
                }
            }
            Repr::Large(t) => {
                let meets = t
                    .range(..=end)
                    .next_back()
                    .is_some_and(|(_, m)| m.end >= start);
                (!meets).then_some(Slot(start))
            }
        }
    }

    /// Whether a mapping meets `[start, end]`.
    pub fn overlaps(&self, start: u64, end: u64) -> bool {
        self.free_slot(start, end).is_none()
    }

    /// Makes room for one more mapping, so that the next
    /// [`Intervals::insert`] allocates nothing that may fail (the move into
    /// the B-tree allocates as any B-tree insert does).
    #[inline(always)]
    pub fn reserve(&mut self) -> Result<(), NoRoom> {
        // Room already (the usual case): no call into the allocator's
        // growth path. The ring has no room while the B-tree holds the set.
        if self.ring.len() < self.ring.capacity() {
            return Ok(());
        }
        match self.repr_mut() {
            ReprMut::Small(d) if d.len() < SMALL_MAX => grow(d),
            _ => Ok(()),
        }
    }

    /// Inserts `m` at `slot`, which [`Intervals::free_slot`] returned for
    /// its range with no change since.
    #[inline(always)]
    pub fn insert(&mut self, slot: Slot, m: Mapping) {
        // Room in the ring: the ring is the set (it has none while the
        // B-tree holds it), and not full (its room never passes
        // SMALL_MAX: it grows by doubling from below it, only while its
        // length is below it).
        let d = &mut self.ring;
        if d.len() < d.capacity() {
            // At an end of the ring; room reserved: no allocation.
            if slot.0 == d.len() as u64 {
                d.push_back(m);
                return;
            }
            if slot.0 == 0 {
                d.push_front(m);
                return;
            }
        }
        self.insert_slow(slot, m);
    }

    /// [`Intervals::insert`] past its inlined case.
    #[inline(never)]
    fn insert_slow(&mut self, slot: Slot, m: Mapping) {
        let d = match self.repr_mut() {
            ReprMut::Large(t) => {
                t.insert(m.start, m);
                return;
            }
            ReprMut::Small(d) => d,
        };
        if d.len() >= SMALL_MAX {
            // One by one: `collect` would sort through a temporary vector
            // as large again as the ring.
            let mut t = BTreeMap::new();
            for x in d.drain(..) {
                t.insert(x.start, x);
            }
            t.insert(m.start, m);
            self.tree = t;
            // Nothing allocated for the ring while the B-tree holds the set.
            self.ring = VecDeque::new();
            return;
        }
        let i = slot.0 as usize;
        if i >= d.len() {
            d.push_back(m);
        } else if i == 0 {
            d.push_front(m);
        } else {
            d.insert(i, m);
        }
    }

    /// The slot of the mapping that is exactly `[start, end]`.
    #[inline(always)]
    pub fn exact(&self, start: u64, end: u64) -> Option<Slot> {
        // A ring that is not empty is the set.
        let d = &self.ring;
        if let (Some(first), Some(last)) = (d.front(), d.back()) {
            // LIFO, and the UNMAP of a MAP+UNMAP pair.
            if last.start == start {
                return (last.end == end).then_some(Slot(d.len() as u64 - 1));
            }
            // FIFO.
            if first.start == start {
                return (first.end == end).then_some(Slot(0));
            }
        }
        self.exact_search(start, end)
    }

    /// [`Intervals::exact`] past its inlined case.
    #[inline(never)]
    fn exact_search(&self, start: u64, end: u64) -> Option<Slot> {
        match self.repr() {
            Repr::Small(d) => {
                let last = d.back()?;
                let i = if last.start == start {
                    d.len() - 1 // LIFO, and the MAP+UNMAP pair
                } else if d.front().is_some_and(|m| m.start == start) {
                    0 // FIFO
                } else {
                    d.binary_search_by_key(&start, |m| m.start).ok()?
                };
                let m = d.get(i)?;
                (m.end == end).then_some(Slot(i as u64))
            }
            Repr::Large(t) => t.get(&start).filter(|m| m.end == end).map(|_| Slot(start)),
        }
    }

    /// The first mapping starting inside `[start, end]`, and its slot.
    pub fn first_in(&self, start: u64, end: u64) -> Option<(Slot, Mapping)> {
        match self.repr() {
            Repr::Small(d) => {
                let i = d.partition_point(|m| m.start < start);
                d.get(i)
                    .filter(|m| m.start <= end)
                    .map(|m| (Slot(i as u64), *m))
            }
            Repr::Large(t) => t.range(start..=end).next().map(|(&k, m)| (Slot(k), *m)),
        }
    }

    /// Whether unmapping `[start, end]` would split a mapping: one that
    /// starts before `start` and reaches it, or the last one starting
    /// inside that ends after `end` (those in between lie inside).
    pub fn unmap_splits(&self, start: u64, end: u64) -> bool {
        match self.repr() {
            Repr::Small(d) => {
                let i = d.partition_point(|m| m.start < start);
                let j = d.partition_point(|m| m.start <= end);
                let before = i
                    .checked_sub(1)
                    .and_then(|p| d.get(p))
                    .is_some_and(|m| m.end >= start);
                let after = j > i
                    && j.checked_sub(1)
                        .and_then(|p| d.get(p))
                        .is_some_and(|m| m.end > end);
                before || after
            }
            Repr::Large(t) => {
                let before = t
                    .range(..start)
                    .next_back()
                    .is_some_and(|(_, m)| m.end >= start);
                let after = t
                    .range(start..=end)
                    .next_back()
                    .is_some_and(|(_, m)| m.end > end);
                before || after
            }
        }
    }

    /// Removes the mapping at `slot` (from [`Intervals::exact`] or
    /// [`Intervals::first_in`], no change since).
    #[inline(always)]
    pub fn remove(&mut self, slot: Slot) -> Option<Mapping> {
        // A ring that is not empty is the set.
        let d = &mut self.ring;
        if !d.is_empty() && (d.len() * 3 >= d.capacity() + 3 || d.capacity() <= MIN_CAPACITY) {
            // No shrink due after it: an end of the ring.
            if slot.0 + 1 == d.len() as u64 {
                return d.pop_back();
            }
            if slot.0 == 0 {
                return d.pop_front();
            }
        }
        self.remove_slow(slot)
    }

    /// [`Intervals::remove`] past its inlined case.
    #[inline(never)]
    fn remove_slow(&mut self, slot: Slot) -> Option<Mapping> {
        match self.repr_mut() {
            ReprMut::Small(d) => {
                let i = slot.0 as usize;
                let m = if i + 1 == d.len() {
                    d.pop_back()
                } else if i == 0 {
                    d.pop_front()
                } else {
                    d.remove(i)
                };
                if d.len() * 3 < d.capacity() && d.capacity() > MIN_CAPACITY {
                    // Down to the entries (doubling brings room back on
                    // the next insert, and the next shrink is a third
                    // further down): fewer reallocations than halving.
                    let target = d.len().max(MIN_CAPACITY);
                    if let Some(smaller) = moved(d, target) {
                        *d = smaller;
                    }
                }
                m
            }
            ReprMut::Large(t) => {
                let m = t.remove(&slot.0);
                if t.len() <= SMALL_MIN {
                    let mut d = VecDeque::new();
                    if d.try_reserve_exact(SMALL_MIN * 2).is_ok() {
                        d.extend(t.values().copied());
                        self.ring = d;
                        self.tree = BTreeMap::new();
                    }
                }
                m
            }
        }
    }
}

/// Room for one more entry in `d` (the ring's growth, out of line).
#[inline(never)]
fn grow(d: &mut VecDeque<Mapping>) -> Result<(), NoRoom> {
    d.try_reserve(1).map_err(|_| NoRoom)
}

/// `d`'s entries in a new ring of room for `capacity` (at least its
/// length), or `None` when that cannot be allocated.
fn moved(d: &mut VecDeque<Mapping>, capacity: usize) -> Option<VecDeque<Mapping>> {
    let mut new = VecDeque::new();
    new.try_reserve_exact(capacity.max(d.len())).ok()?;
    new.extend(d.drain(..));
    Some(new)
}
