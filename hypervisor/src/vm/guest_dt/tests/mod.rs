//! Tests of guest device-tree generation against the QEMU virt blobs of
//! `crate::fdt` (see `src/fdt/testdata/README.md`), hand-modified host
//! trees, and dtc.

mod dtc;
mod errors;
mod qemu;
mod refs;
mod viommu;

use alloc::vec::Vec;

use super::{GuestDtError, GuestDtSpec, build};
use crate::fdt::{HostDt, Node, Prop, Tree};
use crate::mm::layout::Region;

/// The QEMU virt blob with an SMMUv3, 4 CPUs and 1 GiB.
const SMMU_DTB: &[u8] = include_bytes!("../../../fdt/testdata/qemu-virt-smmu.dtb");

/// Every QEMU virt blob.
const QEMU_BLOBS: [(&str, &[u8]); 7] = [
    ("qemu-virt-smmu", SMMU_DTB),
    (
        "qemu-virt-smp1",
        include_bytes!("../../../fdt/testdata/qemu-virt-smp1.dtb"),
    ),
    (
        "qemu-virt-nosmmu",
        include_bytes!("../../../fdt/testdata/qemu-virt-nosmmu.dtb"),
    ),
    (
        "qemu-virt-initrd",
        include_bytes!("../../../fdt/testdata/qemu-virt-initrd.dtb"),
    ),
    (
        "qemu-virt-9.1",
        include_bytes!("../../../fdt/testdata/qemu-virt-9.1.dtb"),
    ),
    (
        "qemu-virt-hvc",
        include_bytes!("../../../fdt/testdata/qemu-virt-hvc.dtb"),
    ),
    (
        "qemu-virt-gicv2",
        include_bytes!("../../../fdt/testdata/qemu-virt-gicv2.dtb"),
    ),
];

/// Devices of the standard test guest.
const DEVICES: &[&str] = &["/pl011@9000000", "/pcie@10000000"];

/// The standard test guest: 2 vCPUs, 512 MiB at 0x40000000, the PL011 and
/// the PCIe host, PSCI over HVC, an initrd and the PL011 as console; no
/// virtio-iommu.
fn spec() -> GuestDtSpec<'static> {
    GuestDtSpec {
        vcpus: 2,
        memory: Region::new(0x4000_0000, 0x2000_0000),
        bootargs: "console=ttyAMA0 earlycon rdinit=/init",
        initrd: Some(Region::new(0x4800_0000, 0x12_3400)),
        gic_dist: Region::new(0x800_0000, 0x1_0000),
        gic_redist: Region::new(0x80a_0000, 2 * 0x2_0000),
        psci_method: "hvc",
        devices: DEVICES,
        stdout: Some("/pl011@9000000"),
        viommu: None,
        console: None,
        vpci: None,
    }
}

/// The parsed SMMU blob, to be modified by a test.
fn host_tree() -> Tree {
    Tree::parse(SMMU_DTB).expect("host tree")
}

/// The parsed SMMU blob.
fn host() -> HostDt {
    HostDt::parse(SMMU_DTB).expect("host")
}

/// Builds `spec` on a modified host tree.
fn build_on(tree: Tree, spec: &GuestDtSpec<'_>) -> Result<Vec<u8>, GuestDtError> {
    build(spec, &HostDt::from_tree(tree).expect("modified host"))
}

/// The node at `path` of `tree`, which must exist.
fn node_mut<'t>(tree: &'t mut Tree, path: &str) -> &'t mut Node {
    let mut at = &mut tree.root;
    for component in path.split('/').filter(|c| !c.is_empty()) {
        at = at
            .children
            .iter_mut()
            .find(|c| c.name == component)
            .expect(path);
    }
    at
}

/// A node with the given name and raw properties.
fn node(name: &str, props: &[(&str, &[u8])]) -> Node {
    let mut n = Node::new(name);
    n.props = props.iter().map(|(k, v)| Prop::new(k, v)).collect();
    n
}

/// Big-endian cells.
fn be(cells: &[u32]) -> Vec<u8> {
    cells.iter().flat_map(|c| c.to_be_bytes()).collect()
}

/// Every phandle of a tree, in tree order.
fn phandles(tree: &Tree) -> Vec<u32> {
    tree.nodes().iter().filter_map(|n| n.phandle()).collect()
}
