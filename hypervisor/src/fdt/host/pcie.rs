//! Generic ECAM PCIe host bridges (`compatible = "pci-host-ecam-generic"`):
//! config space, bus range, address windows, and the RID maps that say
//! which IOMMU and MSI controller serve each requester ID.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::warn;
use crate::fdt::cells::{cell, entries, read_cells};
use crate::fdt::noderef::NodeRef;
use crate::fdt::tree::Tree;
use crate::mm::layout::Region;

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

fn host(tree: &Tree, node: &NodeRef<'_>, warnings: &mut Vec<String>) -> Result<PcieHost, String> {
    let ecam = node
        .reg_cpu()
        .map_err(|e| format!("{e}"))?
        .first()
        .copied()
        .ok_or("empty `reg`")?;
    let bus_range = match node.prop("bus-range") {
        None => (0, 255),
        Some(p) => match p.as_u32_list().as_deref() {
            Some(&[start, end]) if start <= end && end <= 255 => (start, end),
            _ => return Err("malformed `bus-range`".into()),
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
        Some(_) => return Err("malformed `msi-parent`".into()),
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
fn optional_u32(node: &NodeRef<'_>, name: &str) -> Result<Option<u32>, String> {
    match node.prop(name) {
        None => Ok(None),
        Some(p) => p
            .as_u32()
            .map(Some)
            .ok_or_else(|| format!("malformed `{name}`")),
    }
}

/// Decodes an `iommu-map`/`msi-map`: entries of 4 cells `<id-base phandle
/// out-base length>` (the layout Linux's `of_map_id` reads). Each length
/// must be non-zero, the ID range must not wrap, and the phandle must name
/// a node.
fn id_map(tree: &Tree, node: &NodeRef<'_>, name: &str) -> Result<Vec<[u32; 4]>, String> {
    let Some(prop) = node.prop(name) else {
        return Ok(Vec::new());
    };
    let cells = prop
        .as_u32_list()
        .filter(|c| c.len().is_multiple_of(4) && !c.is_empty())
        .ok_or_else(|| {
            format!(
                "`{name}` is truncated ({} bytes, not a whole number of 4-cell entries)",
                prop.value.len()
            )
        })?;
    let mut out = Vec::new();
    for (i, entry) in cells.chunks_exact(4).enumerate() {
        let &[base, phandle, out_base, length] = entry else {
            return Err(format!("`{name}` entry {i} is truncated"));
        };
        if length == 0
            || (base as u64 + length as u64) > 1 << 32
            || (out_base as u64 + length as u64) > 1 << 32
        {
            return Err(format!("`{name}` entry {i} has a bad length {length:#x}"));
        }
        if tree.by_phandle(phandle).is_none() {
            return Err(format!(
                "`{name}` entry {i} names phandle {phandle:#x}, which is no node"
            ));
        }
        out.push([base, phandle, out_base, length]);
    }
    Ok(out)
}

/// Decodes `ranges`: entries of 3 PCI address cells, the parent's address
/// cells and the bridge's size cells; CPU addresses are translated.
fn ranges(node: &NodeRef<'_>) -> Result<Vec<PciRange>, String> {
    let Some(prop) = node.prop("ranges") else {
        return Ok(Vec::new());
    };
    let child_ac = node
        .child_address_cells()
        .filter(|&n| n == 3)
        .ok_or("#address-cells is not 3")?;
    let sc = node
        .child_size_cells()
        .filter(|&n| n == 1 || n == 2)
        .ok_or("#size-cells is not 1 or 2")?;
    let pac = node.address_cells().map_err(|e| format!("{e}"))?;
    let bad = || format!("malformed `ranges` ({} bytes)", prop.value.len());
    let mut out = Vec::new();
    for entry in entries(&prop.value, child_ac + pac + sc).ok_or_else(bad)? {
        let hi = cell(entry, 0).ok_or_else(bad)?;
        let pci_addr = read_cells(entry, 1, 2).ok_or_else(bad)?;
        let bus_addr = read_cells(entry, 3, pac).ok_or_else(bad)?;
        let size = read_cells(entry, 3 + pac as usize, sc).ok_or_else(bad)?;
        let cpu_addr = node
            .translate(bus_addr)
            .map_err(|e| format!("`ranges`: {e}"))?;
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
