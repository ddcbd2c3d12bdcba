//! Phandle references of copied nodes. On the host side, the nodes a
//! passed-through device references through [`FOLLOWED_REFS`] (its clocks,
//! resets, power domains) are found so that they can be copied too; on the
//! guest side, every reference of the finished tree is checked to resolve.

use alloc::string::String;
use alloc::vec::Vec;

use super::GuestDtError;
use super::policy::FOLLOWED_REFS;
use crate::fdt::{NodeRef, Prop, Tree};

/// The phandles of a `<phandle args...>*` list such as `clocks`:
/// `arg_cells(phandle)` gives the number of argument cells after each
/// non-zero phandle; a zero phandle is an empty entry without arguments.
pub fn phandle_list(
    prop: &Prop,
    path: &str,
    mut arg_cells: impl FnMut(u32) -> Result<u32, GuestDtError>,
) -> Result<Vec<u32>, GuestDtError> {
    let malformed = || malformed(path, &prop.name);
    let cells = prop.as_u32_list().ok_or_else(malformed)?;
    let mut out = Vec::new();
    let mut rest = cells.as_slice();
    while let [phandle, tail @ ..] = rest {
        if *phandle == 0 {
            rest = tail;
            continue;
        }
        let args = arg_cells(*phandle)? as usize;
        rest = tail.get(args..).ok_or_else(malformed)?;
        out.push(*phandle);
    }
    Ok(out)
}

/// [`GuestDtError::Malformed`] for `prop` of the node at `path`.
pub fn malformed(path: &str, prop: &str) -> GuestDtError {
    GuestDtError::Malformed {
        path: String::from(path),
        prop: String::from(prop),
    }
}

/// Every host node referenced through [`FOLLOWED_REFS`] by `node` or a
/// node below it. A phandle no host node has, or a target without the
/// matching `#...-cells`, is an error naming the property.
pub fn followed<'t>(tree: &'t Tree, node: &NodeRef<'t>) -> Result<Vec<NodeRef<'t>>, GuestDtError> {
    let mut out = Vec::new();
    let path = node.path();
    for &(name, cells_name) in FOLLOWED_REFS {
        let Some(prop) = node.prop(name) else {
            continue;
        };
        phandle_list(prop, &path, |phandle| {
            let target = tree
                .by_phandle(phandle)
                .ok_or_else(|| GuestDtError::BadReference {
                    path: path.clone(),
                    prop: String::from(name),
                    phandle,
                })?;
            let args = target
                .prop_u32(cells_name)
                .ok_or_else(|| malformed(&target.path(), cells_name))?;
            out.push(target);
            Ok(args)
        })?;
    }
    for child in node.children() {
        out.extend(followed(tree, &child)?);
    }
    Ok(out)
}
