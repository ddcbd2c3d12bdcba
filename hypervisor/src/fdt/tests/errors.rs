//! The messages of the host-tree error types [`IrqError`] and
//! [`PcieError`]: the boot log's warnings (and the tests that read them)
//! depend on these texts.

use crate::fdt::{Interrupt, IrqError, PcieError, PropError};
use alloc::string::{String, ToString};
use core::error::Error;

/// `e`'s message and its source's, if it has one.
fn texts(e: &dyn Error) -> (String, Option<String>) {
    (e.to_string(), e.source().map(ToString::to_string))
}

#[test]
fn irq_error_messages() {
    let path = || String::from("/intc@8000000");
    for (e, text) in [
        (
            IrqError::ShortSpecifier { cells: 2 },
            "GIC specifier needs 3 cells, has 2",
        ),
        (
            IrqError::UnsupportedType(3),
            "unsupported GIC interrupt type 3",
        ),
        (
            IrqError::NumberOutOfRange(988),
            "GIC interrupt number 988 out of range",
        ),
        (
            IrqError::MalformedInterruptParent,
            "malformed `interrupt-parent`",
        ),
        (
            IrqError::NoSuchInterruptParent { phandle: 0x8005 },
            "interrupt-parent 0x8005 names no node",
        ),
        (IrqError::NoInterruptParent, "no interrupt parent"),
        (
            IrqError::ParentChainTooLong,
            "interrupt-parent chain too long",
        ),
        (
            IrqError::BadInterruptCells { path: path() },
            "/intc@8000000: malformed #interrupt-cells",
        ),
        (
            IrqError::NotGic { path: path() },
            "interrupt parent /intc@8000000 is not a GIC",
        ),
        (
            IrqError::MalformedExtended,
            "malformed `interrupts-extended`",
        ),
        (
            IrqError::NoSuchExtendedParent { phandle: 0x12 },
            "interrupts-extended: phandle 0x12 names no node",
        ),
        (
            IrqError::TruncatedExtended,
            "truncated `interrupts-extended`",
        ),
        (IrqError::MalformedInterrupts, "malformed `interrupts`"),
        (
            IrqError::PartialSpecifier { cells: 4, per: 3 },
            "`interrupts` has 4 cells, not a multiple of 3",
        ),
    ] {
        assert_eq!(texts(&e), (text.into(), None));
    }
}

#[test]
fn gic_specifier_errors_are_typed() {
    assert_eq!(
        Interrupt::from_gic_cells(&[0, 1]),
        Err(IrqError::ShortSpecifier { cells: 2 })
    );
    assert_eq!(
        Interrupt::from_gic_cells(&[2, 1, 4]),
        Err(IrqError::UnsupportedType(2))
    );
    assert_eq!(
        Interrupt::from_gic_cells(&[1, 16, 4]),
        Err(IrqError::NumberOutOfRange(16))
    );
}

#[test]
fn pcie_error_messages() {
    let prop = PropError::Missing { prop: "reg" };
    let untranslatable = PropError::Untranslatable { addr: 0x1000 };
    for (e, text, source) in [
        (PcieError::Reg(prop), "no `reg` property", Some(prop)),
        (PcieError::EmptyReg, "empty `reg`", None),
        (PcieError::BadBusRange, "malformed `bus-range`", None),
        (
            PcieError::MalformedCell {
                prop: "iommu-map-mask",
            },
            "malformed `iommu-map-mask`",
            None,
        ),
        (PcieError::BadMsiParent, "malformed `msi-parent`", None),
        (
            PcieError::MapNotWhole {
                prop: "iommu-map",
                len: 12,
            },
            "`iommu-map` is truncated (12 bytes, not a whole number of 4-cell entries)",
            None,
        ),
        (
            PcieError::MapEntryTruncated {
                prop: "msi-map",
                entry: 1,
            },
            "`msi-map` entry 1 is truncated",
            None,
        ),
        (
            PcieError::MapEntryBadLength {
                prop: "iommu-map",
                entry: 0,
                length: 0,
            },
            "`iommu-map` entry 0 has a bad length 0x0",
            None,
        ),
        (
            PcieError::MapEntryNoNode {
                prop: "iommu-map",
                entry: 2,
                phandle: 0x4321,
            },
            "`iommu-map` entry 2 names phandle 0x4321, which is no node",
            None,
        ),
        (PcieError::AddressCells, "#address-cells is not 3", None),
        (PcieError::SizeCells, "#size-cells is not 1 or 2", None),
        (
            PcieError::ParentCells(PropError::BadCells),
            "malformed #address-cells/#size-cells in the parent",
            Some(PropError::BadCells),
        ),
        (
            PcieError::MalformedRanges { len: 20 },
            "malformed `ranges` (20 bytes)",
            None,
        ),
        (
            PcieError::RangesUntranslatable(untranslatable),
            "`ranges`: address 0x1000 is not translatable through the parents' `ranges`",
            Some(untranslatable),
        ),
    ] {
        assert_eq!(
            texts(&e),
            (text.into(), source.as_ref().map(ToString::to_string))
        );
    }
}
