//! A PCIe host bridge as the hypervisor runs it after boot: what the
//! enumeration found, the configuration access every guest given one of
//! its functions goes through (one lock per bridge), and which guest holds
//! each of its INTx lines (functions of different guests may not share
//! one until guests have MSIs).

use super::config::ConfigAccess;
use super::enumerate::Topology;
use alloc::string::String;
use alloc::vec::Vec;
use spin::Mutex;

/// One enumerated host bridge.
pub struct PciHost {
    /// Its path in the host device tree.
    pub path: String,
    /// What the enumeration found.
    pub topology: Topology,
    /// Its configuration space (ECAM on the machine).
    pub config: &'static Mutex<dyn ConfigAccess + Send>,
    /// INTx INTIDs held by guests: (INTID, guest index).
    pub intx: Mutex<Vec<(u32, usize)>>,
}

/// Why a guest cannot take an INTx line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntxTaken {
    /// The line's INTID.
    pub intid: u32,
    /// The guest that holds it.
    pub holder: usize,
}

impl core::fmt::Display for IntxTaken {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "INTx line INTID {} is held by guest {} (functions of different guests may not share an INTx line)",
            self.intid, self.holder
        )
    }
}

impl core::error::Error for IntxTaken {}

impl PciHost {
    /// Records that guest `guest` holds the INTx line `intid`; refused when
    /// another guest holds it (the same guest may hold it for several of
    /// its functions).
    pub fn claim_intx(&self, intid: u32, guest: usize) -> Result<(), IntxTaken> {
        let mut held = self.intx.lock();
        match held.iter().find(|(i, _)| *i == intid) {
            Some(&(_, holder)) if holder != guest => Err(IntxTaken { intid, holder }),
            Some(_) => Ok(()),
            None => {
                held.push((intid, guest));
                Ok(())
            }
        }
    }
}
