//! Booting: the planning (host-tested, [`plan`]) and, on the target, the
//! entry points the arch layer calls by symbol and the run loop
//! (`entry.rs`).

pub mod plan;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod entry;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use entry::power_off;
