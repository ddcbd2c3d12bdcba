//! What a passed-through device-tree node means for validation: whether the
//! hypervisor keeps it for itself, and which CPU-physical ranges it (with
//! its subtree) occupies.

use alloc::vec;
use alloc::vec::Vec;

use super::limits::MAX_DEVICE_PATH_LEN;
use crate::fdt::cells::{entries, read_cells};
use crate::fdt::{GIC_COMPATIBLES, HostDt, NodeRef};
use crate::mm::layout::Region;

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
    for n in lineage {
        if GIC_COMPATIBLES.iter().any(|c| n.is_compatible(c)) {
            return Some("the interrupt controller");
        }
        if let Some((_, what)) = RESERVED_COMPATIBLE.iter().find(|(c, _)| n.is_compatible(c)) {
            return Some(what);
        }
        if n.compatible().iter().any(|c| c.starts_with("arm,psci")) {
            return Some("the PSCI firmware node");
        }
    }
    None
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
