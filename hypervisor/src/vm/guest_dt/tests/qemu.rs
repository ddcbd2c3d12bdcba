//! The standard guest on QEMU virt: everything the generated tree must
//! say, read back with the host parser.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::{QEMU_BLOBS, host, phandles, spec};
use crate::fdt::{Conduit, HostDt, Tree};
use crate::mm::layout::Region;
use crate::vm::guest_dt::{DROPPED_PROPS, MODEL, build};

fn guest() -> (HostDt, Vec<u8>, HostDt) {
    let host = host();
    let dtb = build(&spec(), &host).expect("build");
    let guest = HostDt::parse(&dtb).expect("guest parses");
    (host, dtb, guest)
}

#[test]
fn cpus_memory_psci() {
    let (_, _, guest) = guest();
    assert!(guest.warnings.is_empty(), "{:?}", guest.warnings);
    let mpidrs: Vec<u64> = guest.cpus.iter().map(|c| c.mpidr).collect();
    assert_eq!(mpidrs, [0, 1]);
    assert!(
        guest
            .cpus
            .iter()
            .all(|c| c.enable_method.as_deref() == Some("psci"))
    );
    assert_eq!(guest.cpus[1].path, "/cpus/cpu@1");
    assert_eq!(guest.memory, [Region::new(0x4000_0000, 0x2000_0000)]);
    assert!(guest.reserved.is_empty());
    let psci = guest.psci.as_ref().expect("psci");
    assert_eq!(psci.conduit, Conduit::Hvc);
    assert_eq!(psci.compatible, ["arm,psci-1.0", "arm,psci-0.2"]);
    assert_eq!(guest.model.as_deref(), Some(MODEL));
    assert_eq!(guest.compatible, ["linux,dummy-virt"]);
    let cpu = guest.tree().find("/cpus/cpu@0").expect("cpu@0");
    assert_eq!(cpu.prop_str("compatible"), Some("arm,armv8"));
    assert_eq!(cpu.prop_str("device_type"), Some("cpu"));
}

#[test]
fn gic_keeps_the_host_phandle() {
    let (host, _, guest) = guest();
    let (hg, gg) = (
        host.gic.as_ref().expect("host gic"),
        guest.gic.as_ref().expect("guest gic"),
    );
    assert_eq!(gg.path, "/intc@8000000");
    assert_eq!(gg.version, 3);
    assert_eq!(gg.dist, Region::new(0x800_0000, 0x1_0000));
    assert_eq!(gg.redists, [Region::new(0x80a_0000, 0x4_0000)]);
    assert!(gg.cpu_if.is_empty());
    assert_eq!(gg.phandle, hg.phandle);
    assert_eq!(gg.phandle, Some(0x8005));
    assert_eq!(gg.maintenance, hg.maintenance);
    assert!(gg.its.is_empty());
    let tree = guest.tree();
    let intc = tree.find("/intc@8000000").expect("intc");
    assert!(intc.children.is_empty(), "no ITS child");
    assert!(intc.has_prop("interrupt-controller"));
    assert_eq!(intc.prop_u32("#interrupt-cells"), Some(3));
    assert_eq!(intc.prop_u32("#redistributor-regions"), Some(1));
    assert_eq!(tree.root.prop_u32("interrupt-parent"), Some(0x8005));
    assert_eq!(tree.root.prop_u32("#address-cells"), Some(2));
    assert_eq!(tree.root.prop_u32("#size-cells"), Some(2));
}

#[test]
fn timer_and_chosen() {
    let (host, _, guest) = guest();
    assert_eq!(guest.timer, host.timer);
    let timer = guest.tree().find("/timer").expect("timer");
    assert!(timer.has_prop("always-on"));
    assert_eq!(guest.chosen.bootargs.as_deref(), Some(spec().bootargs));
    assert_eq!(guest.chosen.stdout_path.as_deref(), Some("/pl011@9000000"));
    assert_eq!(guest.chosen.initrd, spec().initrd);
    let chosen = guest.tree().find("/chosen").expect("chosen");
    assert_eq!(
        chosen.prop("linux,initrd-start").map(|p| p.value.len()),
        Some(8)
    );
    assert_eq!(
        guest.stdout.as_ref().map(|u| (u.path.as_str(), u.base)),
        Some(("/pl011@9000000", 0x900_0000))
    );
}

#[test]
fn pl011_and_its_clock() {
    let (host, _, guest) = guest();
    let (ht, gt) = (host.tree(), guest.tree());
    let uart = gt.find("/pl011@9000000").expect("pl011");
    assert_eq!(
        uart.node(),
        ht.find("/pl011@9000000").expect("host pl011").node()
    );
    let clock = gt.find("/apb-pclk").expect("apb-pclk");
    assert_eq!(clock.phandle(), Some(0x8000));
    assert_eq!(uart.prop_u32_list("clocks"), Some(vec![0x8000, 0x8000]));
    assert_eq!(
        clock.node(),
        ht.find("/apb-pclk").expect("host clock").node()
    );
}

#[test]
fn pcie_without_smmu_or_its() {
    let (host, _, guest) = guest();
    let (ht, gt) = (host.tree(), guest.tree());
    let pcie = gt.find("/pcie@10000000").expect("pcie");
    let host_pcie = ht.find("/pcie@10000000").expect("host pcie");
    for name in [
        "interrupt-map",
        "interrupt-map-mask",
        "ranges",
        "reg",
        "bus-range",
        "dma-coherent",
    ] {
        assert_eq!(pcie.prop(name), host_pcie.prop(name), "{name}");
    }
    for name in DROPPED_PROPS {
        assert!(!pcie.has_prop(name), "{name} dropped");
    }
    assert!(host_pcie.has_prop("iommu-map") && host_pcie.has_prop("msi-map"));
    let p = guest.pcie.first().expect("guest pcie host");
    assert!(p.iommu_map.is_empty() && p.msi_map.is_empty() && p.msi_parent.is_none());
    assert_eq!(p.ranges, host.pcie[0].ranges);
    assert!(guest.smmus.is_empty());
    assert!(gt.compatible_nodes("arm,smmu-v3").is_empty());
    assert!(gt.compatible_nodes("arm,gic-v3-its").is_empty());
}

#[test]
fn only_requested_devices() {
    let (_, _, guest) = guest();
    let names: Vec<String> = guest
        .tree()
        .root
        .children
        .iter()
        .map(|c| c.name.clone())
        .collect();
    let expected = [
        "cpus",
        "memory@40000000",
        "psci",
        "intc@8000000",
        "timer",
        "pl011@9000000",
        "apb-pclk",
        "pcie@10000000",
        "chosen",
    ];
    assert_eq!(names, expected);
    let mut all = phandles(guest.tree());
    let count = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), count, "phandles are unique");
}

#[test]
fn every_qemu_blob() {
    for (name, blob) in QEMU_BLOBS {
        let host = HostDt::parse(blob).expect(name);
        let dtb = build(&spec(), &host).unwrap_or_else(|e| panic!("{name}: {e}"));
        let guest = HostDt::parse(&dtb).expect(name);
        assert!(guest.warnings.is_empty(), "{name}: {:?}", guest.warnings);
        assert_eq!(
            guest.gic.and_then(|g| g.phandle),
            host.gic.and_then(|g| g.phandle),
            "{name}"
        );
        assert_eq!(guest.cpus.len(), 2, "{name}");
        let tree = Tree::parse(&dtb).expect(name);
        assert!(tree.find("/apb-pclk").is_some(), "{name}");
    }
}
