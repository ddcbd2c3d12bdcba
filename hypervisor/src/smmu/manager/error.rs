//! [`ManagerError`]: why an operation of the [`super::SmmuManager`] failed.

use crate::smmu::error::SmmuError;
use alloc::string::String;
use core::fmt;

/// Why an operation of the [`super::SmmuManager`] failed.
///
/// The message names everything (instance, device, driver error), so one
/// `{}` makes a whole log line; [`core::error::Error::source`] gives the
/// driver's [`SmmuError`] on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManagerError {
    /// No SMMU instance in use has this index.
    NoSuchSmmu(usize),
    /// The SMMU cannot walk the given stage-2 table (its start level or
    /// input size; see [`crate::smmu::ste::S2Config::for_table`]).
    Table(SmmuError),
    /// The driver of the SMMU at `base` failed.
    Smmu {
        /// Register base of the SMMU.
        base: u64,
        /// What the driver reported.
        error: SmmuError,
    },
    /// Binding the streams of device `path` on the SMMU at `base` failed
    /// (the table refused, or the driver failed).
    Device {
        /// The device's path in the host device tree.
        path: String,
        /// Register base of the SMMU.
        base: u64,
        /// The table's or the driver's error.
        error: SmmuError,
    },
}

/// A sync that failed on a hot path ([`super::SmmuManager::sync_cmds`]):
/// the failure (instance and driver error) was logged where it happened;
/// only the fact comes back, in a register rather than as an error value
/// through memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncFailed;

impl fmt::Display for SyncFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SMMU command sync failed (logged where it failed)")
    }
}

impl core::error::Error for SyncFailed {}

impl ManagerError {
    /// The driver's (or the stage-2 configuration's) error, if there is
    /// one.
    pub fn smmu_error(&self) -> Option<&SmmuError> {
        match self {
            ManagerError::NoSuchSmmu(_) => None,
            ManagerError::Table(error)
            | ManagerError::Smmu { error, .. }
            | ManagerError::Device { error, .. } => Some(error),
        }
    }
}

impl fmt::Display for ManagerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManagerError::NoSuchSmmu(i) => write!(f, "no such SMMU (instance {i})"),
            ManagerError::Table(error) => write!(f, "{error}"),
            ManagerError::Smmu { base, error } => write!(f, "smmuv3 {base:#x}: {error}"),
            ManagerError::Device { path, base, error } => {
                write!(f, "smmuv3 {base:#x}: {path}: {error}")
            }
        }
    }
}

impl core::error::Error for ManagerError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        self.smmu_error().map(|e| e as _)
    }
}
