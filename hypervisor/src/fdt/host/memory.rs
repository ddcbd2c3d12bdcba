//! RAM and reserved ranges: `device_type = "memory"` nodes below the root,
//! `/memreserve/` entries and `/reserved-memory` children with `reg`.

use alloc::string::String;
use alloc::vec::Vec;

use super::warn;
use crate::fdt::noderef::NodeRef;
use crate::fdt::tree::Tree;
use crate::mm::layout::Region;

/// Keeps the non-empty, non-wrapping entries of `regions`, warning about
/// the wrapping ones.
fn keep_valid(
    node: &NodeRef<'_>,
    regions: Vec<Region>,
    out: &mut Vec<Region>,
    warnings: &mut Vec<String>,
) {
    for region in regions {
        if region.checked_end().is_none() {
            warn(
                warnings,
                node,
                alloc::format!("reg entry {region} wraps around the address space; ignored"),
            );
        } else if region.size != 0 {
            out.push(region);
        }
    }
}

/// RAM from every enabled memory node directly below the root. A node with
/// a malformed `reg` is skipped whole (with a warning), as are wrapping
/// entries; zero-size entries (unused banks) are skipped silently.
pub fn memory(tree: &Tree, warnings: &mut Vec<String>) -> Vec<Region> {
    let mut out = Vec::new();
    for node in tree.root().children() {
        if node.prop_str("device_type") != Some("memory") || !node.is_available() {
            continue;
        }
        match node.reg() {
            Ok(regions) => keep_valid(&node, regions, &mut out, warnings),
            Err(e) => warn(warnings, &node, alloc::format!("{e}; memory node ignored")),
        }
    }
    out
}

/// Reserved ranges: the `/memreserve/` entries, then the `reg` of every
/// enabled `/reserved-memory` child (children without `reg` are dynamic
/// allocations and are ignored).
pub fn reserved(tree: &Tree, warnings: &mut Vec<String>) -> Vec<Region> {
    let mut out: Vec<Region> = tree
        .memreserve
        .iter()
        .copied()
        .filter(|r| r.size != 0)
        .collect();
    let Some(parent) = tree.find("/reserved-memory") else {
        return out;
    };
    for child in parent.children() {
        if !child.is_available() || !child.has_prop("reg") {
            continue;
        }
        match child.reg() {
            Ok(regions) => keep_valid(&child, regions, &mut out, warnings),
            Err(e) => warn(warnings, &child, alloc::format!("{e}; reservation ignored")),
        }
    }
    out
}
