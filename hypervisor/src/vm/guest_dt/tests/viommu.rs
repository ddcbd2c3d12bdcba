//! The virtio-iommu: its node, the devices pointing at it (endpoint ID =
//! requester ID for a PCIe host bridge, host stream ID for a platform
//! node), the refused specifications, and the guest without one.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::{DEVICES, QEMU_BLOBS, be, build_on, host, host_tree, node, node_mut, spec};
use crate::fdt::host::irq;
use crate::fdt::{HostDt, IommuMapEntry, Prop, Tree};
use crate::mm::layout::Region;
use crate::vm::guest_dt::{DROPPED_PROPS, GuestDtError, GuestDtSpec, ViommuDt, build};

/// The SMMUv3 of the test host.
const SMMU: u32 = 0x8007;
/// The first phandle above the test host's (its largest is 0x8008).
const FRESH: u32 = 0x8009;

/// The standard guest with a virtio-iommu at the defaults.
fn viommu_spec() -> GuestDtSpec<'static> {
    GuestDtSpec {
        viommu: Some(ViommuDt {
            base: 0x0b00_0000,
            spi: 96,
        }),
        ..spec()
    }
}

/// The guest tree of `spec` on the standard host.
fn guest_of(spec: &GuestDtSpec<'_>) -> (Vec<u8>, HostDt) {
    let dtb = build(spec, &host()).expect("build");
    let guest = HostDt::parse(&dtb).expect("guest parses");
    (dtb, guest)
}

/// The host with `iommus` added to the PL011.
fn host_with_uart_iommus(iommus: &[u32]) -> Tree {
    let mut tree = host_tree();
    node_mut(&mut tree, "/pl011@9000000")
        .props
        .push(Prop::new("iommus", &be(iommus)));
    tree
}

#[test]
fn the_node() {
    let (_, guest) = guest_of(&viommu_spec());
    assert!(guest.warnings.is_empty(), "{:?}", guest.warnings);
    let tree = guest.tree();
    let v = tree.find("/iommu@b000000").expect("viommu node");
    assert_eq!(v.compatible(), ["virtio,mmio"]);
    assert_eq!(v.reg_cpu(), Ok(vec![Region::new(0x0b00_0000, 0x200)]));
    assert_eq!(v.prop_u32_list("interrupts"), Some(vec![0, 96, 1]));
    let ints = irq::interrupts(tree, &v).expect("interrupts decode");
    assert_eq!(ints.len(), 1);
    assert_eq!(ints[0].intid(), 128);
    assert!(ints[0].is_edge());
    assert!(v.has_prop("dma-coherent"));
    assert_eq!(v.prop("dma-coherent").map(|p| p.value.len()), Some(0));
    assert_eq!(v.prop_u32("#iommu-cells"), Some(1));
    assert_eq!(v.phandle(), Some(FRESH));
    let mut all: Vec<u32> = tree.nodes().iter().filter_map(|n| n.phandle()).collect();
    let count = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), count, "phandles are unique");
    // Generated after the timer, before the copied devices.
    let names: Vec<&str> = tree.root.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "cpus",
            "memory@40000000",
            "psci",
            "intc@8000000",
            "timer",
            "iommu@b000000",
            "pl011@9000000",
            "apb-pclk",
            "pcie@10000000",
            "chosen",
        ]
    );
    // Not mistaken for anything the host parser knows.
    assert!(guest.smmus.is_empty());
}

#[test]
fn pcie_host_points_at_it() {
    let (_, guest) = guest_of(&viommu_spec());
    let tree = guest.tree();
    let pcie = tree.find("/pcie@10000000").expect("pcie");
    assert_eq!(
        pcie.prop_u32_list("iommu-map"),
        Some(vec![0, FRESH, 0, 0x1_0000])
    );
    for dropped in DROPPED_PROPS.iter().filter(|p| **p != "iommu-map") {
        assert!(!pcie.has_prop(dropped), "{dropped}");
    }
    let p = guest.pcie.first().expect("guest pcie host");
    assert_eq!(
        p.iommu_map,
        [IommuMapEntry {
            rid_base: 0,
            iommu_phandle: FRESH,
            iommu_base: 0,
            length: 0x1_0000
        }]
    );
    assert_eq!(p.iommu_map_mask, None);
    // Endpoint ID = requester ID.
    assert_eq!(p.iommu_for_rid(0x0008), Some((FRESH, 0x0008)));
    assert_eq!(p.iommu_for_rid(0xff07), Some((FRESH, 0xff07)));
    // The PL011 had no IOMMU on the host: it gets none.
    let uart = tree.find("/pl011@9000000").expect("pl011");
    assert!(!uart.has_prop("iommus"));
}

#[test]
fn pcie_bus_range_limits_the_map() {
    let mut tree = host_tree();
    let pcie = node_mut(&mut tree, "/pcie@10000000");
    pcie.props.retain(|p| p.name != "bus-range");
    pcie.props.push(Prop::new("bus-range", &be(&[2, 3])));
    let dtb = build_on(tree, &viommu_spec()).expect("build");
    let guest = Tree::parse(&dtb).expect("parse");
    let pcie = guest.find("/pcie@10000000").expect("pcie");
    assert_eq!(
        pcie.prop_u32_list("iommu-map"),
        Some(vec![0x200, FRESH, 0x200, 0x200])
    );
}

#[test]
fn platform_node_points_at_it() {
    // Two SMMU streams, and one entry for an IOMMU the hypervisor does not
    // run (left out).
    let mut tree = host_with_uart_iommus(&[SMMU, 0x2_0000, 0x9000, 7, SMMU, 0x2_0001]);
    tree.root.children.push(node(
        "other-iommu@3000",
        &[
            ("#iommu-cells", &be(&[1])),
            ("phandle", &be(&[0x9000])),
            ("reg", &be(&[0, 0x3000, 0, 0x100])),
        ],
    ));
    let dtb = build_on(tree, &viommu_spec()).expect("build");
    let guest = Tree::parse(&dtb).expect("parse");
    // 0x9000 is now the host's largest phandle.
    let v = guest.find("/iommu@b000000").expect("viommu");
    assert_eq!(v.phandle(), Some(0x9001));
    let uart = guest.find("/pl011@9000000").expect("pl011");
    assert_eq!(
        uart.prop_u32_list("iommus"),
        Some(vec![0x9001, 0x2_0000, 0x9001, 0x2_0001])
    );
    // Behind the other IOMMU only: no property at all.
    let mut tree = host_with_uart_iommus(&[0x9000, 7]);
    tree.root.children.push(node(
        "other-iommu@3000",
        &[("#iommu-cells", &be(&[1])), ("phandle", &be(&[0x9000]))],
    ));
    let dtb = build_on(tree, &viommu_spec()).expect("build");
    let guest = Tree::parse(&dtb).expect("parse");
    assert!(
        !guest
            .find("/pl011@9000000")
            .expect("pl011")
            .has_prop("iommus")
    );
}

#[test]
fn endpoint_clashes_are_refused() {
    // Stream 0x10 of the PL011 is also requester ID 0x10 of the PCIe host.
    let err = build_on(host_with_uart_iommus(&[SMMU, 0x10]), &viommu_spec());
    let expected = GuestDtError::ViommuEndpointClash {
        path: "/pcie@10000000".into(),
        endpoint: 0x10,
        owner: "/pl011@9000000".into(),
    };
    assert_eq!(err, Err(expected));
    let text = err.map(|_| ()).unwrap_err().to_string();
    assert_eq!(
        text,
        "/pcie@10000000: virtio-iommu endpoint 0x10 is already /pl011@9000000's"
    );
    // Above the requester IDs there is no clash.
    assert!(build_on(host_with_uart_iommus(&[SMMU, 0x1_0000]), &viommu_spec()).is_ok());
}

#[test]
fn malformed_host_iommus() {
    let err = build_on(host_with_uart_iommus(&[0x7777, 1]), &viommu_spec());
    assert_eq!(
        err,
        Err(GuestDtError::BadReference {
            path: "/pl011@9000000".into(),
            prop: "iommus".into(),
            phandle: 0x7777
        })
    );
    let err = build_on(host_with_uart_iommus(&[SMMU]), &viommu_spec());
    assert_eq!(
        err,
        Err(GuestDtError::Malformed {
            path: "/pl011@9000000".into(),
            prop: "iommus".into()
        })
    );
    let mut tree = host_tree();
    let pcie = node_mut(&mut tree, "/pcie@10000000");
    for p in pcie.props.iter_mut().filter(|p| p.name == "iommu-map") {
        p.value.truncate(12);
    }
    assert_eq!(
        build_on(tree, &viommu_spec()),
        Err(GuestDtError::Malformed {
            path: "/pcie@10000000".into(),
            prop: "iommu-map".into()
        })
    );
}

#[test]
fn refused_specifications() {
    let with = |base, spi| GuestDtSpec {
        viommu: Some(ViommuDt { base, spi }),
        ..spec()
    };
    let overlap = |second| GuestDtError::Overlap {
        first: "virtio-iommu",
        second,
    };
    let h = host();
    assert_eq!(build(&with(0x4000_0000, 96), &h), Err(overlap("memory")));
    assert_eq!(
        build(&with(0x0800_0000, 96), &h),
        Err(overlap("GIC distributor"))
    );
    assert_eq!(
        build(&with(0x080b_0000, 96), &h),
        Err(overlap("GIC redistributor"))
    );
    assert_eq!(
        build(&with(u64::MAX - 0xff, 96), &h),
        Err(GuestDtError::BadRegion {
            what: "virtio-iommu",
            region: Region::new(u64::MAX - 0xff, 0x200)
        })
    );
    let err = build(&with(0x0b00_0000, 988), &h);
    assert_eq!(err, Err(GuestDtError::BadViommuSpi { spi: 988 }));
    assert_eq!(
        err.map(|_| ()).unwrap_err().to_string(),
        "virtio-iommu SPI 988 is above the highest SPI 987"
    );
    // A window that does not fit the root's cells.
    let narrow = crate::vm::guest_dt::synth::RootCells {
        address: 1,
        size: 1,
    };
    let high = ViommuDt {
        base: 0x1_0000_0000,
        spi: 1,
    };
    assert_eq!(
        crate::vm::guest_dt::synth::viommu(&high, 5, narrow),
        Err(GuestDtError::TooWide {
            what: "virtio-iommu window",
            value: 0x1_0000_0000
        })
    );
}

#[test]
fn a_path_of_a_device_clashes_with_it() {
    let mut tree = host_tree();
    tree.root.children.push(node(
        "iommu@b000000",
        &[("reg", &be(&[0, 0x0b00_0000, 0, 0x1000]))],
    ));
    let s = GuestDtSpec {
        devices: &["/iommu@b000000"],
        stdout: None,
        ..viommu_spec()
    };
    assert_eq!(
        build_on(tree, &s),
        Err(GuestDtError::PathConflict("/iommu@b000000".into()))
    );
}

#[test]
fn without_viommu_nothing_changes() {
    let (_, guest) = guest_of(&spec());
    let tree = guest.tree();
    assert!(tree.find("/iommu@b000000").is_none());
    for n in tree.nodes() {
        for prop in ["iommus", "iommu-map", "iommu-map-mask", "#iommu-cells"] {
            assert!(!n.has_prop(prop), "{}: {prop}", n.name);
        }
    }
    // Host iommus of a platform node are dropped too.
    let s = GuestDtSpec {
        devices: DEVICES,
        ..spec()
    };
    let dtb = build_on(host_with_uart_iommus(&[SMMU, 0x10]), &s).expect("build");
    let guest = Tree::parse(&dtb).expect("parse");
    assert!(
        !guest
            .find("/pl011@9000000")
            .expect("pl011")
            .has_prop("iommus")
    );
}

#[test]
fn every_qemu_blob_with_viommu() {
    for (name, blob) in QEMU_BLOBS {
        let host = HostDt::parse(blob).expect(name);
        let dtb = build(&viommu_spec(), &host).unwrap_or_else(|e| panic!("{name}: {e}"));
        let guest = HostDt::parse(&dtb).expect(name);
        assert!(guest.warnings.is_empty(), "{name}: {:?}", guest.warnings);
        let tree = guest.tree();
        let v = tree.find("/iommu@b000000").expect(name);
        let phandle = v.phandle().expect(name);
        // Behind the SMMU on the SMMU boards, without iommu-map elsewhere.
        let map = tree
            .find("/pcie@10000000")
            .and_then(|p| p.prop_u32_list("iommu-map"));
        match host.smmus.is_empty() {
            true => assert_eq!(map, None, "{name}"),
            false => assert_eq!(map, Some(vec![0, phandle, 0, 0x1_0000]), "{name}"),
        }
    }
}

#[test]
fn the_reference_check_covers_iommu_properties() {
    use crate::fdt::Node;
    use crate::vm::guest_dt::check::references;
    let iommu = |cells: u32| {
        node(
            "iommu",
            &[("#iommu-cells", &be(&[cells])), ("phandle", &be(&[5]))],
        )
    };
    let tree_with = |target: Node, user: Node| Node {
        name: String::new(),
        props: Vec::new(),
        children: vec![target, user],
    };
    let ok = tree_with(iommu(1), node("dev", &[("iommus", &be(&[5, 0x42]))]));
    assert_eq!(references(&ok), Ok(()));
    let ok = tree_with(iommu(1), node("pci", &[("iommu-map", &be(&[0, 5, 0, 16]))]));
    assert_eq!(references(&ok), Ok(()));
    let dangling = tree_with(iommu(1), node("dev", &[("iommus", &be(&[6, 0x42]))]));
    assert_eq!(
        references(&dangling),
        Err(GuestDtError::DanglingReference {
            path: "/dev".into(),
            prop: "iommus".into(),
            phandle: 6
        })
    );
    let dangling = tree_with(iommu(1), node("pci", &[("iommu-map", &be(&[0, 6, 0, 16]))]));
    assert!(matches!(
        references(&dangling),
        Err(GuestDtError::DanglingReference { phandle: 6, .. })
    ));
    let two_cells = tree_with(iommu(2), node("pci", &[("iommu-map", &be(&[0, 5, 0, 16]))]));
    assert!(matches!(
        references(&two_cells),
        Err(GuestDtError::Malformed { .. })
    ));
    let short = tree_with(iommu(1), node("pci", &[("iommu-map", &be(&[0, 5, 0]))]));
    assert!(matches!(
        references(&short),
        Err(GuestDtError::Malformed { .. })
    ));
}
