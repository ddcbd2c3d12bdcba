//! Calls to the firmware's PSCI implementation through the conduit the
//! host DT names (SMC or HVC).

use crate::arch::Conduit;
use smccc::psci;
use smccc::{Hvc, Smc};

pub use smccc::psci::Error;

/// The firmware's PSCI version.
pub fn version(conduit: Conduit) -> Result<psci::Version, Error> {
    match conduit {
        Conduit::Smc => psci::version::<Smc>(),
        Conduit::Hvc => psci::version::<Hvc>(),
    }
}

/// Starts the CPU `mpidr` at `entry` (physical) with `context` in x0.
pub fn cpu_on(conduit: Conduit, mpidr: u64, entry: u64, context: u64) -> Result<(), Error> {
    match conduit {
        Conduit::Smc => psci::cpu_on::<Smc>(mpidr, entry, context),
        Conduit::Hvc => psci::cpu_on::<Hvc>(mpidr, entry, context),
    }
}

/// Powers the system off. Returns only if the firmware refuses.
pub fn system_off(conduit: Conduit) -> Error {
    let result = match conduit {
        Conduit::Smc => psci::system_off::<Smc>(),
        Conduit::Hvc => psci::system_off::<Hvc>(),
    };
    result.err().unwrap_or(Error::NotSupported)
}

/// Resets the system. Returns only if the firmware refuses.
pub fn system_reset(conduit: Conduit) -> Error {
    let result = match conduit {
        Conduit::Smc => psci::system_reset::<Smc>(),
        Conduit::Hvc => psci::system_reset::<Hvc>(),
    };
    result.err().unwrap_or(Error::NotSupported)
}
