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

impl Streams {
    /// Every StreamID, in increasing order.
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

/// Collects `(phandle, sid)` pairs into sorted, merged ranges per SMMU
/// (SMMUs in increasing phandle order).
#[derive(Debug, Default)]
struct Collector {
    /// (phandle, range), appended with consecutive SIDs coalesced.
    raw: Vec<(u32, SidRange)>,
}

impl Collector {
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

/// The StreamIDs of requester IDs `rids` behind `host`, per SMMU, by
/// [`PcieHost::iommu_for_rid`] (so `iommu-map-mask` and the first-match
/// rule apply). RIDs no map entry covers are left out (Linux would let
/// them bypass the IOMMU; callers refusing such devices check coverage).
pub fn pcie_rid_streams(host: &PcieHost, rids: RangeInclusive<u32>) -> Vec<Streams> {
    let mut c = Collector::default();
    for rid in rids {
        if let Some((phandle, sid)) = host.iommu_for_rid(rid) {
            c.add(phandle, sid);
        }
    }
    c.finish()
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
