//! StreamIDs from the host device tree: QEMU's virt machine (iommu-map
//! RID 0-0xffff -> SID = RID) and hand-built trees for masks, split maps
//! and platform devices.

use alloc::vec;
use alloc::vec::Vec;

use crate::fdt::{HostDt, IommuMapEntry, Node, Prop, Tree};
use crate::smmu::streams::*;

#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);

static QEMU: &Aligned<[u8]> = &Aligned(*include_bytes!("../../fdt/testdata/qemu-virt-smmu.dtb"));

#[test]
fn qemu_virt_bridge_maps_rid_to_sid() {
    let hw = HostDt::parse(&QEMU.0).expect("dtb");
    let host = hw.pcie.first().expect("pcie");
    let smmu = hw.smmus.first().expect("smmu");
    let streams = pcie_host_streams(host);
    assert_eq!(
        streams,
        [Streams {
            smmu_phandle: smmu.phandle.expect("phandle"),
            ranges: vec![SidRange {
                first: 0,
                last: 0xffff
            }],
        }]
    );
    assert_eq!(streams[0].count(), 0x1_0000);
    assert!(hw.smmu_by_phandle(streams[0].smmu_phandle).is_some());
    // One function: 00:02.0.
    let one = pcie_rid_streams(host, rid(0, 2, 0)..=rid(0, 2, 0));
    assert_eq!(one[0].ranges, [SidRange::one(0x10)]);
    assert_eq!(one[0].sids().collect::<Vec<_>>(), [0x10]);
    // Bus 1, all functions.
    let bus = pcie_rid_streams(host, 0x100..=0x1ff);
    assert_eq!(
        bus[0].ranges,
        [SidRange {
            first: 0x100,
            last: 0x1ff
        }]
    );
}

fn host_with(map: Vec<IommuMapEntry>, mask: Option<u32>, bus: (u32, u32)) -> crate::fdt::PcieHost {
    let hw = HostDt::parse(&QEMU.0).expect("dtb");
    let mut host = hw.pcie.first().expect("pcie").clone();
    host.iommu_map = map;
    host.iommu_map_mask = mask;
    host.bus_range = bus;
    host
}

fn entry(rid_base: u32, phandle: u32, sid: u32, length: u32) -> IommuMapEntry {
    IommuMapEntry {
        rid_base,
        iommu_phandle: phandle,
        iommu_base: sid,
        length,
    }
}

#[test]
fn split_maps_two_smmus_and_holes() {
    // Bus 0 -> SMMU 1 at SID 0x1000; bus 1 functions 0-7 unmapped; the
    // rest of bus 1 -> SMMU 2 at 0; bus 2 -> SMMU 1 right after bus 0.
    let map = vec![
        entry(0x000, 1, 0x1000, 0x100),
        entry(0x108, 2, 0x0, 0xf8),
        entry(0x200, 1, 0x1100, 0x100),
    ];
    let host = host_with(map, None, (0, 2));
    assert_eq!(
        pcie_host_streams(&host),
        [
            Streams {
                smmu_phandle: 1,
                ranges: vec![SidRange {
                    first: 0x1000,
                    last: 0x11ff
                }],
            },
            Streams {
                smmu_phandle: 2,
                ranges: vec![SidRange {
                    first: 0,
                    last: 0xf7
                }],
            },
        ]
    );
}

#[test]
fn map_mask_folds_rids() {
    // Mask 0x7: only the function number reaches the map; every bus and
    // device shares SIDs 0x20-0x27.
    let host = host_with(vec![entry(0, 1, 0x20, 8)], Some(0x7), (0, 255));
    let streams = pcie_host_streams(&host);
    assert_eq!(
        streams[0].ranges,
        [SidRange {
            first: 0x20,
            last: 0x27
        }]
    );
    // No map: nothing.
    assert!(pcie_host_streams(&host_with(Vec::new(), None, (0, 255))).is_empty());
}

fn platform_tree(iommus: &[u32], cells: u32) -> Tree {
    let be = |v: &[u32]| v.iter().flat_map(|c| c.to_be_bytes()).collect::<Vec<u8>>();
    let mut smmu = Node::new("smmu@1000");
    smmu.props.push(Prop::new("phandle", &be(&[7])));
    smmu.props.push(Prop::new("#iommu-cells", &be(&[cells])));
    let mut dev = Node::new("dma@2000");
    dev.props.push(Prop::new("iommus", &be(iommus)));
    let mut root = Node::new("");
    root.children.push(smmu);
    root.children.push(dev);
    Tree {
        root,
        ..Tree::default()
    }
}

#[test]
fn platform_device_iommus() {
    let tree = platform_tree(&[7, 0x42, 7, 0x40, 7, 0x41], 1);
    let dev = tree.find("/dma@2000").expect("node");
    assert_eq!(
        platform_streams(&tree, &dev),
        Ok(vec![Streams {
            smmu_phandle: 7,
            ranges: vec![SidRange {
                first: 0x40,
                last: 0x42
            }],
        }])
    );
    let smmu = tree.find("/smmu@1000").expect("node");
    assert_eq!(platform_streams(&tree, &smmu), Ok(Vec::new()));
}

#[test]
fn platform_device_errors() {
    let check = |iommus: &[u32], cells: u32, want: StreamsError| {
        let tree = platform_tree(iommus, cells);
        let dev = tree.find("/dma@2000").expect("node");
        assert_eq!(platform_streams(&tree, &dev), Err(want.clone()));
        assert!(!alloc::format!("{want}").is_empty());
    };
    check(&[7], 1, StreamsError::Malformed);
    check(&[9, 1], 1, StreamsError::NoSuchIommu { phandle: 9 });
    check(&[7, 1, 2], 2, StreamsError::UnsupportedCells { phandle: 7 });
    let mut tree = platform_tree(&[7, 1], 1);
    tree.root.children[1].props[0] = Prop::new("iommus", &[0, 0, 7]);
    let dev = tree.find("/dma@2000").expect("node");
    assert_eq!(platform_streams(&tree, &dev), Err(StreamsError::Malformed));
}

#[test]
fn rid_and_ranges() {
    assert_eq!(rid(1, 2, 3), 0x113);
    assert_eq!(rid(0xff, 0x1f, 7), 0xffff);
    let r = SidRange {
        first: 0,
        last: u32::MAX,
    };
    assert_eq!(r.len(), 1 << 32);
    assert!(r.contains(7) && !r.is_empty());
}

/// `pcie_rid_streams` as it was: RID by RID through `iommu_for_rid`.
fn rid_by_rid(host: &crate::fdt::PcieHost, lo: u32, hi: u32) -> Vec<Streams> {
    let mut per: Vec<(u32, Vec<u32>)> = Vec::new();
    for rid in lo..=hi {
        if let Some((phandle, sid)) = host.iommu_for_rid(rid) {
            match per.iter_mut().find(|(p, _)| *p == phandle) {
                Some((_, sids)) => sids.push(sid),
                None => per.push((phandle, vec![sid])),
            }
        }
    }
    per.sort_unstable();
    per.into_iter()
        .map(|(phandle, mut sids)| {
            sids.sort_unstable();
            sids.dedup();
            let mut ranges: Vec<SidRange> = Vec::new();
            for sid in sids {
                match ranges.last_mut() {
                    Some(r) if r.last.checked_add(1) == Some(sid) => r.last = sid,
                    _ => ranges.push(SidRange::one(sid)),
                }
            }
            Streams {
                smmu_phandle: phandle,
                ranges,
            }
        })
        .collect()
}

/// xorshift64: deterministic test inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u32 {
        (self.next() % n) as u32
    }
}

#[test]
fn ranges_match_the_rid_by_rid_mapping() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let masks = [
        None,
        Some(0xffff),
        Some(0x7),
        Some(0xff00),
        Some(0xfff8),
        Some(0xf0f0),
        Some(0),
    ];
    for round in 0..300 {
        // Entries overlapping (first match wins), with holes, with
        // lengths crossing 2^16 and stream IDs wrapping past 2^32.
        let map: Vec<IommuMapEntry> = (0..1 + rng.below(4))
            .map(|_| {
                let sid = match rng.below(4) {
                    0 => u32::MAX - rng.below(0x100),
                    _ => rng.below(0x2_0000),
                };
                let length = match rng.below(5) {
                    0 => 0,
                    1 => 0x1_0000,
                    _ => 1 + rng.below(0x1000),
                };
                entry(rng.below(0x1_0000), 1 + rng.below(2), sid, length)
            })
            .collect();
        let mask = masks[round % masks.len()];
        let host = host_with(map.clone(), mask, (0, 255));
        let lo = rng.below(0x1_0000);
        let hi = match rng.below(3) {
            0 => lo,
            1 => 0xffff,
            _ => (lo + rng.below(0x800)).min(0xffff),
        };
        assert_eq!(
            pcie_rid_streams(&host, lo..=hi),
            rid_by_rid(&host, lo, hi),
            "map {map:x?} mask {mask:x?} rids {lo:#x}..={hi:#x}"
        );
    }
    // Every bus of QEMU's bridge, and nothing for an empty range.
    let hw = HostDt::parse(&QEMU.0).expect("dtb");
    let host = hw.pcie.first().expect("pcie");
    assert_eq!(pcie_host_streams(host), rid_by_rid(host, 0, 0xffff));
    #[allow(clippy::reversed_empty_ranges)]
    let empty = pcie_rid_streams(host, 5..=4);
    assert!(empty.is_empty());
}

#[test]
fn masked_ranges_cover_exactly_the_masked_values() {
    let mut rng = Rng(0x0dd_ba11);
    for _ in 0..200 {
        let mask = match rng.below(3) {
            0 => rng.below(0x1_0000),
            1 => 0xffff << rng.below(16),
            _ => (1 << rng.below(17)) - 1,
        };
        let lo = rng.below(0x1_0000);
        let hi = (lo + rng.below(0x1_0000)).min(0xffff);
        let mut want: Vec<u32> = (lo..=hi).map(|r| r & mask).collect();
        want.sort_unstable();
        want.dedup();
        let mut got = Vec::new();
        let mut calls = 0;
        masked_ranges(lo, hi, mask, |a, b| {
            assert!(a <= b);
            calls += 1;
            got.extend(a..=b);
        });
        assert!(calls <= hi - lo + 1);
        got.sort_unstable();
        got.dedup();
        assert_eq!(got, want, "mask {mask:#x} rids {lo:#x}..={hi:#x}");
    }
    // A whole 16-bit range under a mask keeping the low field: one range;
    // keeping the bus number: one value per bus.
    let mut calls = Vec::new();
    masked_ranges(0, 0xffff, 0x00ff, |a, b| calls.push((a, b)));
    assert_eq!(calls, [(0, 0xff)]);
    calls.clear();
    masked_ranges(0, 0xffff, 0xff00, |a, b| calls.push((a, b)));
    assert_eq!(calls.len(), 256);
    assert!(calls.iter().all(|&(a, b)| a == b && a & 0xff == 0));
}

#[test]
fn normalize_sorts_and_merges() {
    let r = |first, last| SidRange { first, last };
    let mut v = vec![
        r(10, 12),
        r(0, 3),
        r(4, 4),
        r(9, 2),
        r(11, 20),
        r(30, 30),
        r(u32::MAX, u32::MAX),
    ];
    normalize(&mut v);
    assert_eq!(v, [r(0, 4), r(10, 20), r(30, 30), r(u32::MAX, u32::MAX)]);
    assert_eq!(SidRange::from(3..=7), r(3, 7));
    assert_eq!(SidRange::from(9), r(9, 9));
}
