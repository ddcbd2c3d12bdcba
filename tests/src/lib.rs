//! QEMU integration-test harness for partita.
//!
//! A test describes a machine with the [`Qemu`] builder, boots the image on
//! it and judges the serial console through the returned [`Session`]:
//!
//! ```no_run
//! use std::time::Duration;
//! use hv_tests::{HarnessError, Qemu};
//!
//! fn boots() -> Result<(), HarnessError> {
//!     let mut vm = Qemu::new().smp(1).append("partita.idle=poweroff").spawn()?;
//!     vm.expect("cpu 0 online", Duration::from_secs(20))?;
//!     vm.expect_exit_code(0, Duration::from_secs(20))
//! }
//! ```
//!
//! The image comes from `PARTITA_IMAGE` and QEMU from `PARTITA_QEMU`
//! (default `qemu-system-aarch64`); `cargo xtask test` sets both. Every wait
//! has a timeout, each session also has an overall deadline, and QEMU is
//! killed when the session is dropped, so a test cannot hang. Failures carry
//! the expectation, the QEMU command line and the whole console transcript.
//! With `PARTITA_ECHO=1` the console is also echoed live to the test's stderr.

mod error;
pub mod guest;
mod qemu;
mod session;

pub use error::{HarnessError, Report};
pub use qemu::{
    DEFAULT_CPU, DEFAULT_MACHINE, DEFAULT_MEMORY, DEFAULT_SMP, DEFAULT_TIMEOUT, IMAGE_ENV,
    QEMU_ENV, Qemu,
};
pub use session::{ECHO_ENV, Session};
