//! A PCIe host bridge as the hypervisor runs it after boot: what the
//! enumeration found, the configuration access every guest given one of
//! its functions goes through (one lock per bridge), and which guest holds
//! each of its INTx lines (functions of different guests may not share
//! one until guests have MSIs).

use super::config::ConfigAccess;
use super::enumerate::Topology;
use crate::config::{GuestRef, PciAddr};
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
    /// INTx lines held by guests.
    pub intx: Mutex<Vec<IntxClaim>>,
}

/// An INTx line held by a guest, for one of its functions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntxClaim {
    /// The line's INTID.
    pub intid: u32,
    /// The guest that holds it.
    pub guest: GuestRef,
    /// The first of its functions on that line.
    pub addr: PciAddr,
}

impl PciHost {
    /// Records that `claim.guest` holds the INTx line `claim.intid`;
    /// refused with the holder's claim when another guest holds it (the
    /// same guest may hold it for several of its functions).
    pub fn claim_intx(&self, claim: IntxClaim) -> Result<(), IntxClaim> {
        let mut held = self.intx.lock();
        match held.iter().find(|c| c.intid == claim.intid) {
            Some(c) if c.guest.index != claim.guest.index => Err(c.clone()),
            Some(_) => Ok(()),
            None => {
                held.push(claim);
                Ok(())
            }
        }
    }

    /// Gives back every INTx line guest `guest` holds (a guest refused
    /// after claiming some).
    pub fn release_intx(&self, guest: usize) {
        self.intx.lock().retain(|c| c.guest.index != guest);
    }
}
