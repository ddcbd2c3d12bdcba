//! The owned device tree: the whole blob parsed once into [`Node`]s, plus
//! the `/memreserve/` entries, with lookups by path, alias, phandle and
//! `compatible`. General on purpose: host nodes are later copied from it
//! into guest device trees.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::cursor::{Cursor, Token};
use super::header::{Header, MemReserveIter};
use super::node::{Node, Prop};
use super::noderef::NodeRef;
use super::path::{PathRef, components};
use super::{DtError, MAX_DEPTH};
use crate::mm::layout::Region;

/// A parsed device tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    /// The root node (name `""`).
    pub root: Node,
    /// The `/memreserve/` entries of the reservation block, in order.
    pub memreserve: Vec<Region>,
    /// The header's `boot_cpuid_phys`.
    pub boot_cpuid_phys: u32,
}

impl Tree {
    /// Parses a whole blob. `dtb` may be longer than the blob's
    /// `totalsize`; if it is not 4-byte aligned it is copied first.
    pub fn parse(dtb: &[u8]) -> Result<Tree, DtError> {
        if dtb.as_ptr().align_offset(4) == 0 {
            return Self::parse_aligned(dtb);
        }
        let total = Header::read(dtb)?.total_size;
        let source = dtb.get(..total).ok_or(DtError::Truncated {
            total,
            available: dtb.len(),
        })?;
        let mut copy = vec![0u8; total + 3];
        let skip = copy.as_ptr().align_offset(4);
        let aligned = copy.get_mut(skip..skip + total).ok_or(DtError::Unaligned)?;
        aligned.copy_from_slice(source);
        Self::parse_aligned(aligned)
    }

    fn parse_aligned(dtb: &[u8]) -> Result<Tree, DtError> {
        let (mut cursor, header) = Cursor::new(dtb)?;
        let memreserve = MemReserveIter::new(dtb, &header).collect::<Result<Vec<_>, _>>()?;
        let mut open: Vec<Node> = Vec::new();
        let mut root = None;
        loop {
            let bad = DtError::BadStructure {
                offset: cursor.offset(),
            };
            let token = cursor.next_token()?;
            if root.is_some() {
                // Only FDT_END may follow the root node.
                if token.is_none() {
                    break;
                }
                return Err(bad);
            }
            match token.ok_or(bad)? {
                Token::Begin(name) => {
                    if open.len() >= MAX_DEPTH {
                        return Err(DtError::TooDeep);
                    }
                    open.push(Node::new(name));
                }
                Token::Prop { name, value } => open
                    .last_mut()
                    .ok_or(bad)?
                    .props
                    .push(Prop::new(name, value)),
                Token::End => {
                    let node = open.pop().ok_or(bad)?;
                    match open.last_mut() {
                        Some(parent) => parent.children.push(node),
                        None => root = Some(node),
                    }
                }
            }
        }
        let root = root.ok_or(DtError::BadStructure {
            offset: cursor.offset(),
        })?;
        Ok(Tree {
            root,
            memreserve,
            boot_cpuid_phys: header.boot_cpuid_phys,
        })
    }

    /// The root node.
    pub fn root(&self) -> NodeRef<'_> {
        NodeRef::root(&self.root)
    }

    /// The node at the absolute `path` (`/`, `/cpus/cpu@0`; a component
    /// without unit address matches `name@unit`).
    pub fn find(&self, path: &str) -> Option<NodeRef<'_>> {
        if !path.starts_with('/') {
            return None;
        }
        self.descend(self.root(), path)
    }

    /// Follows the components of `path` down from `from`.
    fn descend<'t>(&'t self, from: NodeRef<'t>, path: &str) -> Option<NodeRef<'t>> {
        let mut at = from;
        for component in components(path) {
            let child = at.node().child(component)?;
            at = at.child_ref(child);
        }
        Some(at)
    }

    /// The path an alias in `/aliases` stands for.
    pub fn alias(&self, name: &str) -> Option<&str> {
        self.root.child("aliases")?.prop_str(name)
    }

    /// The node named by a `stdout-path`-style reference: an absolute path
    /// or an alias (optionally followed by `/sub/path`), with any
    /// `:options` suffix ignored.
    pub fn resolve(&self, reference: &str) -> Option<NodeRef<'_>> {
        match PathRef::parse(reference)? {
            PathRef::Absolute(path) => self.find(path),
            PathRef::Alias { alias, rest } => {
                let base = self.find(self.alias(alias)?)?;
                self.descend(base, rest)
            }
        }
    }

    /// The node whose `phandle` is `phandle` (0 and 0xffffffff never match).
    pub fn by_phandle(&self, phandle: u32) -> Option<NodeRef<'_>> {
        if phandle == 0 || phandle == u32::MAX {
            return None;
        }
        self.nodes()
            .into_iter()
            .find(|n| n.phandle() == Some(phandle))
    }

    /// Every node, depth first in blob order, root first.
    pub fn nodes(&self) -> Vec<NodeRef<'_>> {
        let mut out = Vec::new();
        let mut pending = vec![self.root()];
        while let Some(node) = pending.pop() {
            pending.extend(node.children().collect::<Vec<_>>().into_iter().rev());
            out.push(node);
        }
        out
    }

    /// Every node whose `compatible` lists `compatible`, in blob order
    /// (enabled or not).
    pub fn compatible_nodes(&self, compatible: &str) -> Vec<NodeRef<'_>> {
        self.nodes()
            .into_iter()
            .filter(|n| n.is_compatible(compatible))
            .collect()
    }

    /// The absolute path of `node`, which must be a node of this tree
    /// (compared by address).
    pub fn path_of(&self, node: &Node) -> Option<String> {
        self.nodes()
            .into_iter()
            .find(|n| core::ptr::eq(n.node(), node))
            .map(|n| n.path())
    }
}
