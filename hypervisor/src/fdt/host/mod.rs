//! The typed description of the host machine, [`HostDt`], built from the
//! parsed [`Tree`]: memory, CPUs, PSCI, console, GIC, timer, SMMUs and
//! PCIe hosts.
//!
//! Only nodes with `status` absent or `"okay"` count. A missing or
//! malformed *required* part (the blob itself, memory, CPUs) is a
//! [`DtError`]; a malformed *optional* node is skipped and described in
//! [`HostDt::warnings`] (one line per problem, starting with the node path)
//! for the boot code to print.

mod chosen;
mod cpu;
mod gic;
pub mod irq;
mod memory;
mod pcie;
mod smmu;
mod timer;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Display;

pub use chosen::{Chosen, Uart};
pub use cpu::{Conduit, Cpu, MPIDR_AFFINITY_MASK, Psci};
pub use gic::{Gic, GicIts};
pub use irq::{GIC_COMPATIBLES, Interrupt, IrqError, IrqKind, MAX_PPI, MAX_SPI};
pub use pcie::{
    IommuMapEntry, MsiMapEntry, OtherPcieHost, PciRange, PciSpace, PcieError, PcieHost,
};
pub use smmu::{SMMU_MIN_SIZE, Smmu};
pub use timer::Timer;

use super::DtError;
use super::noderef::NodeRef;
use super::tree::Tree;
use crate::mm::layout::Region;

/// The host machine as its device tree describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostDt {
    /// Root `model`.
    pub model: Option<String>,
    /// Root `compatible` strings.
    pub compatible: Vec<String>,
    /// RAM regions, in tree order (never empty).
    pub memory: Vec<Region>,
    /// `/memreserve/` entries, then `/reserved-memory` children with `reg`.
    pub reserved: Vec<Region>,
    /// Usable CPUs, in tree order (never empty).
    pub cpus: Vec<Cpu>,
    /// The PSCI node, if usable.
    pub psci: Option<Psci>,
    /// The console UART.
    pub stdout: Option<Uart>,
    /// The interrupt controller.
    pub gic: Option<Gic>,
    /// The generic timer.
    pub timer: Option<Timer>,
    /// SMMUv3 instances.
    pub smmus: Vec<Smmu>,
    /// Generic ECAM PCIe hosts.
    pub pcie: Vec<PcieHost>,
    /// Other PCIe host bridges (not driven by the hypervisor).
    pub pcie_other: Vec<OtherPcieHost>,
    /// `/chosen`.
    pub chosen: Chosen,
    /// One line per skipped or partly ignored node, naming its path and the
    /// problem.
    pub warnings: Vec<String>,
    tree: Tree,
}

impl HostDt {
    /// Parses the blob and extracts the host description. Errors: the blob
    /// is malformed, or it describes no usable memory or CPU.
    pub fn parse(dtb: &[u8]) -> Result<HostDt, DtError> {
        Self::from_tree(Tree::parse(dtb)?)
    }

    /// Extracts the host description from an already parsed tree.
    pub fn from_tree(tree: Tree) -> Result<HostDt, DtError> {
        let mut warnings = Vec::new();
        let w = &mut warnings;
        let memory = memory::memory(&tree, w);
        if memory.is_empty() {
            return Err(DtError::NoMemory);
        }
        let cpus = cpu::cpus(&tree, w)?;
        let reserved = memory::reserved(&tree, w);
        let chosen = chosen::chosen(&tree, w);
        let root = &tree.root;
        Ok(HostDt {
            model: root.prop_str("model").map(ToString::to_string),
            compatible: to_strings(root.compatible()),
            memory,
            reserved,
            cpus,
            psci: cpu::psci(&tree, w),
            stdout: chosen::stdout(&tree, &chosen, w),
            gic: gic::gic(&tree, w),
            timer: timer::timer(&tree, w),
            smmus: smmu::smmus(&tree, w),
            pcie: pcie::pcie_hosts(&tree, w),
            pcie_other: pcie::other_pcie_hosts(&tree, w),
            chosen,
            warnings,
            tree,
        })
    }

    /// The whole parsed tree (for copying host nodes into guest trees).
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// The SMMU whose phandle is `phandle` (as found in `iommu-map`).
    pub fn smmu_by_phandle(&self, phandle: u32) -> Option<&Smmu> {
        self.smmus.iter().find(|s| s.phandle == Some(phandle))
    }
}

/// Owned copies of borrowed strings.
fn to_strings(list: Vec<&str>) -> Vec<String> {
    list.into_iter().map(ToString::to_string).collect()
}

/// Records a warning about `node`: `"<path>: <message>"`.
fn warn(warnings: &mut Vec<String>, node: &NodeRef<'_>, message: impl Display) {
    warnings.push(alloc::format!("{}: {}", node.path(), message));
}
