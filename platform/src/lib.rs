//! Board support: the console UART drivers ([`uart`], chosen by the device
//! tree), and the boards the hypervisor knows by name.
//!
//! Everything discoverable (RAM, CPUs, GIC, SMMU, PCIe, console, PSCI
//! conduit, timer) is read from the host device tree at run time; a board
//! here only gets the name the hardware summary prints. A board that is
//! not listed runs the same way, named [`GENERIC`].
#![no_std]

#[cfg(test)]
extern crate std;

pub mod uart;

/// A board the hypervisor recognises from the root `compatible` of its device tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Board {
    /// Human-readable name printed in the hardware summary.
    pub name: &'static str,
    /// Root `compatible` strings that identify the board.
    pub compatible: &'static [&'static str],
}

/// Every board this build knows by name (see docs/boards.md for how far
/// each is checked).
pub const BOARDS: &[Board] = &[
    Board {
        name: "QEMU virt",
        compatible: &["linux,dummy-virt"],
    },
    Board {
        name: "NXP i.MX 8M Plus EVK",
        compatible: &["fsl,imx8mp-evk"],
    },
    Board {
        name: "NXP i.MX 95 19x19 EVK",
        compatible: &["fsl,imx95-19x19-evk"],
    },
    Board {
        name: "Radxa ROCK 5B",
        compatible: &["radxa,rock-5b"],
    },
    Board {
        name: "Orange Pi 5 Plus",
        compatible: &["xunlong,orangepi-5-plus"],
    },
    Board {
        name: "TI J721E EVM",
        compatible: &["ti,j721e-evm"],
    },
    Board {
        name: "Arm FVP Base RevC",
        compatible: &["arm,fvp-base-revc"],
    },
];

/// A board not in [`BOARDS`].
pub const GENERIC: Board = Board {
    name: "generic arm64 board",
    compatible: &[],
};

/// Finds the board whose compatible matches one of the root node's
/// `compatible` strings (in the node's order), or [`GENERIC`].
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
    fn unknown_board_is_generic_and_known_ones_are_named() {
        let b = identify(["vendor,unknown", "another"]);
        assert_eq!(b, &GENERIC);
        assert_eq!(
            identify(["fsl,imx8mp-evk", "fsl,imx8mp"]).name,
            "NXP i.MX 8M Plus EVK"
        );
        assert_eq!(
            identify(["radxa,rock-5b", "rockchip,rk3588"]).name,
            "Radxa ROCK 5B"
        );
    }
}
