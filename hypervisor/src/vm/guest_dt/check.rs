//! The last step before writing: every phandle reference in the guest tree
//! (`interrupt-parent`, `interrupts-extended`, `interrupt-map`, `iommus`,
//! `iommu-map` and the followed references such as `clocks`) must name a
//! node of the guest tree with the `#...-cells` the reference needs. A dangling reference would
//! make the guest kernel fail late and obscurely, so it fails here, naming
//! the node and the property.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::GuestDtError;
use super::policy::FOLLOWED_REFS;
use super::refs::{malformed, phandle_list};
use crate::fdt::{Node, Prop};

/// The guest nodes by phandle.
struct Index<'g>(Vec<(u32, &'g Node)>);

impl<'g> Index<'g> {
    fn new(root: &'g Node) -> Self {
        let mut all = Vec::new();
        let mut pending = alloc::vec![root];
        while let Some(node) = pending.pop() {
            if let Some(phandle) = node.phandle() {
                all.push((phandle, node));
            }
            pending.extend(node.children.iter());
        }
        Self(all)
    }

    /// The node with `phandle`, or a dangling-reference error.
    fn get(&self, phandle: u32, path: &str, prop: &Prop) -> Result<&'g Node, GuestDtError> {
        self.0
            .iter()
            .find(|(p, _)| *p == phandle)
            .map(|&(_, n)| n)
            .ok_or_else(|| GuestDtError::DanglingReference {
                path: String::from(path),
                prop: prop.name.clone(),
                phandle,
            })
    }
}

/// Checks every reference of the tree below `root`.
pub fn references(root: &Node) -> Result<(), GuestDtError> {
    let index = Index::new(root);
    walk(&index, root, "", None)
}

/// Checks `node` (at `path`, the root being `""`) and its subtree.
/// `inherited_ac` is the nearest ancestor's `#address-cells`.
fn walk(
    index: &Index<'_>,
    node: &Node,
    path: &str,
    inherited_ac: Option<u32>,
) -> Result<(), GuestDtError> {
    let shown = if path.is_empty() { "/" } else { path };
    check_node(index, node, shown, inherited_ac)?;
    let own_ac = node.prop_u32("#address-cells").or(inherited_ac);
    for child in &node.children {
        walk(index, child, &format!("{path}/{}", child.name), own_ac)?;
    }
    Ok(())
}

fn check_node(
    index: &Index<'_>,
    node: &Node,
    path: &str,
    inherited_ac: Option<u32>,
) -> Result<(), GuestDtError> {
    for &(name, cells_name) in FOLLOWED_REFS {
        if let Some(prop) = node.prop(name) {
            phandle_list(prop, path, |ph| {
                let target = index.get(ph, path, prop)?;
                target
                    .prop_u32(cells_name)
                    .ok_or_else(|| malformed(path, name))
            })?;
        }
    }
    if let Some(prop) = node.prop("interrupt-parent") {
        index.get(
            prop.as_u32().ok_or_else(|| malformed(path, &prop.name))?,
            path,
            prop,
        )?;
    }
    if let Some(prop) = node.prop("interrupts-extended") {
        phandle_list(prop, path, |ph| {
            let target = index.get(ph, path, prop)?;
            target
                .prop_u32("#interrupt-cells")
                .ok_or_else(|| malformed(path, &prop.name))
        })?;
    }
    if let Some(prop) = node.prop("interrupt-map") {
        interrupt_map(index, node, prop, path, inherited_ac)?;
    }
    if let Some(prop) = node.prop("iommus") {
        phandle_list(prop, path, |ph| {
            let target = index.get(ph, path, prop)?;
            target
                .prop_u32("#iommu-cells")
                .ok_or_else(|| malformed(path, &prop.name))
        })?;
    }
    if let Some(prop) = node.prop("iommu-map") {
        iommu_map(index, prop, path)?;
    }
    Ok(())
}

/// Walks `iommu-map` entries `<rid-base phandle iommu-base length>`: each
/// target must be in the tree with `#iommu-cells = <1>` (the only form
/// Linux reads).
fn iommu_map(index: &Index<'_>, prop: &Prop, path: &str) -> Result<(), GuestDtError> {
    let bad = || malformed(path, &prop.name);
    let cells = prop.as_u32_list().ok_or_else(bad)?;
    if cells.len() % 4 != 0 {
        return Err(bad());
    }
    for entry in cells.chunks_exact(4) {
        let target = index.get(entry[1], path, prop)?;
        if target.prop_u32("#iommu-cells") != Some(1) {
            return Err(bad());
        }
    }
    Ok(())
}

/// Walks `interrupt-map` entries `<child-unit-address child-interrupt
/// parent-phandle parent-unit-address parent-interrupt>` as Linux reads
/// them: the child sizes are the node's `#address-cells` (else the nearest
/// ancestor's, else 2) and `#interrupt-cells`, the parent's are its
/// `#address-cells` (else 0) and `#interrupt-cells`.
fn interrupt_map(
    index: &Index<'_>,
    node: &Node,
    prop: &Prop,
    path: &str,
    inherited_ac: Option<u32>,
) -> Result<(), GuestDtError> {
    let bad = || malformed(path, &prop.name);
    let child_ac = node
        .prop_u32("#address-cells")
        .or(inherited_ac)
        .unwrap_or(2) as usize;
    let child_ic = node
        .prop_u32("#interrupt-cells")
        .ok_or_else(|| malformed(path, "#interrupt-cells"))? as usize;
    let cells = prop.as_u32_list().ok_or_else(bad)?;
    let mut rest = cells.as_slice();
    while !rest.is_empty() {
        let Some([phandle, tail @ ..]) = rest.get(child_ac.saturating_add(child_ic)..) else {
            return Err(bad());
        };
        let parent = index.get(*phandle, path, prop)?;
        let parent_ac = parent.prop_u32("#address-cells").unwrap_or(0) as usize;
        let parent_ic = parent.prop_u32("#interrupt-cells").ok_or_else(bad)? as usize;
        rest = tail
            .get(parent_ac.saturating_add(parent_ic)..)
            .ok_or_else(bad)?;
    }
    Ok(())
}
