//! What a passed-through device-tree node means for validation: whether the
//! hypervisor keeps it (or a node inside it) for itself, which CPU-physical
//! ranges it (with its subtree) occupies and at what page granularity, which
//! host-physical ranges the hypervisor keeps, and which DMA masters inside
//! it no SMMU the hypervisor runs translates.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::limits::MAX_DEVICE_PATH_LEN;
use crate::fdt::cells::{entries, read_cells};
use crate::fdt::{GIC_COMPATIBLES, HostDt, NodeRef};
use crate::mm::layout::Region;
use crate::vgic::DIST_SIZE;

/// The granule of stage 2: a passed-through range is mapped in whole pages
/// of this size, so ownership is decided per page.
pub(super) const PAGE: u64 = 0x1000;

/// Top-level nodes the hypervisor describes to guests itself, with what
/// they are.
const RESERVED_TOP: [(&str, &str); 5] = [
    ("cpus", "the CPU list"),
    ("chosen", "/chosen"),
    ("aliases", "/aliases"),
    ("reserved-memory", "the reserved-memory list"),
    ("memory", "host RAM"),
];

/// `compatible` values of nodes the hypervisor owns.
const RESERVED_COMPATIBLE: [(&str, &str); 4] = [
    ("arm,smmu-v3", "an SMMUv3"),
    ("arm,armv8-timer", "the generic timer"),
    ("arm,armv7-timer", "the generic timer"),
    ("arm,psci", "the PSCI firmware node"),
];

/// True for a syntactically usable device path: absolute, not the root, at
/// most [`MAX_DEVICE_PATH_LEN`] bytes, no NUL and no empty component.
pub(super) fn path_is_valid(path: &str) -> bool {
    path.len() > 1
        && path.len() <= MAX_DEVICE_PATH_LEN
        && path.starts_with('/')
        && !path.contains('\0')
        && !path[1..].split('/').any(str::is_empty)
}

/// True when the node at `ancestor` contains the node at `path` (both
/// canonical absolute paths, neither the root).
pub(super) fn is_ancestor(ancestor: &str, path: &str) -> bool {
    path.strip_prefix(ancestor)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// What the hypervisor uses `node` (or one of its ancestors) for, if it
/// keeps it: the interrupt controller, an SMMUv3, the timer, PSCI, the
/// CPUs, RAM, `/chosen`...
pub(super) fn reserved_use(node: &NodeRef<'_>, host: &HostDt) -> Option<&'static str> {
    if node.ancestors().is_empty() {
        return Some("the root node");
    }
    let path = node.path();
    if let Some(gic) = &host.gic
        && (gic.path == path || is_ancestor(&gic.path, &path))
    {
        return Some("the interrupt controller");
    }
    let top = node.ancestors().get(1).copied().unwrap_or(node.node());
    if top.prop_str("device_type") == Some("memory") {
        return Some("host RAM");
    }
    if let Some((_, what)) = RESERVED_TOP
        .iter()
        .find(|(name, _)| top.base_name() == *name)
    {
        return Some(what);
    }
    let lineage = node
        .ancestors()
        .iter()
        .copied()
        .chain(core::iter::once(node.node()));
    lineage.into_iter().find_map(reserved_kind)
}

/// What the hypervisor keeps `n` for, judged by the node alone (its
/// `compatible`).
fn reserved_kind(n: &crate::fdt::Node) -> Option<&'static str> {
    if GIC_COMPATIBLES.iter().any(|c| n.is_compatible(c)) {
        return Some("the interrupt controller");
    }
    if let Some((_, what)) = RESERVED_COMPATIBLE.iter().find(|(c, _)| n.is_compatible(c)) {
        return Some(what);
    }
    if n.compatible().iter().any(|c| c.starts_with("arm,psci")) {
        return Some("the PSCI firmware node");
    }
    None
}

/// The first node strictly inside `node` that the hypervisor keeps (the
/// interrupt controller, an SMMUv3, the timer, PSCI, a memory node), with
/// its path and what it is: passing `node` would pass it too. Disabled
/// nodes count (their registers would be mapped all the same).
pub(super) fn reserved_descendant(
    node: &NodeRef<'_>,
    host: &HostDt,
) -> Option<(String, &'static str)> {
    let mut pending: Vec<NodeRef<'_>> = node.children().collect();
    pending.reverse();
    while let Some(n) = pending.pop() {
        let path = n.path();
        let what = if host.gic.as_ref().is_some_and(|g| g.path == path) {
            Some("the interrupt controller")
        } else if n.prop_str("device_type") == Some("memory") {
            Some("host RAM")
        } else {
            reserved_kind(n.node())
        };
        if let Some(what) = what {
            return Some((path, what));
        }
        let mut children: Vec<NodeRef<'_>> = n.children().collect();
        children.reverse();
        pending.extend(children);
    }
    None
}

/// `region` rounded out to whole [`PAGE`]s, as stage 2 maps it (saturating
/// at the top of the address space).
pub(super) fn pages(region: Region) -> Region {
    let base = region.base & !(PAGE - 1);
    let end = region
        .end()
        .checked_next_multiple_of(PAGE)
        .unwrap_or(!(PAGE - 1));
    Region::new(base, end.saturating_sub(base))
}

/// The host-physical ranges the hypervisor keeps for itself, with what each
/// is: the GIC (distributor, at least [`DIST_SIZE`] as guests see it;
/// redistributors; CPU interface frames; ITS), every SMMUv3 node enabled or
/// not, and host RAM (`/memory`). The console UART is apart: a guest may be
/// given it (see [`console_pages`]).
pub(super) fn hypervisor_regions(host: &HostDt) -> Vec<(&'static str, Region)> {
    let mut out = Vec::new();
    if let Some(gic) = &host.gic {
        out.push((
            "the GIC distributor",
            Region::new(gic.dist.base, gic.dist.size.max(DIST_SIZE)),
        ));
        out.extend(
            gic.redists
                .iter()
                .map(|r| ("a GIC redistributor region", *r)),
        );
        out.extend(gic.cpu_if.iter().map(|r| ("a GIC CPU interface frame", *r)));
        out.extend(gic.its.iter().map(|i| ("the GIC ITS", i.region)));
    }
    for smmu in host.tree().compatible_nodes("arm,smmu-v3") {
        if let Ok(regs) = smmu.reg_cpu() {
            out.extend(regs.into_iter().map(|r| ("an SMMUv3", r)));
        }
    }
    out.extend(host.memory.iter().map(|r| ("host RAM", *r)));
    out.retain(|(_, r)| !r.is_empty());
    out
}

/// The console UART (the node `/chosen/stdout-path` names) and its
/// registers, if the host has one.
pub(super) fn console_pages(host: &HostDt) -> Option<(&str, Vec<Region>)> {
    let uart = host.stdout.as_ref()?;
    let mut regions = host
        .tree()
        .find(&uart.path)
        .and_then(|n| n.reg_cpu().ok())
        .unwrap_or_default();
    regions.push(Region::new(uart.base, uart.size));
    regions.retain(|r| !r.is_empty());
    Some((uart.path.as_str(), regions))
}

/// A node inside a passed-through device that can master DMA which no
/// SMMU the hypervisor runs translates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct DmaMaster {
    /// Its canonical path.
    pub node: String,
    /// Why it counts as a DMA master.
    pub why: &'static str,
}

/// The DMA masters in `node` and its subtree (enabled nodes only) that no
/// SMMU the hypervisor runs translates. A node is a DMA master when it has
/// `iommus` or `iommu-map`, is a PCI host bridge (`device_type = "pci"`),
/// or has `dma-coherent` or `dma-ranges`. It is translated when every IOMMU
/// its `iommus`/`iommu-map` names is an enabled SMMUv3 ([`HostDt::smmus`]).
/// Below a node with `iommu-map` or a PCI host bridge nothing more is
/// looked at (the PCI functions' DMA goes through the bridge).
pub(super) fn untranslated_dma(node: &NodeRef<'_>, host: &HostDt) -> Vec<DmaMaster> {
    let mut out = Vec::new();
    let mut pending = vec![node.clone()];
    while let Some(n) = pending.pop() {
        if !n.is_available() {
            continue;
        }
        let master = |why| DmaMaster {
            node: n.path(),
            why,
        };
        if n.has_prop("iommu-map") {
            if !iommu_map_translated(&n, host) {
                out.push(master(
                    "its iommu-map names an IOMMU the hypervisor does not run",
                ));
            }
            continue;
        }
        if n.has_prop("iommus") {
            if !iommus_translated(&n, host) {
                out.push(master(
                    "its iommus names an IOMMU the hypervisor does not run",
                ));
            }
        } else if n.prop_str("device_type") == Some("pci") {
            out.push(master("a PCI host bridge without iommu-map"));
            continue;
        } else if n.has_prop("dma-coherent") {
            out.push(master("dma-coherent without iommus"));
        } else if n.has_prop("dma-ranges") {
            out.push(master("dma-ranges without iommus"));
        }
        let mut children: Vec<NodeRef<'_>> = n.children().collect();
        children.reverse();
        pending.extend(children);
    }
    out
}

/// True when `iommus` is well formed and names only enabled SMMUv3s.
fn iommus_translated(n: &NodeRef<'_>, host: &HostDt) -> bool {
    let Some(cells) = n.prop("iommus").and_then(|p| p.as_u32_list()) else {
        return false;
    };
    let mut at = 0;
    while let Some(&phandle) = cells.get(at) {
        let Some(specifier) = host
            .tree()
            .by_phandle(phandle)
            .and_then(|t| t.prop_u32("#iommu-cells"))
        else {
            return false;
        };
        if host.smmu_by_phandle(phandle).is_none() {
            return false;
        }
        at += 1 + specifier as usize;
    }
    !cells.is_empty() && at == cells.len()
}

/// True when `iommu-map` is well formed (entries of `rid-base`, phandle,
/// `iommu-base`, `length`) and names only enabled SMMUv3s.
fn iommu_map_translated(n: &NodeRef<'_>, host: &HostDt) -> bool {
    let Some(cells) = n.prop("iommu-map").and_then(|p| p.as_u32_list()) else {
        return false;
    };
    !cells.is_empty()
        && cells.len().is_multiple_of(4)
        && cells.chunks(4).all(|e| {
            e.get(1)
                .is_some_and(|&ph| host.smmu_by_phandle(ph).is_some())
        })
}

/// The CPU-physical ranges `node` and its subtree occupy: every
/// translatable `reg` entry, plus the parent-side windows of every
/// non-empty `ranges` (a PCIe host's memory and I/O windows). Entries that
/// cannot be decoded or translated (e.g. PCI functions' config-space `reg`)
/// are left out.
pub(super) fn mmio_regions(node: &NodeRef<'_>) -> Vec<Region> {
    let mut out = Vec::new();
    let mut pending = vec![node.clone()];
    while let Some(n) = pending.pop() {
        if let Ok(regs) = n.reg_cpu() {
            out.extend(regs.into_iter().filter(|r| !r.is_empty()));
        }
        out.extend(range_windows(&n));
        pending.extend(n.children());
    }
    out
}

/// The windows of `node`'s `ranges` in CPU-physical addresses.
fn range_windows(node: &NodeRef<'_>) -> Vec<Region> {
    let Some(ranges) = node.prop("ranges").filter(|p| !p.value.is_empty()) else {
        return Vec::new();
    };
    let (Some(child_ac), Some(child_sc), Ok(parent_ac)) = (
        node.child_address_cells(),
        node.child_size_cells(),
        node.address_cells(),
    ) else {
        return Vec::new();
    };
    let Some(chunks) = entries(&ranges.value, child_ac + parent_ac + child_sc) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in chunks {
        let parent = read_cells(entry, child_ac as usize, parent_ac);
        let size = read_cells(entry, (child_ac + parent_ac) as usize, child_sc);
        if let (Some(parent), Some(size)) = (parent, size)
            && size != 0
            && let Ok(base) = node.translate(parent)
        {
            out.push(Region::new(base, size));
        }
    }
    out
}
