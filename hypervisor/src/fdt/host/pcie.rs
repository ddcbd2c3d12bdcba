//! Generic ECAM PCIe host bridges (`compatible = "pci-host-ecam-generic"`):
//! config space, bus range, address windows, and the RID maps that say
//! which IOMMU and MSI controller serve each requester ID. A host whose
//! properties cannot be decoded ([`PcieError`]) is skipped with a warning.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::warn;
use crate::fdt::cells::{cell, entries, read_cells};
use crate::fdt::node::PropError;
use crate::fdt::noderef::NodeRef;
use crate::fdt::tree::Tree;
use crate::mm::layout::Region;

/// Why a host bridge's properties could not be decoded. The message names
/// the property, not the node: the warning it ends up in starts with the
/// node's path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PcieError {
    /// `reg` cannot be read or translated.
    Reg(PropError),
    /// `reg` holds no region.
    EmptyReg,
    /// `bus-range` is not two cells `<start end>` with
    /// `start <= end <= 255`.
    BadBusRange,
    /// A one-cell property (`iommu-map-mask`) is not one cell.
    MalformedCell {
        /// The property.
        prop: &'static str,
    },
    /// `msi-parent` is empty or not a whole number of cells.
    BadMsiParent,
    /// An `iommu-map`/`msi-map` is empty or not a whole number of 4-cell
    /// entries.
    MapNotWhole {
        /// The property.
        prop: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// An `iommu-map`/`msi-map` entry is shorter than 4 cells.
    MapEntryTruncated {
        /// The property.
        prop: &'static str,
        /// Index of the entry.
        entry: usize,
    },
    /// An `iommu-map`/`msi-map` entry has length 0, or its input or output
    /// ID range passes 2^32.
    MapEntryBadLength {
        /// The property.
        prop: &'static str,
        /// Index of the entry.
        entry: usize,
        /// The entry's length.
        length: u32,
    },
    /// An `iommu-map`/`msi-map` entry names a phandle that is no node.
    MapEntryNoNode {
        /// The property.
        prop: &'static str,
        /// Index of the entry.
        entry: usize,
        /// The phandle.
        phandle: u32,
    },
    /// The bridge's `#address-cells` is not 3 (PCI addresses).
    AddressCells,
    /// The bridge's `#size-cells` is not 1 or 2.
    SizeCells,
    /// The parent's `#address-cells` cannot be read.
    ParentCells(PropError),
    /// `ranges` is not a whole number of entries.
    MalformedRanges {
        /// Its length in bytes.
        len: usize,
    },
    /// A `ranges` entry's CPU address cannot be translated.
    RangesUntranslatable(PropError),
}

impl fmt::Display for PcieError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Reg(e) | Self::ParentCells(e) => write!(f, "{e}"),
            Self::EmptyReg => f.write_str("empty `reg`"),
            Self::BadBusRange => f.write_str("malformed `bus-range`"),
            Self::MalformedCell { prop } => write!(f, "malformed `{prop}`"),
            Self::BadMsiParent => f.write_str("malformed `msi-parent`"),
            Self::MapNotWhole { prop, len } => write!(
                f,
                "`{prop}` is truncated ({len} bytes, not a whole number of 4-cell entries)"
            ),
            Self::MapEntryTruncated { prop, entry } => {
                write!(f, "`{prop}` entry {entry} is truncated")
            }
            Self::MapEntryBadLength {
                prop,
                entry,
                length,
            } => write!(f, "`{prop}` entry {entry} has a bad length {length:#x}"),
            Self::MapEntryNoNode {
                prop,
                entry,
                phandle,
            } => write!(
                f,
                "`{prop}` entry {entry} names phandle {phandle:#x}, which is no node"
            ),
            Self::AddressCells => f.write_str("#address-cells is not 3"),
            Self::SizeCells => f.write_str("#size-cells is not 1 or 2"),
            Self::MalformedRanges { len } => write!(f, "malformed `ranges` ({len} bytes)"),
            Self::RangesUntranslatable(e) => write!(f, "`ranges`: {e}"),
        }
    }
}

impl core::error::Error for PcieError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Reg(e) | Self::ParentCells(e) | Self::RangesUntranslatable(e) => Some(e),
            _ => None,
        }
    }
}

/// The address space of a `ranges` entry (phys.hi bits 25:24).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PciSpace {
    /// Configuration space (0b00).
    Config,
    /// I/O space (0b01).
    Io,
    /// 32-bit memory space (0b10).
    Mem32,
    /// 64-bit memory space (0b11).
    Mem64,
}

/// One window of `ranges`: PCI addresses mapped into the CPU's space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciRange {
    /// Which PCI address space.
    pub space: PciSpace,
    /// Prefetchable memory (phys.hi bit 30).
    pub prefetchable: bool,
    /// First PCI bus address.
    pub pci_addr: u64,
    /// First CPU physical address.
    pub cpu_addr: u64,
    /// Window size in bytes.
    pub size: u64,
}

/// One `iommu-map` entry: RIDs `[rid_base, rid_base + length)` reach the
/// IOMMU `iommu_phandle` as stream IDs starting at `iommu_base`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IommuMapEntry {
    /// First requester ID (after `iommu-map-mask`).
    pub rid_base: u32,
    /// phandle of the IOMMU.
    pub iommu_phandle: u32,
    /// Stream ID of `rid_base`.
    pub iommu_base: u32,
    /// Number of IDs.
    pub length: u32,
}

/// One `msi-map` entry: RIDs `[rid_base, rid_base + length)` reach the MSI
/// controller `msi_phandle` as device IDs starting at `msi_base`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiMapEntry {
    /// First requester ID.
    pub rid_base: u32,
    /// phandle of the MSI controller (e.g. a GIC ITS).
    pub msi_phandle: u32,
    /// Device ID of `rid_base`.
    pub msi_base: u32,
    /// Number of IDs.
    pub length: u32,
}

/// One generic ECAM host bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcieHost {
    /// Absolute node path.
    pub path: String,
    /// The ECAM configuration window (`reg[0]`, CPU address).
    pub ecam: Region,
    /// First and last bus number (`bus-range`, default 0..=255).
    pub bus_range: (u32, u32),
    /// The `ranges` windows.
    pub ranges: Vec<PciRange>,
    /// `iommu-map` entries.
    pub iommu_map: Vec<IommuMapEntry>,
    /// `iommu-map-mask`, applied to a RID before the lookup.
    pub iommu_map_mask: Option<u32>,
    /// `msi-parent` phandle.
    pub msi_parent: Option<u32>,
    /// `msi-map` entries.
    pub msi_map: Vec<MsiMapEntry>,
    /// DMA-coherent devices (`dma-coherent`, inherited).
    pub dma_coherent: bool,
}

impl PcieHost {
    /// The IOMMU phandle and stream ID for requester ID `rid`, by
    /// `iommu-map` (after `iommu-map-mask`); `None` when no entry covers it.
    pub fn iommu_for_rid(&self, rid: u32) -> Option<(u32, u32)> {
        let rid = rid & self.iommu_map_mask.unwrap_or(u32::MAX);
        self.iommu_map.iter().find_map(|e| {
            let offset = rid.checked_sub(e.rid_base)?;
            (offset < e.length).then(|| (e.iommu_phandle, e.iommu_base.wrapping_add(offset)))
        })
    }
}

/// Every enabled generic ECAM host; a host with any malformed property
/// that matters (reg, bus-range, ranges, iommu-map, msi-map, map masks) is
/// skipped with a warning naming the problem.
pub fn pcie_hosts(tree: &Tree, warnings: &mut Vec<String>) -> Vec<PcieHost> {
    let mut out = Vec::new();
    for node in tree.compatible_nodes("pci-host-ecam-generic") {
        if !node.is_available() {
            continue;
        }
        match host(tree, &node, warnings) {
            Ok(host) => out.push(host),
            Err(e) => warn(warnings, &node, format!("{e}; PCIe host ignored")),
        }
    }
    out
}

/// A PCIe host bridge the hypervisor does not drive (not generic ECAM: a
/// DesignWare or vendor controller): listed in the hardware summary with
/// the RID map that names its IOMMU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtherPcieHost {
    /// Absolute node path.
    pub path: String,
    /// Its first `compatible` string.
    pub compatible: String,
    /// `iommu-map` entries (empty: DMA not translated).
    pub iommu_map: Vec<IommuMapEntry>,
}

/// Every enabled PCI host bridge (`device_type = "pci"` below no other PCI
/// node) that is not generic ECAM; one whose `iommu-map` is malformed is
/// listed without it, with a warning.
pub fn other_pcie_hosts(tree: &Tree, warnings: &mut Vec<String>) -> Vec<OtherPcieHost> {
    let is_pci = |n: &NodeRef<'_>| n.node().prop_str("device_type") == Some("pci");
    let mut out = Vec::new();
    for node in tree.nodes() {
        if !node.is_available()
            || !is_pci(&node)
            || node.is_compatible("pci-host-ecam-generic")
            || node
                .ancestors()
                .iter()
                .any(|a| a.prop_str("device_type") == Some("pci"))
        {
            continue;
        }
        let iommu_map = match id_map(tree, &node, "iommu-map") {
            Ok(map) => map
                .into_iter()
                .map(
                    |[rid_base, iommu_phandle, iommu_base, length]| IommuMapEntry {
                        rid_base,
                        iommu_phandle,
                        iommu_base,
                        length,
                    },
                )
                .collect(),
            Err(e) => {
                warn(warnings, &node, format!("{e}"));
                Vec::new()
            }
        };
        out.push(OtherPcieHost {
            path: node.path(),
            compatible: node.compatible().first().copied().unwrap_or("").into(),
            iommu_map,
        });
    }
    out
}

fn host(
    tree: &Tree,
    node: &NodeRef<'_>,
    warnings: &mut Vec<String>,
) -> Result<PcieHost, PcieError> {
    let ecam = node
        .reg_cpu()
        .map_err(PcieError::Reg)?
        .first()
        .copied()
        .ok_or(PcieError::EmptyReg)?;
    let bus_range = match node.prop("bus-range") {
        None => (0, 255),
        Some(p) => match p.as_u32_list().as_deref() {
            Some(&[start, end]) if start <= end && end <= 255 => (start, end),
            _ => return Err(PcieError::BadBusRange),
        },
    };
    let buses = (bus_range.1 - bus_range.0 + 1) as u64;
    if ecam.size < buses << 20 {
        warn(
            warnings,
            node,
            format!(
                "ECAM {ecam} too small for buses {}..={}",
                bus_range.0, bus_range.1
            ),
        );
    }
    let iommu_map_mask = optional_u32(node, "iommu-map-mask")?;
    let msi_parent = match node.prop("msi-parent") {
        None => None,
        Some(p) if p.value.len().is_multiple_of(4) && !p.value.is_empty() => cell(&p.value, 0),
        Some(_) => return Err(PcieError::BadMsiParent),
    };
    let iommu_map = id_map(tree, node, "iommu-map")?
        .into_iter()
        .map(
            |[rid_base, iommu_phandle, iommu_base, length]| IommuMapEntry {
                rid_base,
                iommu_phandle,
                iommu_base,
                length,
            },
        )
        .collect();
    let msi_map = id_map(tree, node, "msi-map")?
        .into_iter()
        .map(|[rid_base, msi_phandle, msi_base, length]| MsiMapEntry {
            rid_base,
            msi_phandle,
            msi_base,
            length,
        })
        .collect();
    Ok(PcieHost {
        path: node.path(),
        ecam,
        bus_range,
        ranges: ranges(node)?,
        iommu_map,
        iommu_map_mask,
        msi_parent,
        msi_map,
        dma_coherent: node.dma_coherent(),
    })
}

/// A one-cell property that may be absent.
fn optional_u32(node: &NodeRef<'_>, name: &'static str) -> Result<Option<u32>, PcieError> {
    match node.prop(name) {
        None => Ok(None),
        Some(p) => p
            .as_u32()
            .map(Some)
            .ok_or(PcieError::MalformedCell { prop: name }),
    }
}

/// Decodes an `iommu-map`/`msi-map`: entries of 4 cells `<id-base phandle
/// out-base length>` (the layout Linux's `of_map_id` reads). Each length
/// must be non-zero, the ID range must not wrap, and the phandle must name
/// a node.
fn id_map(tree: &Tree, node: &NodeRef<'_>, name: &'static str) -> Result<Vec<[u32; 4]>, PcieError> {
    let Some(prop) = node.prop(name) else {
        return Ok(Vec::new());
    };
    let cells = prop
        .as_u32_list()
        .filter(|c| c.len().is_multiple_of(4) && !c.is_empty())
        .ok_or(PcieError::MapNotWhole {
            prop: name,
            len: prop.value.len(),
        })?;
    let mut out = Vec::new();
    for (entry, cells) in cells.chunks_exact(4).enumerate() {
        let &[base, phandle, out_base, length] = cells else {
            return Err(PcieError::MapEntryTruncated { prop: name, entry });
        };
        if length == 0
            || (base as u64 + length as u64) > 1 << 32
            || (out_base as u64 + length as u64) > 1 << 32
        {
            return Err(PcieError::MapEntryBadLength {
                prop: name,
                entry,
                length,
            });
        }
        if tree.by_phandle(phandle).is_none() {
            return Err(PcieError::MapEntryNoNode {
                prop: name,
                entry,
                phandle,
            });
        }
        out.push([base, phandle, out_base, length]);
    }
    Ok(out)
}

/// Decodes `ranges`: entries of 3 PCI address cells, the parent's address
/// cells and the bridge's size cells; CPU addresses are translated.
fn ranges(node: &NodeRef<'_>) -> Result<Vec<PciRange>, PcieError> {
    let Some(prop) = node.prop("ranges") else {
        return Ok(Vec::new());
    };
    let child_ac = node
        .child_address_cells()
        .filter(|&n| n == 3)
        .ok_or(PcieError::AddressCells)?;
    let sc = node
        .child_size_cells()
        .filter(|&n| n == 1 || n == 2)
        .ok_or(PcieError::SizeCells)?;
    let pac = node.address_cells().map_err(PcieError::ParentCells)?;
    let bad = PcieError::MalformedRanges {
        len: prop.value.len(),
    };
    let mut out = Vec::new();
    for entry in entries(&prop.value, child_ac + pac + sc).ok_or(bad)? {
        let hi = cell(entry, 0).ok_or(bad)?;
        let pci_addr = read_cells(entry, 1, 2).ok_or(bad)?;
        let bus_addr = read_cells(entry, 3, pac).ok_or(bad)?;
        let size = read_cells(entry, 3 + pac as usize, sc).ok_or(bad)?;
        let cpu_addr = node
            .translate(bus_addr)
            .map_err(PcieError::RangesUntranslatable)?;
        let space = match (hi >> 24) & 3 {
            0 => PciSpace::Config,
            1 => PciSpace::Io,
            2 => PciSpace::Mem32,
            _ => PciSpace::Mem64,
        };
        out.push(PciRange {
            space,
            prefetchable: hi & (1 << 30) != 0,
            pci_addr,
            cpu_addr,
            size,
        });
    }
    Ok(out)
}
