//! Checking a configuration against a board: the rules of
//! [`hypervisor::config::check_board`] run on the board's device tree blob,
//! the same code the hypervisor runs at boot against the live tree.

use hypervisor::config::check_board;
use hypervisor::fdt::HostDt;

use crate::{ConfigError, ConfigFile, ErrorKind};

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
