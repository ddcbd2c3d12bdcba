//! Guest configuration for partita on the host: read a TOML file of
//! `guest-configs/` ([`load`]), check it against a board's device tree
//! ([`check_against_board`]) and build the payload bundle the hypervisor
//! reads from the initrd slot ([`build_bundle`]).
//!
//! The schema, its defaults and limits, and every rule are documented in
//! `guest-configs/README.md`. The rules themselves live in
//! [`hypervisor::config`], so the hypervisor applies exactly the same ones
//! again at boot. Every error names the file, line, column and key path:
//!
//! ```text
//! guest-configs/x.toml:9:8: guest[0].memory.size: "512X" is not a size (use a number of bytes or K/M/G)
//! ```
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use guestcfg::Source;
//! let file = guestcfg::load("guest-configs/qemu-virt-linux.toml".as_ref()).map_err(|e| format!("{e:?}"))?;
//! let dtb = std::fs::read("target/qemu-virt.dtb")?;
//! guestcfg::check_against_board(&file, &dtb).map_err(|e| format!("{e:?}"))?;
//! let bundle = guestcfg::build_bundle(&file, |source| match source {
//!     Source::File(path) => std::fs::read(path).map_err(|e| e.to_string()),
//!     other => Err(format!("{other} is not available here")),
//! })?;
//! # let _ = bundle;
//! # Ok(())
//! # }
//! ```

mod board;
mod bundle;
mod error;
mod load;
mod locate;
mod raw;
mod size;
mod source;
mod spans;

pub use board::{BOARD_DTB_DIR, BOARD_DTBS, board_dtb, check_against_board};
pub use bundle::build_bundle;
pub use error::{BuildError, ConfigError, ErrorKind, Position};
pub use load::{ConfigFile, GuestSpec, load, load_str};
pub use source::{DEBIAN_KERNEL, DEFAULT_INITRAMFS, Source};
