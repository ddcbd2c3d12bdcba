//! Physical memory layout: the [`Region`] type (a base and a size) used by
//! every module that talks about address ranges, and [`free_ranges`], which
//! turns the RAM banks and reserved ranges of the host into the usable,
//! granule-aligned free ranges.
//!
//! All arithmetic is overflow-safe: a region whose `base + size` wraps past
//! the top of the 64-bit address space is clipped at `u64::MAX`.

use alloc::vec::Vec;

/// A physical (or bus) address range `[base, base + size)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region {
    /// First address of the range.
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
}

impl Region {
    /// A region from its base and size.
    pub const fn new(base: u64, size: u64) -> Self {
        Self { base, size }
    }

    /// The exclusive end, `base + size`, saturated at `u64::MAX` when the
    /// sum does not fit (the last byte of the address space is then left out).
    pub const fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }

    /// The exclusive end, or `None` when `base + size` overflows 64 bits.
    pub const fn checked_end(&self) -> Option<u64> {
        self.base.checked_add(self.size)
    }

    /// True when the region holds no byte.
    pub const fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// True when `addr` lies inside the region.
    pub const fn contains(&self, addr: u64) -> bool {
        addr >= self.base && ((addr - self.base) as u128) < self.size as u128
    }

    /// True when `other` lies entirely inside this region (an empty `other`
    /// is contained when its base is inside or at the end).
    pub const fn contains_region(&self, other: &Region) -> bool {
        let (s, e) = self.span();
        let (os, oe) = other.span();
        os >= s && oe <= e
    }

    /// True when the two regions share at least one byte (an empty region
    /// overlaps nothing).
    pub const fn overlaps(&self, other: &Region) -> bool {
        let (s, e) = self.span();
        let (os, oe) = other.span();
        s < e && os < oe && s < oe && os < e
    }

    /// `[base, end)` with the end computed in 128 bits (never wraps).
    const fn span(&self) -> (u128, u128) {
        (self.base as u128, self.base as u128 + self.size as u128)
    }
}

impl core::fmt::Display for Region {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.checked_end() {
            Some(end) => write!(f, "[{:#x}..{:#x})", self.base, end),
            None => write!(f, "[{:#x}..+{:#x} (wraps))", self.base, self.size),
        }
    }
}

/// Half-open interval `[start, end)` in 128-bit arithmetic, with `end`
/// capped at `u64::MAX` so that every result fits back into a [`Region`].
type Span = (u128, u128);

/// Turns regions into sorted, merged, non-empty spans clipped to 64 bits.
fn normalise(regions: &[Region]) -> Vec<Span> {
    let cap = u64::MAX as u128;
    let mut spans: Vec<Span> = regions
        .iter()
        .filter(|r| r.size != 0)
        .map(|r| {
            let start = r.base as u128;
            (start, (start + r.size as u128).min(cap))
        })
        .filter(|(s, e)| s < e)
        .collect();
    spans.sort_unstable();
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    for (s, e) in spans {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

/// Usable memory: `memory` minus `reserved`, sorted by address, with
/// touching or overlapping pieces merged, and each result shrunk inward to
/// `granule` (base rounded up, end rounded down); results that become empty
/// are dropped.
///
/// Inputs may be unsorted, overlapping, empty, or wrap past the top of the
/// address space (such a range is clipped at `u64::MAX`). Reserved ranges
/// outside memory are ignored. A `granule` of 0 is treated as 1; it need
/// not be a power of two.
pub fn free_ranges(memory: &[Region], reserved: &[Region], granule: u64) -> Vec<Region> {
    let granule = granule.max(1) as u128;
    let memory = normalise(memory);
    let reserved = normalise(reserved);

    // Subtract the reserved spans from each memory span. Both lists are
    // sorted and merged, so one forward pass over `reserved` suffices.
    let mut free: Vec<Span> = Vec::new();
    let mut ri = 0;
    for (ms, me) in memory {
        let mut cursor = ms;
        while ri < reserved.len() && reserved[ri].1 <= cursor {
            ri += 1;
        }
        let mut rj = ri;
        while cursor < me {
            match reserved.get(rj) {
                Some(&(rs, re)) if rs < me => {
                    if rs > cursor {
                        free.push((cursor, rs));
                    }
                    cursor = cursor.max(re);
                    rj += 1;
                }
                _ => {
                    free.push((cursor, me));
                    cursor = me;
                }
            }
        }
    }

    free.into_iter()
        .filter_map(|(s, e)| {
            let start = s.div_ceil(granule) * granule;
            let end = (e / granule) * granule;
            if start >= end {
                return None;
            }
            let base = u64::try_from(start).ok()?;
            let size = u64::try_from(end - start).ok()?;
            Some(Region::new(base, size))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const G: u64 = 0x1000;

    fn r(base: u64, size: u64) -> Region {
        Region::new(base, size)
    }

    #[test]
    fn region_helpers() {
        let a = r(0x1000, 0x1000);
        assert_eq!(a.end(), 0x2000);
        assert!(a.contains(0x1000) && a.contains(0x1fff));
        assert!(!a.contains(0x2000) && !a.contains(0xfff));
        assert!(a.overlaps(&r(0x1fff, 1)));
        assert!(!a.overlaps(&r(0x2000, 0x10)));
        assert!(!a.overlaps(&r(0x1800, 0)));
        assert!(a.contains_region(&r(0x1800, 0x800)));
        assert!(!a.contains_region(&r(0x1800, 0x801)));
        let top = r(u64::MAX - 0xf, 0x100);
        assert_eq!(top.end(), u64::MAX);
        assert_eq!(top.checked_end(), None);
        assert!(top.contains(u64::MAX));
        assert!(top.overlaps(&r(u64::MAX, 1)));
        assert!(!r(5, 0).contains(5));
        assert_eq!(alloc::format!("{}", a), "[0x1000..0x2000)");
    }

    #[test]
    fn no_reserved() {
        assert_eq!(
            free_ranges(&[r(0x4000_0000, 0x4000_0000)], &[], G),
            vec![r(0x4000_0000, 0x4000_0000)]
        );
    }

    #[test]
    fn reserved_in_middle_and_edges() {
        let mem = [r(0x1000, 0x10000)];
        let res = [r(0x1000, 0x800), r(0x5000, 0x1000), r(0x10800, 0x800)];
        assert_eq!(
            free_ranges(&mem, &res, G),
            vec![r(0x2000, 0x3000), r(0x6000, 0xa000)]
        );
    }

    #[test]
    fn unsorted_overlapping_and_adjacent_inputs_merge() {
        let mem = [
            r(0x3000, 0x2000),
            r(0x0, 0x2000),
            r(0x1000, 0x2000),
            r(0x8000, 0x1000),
            r(0x9000, 0x1000),
        ];
        let res = [r(0x9800, 0x10), r(0x9000, 0x100)];
        assert_eq!(
            free_ranges(&mem, &res, G),
            vec![r(0, 0x5000), r(0x8000, 0x1000)]
        );
    }

    #[test]
    fn reserved_outside_memory_and_zero_sizes_ignored() {
        let mem = [r(0x10000, 0x10000), r(0x50000, 0)];
        let res = [
            r(0, 0x1000),
            r(0x30000, 0x1000),
            r(0x18000, 0),
            r(u64::MAX, 1),
        ];
        assert_eq!(free_ranges(&mem, &res, G), vec![r(0x10000, 0x10000)]);
    }

    #[test]
    fn reserved_covering_everything() {
        let mem = [r(0x10000, 0x10000)];
        assert!(free_ranges(&mem, &[r(0, u64::MAX)], G).is_empty());
        assert!(free_ranges(&mem, &[r(0x8000, 0x20000)], G).is_empty());
    }

    #[test]
    fn granule_shrinks_inward_and_drops_small() {
        let mem = [r(0x1234, 0x3000), r(0x10000, 0xfff)];
        assert_eq!(free_ranges(&mem, &[], G), vec![r(0x2000, 0x2000)]);
        // Reserved bytes poison the whole granule around them.
        let mem = [r(0, 0x10000)];
        assert_eq!(
            free_ranges(&mem, &[r(0x4001, 1)], G),
            vec![r(0, 0x4000), r(0x5000, 0xb000)]
        );
        // Zero and non-power-of-two granules are accepted.
        assert_eq!(free_ranges(&[r(1, 10)], &[], 0), vec![r(1, 10)]);
        assert_eq!(free_ranges(&[r(1, 10)], &[], 3), vec![r(3, 6)]);
    }

    #[test]
    fn wrapping_regions_are_clipped() {
        let mem = [r(u64::MAX - 0x2fff, 0x10000)];
        let out = free_ranges(&mem, &[], G);
        assert_eq!(out, vec![r(u64::MAX - 0x2fff, 0x2000)]);
        let out = free_ranges(
            &[r(0, u64::MAX), r(5, u64::MAX)],
            &[r(u64::MAX - 5, 100)],
            G,
        );
        assert_eq!(out, vec![r(0, u64::MAX - 0xfff)]);
        assert!(free_ranges(&[r(u64::MAX, u64::MAX)], &[], 1).is_empty());
        assert!(free_ranges(&[], &[r(0, 5)], G).is_empty());
    }

    #[test]
    fn huge_granule() {
        assert_eq!(
            free_ranges(&[r(0, u64::MAX)], &[], u64::MAX),
            vec![r(0, u64::MAX)]
        );
        assert!(free_ranges(&[r(1, u64::MAX)], &[], u64::MAX).is_empty());
        assert_eq!(
            free_ranges(&[r(0, u64::MAX)], &[], 1 << 63),
            vec![r(0, 1 << 63)]
        );
    }

    #[test]
    fn pseudo_random_inputs_never_panic_and_are_consistent() {
        let mut s = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for _ in 0..2000 {
            let mem: Vec<Region> = (0..(next() % 6))
                .map(|_| r(next() % 0x10_0000, next() % 0x8_0000))
                .collect();
            let res: Vec<Region> = (0..(next() % 6))
                .map(|_| r(next() % 0x10_0000, next() % 0x2_0000))
                .collect();
            let g = 1 << (next() % 16);
            let out = free_ranges(&mem, &res, g);
            for (i, f) in out.iter().enumerate() {
                assert!(f.size > 0 && f.base.is_multiple_of(g) && f.size.is_multiple_of(g));
                assert!(
                    res.iter().all(|x| x.size == 0 || !x.overlaps(f)),
                    "{f} overlaps reserved"
                );
                if i > 0 {
                    assert!(out[i - 1].end() < f.base);
                }
                // Every byte of a free range is in some memory region.
                let mut a = f.base;
                while a < f.end() {
                    assert!(mem.iter().any(|m| m.contains(a)));
                    a += g.min(0x100);
                }
            }
            let _ = free_ranges(&[r(next(), next())], &[r(next(), next())], next());
        }
    }
}

/// Takes `size` bytes aligned to `align` (a power of two) out of the first
/// free range that can hold them, splitting that range; returns the base.
/// Guest RAM is carved this way before the rest goes to the heap, so that a
/// guest needs only that much contiguous free RAM, not a naturally aligned
/// power-of-two block.
pub fn carve(free: &mut Vec<Region>, size: u64, align: u64) -> Option<u64> {
    if size == 0 || !align.is_power_of_two() {
        return None;
    }
    let (i, base) = free.iter().enumerate().find_map(|(i, r)| {
        let base = r.base.checked_next_multiple_of(align)?;
        (base.checked_add(size)? <= r.end()).then_some((i, base))
    })?;
    let r = free.remove(i);
    let after = Region::new(base + size, r.end() - (base + size));
    if !after.is_empty() {
        free.insert(i, after);
    }
    let before = Region::new(r.base, base - r.base);
    if !before.is_empty() {
        free.insert(i, before);
    }
    Some(base)
}

/// Returns `r` (carved out of `free` by [`carve`]) to the free ranges,
/// merged with its neighbours; `free` stays sorted.
pub fn give_back(free: &mut Vec<Region>, r: Region) {
    let i = free.partition_point(|f| f.base < r.base);
    free.insert(i, r);
    if i + 1 < free.len() && free[i].end() == free[i + 1].base {
        free[i].size += free.remove(i + 1).size;
    }
    if i > 0 && free[i - 1].end() == free[i].base {
        let r = free.remove(i);
        free[i - 1].size += r.size;
    }
}

#[cfg(test)]
mod carve_tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn carves_aligned_blocks_and_keeps_the_rest() {
        let mut free = vec![
            Region::new(0x4010_0000, 0x0010_0000),
            Region::new(0x4040_0000, 0x3fc0_0000),
        ];
        // 768 MiB, 2 MiB aligned: only the second range can hold it.
        let base = carve(&mut free, 768 << 20, 2 << 20).unwrap();
        assert_eq!(base, 0x4040_0000);
        assert_eq!(
            free,
            vec![
                Region::new(0x4010_0000, 0x0010_0000),
                Region::new(0x7040_0000, 0x0fc0_0000)
            ]
        );
        // Alignment splits a range in two.
        let mut free = vec![Region::new(0x4010_0000, 0x1000_0000)];
        assert_eq!(carve(&mut free, 2 << 20, 2 << 20), Some(0x4020_0000));
        assert_eq!(
            free,
            vec![
                Region::new(0x4010_0000, 0x10_0000),
                Region::new(0x4040_0000, 0x0fd0_0000)
            ]
        );
        // Too big, zero, bad alignment.
        assert_eq!(carve(&mut free, 1 << 40, 2 << 20), None);
        assert_eq!(carve(&mut free, 0, 2 << 20), None);
        assert_eq!(carve(&mut free, 4096, 3), None);
    }

    #[test]
    fn what_is_given_back_merges_with_its_neighbours() {
        let whole = vec![Region::new(0x4000_0000, 0x1000_0000)];
        let mut free = whole.clone();
        let a = carve(&mut free, 2 << 20, 2 << 20).unwrap();
        let b = carve(&mut free, 4 << 20, 2 << 20).unwrap();
        give_back(&mut free, Region::new(b, 4 << 20));
        give_back(&mut free, Region::new(a, 2 << 20));
        assert_eq!(free, whole);
        // Between two ranges, merged with neither.
        let mut free = vec![Region::new(0x1000, 0x1000), Region::new(0x5000, 0x1000)];
        give_back(&mut free, Region::new(0x3000, 0x1000));
        assert_eq!(
            free,
            vec![
                Region::new(0x1000, 0x1000),
                Region::new(0x3000, 0x1000),
                Region::new(0x5000, 0x1000)
            ]
        );
    }
}
