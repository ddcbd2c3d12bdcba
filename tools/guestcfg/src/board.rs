//! Checking a configuration against a board: the rules of
//! [`hypervisor::config::check_board`] run on the board's device tree blob,
//! the same code the hypervisor runs at boot against the live tree.

use hypervisor::config::check_board;
use hypervisor::fdt::HostDt;

use crate::{ConfigError, ConfigFile, ErrorKind};

/// Where the boards' upstream device tree blobs are kept, relative to the
/// workspace root (copies from Debian's arm64 kernel package).
pub const BOARD_DTB_DIR: &str = "hypervisor/src/fdt/testdata/boards";

/// The boards a configuration's `board` key may name besides `qemu-virt`
/// (whose tree QEMU dumps), with their DTB file in [`BOARD_DTB_DIR`].
pub const BOARD_DTBS: &[(&str, &str)] = &[
    ("imx8mp-evk", "imx8mp-evk.dtb"),
    ("imx95-evk", "imx95-19x19-evk.dtb"),
    ("rock-5b", "rk3588-rock-5b-8g.dtb"),
    ("fvp-base-revc", "fvp-base-revc.dtb"),
];

/// The DTB file (in [`BOARD_DTB_DIR`]) of board `name`; `None` for
/// `qemu-virt` and unknown names.
pub fn board_dtb(name: &str) -> Option<&'static str> {
    BOARD_DTBS.iter().find(|(b, _)| *b == name).map(|(_, f)| *f)
}

/// Checks `file` against the board described by the device tree blob `dtb`
/// (for QEMU `virt`, dumped with `-M virt,...,dumpdtb=FILE`): CPUs and
/// devices present, devices neither the hypervisor's own nor containing a
/// node it keeps, not claimed twice, total RAM, guest RAM clear of its
/// devices' MMIO, and ownership by host-physical address (device pages clear
/// of the hypervisor's and of other guests', SPIs owned by one guest, no
/// untranslated DMA master unless `allow_untranslated_dma` names it).
pub fn check_against_board(file: &ConfigFile, dtb: &[u8]) -> Result<(), Vec<ConfigError>> {
    let host = HostDt::parse(dtb).map_err(|e| {
        vec![ConfigError {
            file: file.path.clone(),
            position: None,
            key: None,
            kind: ErrorKind::BadBoard(e),
        }]
    })?;
    let mut errors: Vec<ConfigError> = check_board(&file.configs(), &host)
        .into_iter()
        .map(|e| file.locate(e))
        .collect();
    errors.sort_by_key(|e| e.position);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
