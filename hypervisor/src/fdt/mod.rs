//! Host device tree: validation and parsing of the flattened device tree
//! (DTB) the boot loader hands over, in three layers.
//!
//! - [`early`]: allocation-free queries for the boot path (RAM, console),
//!   usable before the heap and MMU exist.
//! - [`Tree`]: the whole blob parsed once into owned [`Node`]s and
//!   [`Prop`]s, with path, alias and phandle lookups and `reg` decoding;
//!   general enough to copy host nodes into guest trees.
//! - [`HostDt`]: the typed description of the machine (memory, CPUs, PSCI,
//!   GIC, timer, console, SMMUs, PCIe hosts) with warnings for malformed
//!   optional nodes.
//!
//! The blob is external input. Its header is checked by hand
//! ([`header`]); tokens are read with fdt-rs through a bounds-checked
//! cursor; every property access checks its length. Nothing here panics on
//! malformed input.

pub mod cells;
mod cursor;
pub mod early;
mod error;
pub mod header;
pub mod host;
mod node;
mod noderef;
pub mod path;
pub mod translate;
mod tree;
mod walk;

#[cfg(test)]
mod tests;

pub use error::DtError;
pub use header::MAX_DTB_SIZE;
pub use host::*;
pub use node::{Node, Prop, PropError};
pub use noderef::NodeRef;
pub use tree::Tree;

pub use crate::mm::layout::Region;

/// Deepest node nesting accepted, counting the root as 1.
pub const MAX_DEPTH: usize = 32;
