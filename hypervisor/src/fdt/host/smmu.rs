//! Arm SMMUv3 instances (`compatible = "arm,smmu-v3"`).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::irq::{Interrupt, interrupts};
use super::warn;
use crate::fdt::tree::Tree;

/// Smallest SMMUv3 register space: two 64 KiB pages.
pub const SMMU_MIN_SIZE: u64 = 0x2_0000;

/// One SMMUv3.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Smmu {
    /// Absolute node path.
    pub path: String,
    /// CPU physical base of the register space.
    pub base: u64,
    /// Size of the register space.
    pub size: u64,
    /// Its phandle (what `iommus` / `iommu-map` point at).
    pub phandle: Option<u32>,
    /// Interrupts with their `interrupt-names` entry (`eventq`, `gerror`,
    /// `priq`, `cmdq-sync`, `combined`), or an empty name when unnamed.
    pub interrupts: Vec<(String, Interrupt)>,
    /// DMA-coherent table walks and queues (`dma-coherent`, inherited).
    pub dma_coherent: bool,
}

/// Every enabled SMMUv3. One without a usable `reg` is skipped with a
/// warning; undecodable interrupts are dropped with a warning (the driver
/// can still poll).
pub fn smmus(tree: &Tree, warnings: &mut Vec<String>) -> Vec<Smmu> {
    let mut out = Vec::new();
    for node in tree.compatible_nodes("arm,smmu-v3") {
        if !node.is_available() {
            continue;
        }
        let region = match node.reg_cpu().map(|r| r.first().copied()) {
            Ok(Some(region)) => region,
            Ok(None) => {
                warn(warnings, &node, "empty `reg`; SMMU ignored");
                continue;
            }
            Err(e) => {
                warn(warnings, &node, format!("{e}; SMMU ignored"));
                continue;
            }
        };
        if region.size < SMMU_MIN_SIZE {
            warn(
                warnings,
                &node,
                format!("register space {region} smaller than 128 KiB"),
            );
        }
        let names = node.prop_str_list("interrupt-names").unwrap_or_default();
        let irqs = match interrupts(tree, &node) {
            Ok(list) => list,
            Err(e) => {
                warn(warnings, &node, format!("{e}; SMMU interrupts ignored"));
                Vec::new()
            }
        };
        let interrupts = irqs
            .into_iter()
            .enumerate()
            .map(|(i, irq)| {
                (
                    names.get(i).map_or_else(String::new, |n| n.to_string()),
                    irq,
                )
            })
            .collect();
        out.push(Smmu {
            path: node.path(),
            base: region.base,
            size: region.size,
            phandle: node.phandle(),
            interrupts,
            dma_coherent: node.dma_coherent(),
        });
    }
    out
}
