//! Guest configuration: the decoded form shared by the host tools and the
//! hypervisor, the payload bundle that carries it, and its validation.
//!
//! - [`GuestConfig`] / [`ResetAction`] / [`ViommuConfig`]: one guest as
//!   the TOML in `guest-configs/` describes it, after the host tool
//!   (`tools/guestcfg`) has parsed it. Serialized with postcard.
//! - [`bundle`]: the binary container (configs, kernels, initrds) handed to
//!   the hypervisor in the initrd slot, with a versioned header and CRC32s.
//! - [`mod@validate`]: the rules a configuration must follow, on its own
//!   ([`check_guests`]) and against the host device tree ([`check_board`]).
//!   The host tool runs both before building a bundle; the hypervisor runs
//!   them again ([`validate()`]) against the live device
//!   tree before starting any guest.
//! - [`limits`]: the documented bounds (guest count, memory, command line).

pub mod bundle;
mod bundle_error;
pub mod crc32;
mod devices;
mod guest;
pub mod limits;
mod origin;
mod problem;
pub mod validate;

#[cfg(test)]
mod tests;

pub use bundle::{Bundle, BundleGuest, GuestImages};
pub use bundle_error::{BundleError, Part};
pub use guest::{
    ConsoleConfig, GuestConfig, GuestLimits, GuestRef, PciAddr, ResetAction, ViommuConfig,
    ViommuTransport,
};
pub use origin::{KeyAt, Located, Origin};
pub use problem::{Field, Problem, ValidationError};
pub use validate::{check_board, check_guests, check_spi_count, validate};
