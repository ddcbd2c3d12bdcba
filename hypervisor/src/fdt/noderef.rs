//! [`NodeRef`]: a node seen from the tree, i.e. together with its
//! ancestors. Everything that depends on the parents lives here: the full
//! path, the `#address-cells`/`#size-cells` that apply, `reg` decoding and
//! translation through `ranges`, inherited properties.

use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Deref;

use super::cells::reg_entries;
use super::node::{Node, Prop, PropError};
use super::translate::through_ranges;
use crate::mm::layout::Region;

/// A node and the chain of its ancestors (root first).
#[derive(Clone, Debug)]
pub struct NodeRef<'t> {
    ancestors: Vec<&'t Node>,
    node: &'t Node,
}

impl<'t> Deref for NodeRef<'t> {
    type Target = Node;

    fn deref(&self) -> &Node {
        self.node
    }
}

impl<'t> NodeRef<'t> {
    /// The root of a tree.
    pub fn root(root: &'t Node) -> Self {
        Self {
            ancestors: Vec::new(),
            node: root,
        }
    }

    /// The node itself, with the tree's lifetime.
    pub fn node(&self) -> &'t Node {
        self.node
    }

    /// The ancestors, root first (empty for the root).
    pub fn ancestors(&self) -> &[&'t Node] {
        &self.ancestors
    }

    /// The parent node, or `None` for the root.
    pub fn parent(&self) -> Option<NodeRef<'t>> {
        let (&node, rest) = self.ancestors.split_last()?;
        Some(NodeRef {
            ancestors: rest.to_vec(),
            node,
        })
    }

    /// A reference to `child`, which must be one of this node's children
    /// (or any node one level below for the purpose of path computation).
    pub fn child_ref(&self, child: &'t Node) -> NodeRef<'t> {
        let mut ancestors = Vec::with_capacity(self.ancestors.len() + 1);
        ancestors.extend_from_slice(&self.ancestors);
        ancestors.push(self.node);
        NodeRef {
            ancestors,
            node: child,
        }
    }

    /// The children, in blob order.
    pub fn children(&self) -> impl Iterator<Item = NodeRef<'t>> + '_ {
        self.node.children.iter().map(move |c| self.child_ref(c))
    }

    /// The absolute path (`/` for the root).
    pub fn path(&self) -> String {
        if self.ancestors.is_empty() {
            return "/".into();
        }
        let mut path = String::new();
        for node in self
            .ancestors
            .iter()
            .skip(1)
            .chain(core::iter::once(&self.node))
        {
            path.push('/');
            path.push_str(&node.name);
        }
        path
    }

    /// `#address-cells` that applies to this node's `reg` (the parent's;
    /// the default 2 for the root).
    pub fn address_cells(&self) -> Result<u32, PropError> {
        match self.ancestors.last() {
            Some(parent) => parent.child_address_cells().ok_or(PropError::BadCells),
            None => Ok(2),
        }
    }

    /// `#size-cells` that applies to this node's `reg` (the parent's; the
    /// default 1 for the root).
    pub fn size_cells(&self) -> Result<u32, PropError> {
        match self.ancestors.last() {
            Some(parent) => parent.child_size_cells().ok_or(PropError::BadCells),
            None => Ok(1),
        }
    }

    /// The `reg` entries as bus addresses (in the parent's address space).
    pub fn reg(&self) -> Result<Vec<Region>, PropError> {
        let reg = self
            .node
            .prop("reg")
            .ok_or(PropError::Missing { prop: "reg" })?;
        let (ac, sc) = (self.address_cells()?, self.size_cells()?);
        let entries = reg_entries(&reg.value, ac, sc).ok_or(PropError::BadLength {
            prop: "reg",
            len: reg.value.len(),
        })?;
        Ok(entries.collect())
    }

    /// Translates `addr`, a bus address in the parent's address space, to
    /// a CPU physical address through the `ranges` of every ancestor below
    /// the root. Fails when an ancestor bus has no `ranges` (its children
    /// are not memory-mapped) or no range covers the address.
    pub fn translate(&self, addr: u64) -> Result<u64, PropError> {
        let untranslatable = PropError::Untranslatable { addr };
        let mut out = addr;
        // ancestors[i] is a bus, ancestors[i - 1] its parent; the root is
        // the CPU address space.
        for i in (1..self.ancestors.len()).rev() {
            let bus = self.ancestors.get(i).ok_or(untranslatable)?;
            let parent = self.ancestors.get(i - 1).ok_or(untranslatable)?;
            let ranges = bus.prop("ranges").ok_or(untranslatable)?;
            let child_ac = bus.child_address_cells().ok_or(PropError::BadCells)?;
            let child_sc = bus.child_size_cells().ok_or(PropError::BadCells)?;
            let parent_ac = parent.child_address_cells().ok_or(PropError::BadCells)?;
            out = through_ranges(&ranges.value, child_ac, parent_ac, child_sc, out)
                .ok_or(untranslatable)?;
        }
        Ok(out)
    }

    /// The `reg` entries with bases translated to CPU physical addresses.
    pub fn reg_cpu(&self) -> Result<Vec<Region>, PropError> {
        self.reg()?
            .into_iter()
            .map(|r| Ok(Region::new(self.translate(r.base)?, r.size)))
            .collect()
    }

    /// The property `name` of this node or of its nearest ancestor that has
    /// it (for inherited properties such as `interrupt-parent`).
    pub fn inherited_prop(&self, name: &str) -> Option<&'t Prop> {
        core::iter::once(&self.node)
            .chain(self.ancestors.iter().rev())
            .find_map(|n| n.prop(name))
    }

    /// DMA coherence as Linux decides it: the nearest of this node and its
    /// ancestors with `dma-coherent` (true) or `dma-noncoherent` (false).
    pub fn dma_coherent(&self) -> bool {
        for node in core::iter::once(&self.node).chain(self.ancestors.iter().rev()) {
            if node.has_prop("dma-coherent") {
                return true;
            }
            if node.has_prop("dma-noncoherent") {
                return false;
            }
        }
        false
    }
}
