//! The Arm generic timer node (`arm,armv8-timer`): its per-CPU interrupts
//! and optional `clock-frequency`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::irq::{Interrupt, interrupts};
use super::warn;
use crate::fdt::tree::Tree;

/// The generic timer's interrupts (PPIs) and frequency.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timer {
    /// Secure EL1 physical timer.
    pub secure_phys: Option<Interrupt>,
    /// Non-secure EL1 physical timer.
    pub phys: Option<Interrupt>,
    /// EL1 virtual timer.
    pub virt: Option<Interrupt>,
    /// EL2 physical (hypervisor) timer.
    pub hyp_phys: Option<Interrupt>,
    /// EL2 virtual timer (ARMv8.1 VHE), when listed.
    pub hyp_virt: Option<Interrupt>,
    /// `clock-frequency`, when the firmware did not program CNTFRQ_EL0.
    pub frequency: Option<u32>,
}

/// Binding order of the timer interrupts, and their `interrupt-names`.
const NAMES: [&str; 5] = ["sec-phys", "phys", "virt", "hyp-phys", "hyp-virt"];

/// The first enabled `arm,armv8-timer` (or `arm,armv7-timer`) node.
/// Interrupts are taken by position, or by `interrupt-names` when present.
pub fn timer(tree: &Tree, warnings: &mut Vec<String>) -> Option<Timer> {
    let node = tree.nodes().into_iter().find(|n| {
        n.is_available()
            && (n.is_compatible("arm,armv8-timer") || n.is_compatible("arm,armv7-timer"))
    })?;
    let list = match interrupts(tree, &node) {
        Ok(list) => list,
        Err(e) => {
            warn(warnings, &node, format!("{e}; timer ignored"));
            return None;
        }
    };
    let names = node.prop_str_list("interrupt-names");
    let pick = |i: usize| -> Option<Interrupt> {
        match &names {
            Some(names) => {
                let wanted = NAMES.get(i)?;
                let pos = names.iter().position(|n| n == wanted)?;
                list.get(pos).copied()
            }
            None => list.get(i).copied(),
        }
    };
    let frequency = match node.prop("clock-frequency") {
        None => None,
        Some(p) => {
            let f = p.as_u32();
            if f.is_none() {
                warn(warnings, &node, "malformed `clock-frequency` ignored");
            }
            f
        }
    };
    Some(Timer {
        secure_phys: pick(0),
        phys: pick(1),
        virt: pick(2),
        hyp_phys: pick(3),
        hyp_virt: pick(4),
        frequency,
    })
}
