//! `cargo xtask`: host-side tasks for partita.
//!
//! - `cargo xtask build` builds the EL2 image and converts it to a raw binary
//!   (`target/aarch64-unknown-none-softfloat/release/partita.bin`).
//! - `cargo xtask run [-- QEMU ARGS]` builds, then boots the image on QEMU's
//!   `virt` machine with the serial console on the terminal.
//! - `cargo xtask test [-- TEST ARGS]` runs the host unit tests, builds the
//!   image and runs the QEMU integration tests (package `hv-tests`), then
//!   the HIL runs of `linux-viommu` and `two-linux` on the `qemu-uboot` board.
//! - `cargo xtask hil --board NAME --scenario NAME` runs a scenario on a
//!   board through U-Boot and its serial console (see [`hil`]).
//! - `cargo xtask bench [--runs N]` measures the virtio-iommu against
//!   QEMU's own (see [`bench`]).
//! - `cargo xtask fuzz [--minutes N]` runs the randomized backend test
//!   with fresh seeds (see [`fuzz`]).
//! - `cargo xtask layering` counts the hypervisor's target-only code and
//!   checks the layer rules (see [`layering`]).
//!
//! Every task first checks its prerequisites and installs what is missing
//! when it can (see [`prereq`]).
//!
//! This file only parses the command line and dispatches; the work is in the
//! modules below.

mod bench;
mod cli;
mod error;
mod fuzz;
mod hil;
mod host;
mod image;
mod layering;
mod payload;
mod prereq;
mod process;
mod qemu;
mod tasks;
mod workspace;
mod wx;

use std::io::Write;
use std::process::ExitCode;

use cli::Task;
use workspace::Workspace;

fn main() -> ExitCode {
    let task = match cli::parse(std::env::args_os().skip(1)) {
        Ok(task) => task,
        Err(e) => {
            eprintln!("error: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    if let Task::Help = task {
        // A closed pipe (`cargo xtask help | head`) is not worth a panic.
        let _ = writeln!(std::io::stdout(), "{}", cli::USAGE);
        return ExitCode::SUCCESS;
    }
    let ws = match Workspace::locate() {
        Ok(ws) => ws,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match task {
        Task::Help => Ok(0),
        Task::Build { config } => tasks::build(&ws, config.as_deref()).map(|_| 0),
        Task::Run { config, qemu_args } => tasks::run(&ws, config.as_deref(), &qemu_args),
        Task::Test { test_args } => tasks::test(&ws, &test_args).map(|()| 0),
        Task::Hil {
            board,
            scenario,
            quiet,
        } => hil::hil(&ws, &board, &scenario, !quiet).map(|()| 0),
        Task::HilList => hil::list(&ws).map(|()| 0),
        Task::Bench { runs, sides } => bench::bench(&ws, runs, sides).map(|()| 0),
        Task::Fuzz { minutes } => fuzz::fuzz(&ws, minutes).map(|()| 0),
        Task::Layering => {
            let src = ws.root.join("hypervisor/src");
            layering::print(&src)
                .map_err(|source| error::XtaskError::Io {
                    what: "read",
                    path: src.clone(),
                    source,
                })
                .map(|r| {
                    u8::from(
                        !r.violations.is_empty()
                            || !r.orphans.is_empty()
                            || r.percent() >= layering::LIMIT_PERCENT,
                    )
                })
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
