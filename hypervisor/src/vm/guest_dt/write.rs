//! Serialising the assembled guest tree to a DTB with vm-fdt's
//! [`FdtWriter`], which also refuses invalid names and duplicate phandles.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use vm_fdt::FdtWriter;

use super::GuestDtError;
use super::refs::malformed;
use crate::fdt::Node;

/// The DTB of the tree below `root`.
pub fn to_dtb(root: &Node) -> Result<Vec<u8>, GuestDtError> {
    let mut writer = FdtWriter::new().map_err(|error| writer_error("/", error))?;
    write_node(&mut writer, root, "")?;
    writer.finish().map_err(|error| writer_error("/", error))
}

fn writer_error(path: &str, error: vm_fdt::Error) -> GuestDtError {
    GuestDtError::Writer {
        path: String::from(path),
        error,
    }
}

/// Writes `node` (at `path`, the root being `""`) and its subtree; the
/// depth is bounded by the host parser's limit plus one.
fn write_node(writer: &mut FdtWriter, node: &Node, path: &str) -> Result<(), GuestDtError> {
    let shown = if path.is_empty() { "/" } else { path };
    let err = |error| writer_error(shown, error);
    let handle = writer.begin_node(&node.name).map_err(err)?;
    for prop in &node.props {
        if prop.name == "phandle" {
            // Through the writer's phandle call, which refuses duplicates.
            let phandle = prop.as_u32().ok_or_else(|| malformed(shown, "phandle"))?;
            writer.property_phandle(phandle).map_err(err)?;
        } else {
            writer.property(&prop.name, &prop.value).map_err(err)?;
        }
    }
    for child in &node.children {
        write_node(writer, child, &format!("{path}/{}", child.name))?;
    }
    writer.end_node(handle).map_err(err)
}
