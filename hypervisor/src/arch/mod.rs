//! Architecture support. Only `aarch64` exists; it is the one home of
//! assembly and system-register access, and is built only for the bare-metal
//! target so that everything else can be tested on the host.

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod aarch64;
