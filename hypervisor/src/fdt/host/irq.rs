//! Interrupt specifiers: [`Interrupt`] (a GIC SPI or PPI as the device
//! tree numbers it) and the decoding of a node's `interrupts` or
//! `interrupts-extended` through its interrupt parent; [`IrqError`] says
//! why they could not be decoded.

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

/// Why an interrupt specifier, or a node's interrupts, could not be
/// decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IrqError {
    /// A GIC specifier shorter than its 3 cells.
    ShortSpecifier {
        /// Cells found.
        cells: usize,
    },
    /// A GIC specifier type other than 0 (SPI) or 1 (PPI).
    UnsupportedType(u32),
    /// A GIC interrupt number above [`MAX_SPI`] or [`MAX_PPI`].
    NumberOutOfRange(u32),
    /// `interrupt-parent` is not one cell.
    MalformedInterruptParent,
    /// `interrupt-parent` names a phandle that is no node.
    NoSuchInterruptParent {
        /// The phandle.
        phandle: u32,
    },
    /// The search for an interrupt parent reached the root.
    NoInterruptParent,
    /// The `interrupt-parent` chain is longer than the search allows (a
    /// cycle, most likely).
    ParentChainTooLong,
    /// An interrupt controller's `#interrupt-cells` is missing or not 1
    /// to 4.
    BadInterruptCells {
        /// Path of the controller.
        path: String,
    },
    /// The interrupt parent is not one of the [`GIC_COMPATIBLES`].
    NotGic {
        /// Path of the interrupt parent.
        path: String,
    },
    /// `interrupts-extended` is not a whole number of cells.
    MalformedExtended,
    /// `interrupts-extended` names a phandle that is no node.
    NoSuchExtendedParent {
        /// The phandle.
        phandle: u32,
    },
    /// `interrupts-extended` ends inside a specifier.
    TruncatedExtended,
    /// `interrupts` is not a whole number of cells.
    MalformedInterrupts,
    /// `interrupts` is not a whole number of specifiers.
    PartialSpecifier {
        /// Cells in `interrupts`.
        cells: usize,
        /// The parent's `#interrupt-cells`.
        per: usize,
    },
}

impl fmt::Display for IrqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ShortSpecifier { cells } => {
                write!(f, "GIC specifier needs 3 cells, has {cells}")
            }
            Self::UnsupportedType(t) => write!(f, "unsupported GIC interrupt type {t}"),
            Self::NumberOutOfRange(n) => write!(f, "GIC interrupt number {n} out of range"),
            Self::MalformedInterruptParent => f.write_str("malformed `interrupt-parent`"),
            Self::NoSuchInterruptParent { phandle } => {
                write!(f, "interrupt-parent {phandle:#x} names no node")
            }
            Self::NoInterruptParent => f.write_str("no interrupt parent"),
            Self::ParentChainTooLong => f.write_str("interrupt-parent chain too long"),
            Self::BadInterruptCells { path } => write!(f, "{path}: malformed #interrupt-cells"),
            Self::NotGic { path } => write!(f, "interrupt parent {path} is not a GIC"),
            Self::MalformedExtended => f.write_str("malformed `interrupts-extended`"),
            Self::NoSuchExtendedParent { phandle } => {
                write!(f, "interrupts-extended: phandle {phandle:#x} names no node")
            }
            Self::TruncatedExtended => f.write_str("truncated `interrupts-extended`"),
            Self::MalformedInterrupts => f.write_str("malformed `interrupts`"),
            Self::PartialSpecifier { cells, per } => {
                write!(f, "`interrupts` has {cells} cells, not a multiple of {per}")
            }
        }
    }
}

impl core::error::Error for IrqError {}

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
    pub fn from_gic_cells(cells: &[u32]) -> Result<Self, IrqError> {
        let [kind, number, flags, ..] = *cells else {
            return Err(IrqError::ShortSpecifier { cells: cells.len() });
        };
        let (kind, max) = match kind {
            0 => (IrqKind::Spi, MAX_SPI),
            1 => (IrqKind::Ppi, MAX_PPI),
            other => return Err(IrqError::UnsupportedType(other)),
        };
        if number > max {
            return Err(IrqError::NumberOutOfRange(number));
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
pub fn interrupt_parent<'t>(tree: &'t Tree, node: &NodeRef<'t>) -> Result<NodeRef<'t>, IrqError> {
    let mut at = node.clone();
    // Bounded: a phandle cycle must not hang the boot.
    for _ in 0..64 {
        let next = match at.prop("interrupt-parent") {
            Some(p) => {
                let phandle = p.as_u32().ok_or(IrqError::MalformedInterruptParent)?;
                tree.by_phandle(phandle)
                    .ok_or(IrqError::NoSuchInterruptParent { phandle })?
            }
            None => at.parent().ok_or(IrqError::NoInterruptParent)?,
        };
        if next.has_prop("#interrupt-cells") {
            return Ok(next);
        }
        at = next;
    }
    Err(IrqError::ParentChainTooLong)
}

/// `#interrupt-cells` of an interrupt controller (1 to 4).
fn interrupt_cells(ctrl: &NodeRef<'_>) -> Result<usize, IrqError> {
    match ctrl.prop_u32("#interrupt-cells") {
        Some(n @ 1..=4) => Ok(n as usize),
        _ => Err(IrqError::BadInterruptCells { path: ctrl.path() }),
    }
}

/// Decodes one specifier for controller `ctrl`, which must be a GIC.
fn decode(ctrl: &NodeRef<'_>, spec: &[u32]) -> Result<Interrupt, IrqError> {
    if !is_gic(ctrl) {
        return Err(IrqError::NotGic { path: ctrl.path() });
    }
    Interrupt::from_gic_cells(spec)
}

/// All interrupts of `node` (`interrupts-extended` if present, else
/// `interrupts` through the interrupt parent); empty when it has none.
/// Every specifier must be for a GIC.
pub fn interrupts(tree: &Tree, node: &NodeRef<'_>) -> Result<Vec<Interrupt>, IrqError> {
    if let Some(ext) = node.prop("interrupts-extended") {
        let cells = ext.as_u32_list().ok_or(IrqError::MalformedExtended)?;
        let mut out = Vec::new();
        let mut rest = cells.as_slice();
        while let [phandle, tail @ ..] = rest {
            let ctrl = tree
                .by_phandle(*phandle)
                .ok_or(IrqError::NoSuchExtendedParent { phandle: *phandle })?;
            let n = interrupt_cells(&ctrl)?;
            let spec = tail.get(..n).ok_or(IrqError::TruncatedExtended)?;
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
    let cells = prop.as_u32_list().ok_or(IrqError::MalformedInterrupts)?;
    if !cells.len().is_multiple_of(n) {
        return Err(IrqError::PartialSpecifier {
            cells: cells.len(),
            per: n,
        });
    }
    cells
        .chunks_exact(n)
        .map(|spec| decode(&ctrl, spec))
        .collect()
}
