//! The GIC maintenance interrupt: which PPI the virtual CPU interface
//! signals, taken from the GIC node's `interrupts` (the binding's
//! "VGIC maintenance interrupt"), with the architecture's recommended
//! PPI 9 (INTID 25) when the device tree does not say.

use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::fdt::{Interrupt, IrqKind};

/// INTID of the maintenance interrupt when the device tree names none:
/// PPI 9, the Server Base System Architecture's choice, and QEMU's.
pub const DEFAULT_MAINTENANCE_PPI: u32 = 25;

/// The INTID in use (set once at boot, before any CPU enables it).
static MAINTENANCE: AtomicU32 = AtomicU32::new(DEFAULT_MAINTENANCE_PPI);

/// The INTID of the GIC maintenance interrupt.
pub fn maintenance_ppi() -> u32 {
    MAINTENANCE.load(Ordering::Relaxed)
}

/// Why the device tree's maintenance interrupt was not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaintenanceError {
    /// The GIC node has no `interrupts`.
    Absent,
    /// It names an SPI (this INTID): the maintenance interrupt is a PPI.
    NotAPpi(u32),
}

impl fmt::Display for MaintenanceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaintenanceError::Absent => write!(
                f,
                "the GIC node names no maintenance interrupt; using PPI 9 (INTID {DEFAULT_MAINTENANCE_PPI})"
            ),
            MaintenanceError::NotAPpi(intid) => write!(
                f,
                "the GIC node's maintenance interrupt is INTID {intid}, not a PPI; using PPI 9 (INTID {DEFAULT_MAINTENANCE_PPI})"
            ),
        }
    }
}

impl core::error::Error for MaintenanceError {}

/// The maintenance INTID for the GIC node's first interrupt `dt`: its
/// INTID when it is a PPI, else the default and why.
pub fn choose(dt: Option<&Interrupt>) -> (u32, Option<MaintenanceError>) {
    match dt {
        Some(i) if i.kind == IrqKind::Ppi => (i.intid(), None),
        Some(i) => (
            DEFAULT_MAINTENANCE_PPI,
            Some(MaintenanceError::NotAPpi(i.intid())),
        ),
        None => (DEFAULT_MAINTENANCE_PPI, Some(MaintenanceError::Absent)),
    }
}

/// Uses `intid` as the maintenance interrupt from now on (boot, before
/// the GIC is set up).
pub fn set_maintenance_ppi(intid: u32) {
    MAINTENANCE.store(intid, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn irq(kind: IrqKind, number: u32) -> Interrupt {
        Interrupt {
            kind,
            number,
            flags: 4,
        }
    }

    #[test]
    fn a_ppi_is_used_and_anything_else_falls_back_with_a_reason() {
        assert_eq!(choose(Some(&irq(IrqKind::Ppi, 9))), (25, None));
        assert_eq!(choose(Some(&irq(IrqKind::Ppi, 8))), (24, None));
        let (intid, why) = choose(Some(&irq(IrqKind::Spi, 9)));
        assert_eq!((intid, why), (25, Some(MaintenanceError::NotAPpi(41))));
        assert!(why.unwrap().to_string().contains("INTID 41, not a PPI"));
        let (intid, why) = choose(None);
        assert_eq!((intid, why), (25, Some(MaintenanceError::Absent)));
        assert!(why.unwrap().to_string().contains("names no maintenance"));
    }
}
