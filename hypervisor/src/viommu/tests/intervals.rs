//! The interval set of a domain's mappings ([`Intervals`]): against a
//! plain list checked by linear scans, with random and adversarial
//! sequences through both of its forms (the ring and the B-tree) and the
//! moves between them; its memory bound; and the same sequences through
//! the model (overlapping MAPs, partial UNMAPs, the mapping budget).

use super::*;
use crate::viommu::model::Mapping;
use crate::viommu::model::intervals::{Intervals, MIN_CAPACITY, SMALL_MAX, SMALL_MIN};
use alloc::vec::Vec;

use crate::test_rng::Rng;

fn mapping(start: u64, end: u64) -> Mapping {
    Mapping {
        start,
        end,
        phys: start ^ 0x4000_0000,
        flags: RW,
    }
}

/// The reference: a list in insertion order, every question a scan.
#[derive(Default)]
struct Plain(Vec<Mapping>);

impl Plain {
    fn overlaps(&self, s: u64, e: u64) -> bool {
        self.0.iter().any(|m| m.start <= e && s <= m.end)
    }

    fn splits(&self, s: u64, e: u64) -> bool {
        self.0
            .iter()
            .any(|m| m.start <= e && s <= m.end && (m.start < s || m.end > e))
    }

    fn exact(&self, s: u64, e: u64) -> bool {
        self.0.iter().any(|m| m.start == s && m.end == e)
    }

    fn first_in(&self, s: u64, e: u64) -> Option<Mapping> {
        self.0
            .iter()
            .filter(|m| (s..=e).contains(&m.start))
            .min_by_key(|m| m.start)
            .copied()
    }

    fn sorted(&self) -> Vec<Mapping> {
        let mut v = self.0.clone();
        v.sort_by_key(|m| m.start);
        v
    }
}

/// Every question of the set answered as the reference answers it, and
/// the ring within its memory bound.
fn agree(set: &Intervals, plain: &Plain, s: u64, e: u64) {
    assert_eq!(set.len(), plain.0.len());
    assert_eq!(
        set.overlaps(s, e),
        plain.overlaps(s, e),
        "overlap {s:#x}..{e:#x}"
    );
    assert_eq!(
        set.unmap_splits(s, e),
        plain.splits(s, e),
        "split {s:#x}..{e:#x}"
    );
    assert_eq!(set.exact(s, e).is_some(), plain.exact(s, e));
    assert_eq!(set.first_in(s, e).map(|(_, m)| m), plain.first_in(s, e));
    if set.is_large() {
        // The B-tree holds the set: the ring is empty, nothing allocated.
        assert_eq!(set.capacity(), 0, "ring room kept beside the B-tree");
    } else {
        assert!(
            set.capacity() <= MIN_CAPACITY.max(3 * set.len()),
            "ring of {} for {} mappings",
            set.capacity(),
            set.len()
        );
    }
}

/// One random step: a MAP (refused on overlap) or an UNMAP (refused when
/// it splits; otherwise every mapping inside goes), as the model does them.
fn step(set: &mut Intervals, plain: &mut Plain, r: &mut Rng, span: u64, max_pages: u64) {
    let s = r.below(span) * PAGE;
    let e = s + (1 + r.below(max_pages)) * PAGE - 1;
    agree(set, plain, s, e);
    if r.below(100) < 55 {
        match set.free_slot(s, e) {
            Some(slot) => {
                assert!(!plain.overlaps(s, e));
                set.reserve().expect("room");
                set.insert(slot, mapping(s, e));
                plain.0.push(mapping(s, e));
            }
            None => assert!(plain.overlaps(s, e)),
        }
    } else if let Some(slot) = set.exact(s, e) {
        assert_eq!(set.remove(slot), Some(mapping(s, e)));
        plain.0.retain(|m| m.start != s);
    } else if !set.unmap_splits(s, e) {
        while let Some((slot, m)) = set.first_in(s, e) {
            assert_eq!(set.remove(slot), Some(m));
            plain.0.retain(|x| x.start != m.start);
        }
        assert!(!plain.overlaps(s, e));
    }
    assert_eq!(set.iter().collect::<Vec<_>>(), plain.sorted());
}

#[test]
fn random_sequences_agree_with_a_plain_list() {
    for seed in 1..=24u64 {
        let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let (mut set, mut plain) = (Intervals::new(), Plain::default());
        // Dense spans collide and split often; wide ones grow past the
        // ring into the B-tree.
        let span = [64, 512, 4096][seed as usize % 3];
        for _ in 0..3000 {
            step(&mut set, &mut plain, &mut r, span, 4);
        }
    }
}

#[test]
fn both_forms_and_the_moves_between_them() {
    let mut r = Rng(7);
    let (mut set, mut plain) = (Intervals::new(), Plain::default());
    // Ascending, then descending, then shuffled inserts: past the ring.
    let mut starts: Vec<u64> = (0..SMALL_MAX as u64 / 2)
        .map(|k| 0x100_0000 + k * 0x2000)
        .collect();
    starts.extend((0..SMALL_MAX as u64 / 2).map(|k| 0xff_0000 - k * 0x2000));
    starts.extend((0..64u64).map(|k| 0x200_0000 + ((k * 37) % 64) * 0x2000));
    for (n, &s) in starts.iter().enumerate() {
        let slot = set.free_slot(s, s + 0xfff).expect("free");
        set.reserve().expect("room");
        set.insert(slot, mapping(s, s + 0xfff));
        plain.0.push(mapping(s, s + 0xfff));
        assert_eq!(set.is_large(), n + 1 > SMALL_MAX);
        // Overlaps at the first and last page, inside and around.
        assert!(set.free_slot(s, s).is_none());
        assert!(set.free_slot(s + 0xfff, s + 0x1fff).is_none());
        assert!(set.free_slot(s.saturating_sub(0x1000), s).is_none());
        agree(&set, &plain, s, s + 0xfff);
    }
    assert!(set.is_large());
    // Partial unmaps are refused in the B-tree as in the ring.
    let s = starts[3];
    assert!(set.unmap_splits(s, s + 0x7ff));
    assert!(set.unmap_splits(s + 0x800, s + 0x1fff));
    assert!(!set.unmap_splits(s - 0x1000, s + 0x1fff));
    // Remove in random order down to nothing: back into the ring at
    // SMALL_MIN, and the ring shrinks with the set.
    while !plain.0.is_empty() {
        let m = plain.0.swap_remove(r.below(plain.0.len() as u64) as usize);
        let slot = set.exact(m.start, m.end).expect("present");
        assert_eq!(set.remove(slot), Some(m));
        if set.len() <= SMALL_MIN {
            assert!(
                !set.is_large(),
                "{} mappings still in the B-tree",
                set.len()
            );
        }
        agree(&set, &plain, m.start, m.end);
        assert_eq!(set.iter().collect::<Vec<_>>(), plain.sorted());
    }
    assert!(set.capacity() <= MIN_CAPACITY);
}

#[test]
fn a_range_over_many_mappings_and_holes() {
    let (mut set, mut plain) = (Intervals::new(), Plain::default());
    for k in 0..(SMALL_MAX as u64 + 40) {
        let s = k * 0x3000; // a two-page hole after every mapping
        let slot = set.free_slot(s, s + 0xfff).expect("free");
        set.reserve().expect("room");
        set.insert(slot, mapping(s, s + 0xfff));
        plain.0.push(mapping(s, s + 0xfff));
    }
    // Ranges ending inside a mapping, or starting inside one: split.
    assert!(set.unmap_splits(0x1000, 0x3000 * 10 + 0x7ff));
    assert!(set.unmap_splits(0x800, 0x3000 * 10 - 1));
    // Holes at both ends: nothing split; everything inside goes.
    let (s, e) = (0x1000, 0x3000 * 140 - 1);
    assert!(!set.unmap_splits(s, e));
    while let Some((slot, m)) = set.first_in(s, e) {
        set.remove(slot);
        plain.0.retain(|x| x.start != m.start);
    }
    assert_eq!(set.len(), SMALL_MAX + 40 - 139);
    assert!(!set.is_large());
    agree(&set, &plain, 0, u64::MAX);
    assert_eq!(set.iter().collect::<Vec<_>>(), plain.sorted());
}

#[test]
fn the_edges_of_the_address_space() {
    let mut set = Intervals::new();
    let top = u64::MAX - 0xfff;
    for (s, e) in [(0, 0xfff), (top, u64::MAX)] {
        let slot = set.free_slot(s, e).expect("free");
        set.reserve().expect("room");
        set.insert(slot, mapping(s, e));
    }
    assert!(set.overlaps(0, u64::MAX));
    assert!(!set.overlaps(0x1000, top - 1));
    assert!(set.unmap_splits(0x800, u64::MAX));
    assert!(!set.unmap_splits(0, u64::MAX));
    let slot = set.exact(top, u64::MAX).expect("the top mapping");
    assert_eq!(set.first_in(top, top).map(|(s, _)| s), Some(slot));
    assert_eq!(set.remove(slot), Some(mapping(top, u64::MAX)));
    assert!(!set.overlaps(0x1000, u64::MAX));
}

/// Through the model: overlapping MAPs at both ends and inside, partial
/// UNMAPs, the budget, with the fake's invariants after every request,
/// past the ring into the B-tree and back.
#[test]
fn the_model_through_both_forms() {
    let budget = SMALL_MAX + 20;
    let mut v = device_with(ViommuConfig {
        max_mappings: budget,
        ..ViommuConfig::default()
    });
    assert_eq!(send(&mut v, attach(1, EP_A)), Status::Ok);
    let iova = |k: u64| 0x1000_0000 + k * 0x4000; // two pages and a hole
    for k in 0..budget as u64 {
        let s = iova(k);
        assert_eq!(send(&mut v, map(1, s, s + 0x1fff, RAM0, RW)), Status::Ok);
        // Overlaps: same range, its last page, one page across its start.
        assert_eq!(send(&mut v, map(1, s, s + 0x1fff, RAM0, RW)), Status::Inval);
        assert_eq!(
            send(&mut v, map(1, s + 0x1000, s + 0x1fff, RAM0, RW)),
            Status::Inval
        );
        assert_eq!(
            send(&mut v, map(1, s - 0x1000, s + 0xfff, RAM0, RW)),
            Status::Inval
        );
        // A partial UNMAP is refused and leaves the mapping.
        assert_eq!(send(&mut v, unmap(1, s, s + 0xfff)), Status::Range);
    }
    assert_eq!(v.mapping_count(), budget);
    // Budget exhausted: NOMEM for a free range, INVAL still for an overlap.
    let past = iova(budget as u64);
    assert_eq!(
        send(&mut v, map(1, past, past + 0xfff, RAM0, RW)),
        Status::Nomem
    );
    assert_eq!(
        send(&mut v, map(1, iova(5), iova(5) + 0xfff, RAM0, RW)),
        Status::Inval
    );
    // A range from inside one mapping to inside another: RANGE, nothing gone.
    assert_eq!(
        send(&mut v, unmap(1, iova(3) + 0x1000, iova(9) + 0xfff)),
        Status::Range
    );
    assert_eq!(v.mapping_count(), budget);
    // A range over holes and many whole mappings: all of them go.
    assert_eq!(
        send(&mut v, unmap(1, iova(10) - 0x1000, iova(130) - 1)),
        Status::Ok
    );
    assert_eq!(v.mapping_count(), budget - 120);
    // Budget free again; then everything, front and back alternately.
    assert_eq!(
        send(&mut v, map(1, past, past + 0xfff, RAM0, RW)),
        Status::Ok
    );
    assert_eq!(send(&mut v, unmap(1, past, past + 0xfff)), Status::Ok);
    let mut left: Vec<u64> = v.mappings(1).map(|m| m.start).collect();
    while !left.is_empty() {
        let s = if left.len().is_multiple_of(2) {
            left.remove(0)
        } else {
            left.pop().unwrap()
        };
        assert_eq!(send(&mut v, unmap(1, s, s + 0x1fff)), Status::Ok);
    }
    assert_eq!(v.mapping_count(), 0);
}

#[test]
fn a_drained_ring_keeps_its_room_up_to_min_capacity() {
    // A batch of MAPs then its UNMAPs, again and again (FIFO and LIFO):
    // the ring grows once and keeps MIN_CAPACITY entries' room, so later
    // batches reallocate nothing; a ring grown past it shrinks back to it,
    // not below; one that never needed it stays small.
    let mut set = Intervals::new();
    let fill = |set: &mut Intervals, n: usize| {
        for k in 0..n as u64 {
            let s = k * 0x1000;
            let slot = set.free_slot(s, s + 0xfff).expect("free");
            set.reserve().expect("room");
            set.insert(slot, mapping(s, s + 0xfff));
        }
    };
    for round in 0..4 {
        fill(&mut set, MIN_CAPACITY);
        assert_eq!(set.capacity(), MIN_CAPACITY, "round {round}");
        for k in 0..MIN_CAPACITY as u64 {
            // FIFO in even rounds, LIFO in odd ones.
            let i = if round % 2 == 0 {
                k
            } else {
                MIN_CAPACITY as u64 - 1 - k
            };
            let s = i * 0x1000;
            let slot = set.exact(s, s + 0xfff).expect("present");
            assert_eq!(set.remove(slot), Some(mapping(s, s + 0xfff)));
            assert_eq!(set.capacity(), MIN_CAPACITY, "round {round}, {k} removed");
        }
        assert_eq!(set.len(), 0);
    }
    // Past MIN_CAPACITY: back down to it once a third full, never below.
    fill(&mut set, SMALL_MAX);
    assert!(set.capacity() > MIN_CAPACITY);
    for k in 0..SMALL_MAX as u64 {
        let s = k * 0x1000;
        let slot = set.exact(s, s + 0xfff).expect("present");
        set.remove(slot);
        assert!(set.capacity() >= MIN_CAPACITY);
        assert!(set.capacity() <= MIN_CAPACITY.max(3 * set.len()));
    }
    assert_eq!(set.capacity(), MIN_CAPACITY);
    // A ring that never held more than a few stays that small.
    let mut small = Intervals::new();
    fill(&mut small, 3);
    assert!(small.capacity() < MIN_CAPACITY / 4, "{}", small.capacity());
}
