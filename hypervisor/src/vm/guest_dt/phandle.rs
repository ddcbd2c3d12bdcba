//! Phandles for generated nodes: host phandles are kept as they are (so
//! copied references stay valid), and nodes without a host counterpart get
//! fresh values above the largest host phandle.

use super::GuestDtError;
use crate::fdt::Tree;

/// Hands out phandles that no host node uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhandleAllocator {
    next: u32,
}

impl PhandleAllocator {
    /// An allocator starting above every `phandle` and `linux,phandle` of
    /// `tree`.
    pub fn new(tree: &Tree) -> Self {
        let max = tree
            .nodes()
            .iter()
            .flat_map(|n| [n.prop_u32("phandle"), n.prop_u32("linux,phandle")])
            .flatten()
            .filter(|&p| p != u32::MAX)
            .max()
            .unwrap_or(0);
        Self {
            next: max.saturating_add(1),
        }
    }

    /// The next free phandle; [`GuestDtError::PhandlesExhausted`] once
    /// 0xfffffffe has been handed out (0xffffffff is invalid).
    pub fn allocate(&mut self) -> Result<u32, GuestDtError> {
        let phandle = self.next;
        if phandle == u32::MAX {
            return Err(GuestDtError::PhandlesExhausted);
        }
        self.next += 1;
        Ok(phandle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fdt::{Node, Prop};

    fn tree_with(phandles: &[u32]) -> Tree {
        let mut root = Node::new("");
        for (i, p) in phandles.iter().enumerate() {
            let mut n = Node::new(&alloc::format!("n{i}"));
            n.props.push(Prop::new("phandle", &p.to_be_bytes()));
            root.children.push(n);
        }
        Tree {
            root,
            ..Tree::default()
        }
    }

    #[test]
    fn above_the_host() {
        let mut a = PhandleAllocator::new(&tree_with(&[3, 0x8005, 7]));
        assert_eq!(a.allocate(), Ok(0x8006));
        assert_eq!(a.allocate(), Ok(0x8007));
        assert_eq!(PhandleAllocator::new(&tree_with(&[])).allocate(), Ok(1));
        let mut full = PhandleAllocator::new(&tree_with(&[0xffff_fffe]));
        assert_eq!(full.allocate(), Err(GuestDtError::PhandlesExhausted));
        let mut last = PhandleAllocator::new(&tree_with(&[0xffff_fffd, u32::MAX]));
        assert_eq!(last.allocate(), Ok(0xffff_fffe));
        assert_eq!(last.allocate(), Err(GuestDtError::PhandlesExhausted));
    }
}
