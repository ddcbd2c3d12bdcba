//! The interrupt controller: the GIC node (distributor, redistributors or
//! CPU interface, maintenance interrupt) and its GICv3 ITS children.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::irq::{Interrupt, interrupts, is_gic};
use super::warn;
use crate::fdt::noderef::NodeRef;
use crate::fdt::tree::Tree;
use crate::mm::layout::Region;

/// A GICv3 Interrupt Translation Service below the GIC node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GicIts {
    /// Absolute node path.
    pub path: String,
    /// Its phandle (what `msi-map`/`msi-parent` point at).
    pub phandle: Option<u32>,
    /// The ITS register frame.
    pub region: Region,
}

/// The host interrupt controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gic {
    /// Absolute node path.
    pub path: String,
    /// Its phandle (what `interrupt-parent` points at).
    pub phandle: Option<u32>,
    /// Architecture version: 3 for `arm,gic-v3`, 2 for the GICv2 family.
    pub version: u32,
    /// Distributor (GICD) frame, `reg[0]`.
    pub dist: Region,
    /// GICv3 redistributor regions: `reg[1..1 + #redistributor-regions]`
    /// (empty for GICv2).
    pub redists: Vec<Region>,
    /// The `reg` entries after those: GICC, GICH, GICV when present.
    pub cpu_if: Vec<Region>,
    /// The virtual-interface maintenance interrupt (the node's own
    /// `interrupts`).
    pub maintenance: Option<Interrupt>,
    /// Enabled `arm,gic-v3-its` children.
    pub its: Vec<GicIts>,
}

/// The first enabled GIC that is an interrupt controller. Other GICs are
/// reported and ignored; a GIC with an unusable `reg` is skipped.
pub fn gic(tree: &Tree, warnings: &mut Vec<String>) -> Option<Gic> {
    let mut found: Option<Gic> = None;
    for node in tree.nodes() {
        if !is_gic(&node) || !node.is_available() || !node.has_prop("interrupt-controller") {
            continue;
        }
        if let Some(first) = &found {
            warn(
                warnings,
                &node,
                format!("additional GIC ignored (using {})", first.path),
            );
            continue;
        }
        found = one_gic(tree, &node, warnings);
    }
    found
}

fn one_gic(tree: &Tree, node: &NodeRef<'_>, warnings: &mut Vec<String>) -> Option<Gic> {
    let version = if node.is_compatible("arm,gic-v3") {
        3
    } else {
        2
    };
    let regs = match node.reg_cpu() {
        Ok(regs) => regs,
        Err(e) => {
            warn(warnings, node, format!("{e}; GIC ignored"));
            return None;
        }
    };
    let redist_count = if version == 3 {
        match node.prop("#redistributor-regions") {
            None => 1,
            Some(p) => match p.as_u32() {
                Some(n) if n >= 1 => n as usize,
                _ => {
                    warn(
                        warnings,
                        node,
                        "malformed #redistributor-regions; GIC ignored",
                    );
                    return None;
                }
            },
        }
    } else {
        0
    };
    let (Some(&dist), Some(redists)) = (regs.first(), regs.get(1..1 + redist_count)) else {
        let msg = format!(
            "`reg` has {} entries, need {}; GIC ignored",
            regs.len(),
            1 + redist_count
        );
        warn(warnings, node, msg);
        return None;
    };
    let maintenance = match interrupts(tree, node) {
        Ok(list) => list.first().copied(),
        Err(e) => {
            warn(warnings, node, format!("maintenance interrupt: {e}"));
            None
        }
    };
    let mut its = Vec::new();
    for child in node.children() {
        if !child.is_compatible("arm,gic-v3-its") || !child.is_available() {
            continue;
        }
        match child.reg_cpu().map(|r| r.first().copied()) {
            Ok(Some(region)) => its.push(GicIts {
                path: child.path(),
                phandle: child.phandle(),
                region,
            }),
            Ok(None) => warn(warnings, &child, "empty `reg`; ITS ignored"),
            Err(e) => warn(warnings, &child, format!("{e}; ITS ignored")),
        }
    }
    Some(Gic {
        path: node.path(),
        phandle: node.phandle(),
        version,
        dist,
        redists: redists.to_vec(),
        cpu_if: regs.get(1 + redist_count..).unwrap_or(&[]).to_vec(),
        maintenance,
        its,
    })
}
