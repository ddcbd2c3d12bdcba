//! Owned device-tree nodes and properties, with typed accessors that never
//! panic: a property of the wrong shape reads as `None`.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::cells;
use super::path::name_matches;

/// One property: a name and its raw (big-endian) value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prop {
    /// Property name.
    pub name: String,
    /// Raw value bytes as stored in the blob.
    pub value: Vec<u8>,
}

impl Prop {
    /// A property from a name and raw value.
    pub fn new(name: &str, value: &[u8]) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }

    /// The value as exactly one cell.
    pub fn as_u32(&self) -> Option<u32> {
        cells::single_u32(&self.value)
    }

    /// The value as a list of cells (`None` if the length is not a multiple
    /// of 4).
    pub fn as_u32_list(&self) -> Option<Vec<u32>> {
        if !self.value.len().is_multiple_of(4) {
            return None;
        }
        (0..self.value.len() / 4)
            .map(|i| cells::cell(&self.value, i))
            .collect()
    }

    /// The value as a 32- or 64-bit number (one or two cells), as used by
    /// `linux,initrd-start` and `clock-frequency`.
    pub fn as_u64(&self) -> Option<u64> {
        match self.value.len() {
            4 => cells::read_cells(&self.value, 0, 1),
            8 => cells::read_cells(&self.value, 0, 2),
            _ => None,
        }
    }

    /// A number of `n` cells starting at cell `index` (see
    /// [`cells::read_cells`]).
    pub fn read_cells(&self, index: usize, n: u32) -> Option<u64> {
        cells::read_cells(&self.value, index, n)
    }

    /// The value as one string (the first of a list).
    pub fn as_str(&self) -> Option<&str> {
        cells::first_str(&self.value)
    }

    /// The value as a NUL-separated string list.
    pub fn as_str_list(&self) -> Option<Vec<&str>> {
        Some(cells::str_list(&self.value)?.collect())
    }
}

/// Why a property could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropError {
    /// The property is absent.
    Missing {
        /// Property name.
        prop: &'static str,
    },
    /// The property's length does not fit its expected layout.
    BadLength {
        /// Property name.
        prop: &'static str,
        /// Length in bytes found.
        len: usize,
    },
    /// The `#address-cells`/`#size-cells` that apply are malformed or
    /// unsupported.
    BadCells,
    /// The address cannot be translated to a CPU address through the
    /// parents' `ranges`.
    Untranslatable {
        /// The bus address.
        addr: u64,
    },
}

impl fmt::Display for PropError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Missing { prop } => write!(f, "no `{prop}` property"),
            Self::BadLength { prop, len } => {
                write!(f, "`{prop}` has a malformed length ({len} bytes)")
            }
            Self::BadCells => write!(f, "malformed #address-cells/#size-cells in the parent"),
            Self::Untranslatable { addr } => {
                write!(
                    f,
                    "address {addr:#x} is not translatable through the parents' `ranges`"
                )
            }
        }
    }
}

impl core::error::Error for PropError {}

/// A node with its properties and children, in blob order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Node {
    /// Node name including the unit address (`uart@9000000`); empty for
    /// the root.
    pub name: String,
    /// Properties in blob order.
    pub props: Vec<Prop>,
    /// Child nodes in blob order.
    pub children: Vec<Node>,
}

impl Node {
    /// An empty node called `name`.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            props: Vec::new(),
            children: Vec::new(),
        }
    }

    /// The name without the unit address.
    pub fn base_name(&self) -> &str {
        self.name.split('@').next().unwrap_or("")
    }

    /// The unit address (after `@`), if any.
    pub fn unit_address(&self) -> Option<&str> {
        self.name.split_once('@').map(|(_, unit)| unit)
    }

    /// The first property called `name`.
    pub fn prop(&self, name: &str) -> Option<&Prop> {
        self.props.iter().find(|p| p.name == name)
    }

    /// True when the property exists (e.g. a boolean like `dma-coherent`).
    pub fn has_prop(&self, name: &str) -> bool {
        self.prop(name).is_some()
    }

    /// A one-cell property.
    pub fn prop_u32(&self, name: &str) -> Option<u32> {
        self.prop(name)?.as_u32()
    }

    /// A list-of-cells property.
    pub fn prop_u32_list(&self, name: &str) -> Option<Vec<u32>> {
        self.prop(name)?.as_u32_list()
    }

    /// A string property (its first string).
    pub fn prop_str(&self, name: &str) -> Option<&str> {
        self.prop(name)?.as_str()
    }

    /// A string-list property.
    pub fn prop_str_list(&self, name: &str) -> Option<Vec<&str>> {
        self.prop(name)?.as_str_list()
    }

    /// The node's phandle (`phandle` or legacy `linux,phandle`), excluding
    /// the invalid values 0 and 0xffffffff.
    pub fn phandle(&self) -> Option<u32> {
        self.prop_u32("phandle")
            .or_else(|| self.prop_u32("linux,phandle"))
            .filter(|&p| p != 0 && p != u32::MAX)
    }

    /// `status` is absent, `"okay"` or `"ok"`.
    pub fn is_available(&self) -> bool {
        cells::status_okay(self.prop("status").map(|p| p.value.as_slice()))
    }

    /// The `compatible` strings (empty if absent or malformed).
    pub fn compatible(&self) -> Vec<&str> {
        self.prop_str_list("compatible").unwrap_or_default()
    }

    /// True when `compatible` lists `wanted`.
    pub fn is_compatible(&self, wanted: &str) -> bool {
        self.prop("compatible")
            .is_some_and(|p| cells::list_contains(&p.value, wanted))
    }

    /// The first child matching the path component `component` (exact
    /// name, or name without unit address).
    pub fn child(&self, component: &str) -> Option<&Node> {
        self.children
            .iter()
            .find(|c| c.name == component)
            .or_else(|| {
                self.children
                    .iter()
                    .find(|c| name_matches(&c.name, component))
            })
    }

    /// `#address-cells` this node gives its children: the property, 2 if
    /// absent, `None` if malformed.
    pub fn child_address_cells(&self) -> Option<u32> {
        self.prop("#address-cells")
            .map_or(Some(2), |p| cells::cell_count(&p.value))
    }

    /// `#size-cells` this node gives its children: the property, 1 if
    /// absent, `None` if malformed.
    pub fn child_size_cells(&self) -> Option<u32> {
        self.prop("#size-cells")
            .map_or(Some(1), |p| cells::cell_count(&p.value))
    }
}
