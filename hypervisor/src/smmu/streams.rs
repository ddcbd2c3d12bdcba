//! Which StreamIDs a device emits, and on which SMMU, from the host device
//! tree: a PCIe host bridge's `iommu-map` (RID -> StreamID, after
//! `iommu-map-mask`) or a platform device's `iommus` (phandle + one cell).
//! StreamIDs are returned as sorted, merged ranges, never one number per
//! ID (a bridge has up to 65536 RIDs).

use alloc::vec::Vec;
use core::fmt;
use core::ops::RangeInclusive;

use crate::fdt::{NodeRef, PcieHost, Tree};

/// StreamIDs `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SidRange {
    /// First StreamID.
    pub first: u32,
    /// Last StreamID (inclusive).
    pub last: u32,
}

impl SidRange {
    /// The single StreamID `sid`.
    pub fn one(sid: u32) -> Self {
        Self {
            first: sid,
            last: sid,
        }
    }

    /// Number of StreamIDs.
    pub fn len(&self) -> u64 {
        u64::from(self.last) - u64::from(self.first) + 1
    }

    /// Never empty.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `sid` is in the range.
    pub fn contains(&self, sid: u32) -> bool {
        (self.first..=self.last).contains(&sid)
    }

    /// The StreamIDs.
    pub fn iter(&self) -> RangeInclusive<u32> {
        self.first..=self.last
    }
}

/// StreamIDs reaching one SMMU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Streams {
    /// phandle of the SMMU node.
    pub smmu_phandle: u32,
    /// Sorted, non-overlapping, non-adjacent ranges.
    pub ranges: Vec<SidRange>,
}

impl From<u32> for SidRange {
    fn from(sid: u32) -> Self {
        Self::one(sid)
    }
}

impl From<RangeInclusive<u32>> for SidRange {
    /// `first..=last`; an empty range (`first > last`) is kept as it is
    /// and covers nothing (see [`normalize`]).
    fn from(r: RangeInclusive<u32>) -> Self {
        Self {
            first: *r.start(),
            last: *r.end(),
        }
    }
}

/// `ranges` sorted, with overlapping and adjacent ranges merged and empty
/// ones (`first > last`) dropped: in place, no allocation.
pub fn normalize(ranges: &mut Vec<SidRange>) {
    ranges.retain(|r| r.first <= r.last);
    ranges.sort_unstable();
    let mut out = 0;
    for i in 0..ranges.len() {
        let r = ranges[i];
        if out > 0 && u64::from(r.first) <= u64::from(ranges[out - 1].last) + 1 {
            let last = &mut ranges[out - 1].last;
            *last = (*last).max(r.last);
        } else {
            ranges[out] = r;
            out += 1;
        }
    }
    ranges.truncate(out);
}

impl Streams {
    /// Every StreamID, in increasing order, one at a time (for small sets
    /// and tests; the driver takes [`Streams::ranges`]).
    pub fn sids(&self) -> impl Iterator<Item = u32> + '_ {
        self.ranges.iter().flat_map(SidRange::iter)
    }

    /// Number of StreamIDs.
    pub fn count(&self) -> u64 {
        self.ranges.iter().map(SidRange::len).sum()
    }
}

/// Why a platform device's `iommus` could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamsError {
    /// `iommus` is not a whole number of cells.
    Malformed,
    /// `iommus` names a phandle that is no node.
    NoSuchIommu {
        /// The phandle.
        phandle: u32,
    },
    /// The IOMMU's `#iommu-cells` is missing or not 1 (an SMMUv3 uses one
    /// cell: the StreamID).
    UnsupportedCells {
        /// The phandle.
        phandle: u32,
    },
}

impl fmt::Display for StreamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamsError::Malformed => f.write_str("malformed `iommus`"),
            StreamsError::NoSuchIommu { phandle } => {
                write!(f, "`iommus` names phandle {phandle:#x}, which is no node")
            }
            StreamsError::UnsupportedCells { phandle } => {
                write!(f, "IOMMU {phandle:#x} does not have `#iommu-cells = <1>`")
            }
        }
    }
}

impl core::error::Error for StreamsError {}

/// Collects `(phandle, sid)` pairs into sorted, merged ranges per SMMU
/// (SMMUs in increasing phandle order).
#[derive(Debug, Default)]
struct Collector {
    /// (phandle, range), appended with consecutive SIDs coalesced.
    raw: Vec<(u32, SidRange)>,
}

impl Collector {
    /// StreamIDs `first..=last` (in that order of u32 arithmetic: a range
    /// that wraps past `u32::MAX` is split in two).
    fn add_range(&mut self, phandle: u32, first: u32, count: u64) {
        if count == 0 {
            return;
        }
        let end = u64::from(first) + count - 1;
        let last = end.min(u64::from(u32::MAX)) as u32;
        self.raw.push((phandle, SidRange { first, last }));
        if end > u64::from(u32::MAX) {
            self.add_range(phandle, 0, end - u64::from(u32::MAX));
        }
    }

    fn add(&mut self, phandle: u32, sid: u32) {
        if let Some((p, r)) = self.raw.last_mut()
            && *p == phandle
            && (r.contains(sid) || r.last.checked_add(1) == Some(sid))
        {
            r.last = r.last.max(sid);
            return;
        }
        self.raw.push((phandle, SidRange::one(sid)));
    }

    fn finish(mut self) -> Vec<Streams> {
        self.raw.sort_unstable();
        let mut out: Vec<Streams> = Vec::new();
        for (phandle, range) in self.raw {
            let streams = match out.last_mut() {
                Some(s) if s.smmu_phandle == phandle => s,
                _ => {
                    out.push(Streams {
                        smmu_phandle: phandle,
                        ranges: Vec::new(),
                    });
                    match out.last_mut() {
                        Some(s) => s,
                        None => continue,
                    }
                }
            };
            match streams.ranges.last_mut() {
                Some(last) if u64::from(range.first) <= u64::from(last.last) + 1 => {
                    last.last = last.last.max(range.last);
                }
                _ => streams.ranges.push(range),
            }
        }
        out
    }
}

/// The StreamIDs of requester IDs `rids` behind `host`, per SMMU, as
/// [`PcieHost::iommu_for_rid`] maps each of them (so `iommu-map-mask` and
/// the first-match rule apply). RIDs no map entry covers are left out
/// (Linux would let them bypass the IOMMU; callers refusing such devices
/// check coverage).
///
/// Computed on ranges, never RID by RID: the masked RIDs as ranges
/// ([`masked_ranges`]), each cut by the map entries in order. The work is
/// proportional to the ranges produced, one for a whole bus range mapped
/// by one entry.
pub fn pcie_rid_streams(host: &PcieHost, rids: RangeInclusive<u32>) -> Vec<Streams> {
    let mut c = Collector::default();
    let mask = host.iommu_map_mask.unwrap_or(u32::MAX);
    // Pieces of masked RIDs no entry has matched yet, reused.
    let mut left: Vec<(u32, u32)> = Vec::new();
    let mut next: Vec<(u32, u32)> = Vec::new();
    masked_ranges(*rids.start(), *rids.end(), mask, |first, last| {
        left.clear();
        left.push((first, last));
        for e in &host.iommu_map {
            if e.length == 0 {
                continue;
            }
            let (base, end) = (e.rid_base, u64::from(e.rid_base) + u64::from(e.length) - 1);
            next.clear();
            for &(a, b) in &left {
                let (lo, hi) = (a.max(base), u64::from(b).min(end));
                if u64::from(lo) > hi {
                    next.push((a, b));
                    continue;
                }
                // hi <= b, a u32.
                let hi = hi as u32;
                let sid = e.iommu_base.wrapping_add(lo - base);
                c.add_range(e.iommu_phandle, sid, u64::from(hi - lo) + 1);
                if a < lo {
                    next.push((a, lo - 1));
                }
                if hi < b {
                    next.push((hi + 1, b));
                }
            }
            core::mem::swap(&mut left, &mut next);
            if left.is_empty() {
                break;
            }
        }
    });
    c.finish()
}

/// Calls `f(first, last)` for ranges that together are `{rid & mask : lo
/// <= rid <= hi}` (possibly overlapping; nothing when `lo > hi`): `lo..=hi`
/// is cut into naturally aligned power-of-two blocks, and a block of `2^k`
/// RIDs masks to the values `prefix | s` where `s` ranges over the subsets
/// of the mask's low `k` bits, i.e. one range per subset of the bits above
/// the mask's trailing ones. As many calls as values at most, a few for a
/// mask that keeps or drops whole low-order fields.
pub fn masked_ranges(lo: u32, hi: u32, mask: u32, mut f: impl FnMut(u32, u32)) {
    let mut start = u64::from(lo);
    let end = u64::from(hi) + 1;
    while start < end {
        let align = if start == 0 {
            32
        } else {
            start.trailing_zeros()
        };
        let k = align.min((end - start).ilog2());
        let low = ((1u64 << k) - 1) as u32;
        let prefix = start as u32 & mask & !low;
        let keep = mask & low;
        let run = keep.trailing_ones();
        let run_mask = ((1u64 << run) - 1) as u32;
        let high = keep & !run_mask;
        // Every subset of `high`, from `high` down to 0.
        let mut s = high;
        loop {
            f(prefix | s, prefix | s | run_mask);
            if s == 0 {
                break;
            }
            s = (s - 1) & high;
        }
        start += 1u64 << k;
    }
}

/// The StreamIDs of every RID on the buses of `host` (`bus-range`), per
/// SMMU.
pub fn pcie_host_streams(host: &PcieHost) -> Vec<Streams> {
    let (first, last) = host.bus_range;
    pcie_rid_streams(host, (first.min(255) << 8)..=(last.min(255) << 8 | 0xff))
}

/// The RID of PCI function `bus:dev.func`.
pub fn rid(bus: u8, dev: u8, func: u8) -> u32 {
    u32::from(bus) << 8 | u32::from(dev & 0x1f) << 3 | u32::from(func & 7)
}

/// The StreamIDs of a platform device from its `iommus` property
/// (`<&iommu sid>` pairs; each IOMMU must have `#iommu-cells = <1>`).
/// No property: no streams.
pub fn platform_streams(tree: &Tree, node: &NodeRef<'_>) -> Result<Vec<Streams>, StreamsError> {
    let Some(prop) = node.prop("iommus") else {
        return Ok(Vec::new());
    };
    let cells = prop.as_u32_list().ok_or(StreamsError::Malformed)?;
    let mut c = Collector::default();
    let mut rest = cells.as_slice();
    while let [phandle, tail @ ..] = rest {
        let iommu = tree
            .by_phandle(*phandle)
            .ok_or(StreamsError::NoSuchIommu { phandle: *phandle })?;
        if iommu.prop_u32("#iommu-cells") != Some(1) {
            return Err(StreamsError::UnsupportedCells { phandle: *phandle });
        }
        let [sid, tail @ ..] = tail else {
            return Err(StreamsError::Malformed);
        };
        c.add(*phandle, *sid);
        rest = tail;
    }
    Ok(c.finish())
}
