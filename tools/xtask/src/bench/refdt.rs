//! The reference run's device tree: QEMU's own DTB for the reference command
//! line (`-machine ...,dumpdtb=FILE`), decompiled by `dtc`, given what the
//! issue asks for, and compiled back for `-dtb`:
//!
//! - on the virtio-mmio node QEMU puts `-device virtio-iommu-device` on:
//!   `#iommu-cells = <1>` and a fresh `phandle`;
//! - on the PCIe host (`device_type = "pci"`):
//!   `iommu-map = <RID0 &viommu RID0 LEN>` over its bus range
//!   (`<0x0 &viommu 0x0 0x10000>` for buses 0-255), no `iommu-map-mask`:
//!   endpoint ID = requester ID, as in partita's guest DT.
//!
//! Which slot: QEMU `virt` creates its 32 virtio-mmio transports so that a
//! `-device virtio-*-device` without `bus=` lands on the free one with the
//! **highest** base address (hw/arm/virt.c, `create_virtio_devices`: the
//! buses are listed in decreasing address order and `qbus_find_recursive`
//! takes the first free one). The reference has no other virtio-mmio
//! device, so it is the `virtio_mmio@` node with the highest unit address.
//! The bench checks this after the run against the guest's report (and the
//! guest itself fails if the node's window does not hold a virtio-iommu).
//!
//! The editing works on `dtc -O dts` output: one node opening per line
//! (`[label: ]name {`), one property per line (`name = value;` or `name;`),
//! `};` closing a node.
//!
//! The PCI reference (`-device virtio-iommu-pci`) needs no edit: QEMU
//! writes the binding itself (hw/arm/virt.c, a `virtio,pci-iommu` child of
//! the PCIe host and an `iommu-map` on the host that leaves the IOMMU's
//! own requester ID out). [`pci_iommu`] reads what it wrote, for the
//! report and to check the guest used that function.

/// What [`edit`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// Path of the virtio-mmio node given `#iommu-cells` (e.g. `/virtio_mmio@a003e00`).
    pub viommu_path: String,
    /// Its unit address (its window's base).
    pub viommu_base: u64,
    /// The phandle given to it.
    pub phandle: u32,
    /// Path of the PCIe host given the `iommu-map` (e.g. `/pcie@10000000`).
    pub pci_path: String,
    /// The `iommu-map` cells: rid-base, phandle, iommu-base, length.
    pub iommu_map: [u32; 4],
}

/// One node of a DTS text.
#[derive(Debug)]
struct DtsNode {
    /// Full path (`/` for the root).
    path: String,
    /// Index of its opening line.
    open: usize,
    /// Its own properties: (name, value text without the `;`, empty for a flag).
    props: Vec<(String, String)>,
}

impl DtsNode {
    fn prop(&self, name: &str) -> Option<&str> {
        self.props
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    /// The unit address of a node directly under the root named `prefix@HEX`.
    fn unit_address(&self, prefix: &str) -> Option<u64> {
        let hex = self.path.strip_prefix('/')?.strip_prefix(prefix)?;
        u64::from_str_radix(hex, 16).ok()
    }
}

/// The nodes of a DTS text as `dtc -O dts` writes it, in document order.
fn nodes(dts: &str) -> Result<Vec<DtsNode>, String> {
    let mut all: Vec<DtsNode> = Vec::new();
    let mut open: Vec<usize> = Vec::new(); // indices into `all`
    for (i, line) in dts.lines().enumerate() {
        let t = line.trim();
        if let Some(head) = t.strip_suffix('{') {
            let head = head.trim();
            // Drop labels (`label: name`).
            let name = head.rsplit(": ").next().unwrap_or(head).trim();
            let path = match open.last() {
                None if name == "/" => "/".to_owned(),
                None => return Err(format!("line {}: node `{name}` outside the root", i + 1)),
                Some(&p) if all[p].path == "/" => format!("/{name}"),
                Some(&p) => format!("{}/{name}", all[p].path),
            };
            open.push(all.len());
            all.push(DtsNode {
                path,
                open: i,
                props: Vec::new(),
            });
        } else if t == "};" {
            open.pop()
                .ok_or_else(|| format!("line {}: `}};` closes no node", i + 1))?;
        } else if let (Some(&p), Some(body)) = (open.last(), t.strip_suffix(';')) {
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n.trim(), v.trim()),
                None => (body.trim(), ""),
            };
            all[p].props.push((name.to_owned(), value.to_owned()));
        }
    }
    if !open.is_empty() {
        return Err("unterminated node".into());
    }
    Ok(all)
}

/// The cells of a `<...>` value (hex `0x..` or decimal), None if it is not
/// one plain cell list.
fn cells(value: &str) -> Option<Vec<u32>> {
    let inner = value.trim().strip_prefix('<')?.strip_suffix('>')?;
    inner
        .split_whitespace()
        .map(|c| match c.strip_prefix("0x") {
            Some(h) => u32::from_str_radix(h, 16).ok(),
            None => c.parse().ok(),
        })
        .collect()
}

/// Adds the virtio-iommu's `#iommu-cells`/`phandle` and the PCIe host's
/// `iommu-map` to `dts` (QEMU's tree, decompiled); returns the new text.
pub fn edit(dts: &str) -> Result<(String, Edit), String> {
    let all = nodes(dts)?;
    let viommu = all
        .iter()
        .filter_map(|n| Some((n.unit_address("virtio_mmio@")?, n)))
        .max_by_key(|(a, _)| *a)
        .map(|(_, n)| n)
        .ok_or("no /virtio_mmio@ node in QEMU's DT")?;
    let viommu_base = viommu.unit_address("virtio_mmio@").unwrap_or_default();
    if viommu.prop("compatible") != Some("\"virtio,mmio\"") {
        return Err(format!("{} is not compatible \"virtio,mmio\"", viommu.path));
    }
    if viommu.prop("#iommu-cells").is_some() || viommu.prop("phandle").is_some() {
        return Err(format!(
            "{} already has #iommu-cells or a phandle: QEMU's DT changed, check the edit",
            viommu.path
        ));
    }
    let pcis: Vec<&DtsNode> = all
        .iter()
        .filter(|n| n.prop("device_type") == Some("\"pci\""))
        .collect();
    let [pci] = pcis[..] else {
        return Err(format!(
            "expected one PCIe host (device_type = \"pci\") in QEMU's DT, found {}",
            pcis.len()
        ));
    };
    if pci.prop("iommu-map").is_some() || pci.prop("iommu-map-mask").is_some() {
        return Err(format!("{} already has an iommu-map", pci.path));
    }
    let (first_bus, last_bus) = match pci.prop("bus-range").map(cells) {
        None => (0, 0xff),
        Some(Some(c)) if c.len() == 2 && c[0] <= c[1] && c[1] <= 0xff => (c[0], c[1]),
        Some(_) => return Err(format!("{}: unexpected bus-range", pci.path)),
    };
    let mut max = 0u32;
    for n in &all {
        for (name, value) in &n.props {
            if name == "phandle" || name == "linux,phandle" {
                let c = cells(value)
                    .filter(|c| c.len() == 1)
                    .ok_or_else(|| format!("{}: unexpected {name} = {value}", n.path))?;
                max = max.max(c[0]);
            }
        }
    }
    let phandle = max
        .checked_add(1)
        .filter(|&p| p != u32::MAX)
        .ok_or("no phandle left")?;
    let rid0 = first_bus << 8;
    let iommu_map = [rid0, phandle, rid0, (last_bus + 1 - first_bus) << 8];

    let indent = |line: usize| -> String {
        let l = dts.lines().nth(line).unwrap_or_default();
        let lead = &l[..l.len() - l.trim_start().len()];
        format!("{lead}\t")
    };
    let mut out = String::with_capacity(dts.len() + 256);
    for (i, line) in dts.lines().enumerate() {
        out.push_str(line);
        out.push('\n');
        if i == viommu.open {
            let ind = indent(i);
            out.push_str(&format!("{ind}#iommu-cells = <0x01>;\n"));
            out.push_str(&format!("{ind}phandle = <{phandle:#x}>;\n"));
        } else if i == pci.open {
            let [a, b, c, d] = iommu_map;
            out.push_str(&format!(
                "{}iommu-map = <{a:#x} {b:#x} {c:#x} {d:#x}>;\n",
                indent(i)
            ));
        }
    }
    Ok((
        out,
        Edit {
            viommu_path: viommu.path.clone(),
            viommu_base,
            phandle,
            pci_path: pci.path.clone(),
            iommu_map,
        },
    ))
}

/// The virtio-iommu on virtio-pci as QEMU's DT describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciIommu {
    /// Path of the `virtio,pci-iommu` node (a child of the PCIe host).
    pub path: String,
    /// Its requester ID (bus << 8 | device << 3 | function, from `reg`).
    pub rid: u32,
    /// The PCIe host's path.
    pub pci_path: String,
    /// The host's `iommu-map` cells.
    pub iommu_map: Vec<u32>,
}

/// Finds the `virtio,pci-iommu` node of a PCIe host and the host's
/// `iommu-map` in `dts` (QEMU's tree with `-device virtio-iommu-pci`).
pub fn pci_iommu(dts: &str) -> Result<PciIommu, String> {
    let all = nodes(dts)?;
    let found: Vec<&DtsNode> = all
        .iter()
        .filter(|n| {
            n.prop("compatible").is_some_and(|c| {
                c.starts_with("\"virtio,pci-iommu\\0") || c == "\"virtio,pci-iommu\""
            })
        })
        .collect();
    let [node] = found[..] else {
        return Err(format!(
            "expected one virtio,pci-iommu node in QEMU's DT, found {}",
            found.len()
        ));
    };
    let pci_path = node
        .path
        .rsplit_once('/')
        .map(|(p, _)| p.to_owned())
        .filter(|p| !p.is_empty())
        .ok_or_else(|| format!("{} is not a child of a PCIe host", node.path))?;
    let pci = all
        .iter()
        .find(|n| n.path == pci_path && n.prop("device_type") == Some("\"pci\""))
        .ok_or_else(|| format!("{pci_path}, the parent of {}, is no PCIe host", node.path))?;
    let rid = node
        .prop("reg")
        .and_then(cells)
        .filter(|c| c.len() == 5)
        .map(|c| (c[0] >> 8) & 0xffff)
        .ok_or_else(|| format!("{}: reg is not a PCI address", node.path))?;
    let iommu_map = pci
        .prop("iommu-map")
        .and_then(cells)
        .filter(|c| !c.is_empty() && c.len() % 4 == 0)
        .ok_or_else(|| format!("{pci_path} has no iommu-map"))?;
    Ok(PciIommu {
        path: node.path.clone(),
        rid,
        pci_path,
        iommu_map,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An excerpt of `dtc -O dts` of QEMU 10.0's `virt,gic-version=3` DTB.
    const QEMU_DTS: &str = "/dts-v1/;

/ {
\tinterrupt-parent = <0x8002>;
\t#size-cells = <0x02>;
\t#address-cells = <0x02>;
\tcompatible = \"linux,dummy-virt\";

\tpsci {
\t\tmigrate = <0xc4000005>;
\t\tmethod = \"hvc\";
\t\tcompatible = \"arm,psci-1.0\\0arm,psci-0.2\\0arm,psci\";
\t};

\tvirtio_mmio@a000000 {
\t\tdma-coherent;
\t\tinterrupts = <0x00 0x10 0x01>;
\t\treg = <0x00 0xa000000 0x00 0x200>;
\t\tcompatible = \"virtio,mmio\";
\t};

\tvirtio_mmio@a003e00 {
\t\tdma-coherent;
\t\tinterrupts = <0x00 0x2f 0x01>;
\t\treg = <0x00 0xa003e00 0x00 0x200>;
\t\tcompatible = \"virtio,mmio\";
\t};

\tvirtio_mmio@a003c00 {
\t\tdma-coherent;
\t\treg = <0x00 0xa003c00 0x00 0x200>;
\t\tcompatible = \"virtio,mmio\";
\t};

\tpcie@10000000 {
\t\tinterrupt-map-mask = <0x1800 0x00 0x00 0x07>;
\t\tmsi-map = <0x00 0x8003 0x00 0x10000>;
\t\tbus-range = <0x00 0xff>;
\t\tdevice_type = \"pci\";
\t\tcompatible = \"pci-host-ecam-generic\";
\t};

\tintc@8000000 {
\t\tphandle = <0x8002>;
\t\t#address-cells = <0x02>;

\t\tits@8080000 {
\t\t\tphandle = <0x8003>;
\t\t\treg = <0x00 0x8080000 0x00 0x20000>;
\t\t};
\t};

\tpl061@9030000 {
\t\tphandle = <0x8004>;
\t};

\tchosen {
\t\tstdout-path = \"/pl011@9000000\";
\t};
};
";

    #[test]
    fn adds_iommu_cells_phandle_and_iommu_map() {
        let (out, e) = edit(QEMU_DTS).expect("edit");
        assert_eq!(
            e,
            Edit {
                viommu_path: "/virtio_mmio@a003e00".into(),
                viommu_base: 0xa003e00,
                phandle: 0x8005,
                pci_path: "/pcie@10000000".into(),
                iommu_map: [0, 0x8005, 0, 0x10000],
            }
        );
        assert!(out.contains(
            "\tvirtio_mmio@a003e00 {\n\t\t#iommu-cells = <0x01>;\n\t\tphandle = <0x8005>;\n\t\tdma-coherent;\n"
        ));
        assert!(out.contains(
            "\tpcie@10000000 {\n\t\tiommu-map = <0x0 0x8005 0x0 0x10000>;\n\t\tinterrupt-map-mask"
        ));
        // Only those three lines were added; the other slots are untouched.
        assert_eq!(out.lines().count(), QEMU_DTS.lines().count() + 3);
        assert_eq!(out.matches("#iommu-cells").count(), 1);
        // The result parses again and the edit is not repeated on it.
        let again = nodes(&out).expect("parses");
        let v = again
            .iter()
            .find(|n| n.path == "/virtio_mmio@a003e00")
            .expect("node");
        assert_eq!(v.prop("#iommu-cells"), Some("<0x01>"));
        assert!(edit(&out).unwrap_err().contains("already has"));
    }

    #[test]
    fn node_paths_labels_and_props() {
        let all = nodes(QEMU_DTS).expect("nodes");
        let its = all
            .iter()
            .find(|n| n.path == "/intc@8000000/its@8080000")
            .expect("nested");
        assert_eq!(its.prop("phandle"), Some("<0x8003>"));
        let labelled = nodes("/ {\n\tv: virtio_mmio@a000000 {\n\t\tdma-coherent;\n\t};\n};\n")
            .expect("labelled");
        assert_eq!(labelled[1].path, "/virtio_mmio@a000000");
        assert_eq!(labelled[1].prop("dma-coherent"), Some(""));
        assert!(nodes("/ {\n\tx {\n};\n").is_err());
    }

    #[test]
    fn iommu_map_follows_the_bus_range() {
        let dts = QEMU_DTS.replace("bus-range = <0x00 0xff>", "bus-range = <0x10 0x1f>");
        let (_, e) = edit(&dts).expect("edit");
        assert_eq!(e.iommu_map, [0x1000, 0x8005, 0x1000, 0x1000]);
    }

    /// QEMU 10.0's PCIe host with `-device virtio-iommu-pci` (an excerpt).
    const QEMU_PCI_DTS: &str = "/dts-v1/;

/ {
\tpcie@10000000 {
\t\tiommu-map = <0x00 0x8005 0x00 0x10 0x11 0x8005 0x11 0xffef>;
\t\tbus-range = <0x00 0xff>;
\t\t#address-cells = <0x03>;
\t\tdevice_type = \"pci\";
\t\tcompatible = \"pci-host-ecam-generic\";

\t\tvirtio_iommu@2,0 {
\t\t\tphandle = <0x8005>;
\t\t\t#iommu-cells = <0x01>;
\t\t\treg = <0x1000 0x00 0x00 0x00 0x00>;
\t\t\tcompatible = \"virtio,pci-iommu\\0pci1af4,1057\";
\t\t};
\t};
};
";

    #[test]
    fn reads_qemus_virtio_pci_iommu_binding() {
        assert_eq!(
            pci_iommu(QEMU_PCI_DTS),
            Ok(PciIommu {
                path: "/pcie@10000000/virtio_iommu@2,0".into(),
                rid: 0x10,
                pci_path: "/pcie@10000000".into(),
                iommu_map: vec![0, 0x8005, 0, 0x10, 0x11, 0x8005, 0x11, 0xffef],
            })
        );
        let no_map = QEMU_PCI_DTS.replace(
            "\t\tiommu-map = <0x00 0x8005 0x00 0x10 0x11 0x8005 0x11 0xffef>;\n",
            "",
        );
        assert!(pci_iommu(&no_map).unwrap_err().contains("no iommu-map"));
        assert!(pci_iommu(QEMU_DTS).unwrap_err().contains("found 0"));
        let orphan = QEMU_PCI_DTS.replace("device_type = \"pci\";", "");
        assert!(pci_iommu(&orphan).unwrap_err().contains("no PCIe host"));
    }

    #[test]
    fn refuses_what_it_does_not_expect() {
        let no_pci = QEMU_DTS.replace("device_type = \"pci\";", "");
        assert!(edit(&no_pci).unwrap_err().contains("found 0"));
        let mapped = QEMU_DTS.replace(
            "\t\tbus-range",
            "\t\tiommu-map = <0x00 0x8001 0x00 0x10000>;\n\t\tbus-range",
        );
        assert!(
            edit(&mapped)
                .unwrap_err()
                .contains("already has an iommu-map")
        );
        let no_virtio = QEMU_DTS.replace("virtio_mmio@", "virtio@");
        assert!(edit(&no_virtio).is_err());
        assert_eq!(cells("<0x01 2>"), Some(vec![1, 2]));
        assert_eq!(cells("\"str\""), None);
    }
}
