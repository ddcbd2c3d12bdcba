//! Consoles: the board's serial line, however it is reached. A console is a
//! byte stream with a receive that waits at most a given time; the
//! [`crate::session::Session`] on top keeps the transcript.
//!
//! - [`open`] a board's [`Serial`]: a serial device (termios: raw, baud),
//!   a Unix socket (QEMU `-serial unix:`), a TCP port (ser2net, FVP);
//! - [`ChildConsole`]: a process's stdin/stdout/stderr (QEMU `-serial stdio`),
//!   for running scenarios directly on QEMU.

use std::io;
use std::time::Duration;

use crate::board::Serial;

mod child;
mod stream;
mod tty;

pub use child::ChildConsole;
pub use stream::StreamConsole;

/// What one receive brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recv {
    /// Bytes from the board.
    Data(Vec<u8>),
    /// Nothing within the time given.
    Idle,
    /// The console is gone for good, and why.
    Closed(String),
}

/// A byte stream to and from a board's console.
pub trait Console: Send {
    /// Waits at most `timeout` for output.
    fn recv(&mut self, timeout: Duration) -> Recv;
    /// Writes `bytes` to the board.
    fn send(&mut self, bytes: &[u8]) -> io::Result<()>;
}

/// Opens the console of a board (placeholders already expanded).
pub fn open(serial: &Serial) -> io::Result<Box<dyn Console>> {
    Ok(match serial {
        Serial::Device { path, baud } => Box::new(tty::open(path, *baud)?),
        Serial::Unix(path) => Box::new(stream::connect_unix(path)?),
        Serial::Tcp(addr) => Box::new(stream::connect_tcp(addr)?),
    })
}

/// A human-readable name for a console, for messages.
pub fn describe(serial: &Serial) -> String {
    match serial {
        Serial::Device { path, baud } => format!("serial device {path} at {baud} baud"),
        Serial::Unix(path) => format!("Unix socket {path}"),
        Serial::Tcp(addr) => format!("TCP {addr}"),
    }
}

#[cfg(test)]
pub mod fake;
