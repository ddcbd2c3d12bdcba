//! Owners' devices and their streams from the host device tree
//! (`two-smmus.dtb` and QEMU's virt machine): streams per SMMU instance and
//! the devices that cannot be isolated, endpoint <-> StreamID through a
//! host bridge's `iommu-map` both ways.

use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;

use super::manager::{BAD_DMA, DMA, PCIE, PCIE_OFF, two_smmus};
use crate::fdt::HostDt;
use crate::smmu::manager::{
    DeviceStreams, OwnerStreams, StreamProblem, endpoint_sid, owner_streams, sid_endpoint,
};
use crate::smmu::streams::{SidRange, Streams, StreamsError, rid};

#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);

static QEMU: &Aligned<[u8]> = &Aligned(*include_bytes!("../../fdt/testdata/qemu-virt-smmu.dtb"));

/// The phandles of the SMMUs of `hw` (all in use, in order).
fn phandles(hw: &HostDt) -> Vec<Option<u32>> {
    hw.smmus.iter().map(|s| s.phandle).collect()
}

fn range(first: u32, last: u32) -> SidRange {
    SidRange { first, last }
}

#[test]
fn streams_of_an_owners_devices() {
    let hw = two_smmus();
    let ph = phandles(&hw);
    let (p0, p1) = (ph[0].expect("phandle"), ph[1].expect("phandle"));
    let devices = [PCIE, DMA, PCIE_OFF, BAD_DMA, "/no/such/node"];
    let got = owner_streams(&hw, &devices, &ph);
    let dev = |path: &str, smmu, phandle, r| DeviceStreams {
        path: path.to_string(),
        smmu,
        streams: Streams {
            smmu_phandle: phandle,
            ranges: vec![r],
        },
    };
    assert_eq!(
        got,
        OwnerStreams {
            devices: vec![
                dev(PCIE, 0, p0, range(0, 0xff)),
                dev(PCIE, 1, p1, range(0x1000, 0x10ff)),
                dev(DMA, 1, p1, range(0x42, 0x43)),
            ],
            problems: vec![
                StreamProblem::SmmuNotRun {
                    path: PCIE_OFF.to_string()
                },
                StreamProblem::Iommus {
                    path: BAD_DMA.to_string(),
                    error: StreamsError::Malformed
                },
            ],
        }
    );
    assert_eq!(
        got.problems[0].to_string(),
        "/pcie@20000000: its DMA goes through an SMMU the hypervisor does not run: not isolated"
    );
    assert_eq!(
        got.problems[1].to_string(),
        "/dma@9110000: malformed `iommus`"
    );
    let source = core::error::Error::source(&got.problems[1]).expect("source");
    assert_eq!(source.to_string(), "malformed `iommus`");
    assert!(core::error::Error::source(&got.problems[0]).is_none());

    // With only the second SMMU in use (instance 0), bus 0 is not isolated.
    let got = owner_streams(&hw, &[PCIE], &ph[1..]);
    assert_eq!(got.devices, [dev(PCIE, 0, p1, range(0x1000, 0x10ff))]);
    assert_eq!(
        got.problems,
        [StreamProblem::SmmuNotRun {
            path: PCIE.to_string()
        }]
    );
    // No devices, no streams.
    let none: [&str; 0] = [];
    assert_eq!(owner_streams(&hw, &none, &ph), OwnerStreams::default());
}

#[test]
fn endpoints_map_to_streams_through_the_iommu_map() {
    let hw = two_smmus();
    let ph = phandles(&hw);
    let p1 = ph[1].expect("phandle");
    let mine = [PCIE, DMA];
    // Bus 0 through SMMU 0 (SID = RID), bus 1 through SMMU 1.
    assert_eq!(endpoint_sid(&hw, &mine, &ph, rid(0, 2, 0)), Some((0, 0x10)));
    assert_eq!(
        endpoint_sid(&hw, &mine, &ph, rid(1, 1, 0)),
        Some((1, 0x1008))
    );
    // Outside the bridge's buses, or not a requester ID.
    assert_eq!(endpoint_sid(&hw, &mine, &ph, rid(2, 0, 0)), None);
    assert_eq!(endpoint_sid(&hw, &mine, &ph, 0x1_0010), None);
    // An endpoint of a bridge the owner does not have.
    assert_eq!(endpoint_sid(&hw, &[DMA], &ph, rid(0, 2, 0)), None);
    assert_eq!(endpoint_sid(&hw, &[PCIE_OFF], &ph, rid(0x10, 0, 0)), None);
    // Behind an SMMU not in use.
    assert_eq!(endpoint_sid(&hw, &mine, &ph[..1], rid(1, 1, 0)), None);
    assert_eq!(
        endpoint_sid(&hw, &mine, &ph[1..], rid(1, 1, 0)),
        Some((0, 0x1008))
    );

    // And back.
    assert_eq!(sid_endpoint(&hw, &mine, p1, 0x1008), Some(rid(1, 1, 0)));
    assert_eq!(sid_endpoint(&hw, &mine, p1, 0x10), None);
    assert_eq!(sid_endpoint(&hw, &mine, p1, 0x1100), None);
    // SID 0x42 of SMMU 1 is the platform device's: no endpoint ID.
    assert_eq!(sid_endpoint(&hw, &mine, p1, 0x42), None);
    // Not the owner's.
    assert_eq!(sid_endpoint(&hw, &[DMA], p1, 0x1008), None);
    // Every endpoint of the bridge, both ways.
    for ep in 0..=0x1ff {
        let (smmu, sid) = endpoint_sid(&hw, &mine, &ph, ep).expect("mapped");
        let phandle = ph[smmu].expect("phandle");
        assert_eq!(sid_endpoint(&hw, &mine, phandle, sid), Some(ep), "{ep:#x}");
    }
}

#[test]
fn qemu_virt_endpoints_are_stream_ids() {
    let hw = HostDt::parse(&QEMU.0).expect("dtb");
    let ph = phandles(&hw);
    let phandle = ph[0].expect("phandle");
    let bridge = [hw.pcie[0].path.as_str()];
    let streams = owner_streams(&hw, &bridge, &ph);
    assert_eq!(streams.devices.len(), 1);
    assert_eq!(streams.devices[0].streams.ranges, [range(0, 0xffff)]);
    assert!(streams.problems.is_empty());
    for ep in [0, rid(0, 2, 0), rid(0, 8, 0), 0xffff] {
        assert_eq!(endpoint_sid(&hw, &bridge, &ph, ep), Some((0, ep)));
        assert_eq!(sid_endpoint(&hw, &bridge, phandle, ep), Some(ep));
    }
    let none: [&str; 0] = [];
    assert_eq!(endpoint_sid(&hw, &none, &ph, 0x10), None);
    assert_eq!(sid_endpoint(&hw, &none, phandle, 0x10), None);
}
