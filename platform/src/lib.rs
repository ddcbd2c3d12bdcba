//! Board support: which boards the hypervisor knows by name, and what about
//! each one cannot be discovered from its device tree.
//!
//! Everything discoverable (RAM, CPUs, GIC, SMMU, PCIe, console) is read from
//! the host device tree at run time; this crate holds only the residue: a
//! human-readable board name and quirks that change how the hypervisor
//! interprets what it finds.
#![no_std]

/// A board the hypervisor recognises from the root `compatible` of its device tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Board {
    /// Human-readable name printed in the hardware summary.
    pub name: &'static str,
    /// Root `compatible` strings that identify the board.
    pub compatible: &'static [&'static str],
    /// Facts about the board that its device tree does not state.
    pub quirks: Quirks,
}

/// Board properties that the device tree does not carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Quirks {
    /// Only PCIe functions of the root complex sit behind the SMMUv3; platform
    /// (MMIO) devices DMA untranslated and cannot be isolated by it.
    pub smmu_translates_pcie_only: bool,
    /// Physical address of a PL011 to use when the DT names no `stdout-path`.
    pub fallback_uart: Option<u64>,
}

/// QEMU's `virt` machine (any version).
pub const QEMU_VIRT: Board = Board {
    name: "QEMU virt",
    compatible: &["linux,dummy-virt"],
    quirks: Quirks {
        smmu_translates_pcie_only: true,
        fallback_uart: Some(0x0900_0000),
    },
};

/// Arm's Fixed Virtual Platform (Base RevC), documented but not yet tried.
pub const FVP_BASE_REVC: Board = Board {
    name: "Arm FVP Base RevC",
    compatible: &["arm,fvp-base-revc"],
    quirks: Quirks {
        smmu_translates_pcie_only: false,
        fallback_uart: Some(0x1c09_0000),
    },
};

/// Every board this build knows.
pub const BOARDS: &[Board] = &[QEMU_VIRT, FVP_BASE_REVC];

/// A board not in [`BOARDS`]: no quirks, named after its DT compatible.
pub const GENERIC: Board = Board {
    name: "generic arm64 board",
    compatible: &[],
    quirks: Quirks {
        smmu_translates_pcie_only: false,
        fallback_uart: None,
    },
};

/// Finds the board whose compatible matches one of the root node's
/// `compatible` strings, or [`GENERIC`].
pub fn identify<'a>(root_compatible: impl IntoIterator<Item = &'a str>) -> &'static Board {
    for compat in root_compatible {
        if let Some(board) = BOARDS.iter().find(|b| b.compatible.contains(&compat)) {
            return board;
        }
    }
    &GENERIC
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifies_qemu_virt() {
        assert_eq!(identify(["linux,dummy-virt"]).name, "QEMU virt");
    }

    #[test]
    fn unknown_board_is_generic() {
        let b = identify(["vendor,unknown", "another"]);
        assert_eq!(b.name, GENERIC.name);
        assert_eq!(b.quirks, Quirks::default());
    }
}
