//! The owned tree: lookups, paths, property accessors, `reg` decoding and
//! address translation.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::builder::{AlignedBuf, Builder, minimal};
use super::{dtb, qemu_blobs, r};
use crate::fdt::{Node, Prop, PropError, Tree};

#[test]
fn lookups_on_qemu_virt() {
    let tree = Tree::parse(dtb!("qemu-virt-smmu.dtb")).expect("parse");
    assert_eq!(tree.root().path(), "/");
    assert_eq!(
        tree.find("/").map(|n| n.node().name.clone()),
        Some(String::new())
    );
    assert_eq!(
        tree.find("/cpus/cpu@2").map(|n| n.path()),
        Some("/cpus/cpu@2".into())
    );
    assert_eq!(
        tree.find("/cpus/cpu").map(|n| n.path()),
        Some("/cpus/cpu@0".into())
    );
    assert_eq!(
        tree.find("//cpus//cpu@3/").map(|n| n.path()),
        Some("/cpus/cpu@3".into())
    );
    assert!(tree.find("/cpus/cpu@9").is_none());
    assert!(tree.find("cpus").is_none(), "paths are absolute");
    assert_eq!(
        tree.by_phandle(0x8007).map(|n| n.path()),
        Some("/smmuv3@9050000".into())
    );
    assert_eq!(
        tree.by_phandle(0x8006).map(|n| n.path()),
        Some("/intc@8000000/its@8080000".into())
    );
    assert!(
        tree.by_phandle(0).is_none()
            && tree.by_phandle(u32::MAX).is_none()
            && tree.by_phandle(1).is_none()
    );
    assert_eq!(tree.alias("serial0"), Some("/pl011@9000000"));
    assert_eq!(
        tree.resolve("serial0:115200").map(|n| n.path()),
        Some("/pl011@9000000".into())
    );
    assert_eq!(
        tree.resolve("/pl011@9000000:x").map(|n| n.path()),
        Some("/pl011@9000000".into())
    );
    assert!(tree.resolve("serial1").is_none());
    let virtio: Vec<String> = tree
        .compatible_nodes("virtio,mmio")
        .iter()
        .map(|n| n.path())
        .collect();
    assert_eq!(virtio.len(), 32);
    assert_eq!(virtio[0], "/virtio_mmio@a000000");
    assert!(tree.memreserve.is_empty());
    assert_eq!(tree.boot_cpuid_phys, 0);
    let its = tree.find("/intc@8000000/its@8080000").expect("its");
    assert_eq!(its.parent().map(|p| p.path()), Some("/intc@8000000".into()));
    assert_eq!(its.ancestors().len(), 2);
    assert_eq!(
        its.reg_cpu(),
        Ok(vec![r(0x808_0000, 0x2_0000)]),
        "through the GIC's empty `ranges`"
    );
}

#[test]
fn every_path_finds_its_node() {
    for (name, blob) in qemu_blobs() {
        let tree = Tree::parse(blob).expect(name);
        let nodes = tree.nodes();
        assert!(nodes.len() > 50, "{name}");
        for node in &nodes {
            let path = node.path();
            let found = tree.find(&path).unwrap_or_else(|| panic!("{name}: {path}"));
            assert!(core::ptr::eq(found.node(), node.node()), "{name}: {path}");
            assert_eq!(tree.path_of(node.node()), Some(path));
        }
        assert_eq!(tree.path_of(&Node::new("stranger")), None);
        // Parsing is deterministic and the tree is a plain value.
        assert_eq!(Tree::parse(blob).expect(name), tree.clone());
    }
}

#[test]
fn property_accessors() {
    let tree = Tree::parse(dtb!("qemu-virt-initrd.dtb")).expect("parse");
    let uart = tree.find("/pl011@9000000").expect("uart");
    assert_eq!(uart.base_name(), "pl011");
    assert_eq!(uart.unit_address(), Some("9000000"));
    assert_eq!(uart.prop_u32_list("interrupts"), Some(vec![0, 1, 4]));
    assert_eq!(
        uart.prop_str_list("clock-names"),
        Some(vec!["uartclk", "apb_pclk"])
    );
    assert_eq!(uart.prop_str("compatible"), Some("arm,pl011"));
    assert!(uart.is_compatible("arm,primecell") && !uart.is_compatible("arm,pl01"));
    assert!(uart.is_available() && uart.has_prop("reg") && !uart.has_prop("status"));
    assert_eq!(uart.prop_u32("interrupts"), None, "three cells are not one");
    assert_eq!(uart.prop_str("interrupts"), None);
    assert_eq!(uart.phandle(), None);
    let reg = uart.prop("reg").expect("reg");
    assert_eq!(reg.read_cells(0, 2), Some(0x900_0000));
    assert_eq!(reg.read_cells(2, 2), Some(0x1000));
    assert_eq!(reg.read_cells(3, 2), None);
    assert_eq!(reg.as_u64(), None);
    let chosen = tree.find("/chosen").expect("chosen");
    assert_eq!(
        chosen.prop("linux,initrd-start").and_then(Prop::as_u64),
        Some(0x4800_0000)
    );
    assert_eq!(chosen.prop_str("bootargs"), Some("x y"));
    let cpus = tree.find("/cpus").expect("cpus");
    assert_eq!(
        (cpus.child_address_cells(), cpus.child_size_cells()),
        (Some(1), Some(0))
    );
    let cpu = tree.find("/cpus/cpu@1").expect("cpu");
    assert_eq!((cpu.address_cells(), cpu.size_cells()), (Ok(1), Ok(0)));
    assert_eq!(cpu.reg(), Ok(vec![r(1, 0)]));
    assert_eq!(
        cpu.translate(1),
        Err(PropError::Untranslatable { addr: 1 }),
        "/cpus has no ranges"
    );
    assert_eq!(
        cpu.inherited_prop("interrupt-parent")
            .and_then(Prop::as_u32),
        Some(0x8005)
    );
    assert!(cpu.dma_coherent(), "inherited from the root");
    assert_eq!(tree.root().reg(), Err(PropError::Missing { prop: "reg" }));
    let names: Vec<String> = tree.root().children().take(3).map(|c| c.path()).collect();
    assert_eq!(
        names,
        ["/psci", "/memory@40000000", "/platform-bus@c000000"]
    );
    assert_eq!(
        Prop::new("x", &[0, 0, 0, 1, 0, 0, 0, 2]).as_u32_list(),
        Some(vec![1, 2])
    );
    assert_eq!(Prop::new("x", &[0, 0, 1]).as_u32_list(), None);
    assert_eq!(
        Prop::new("x", &[0, 0, 0, 1, 0, 0, 0, 2]).as_u64(),
        Some(0x1_0000_0002)
    );
}

#[test]
fn translation_through_buses() {
    let tree = Tree::parse(dtb!("features.dtb")).expect("parse");
    let uart = tree.find("/soc/serial@2000").expect("uart");
    assert_eq!(uart.reg(), Ok(vec![r(0x2000, 0x1000)]));
    assert_eq!(uart.reg_cpu(), Ok(vec![r(0x1c00_2000, 0x1000)]));
    assert_eq!(
        uart.translate(0x10_0000),
        Err(PropError::Untranslatable { addr: 0x10_0000 })
    );
    assert_eq!(
        tree.memreserve,
        vec![r(0x4800_0000, 0x10_0000), r(0x8000_f000, 0x1000)]
    );
    assert_eq!(
        tree.resolve("serial1").map(|n| n.path()),
        Some("/soc/serial@2000".into())
    );
    let cma = tree.find("/reserved-memory/linux,cma").expect("cma");
    assert_eq!(cma.reg(), Err(PropError::Missing { prop: "reg" }));
}

#[test]
fn malformed_cells_are_reported() {
    let blob = minimal(|b| {
        b.begin("bus")
            .cells("#address-cells", &[9])
            .cells("ranges", &[]);
        b.begin("dev@0").cells("reg", &[0, 0]).end();
        b.end();
        b.begin("odd@0").cells("reg", &[0, 0, 0]).end();
        b.begin("nested")
            .cells("#address-cells", &[1])
            .cells("#size-cells", &[1]);
        b.begin("deeper")
            .cells("#address-cells", &[1])
            .cells("#size-cells", &[1]);
        b.cells("ranges", &[0, 0x1000, 0x100]);
        b.begin("leaf@10").cells("reg", &[0x10, 4]).end();
        b.end();
        b.end();
    });
    let buf = AlignedBuf::new(&blob);
    let tree = Tree::parse(buf.bytes()).expect("parse");
    let dev = tree.find("/bus/dev@0").expect("dev");
    assert_eq!(dev.reg(), Err(PropError::BadCells));
    let odd = tree.find("/odd@0").expect("odd");
    assert_eq!(
        odd.reg(),
        Err(PropError::BadLength {
            prop: "reg",
            len: 12
        })
    );
    // `deeper` maps into `nested`, which has no `ranges`: not memory-mapped.
    let leaf = tree.find("/nested/deeper/leaf@10").expect("leaf");
    assert_eq!(leaf.reg(), Ok(vec![r(0x10, 4)]));
    // The error names the address as the node gives it.
    assert_eq!(
        leaf.reg_cpu(),
        Err(PropError::Untranslatable { addr: 0x10 })
    );
    for e in [
        PropError::BadCells,
        PropError::Missing { prop: "reg" },
        PropError::Untranslatable { addr: 1 },
    ] {
        assert!(!alloc::format!("{e}").is_empty());
    }
}

#[test]
fn memreserve_entries() {
    let mut b = Builder::default();
    b.reserve(0x4800_0000, 0x1000)
        .reserve(0x4900_0000, 0)
        .reserve(u64::MAX, 0x10);
    b.begin("")
        .cells("#address-cells", &[2])
        .cells("#size-cells", &[2]);
    b.begin("memory@40000000")
        .string("device_type", "memory")
        .cells("reg", &[0, 0x4000_0000, 0, 0x1000_0000]);
    b.end();
    b.begin("cpus")
        .cells("#address-cells", &[1])
        .cells("#size-cells", &[0]);
    b.begin("cpu@0")
        .string("device_type", "cpu")
        .cells("reg", &[0])
        .end();
    b.end();
    b.end();
    let buf = AlignedBuf::new(&b.finish());
    let tree = Tree::parse(buf.bytes()).expect("parse");
    assert_eq!(
        tree.memreserve,
        vec![r(0x4800_0000, 0x1000), r(0x4900_0000, 0), r(u64::MAX, 0x10)]
    );
    let hw = crate::fdt::HostDt::parse(buf.bytes()).expect("parse");
    assert_eq!(
        hw.reserved,
        vec![r(0x4800_0000, 0x1000), r(u64::MAX, 0x10)],
        "empty entries dropped"
    );
    let free = crate::mm::layout::free_ranges(&hw.memory, &hw.reserved, 0x1000);
    assert_eq!(
        free,
        vec![r(0x4000_0000, 0x800_0000), r(0x4800_1000, 0x7ff_f000)]
    );
}
