//! The guest tree under construction, as owned [`Node`]s: generated nodes
//! at the root, and host nodes copied whole at their host paths (their
//! ancestors reduced to the properties that shape addressing).

use alloc::string::String;
use alloc::vec::Vec;

use super::GuestDtError;
use super::policy::{DROPPED_PROPS, hypervisor_owned, is_unsupported_ref};
use crate::fdt::{Node, NodeRef, Prop};

/// Properties kept on the ancestors of a copied node (which are not
/// passed through themselves): what the children's `reg`, DMA and
/// interrupts depend on.
const SKELETON_PROPS: &[&str] = &[
    "compatible",
    "device_type",
    "status",
    "phandle",
    "linux,phandle",
    "#address-cells",
    "#size-cells",
    "ranges",
    "dma-ranges",
    "dma-coherent",
    "dma-noncoherent",
    "interrupt-parent",
];

/// True when `path` is `ancestor` or lies below it.
pub fn is_within(path: &str, ancestor: &str) -> bool {
    path.strip_prefix(ancestor)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || ancestor == "/")
}

/// A guest device tree being assembled.
#[derive(Clone, Debug, Default)]
pub struct GuestTree {
    root: Node,
    /// Names of the generated children of the root.
    generated: Vec<String>,
    /// Host paths copied whole (with their subtrees).
    copied: Vec<String>,
}

impl GuestTree {
    /// An empty guest tree whose root has `props`.
    pub fn new(props: Vec<Prop>) -> Self {
        let root = Node {
            name: String::new(),
            props,
            children: Vec::new(),
        };
        Self {
            root,
            ..Self::default()
        }
    }

    /// The tree so far.
    pub fn root(&self) -> &Node {
        &self.root
    }

    /// Adds a generated node below the root; its name must be free.
    pub fn add_generated(&mut self, node: Node) -> Result<(), GuestDtError> {
        if self.root.children.iter().any(|c| c.name == node.name) {
            return Err(GuestDtError::PathConflict(alloc::format!("/{}", node.name)));
        }
        self.generated.push(node.name.clone());
        self.root.children.push(node);
        Ok(())
    }

    /// True when the host node at `path` is in the guest, copied itself or
    /// as part of a copied ancestor.
    pub fn covers(&self, path: &str) -> bool {
        self.copied.iter().any(|c| is_within(path, c))
    }

    /// The node copied from the host path `path` (canonical, as
    /// [`NodeRef::path`] gives it), when the guest has it.
    pub fn copied_mut(&mut self, path: &str) -> Option<&mut Node> {
        if !self.covers(path) {
            return None;
        }
        let mut at = &mut self.root;
        for component in path.split('/').filter(|c| !c.is_empty()) {
            at = at.children.iter_mut().find(|c| c.name == component)?;
        }
        Some(at)
    }

    /// Copies the host node `node` with all its properties (but
    /// [`DROPPED_PROPS`]) and children to the same path. Returns `false`
    /// when it was already there. Refuses hypervisor-owned nodes and
    /// unsupported references anywhere in the subtree, and paths that
    /// clash with generated nodes.
    pub fn copy(&mut self, node: &NodeRef<'_>) -> Result<bool, GuestDtError> {
        let path = node.path();
        if self.covers(&path) {
            return Ok(false);
        }
        check_subtree(node)?;
        let mut at = &mut self.root;
        for (depth, ancestor) in node.ancestors().iter().enumerate().skip(1) {
            if depth == 1 && self.generated.contains(&ancestor.name) {
                return Err(GuestDtError::PathConflict(path));
            }
            at = child_entry(at, &ancestor.name, || skeleton(ancestor));
        }
        if node.ancestors().len() == 1 && self.generated.contains(&node.name) {
            return Err(GuestDtError::PathConflict(path));
        }
        // A skeleton left by an earlier copy below this node is a subset of
        // the full copy, so replacing it loses nothing.
        *child_entry(at, &node.name, Node::default) = filtered(node.node());
        self.copied.retain(|c| !is_within(c, &path));
        self.copied.push(path);
        Ok(true)
    }
}

/// The child of `parent` called `name`, created with `make` if missing.
fn child_entry<'a>(parent: &'a mut Node, name: &str, make: impl FnOnce() -> Node) -> &'a mut Node {
    let index = match parent.children.iter().position(|c| c.name == name) {
        Some(i) => i,
        None => {
            parent.children.push(make());
            parent.children.len() - 1
        }
    };
    // In range: found above, or just pushed.
    &mut parent.children[index]
}

/// `node` reduced to [`SKELETON_PROPS`], without children.
fn skeleton(node: &Node) -> Node {
    let props = node
        .props
        .iter()
        .filter(|p| SKELETON_PROPS.contains(&p.name.as_str()))
        .cloned();
    Node {
        name: node.name.clone(),
        props: props.collect(),
        children: Vec::new(),
    }
}

/// A deep copy of `node` without [`DROPPED_PROPS`] (depth is bounded by
/// the parser's [`crate::fdt::MAX_DEPTH`]).
fn filtered(node: &Node) -> Node {
    Node {
        name: node.name.clone(),
        props: node
            .props
            .iter()
            .filter(|p| !DROPPED_PROPS.contains(&p.name.as_str()))
            .cloned()
            .collect(),
        children: node.children.iter().map(filtered).collect(),
    }
}

/// Refuses a subtree holding a hypervisor-owned node or a reference the
/// generator cannot satisfy.
fn check_subtree(node: &NodeRef<'_>) -> Result<(), GuestDtError> {
    if let Some(what) = hypervisor_owned(node) {
        return Err(GuestDtError::HypervisorOwned {
            path: node.path(),
            what,
        });
    }
    if let Some(prop) = node.props.iter().find(|p| is_unsupported_ref(&p.name)) {
        return Err(GuestDtError::UnsupportedReference {
            path: node.path(),
            prop: prop.name.clone(),
        });
    }
    node.children().try_for_each(|child| check_subtree(&child))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within() {
        assert!(is_within("/a/b", "/a"));
        assert!(is_within("/a", "/a"));
        assert!(!is_within("/ab", "/a"));
        assert!(is_within("/a", "/"));
        assert!(!is_within("/a", "/a/b"));
    }
}
