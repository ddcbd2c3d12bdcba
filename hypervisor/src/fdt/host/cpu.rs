//! CPUs (`/cpus/cpu@*`) and the PSCI firmware interface (`/psci`).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::{to_strings, warn};
use crate::fdt::DtError;
use crate::fdt::tree::Tree;

/// The affinity fields of MPIDR_EL1 (Aff3 in 39:32, Aff2..Aff0 in 23:0).
pub const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// One usable CPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cpu {
    /// Absolute node path, e.g. `/cpus/cpu@1`.
    pub path: String,
    /// MPIDR affinity value, from `reg` (one or two cells).
    pub mpidr: u64,
    /// `enable-method` (`"psci"`, `"spin-table"`), if given.
    pub enable_method: Option<String>,
}

pub use crate::arch::Conduit;

/// The `/psci` node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Psci {
    /// From `method`.
    pub conduit: Conduit,
    /// The `compatible` strings (`arm,psci-1.0`, `arm,psci-0.2`, ...).
    pub compatible: Vec<String>,
}

/// Every enabled CPU node under `/cpus` (a node named `cpu@...` or with
/// `device_type = "cpu"`). CPUs with a malformed or duplicate `reg` are
/// skipped with a warning; none at all is [`DtError::NoCpus`].
pub fn cpus(tree: &Tree, warnings: &mut Vec<String>) -> Result<Vec<Cpu>, DtError> {
    let parent = tree.find("/cpus").ok_or(DtError::NoCpus)?;
    let mut out: Vec<Cpu> = Vec::new();
    for node in parent.children() {
        let is_cpu = node.prop_str("device_type") == Some("cpu") || node.base_name() == "cpu";
        if !is_cpu || !node.is_available() {
            continue;
        }
        match node.address_cells() {
            Ok(1 | 2) => {}
            Ok(n) => {
                warn(
                    warnings,
                    &node,
                    format!("#address-cells {n} in /cpus is not 1 or 2; cpu ignored"),
                );
                continue;
            }
            Err(e) => {
                warn(warnings, &node, format!("{e}; cpu ignored"));
                continue;
            }
        }
        let mpidr = match node.reg() {
            Ok(regs) => match regs.first() {
                Some(r) => r.base,
                None => {
                    warn(warnings, &node, "empty `reg`; cpu ignored");
                    continue;
                }
            },
            Err(e) => {
                warn(warnings, &node, format!("{e}; cpu ignored"));
                continue;
            }
        };
        if mpidr & !MPIDR_AFFINITY_MASK != 0 {
            warn(
                warnings,
                &node,
                format!("reg {mpidr:#x} is not an MPIDR affinity value; cpu ignored"),
            );
            continue;
        }
        if let Some(first) = out.iter().find(|c| c.mpidr == mpidr) {
            let msg = format!(
                "MPIDR {mpidr:#x} already used by {}; cpu ignored",
                first.path
            );
            warn(warnings, &node, msg);
            continue;
        }
        out.push(Cpu {
            path: node.path(),
            mpidr,
            enable_method: node.prop_str("enable-method").map(ToString::to_string),
        });
    }
    if out.is_empty() {
        Err(DtError::NoCpus)
    } else {
        Ok(out)
    }
}

/// The first enabled node compatible with `arm,psci*`; `None` (with a
/// warning) when its `method` is missing or unknown.
pub fn psci(tree: &Tree, warnings: &mut Vec<String>) -> Option<Psci> {
    let node = tree
        .nodes()
        .into_iter()
        .find(|n| n.is_available() && n.compatible().iter().any(|c| c.starts_with("arm,psci")))?;
    let conduit = match node.prop_str("method") {
        Some("smc") => Conduit::Smc,
        Some("hvc") => Conduit::Hvc,
        Some(other) => {
            warn(
                warnings,
                &node,
                format!("unknown PSCI method {other:?}; PSCI ignored"),
            );
            return None;
        }
        None => {
            warn(warnings, &node, "no PSCI `method`; PSCI ignored");
            return None;
        }
    };
    Some(Psci {
        conduit,
        compatible: to_strings(node.compatible()),
    })
}
