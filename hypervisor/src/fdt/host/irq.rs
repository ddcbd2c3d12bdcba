//! Interrupt specifiers: [`Interrupt`] (a GIC SPI or PPI as the device
//! tree numbers it) and the decoding of a node's `interrupts` or
//! `interrupts-extended` through its interrupt parent.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::fdt::noderef::NodeRef;
use crate::fdt::tree::Tree;

/// `compatible` strings of the Arm GICs whose 3-cell specifiers we decode.
pub const GIC_COMPATIBLES: &[&str] = &[
    "arm,gic-v3",
    "arm,gic-400",
    "arm,cortex-a15-gic",
    "arm,cortex-a9-gic",
    "arm,cortex-a7-gic",
];

/// Highest SPI number in a GIC specifier (INTID 1019).
pub const MAX_SPI: u32 = 987;
/// Highest PPI number in a GIC specifier (INTID 31).
pub const MAX_PPI: u32 = 15;

/// The kind of a GIC interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IrqKind {
    /// Shared peripheral interrupt (specifier type 0).
    Spi,
    /// Private peripheral interrupt (specifier type 1).
    Ppi,
}

/// A GIC interrupt as the device tree gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Interrupt {
    /// SPI or PPI.
    pub kind: IrqKind,
    /// The device-tree number: SPI n is INTID n + 32, PPI n is INTID n + 16.
    pub number: u32,
    /// The flags cell (trigger type in bits 3:0; GICv2 CPU mask in 15:8).
    pub flags: u32,
}

impl Interrupt {
    /// The GIC interrupt ID (INTID).
    pub const fn intid(&self) -> u32 {
        match self.kind {
            IrqKind::Spi => self.number.saturating_add(32),
            IrqKind::Ppi => self.number.saturating_add(16),
        }
    }

    /// True for an edge-triggered interrupt (flags bits 0 or 1).
    pub const fn is_edge(&self) -> bool {
        self.flags & 0x3 != 0
    }

    /// Decodes a 3-cell GIC specifier `<type number flags>`.
    pub fn from_gic_cells(cells: &[u32]) -> Result<Self, String> {
        let [kind, number, flags, ..] = *cells else {
            return Err(format!("GIC specifier needs 3 cells, has {}", cells.len()));
        };
        let (kind, max) = match kind {
            0 => (IrqKind::Spi, MAX_SPI),
            1 => (IrqKind::Ppi, MAX_PPI),
            other => return Err(format!("unsupported GIC interrupt type {other}")),
        };
        if number > max {
            return Err(format!("GIC interrupt number {number} out of range"));
        }
        Ok(Self {
            kind,
            number,
            flags,
        })
    }
}

impl fmt::Display for Interrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            IrqKind::Spi => "SPI",
            IrqKind::Ppi => "PPI",
        };
        write!(
            f,
            "{kind} {} (INTID {}, flags {:#x})",
            self.number,
            self.intid(),
            self.flags
        )
    }
}

/// True for a node that is one of the GICs in [`GIC_COMPATIBLES`].
pub fn is_gic(node: &NodeRef<'_>) -> bool {
    GIC_COMPATIBLES.iter().any(|c| node.is_compatible(c))
}

/// The interrupt parent of `node`, as Linux finds it: follow
/// `interrupt-parent` (inherited from ancestors) or else the tree parent,
/// until a node with `#interrupt-cells`.
pub fn interrupt_parent<'t>(tree: &'t Tree, node: &NodeRef<'t>) -> Result<NodeRef<'t>, String> {
    let mut at = node.clone();
    // Bounded: a phandle cycle must not hang the boot.
    for _ in 0..64 {
        let next = match at.prop("interrupt-parent") {
            Some(p) => {
                let phandle = p.as_u32().ok_or("malformed `interrupt-parent`")?;
                tree.by_phandle(phandle)
                    .ok_or_else(|| format!("interrupt-parent {phandle:#x} names no node"))?
            }
            None => at.parent().ok_or("no interrupt parent")?,
        };
        if next.has_prop("#interrupt-cells") {
            return Ok(next);
        }
        at = next;
    }
    Err("interrupt-parent chain too long".into())
}

/// `#interrupt-cells` of an interrupt controller (1 to 4).
fn interrupt_cells(ctrl: &NodeRef<'_>) -> Result<usize, String> {
    match ctrl.prop_u32("#interrupt-cells") {
        Some(n @ 1..=4) => Ok(n as usize),
        _ => Err(format!("{}: malformed #interrupt-cells", ctrl.path())),
    }
}

/// Decodes one specifier for controller `ctrl`, which must be a GIC.
fn decode(ctrl: &NodeRef<'_>, spec: &[u32]) -> Result<Interrupt, String> {
    if !is_gic(ctrl) {
        return Err(format!("interrupt parent {} is not a GIC", ctrl.path()));
    }
    Interrupt::from_gic_cells(spec)
}

/// All interrupts of `node` (`interrupts-extended` if present, else
/// `interrupts` through the interrupt parent); empty when it has none.
/// Every specifier must be for a GIC.
pub fn interrupts(tree: &Tree, node: &NodeRef<'_>) -> Result<Vec<Interrupt>, String> {
    if let Some(ext) = node.prop("interrupts-extended") {
        let cells = ext.as_u32_list().ok_or("malformed `interrupts-extended`")?;
        let mut out = Vec::new();
        let mut rest = cells.as_slice();
        while let [phandle, tail @ ..] = rest {
            let ctrl = tree.by_phandle(*phandle).ok_or_else(|| {
                format!("interrupts-extended: phandle {phandle:#x} names no node")
            })?;
            let n = interrupt_cells(&ctrl)?;
            let spec = tail.get(..n).ok_or("truncated `interrupts-extended`")?;
            out.push(decode(&ctrl, spec)?);
            rest = tail.get(n..).unwrap_or(&[]);
        }
        return Ok(out);
    }
    let Some(prop) = node.prop("interrupts") else {
        return Ok(Vec::new());
    };
    let ctrl = interrupt_parent(tree, node)?;
    let n = interrupt_cells(&ctrl)?;
    let cells = prop.as_u32_list().ok_or("malformed `interrupts`")?;
    if !cells.len().is_multiple_of(n) {
        return Err(format!(
            "`interrupts` has {} cells, not a multiple of {n}",
            cells.len()
        ));
    }
    cells
        .chunks_exact(n)
        .map(|spec| decode(&ctrl, spec))
        .collect()
}
