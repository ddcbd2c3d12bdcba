//! Hardware in the loop for partita: run a scenario on a board through its
//! U-Boot and serial console, and report what happened.
//!
//! - [`Scenario`] (`tests/scenarios/*.toml`): a guest configuration and the
//!   console steps that judge it. The QEMU integration tests run the same
//!   files directly on QEMU (`-kernel` + `-initrd`) through
//!   [`engine::run_steps`] and a [`console::ChildConsole`].
//! - [`Board`] (`tools/hil/boards/*.toml`): console, U-Boot, delivery, load
//!   addresses, device tree, power control, checks after boot.
//! - [`runner::run`]: delivers the image and the bundle, powers the board,
//!   drives U-Boot (`setenv`, `tftpboot`, `booti`), runs the steps, writes
//!   `console.log`, `report.txt` and `junit.xml`.
//!
//! `cargo xtask hil --board NAME --scenario NAME` builds what a scenario
//! needs and calls [`runner::run`]; see `docs/hil.md`.

pub mod board;
pub mod console;
pub mod engine;
pub mod error;
pub mod file;
pub mod guests;
pub mod layout;
pub mod power;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod session;
pub mod template;
pub mod uboot;

pub use board::Board;
pub use error::{Failure, HilError, LoadError};
pub use report::RunReport;
pub use runner::{RunSpec, run};
pub use scenario::Scenario;
pub use session::Session;
pub use template::Vars;

/// Where the shipped board definitions are, relative to the workspace root.
pub const BOARDS_DIR: &str = "tools/hil/boards";

/// Where the scenarios are, relative to the workspace root.
pub const SCENARIOS_DIR: &str = "tests/scenarios";
