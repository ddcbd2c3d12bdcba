//! The hypervisor console: the board's console UART (any kind
//! `platform::uart` drives, chosen from the device tree) behind a lock, `println!`, a `log`
//! backend with levels, an emergency path for crash reports, and the
//! guests' emulated consoles sharing the line ([`write_guest`], [`lines`]):
//! one lock, whole lines, each guest's line tagged `[name] ` when
//! several guests share the line; the guest with the focus ([`focus`])
//! gets what is typed (see `vm::console`).

pub mod keys;
pub mod lines;
pub mod logger;

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use lines::{HYPERVISOR, Lines};
use platform::uart::{Mmio, Uart, UartKind};
use spin::Mutex;

/// The console UART's driver over its mapped registers.
type ConsoleUart = Uart<Mmio>;

struct Console {
    uart: ConsoleUart,
    lines: Lines,
}

static CONSOLE: Mutex<Option<Console>> = Mutex::new(None);

/// The console source (guest index) with the focus.
static FOCUS: AtomicU16 = AtomicU16::new(0);
/// Whether guests' lines carry their tag (several guests share the line).
static TAGS: AtomicBool = AtomicBool::new(false);

/// Gives the focus to console source `source`.
pub fn set_focus(source: u16) {
    FOCUS.store(source, Ordering::Relaxed);
}

/// The console source with the focus.
pub fn focus() -> u16 {
    FOCUS.load(Ordering::Relaxed)
}

/// Whether `source` has the focus.
pub fn has_focus(source: u16) -> bool {
    focus() == source
}

/// Tags guests' lines with their names (`[name] `) from now on, or not.
pub fn set_tags(on: bool) {
    TAGS.store(on, Ordering::Relaxed);
}

/// Writes output of guest console `source` named `tag`: the rest of a line
/// when `complete`, else a part of one (see [`lines::Lines`]). Written
/// under the console lock in one go, never mixed with another line.
pub fn write_guest(source: u16, tag: &str, bytes: &[u8], complete: bool) {
    let tag = TAGS.load(Ordering::Relaxed).then_some(tag);
    #[cfg(test)]
    lines::capture(source, tag, bytes, complete);
    if let Some(c) = CONSOLE.lock().as_mut() {
        let Console { uart, lines } = c;
        lines.write(source, tag, bytes, complete, |b| raw_bytes(uart, b));
    }
}

fn raw_bytes(uart: &ConsoleUart, bytes: &[u8]) {
    uart.write_bytes(bytes);
}

/// Reads the bytes waiting in the console UART's receive FIFO into `buf`;
/// returns how many.
pub fn read_input(buf: &mut [u8]) -> usize {
    let guard = CONSOLE.lock();
    let Some(c) = guard.as_ref() else {
        return 0;
    };
    let mut n = 0;
    while n < buf.len() {
        match c.uart.get_byte() {
            Some(b) => {
                buf[n] = b;
                n += 1;
            }
            None => break,
        }
    }
    n
}

/// Asks the console UART to interrupt when input arrives.
pub fn enable_input_interrupt() {
    if let Some(c) = CONSOLE.lock().as_ref() {
        c.uart.enable_rx_interrupt();
    }
}

/// Installs the console on the UART of kind `kind` at `base` (mapped as
/// device memory).
///
/// # Safety
/// `base` must be the register block of a UART of kind `kind`, mapped,
/// used by nothing else.
pub unsafe fn init(base: usize, kind: UartKind) {
    // SAFETY: forwarded from the caller.
    let uart = Uart::new(kind, unsafe { Mmio::new(base) });
    uart.init();
    *CONSOLE.lock() = Some(Console {
        uart,
        lines: Lines::new(),
    });
}

/// Base address of the console UART, if one is installed.
pub fn base() -> Option<usize> {
    CONSOLE.lock().as_ref().map(|c| c.uart.regs().base())
}

/// Prints to the console (nothing if there is none yet). A guest's
/// partial line on the terminal is ended first.
pub fn print(args: fmt::Arguments) {
    if let Some(c) = CONSOLE.lock().as_mut() {
        let Console { uart, lines } = c;
        lines.begin(HYPERVISOR, None, |b| raw_bytes(uart, b));
        let _ = uart.write_fmt(args);
        lines.end(HYPERVISOR, true);
    }
}

/// Prints before the MMU (and so the lock) may be used: writes straight to
/// the UART of kind `kind` at `base`. Only the boot CPU runs at that point.
///
/// # Safety
/// `base` must be the register block of a UART of kind `kind` that nobody
/// else is using.
pub unsafe fn early_print(base: usize, kind: UartKind, args: fmt::Arguments) {
    // SAFETY: forwarded from the caller.
    let mut uart = Uart::new(kind, unsafe { Mmio::new(base) });
    uart.init();
    let _ = uart.write_fmt(args);
}

/// Prints from a crash or panic: takes the console even if another CPU (or
/// the crashing code itself) holds its lock, since this CPU will not return.
pub fn emergency_print(args: fmt::Arguments) {
    let mut guard = CONSOLE.try_lock();
    if guard.is_none() {
        // A lock holder that crashed will never release it; spin briefly in
        // case another CPU is mid-line, then take it anyway.
        for _ in 0..1_000_000 {
            core::hint::spin_loop();
        }
        // SAFETY: this CPU is about to park; interleaving output with another
        // CPU is better than losing the crash report.
        unsafe { CONSOLE.force_unlock() };
        guard = CONSOLE.try_lock();
    }
    if let Some(c) = guard.as_mut().and_then(|g| g.as_mut()) {
        let _ = c.uart.write_fmt(args);
        c.uart.flush();
    }
}

/// The message for a console UART without a driver.
pub struct NoDriver<'a> {
    /// The console UART.
    pub uart: &'a crate::fdt::early::EarlyUart<'a>,
    /// Why it has no driver.
    pub why: platform::uart::UartError,
}

impl core::fmt::Display for NoDriver<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "partita: the console UART {} at {:#x} (compatible \"{}\"): {}; \
             it is left untouched and partita runs without a console (drivers:",
            self.uart.name, self.uart.base, self.uart.compatible, self.why
        )?;
        for c in platform::uart::known_compatibles() {
            write!(f, " {c}")?;
        }
        f.write_str(")")
    }
}

/// Prints to the hypervisor console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::print(format_args!($($arg)*)) };
}

/// Prints a line to the hypervisor console.
#[macro_export]
macro_rules! println {
    () => { $crate::console::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fdt::early::EarlyUart;
    use alloc::string::ToString;
    use platform::uart::UartError;

    #[test]
    fn the_no_driver_message_names_the_uart_and_the_drivers() {
        let uart = EarlyUart {
            name: "serial@9000000",
            base: 0x900_0000,
            compatible: "acme,mystery-uart",
            driver: Err(UartError::NoDriver),
        };
        let text = NoDriver {
            uart: &uart,
            why: UartError::NoDriver,
        }
        .to_string();
        assert!(
            text.starts_with(
                "partita: the console UART serial@9000000 at 0x9000000 (compatible \"acme,mystery-uart\"): \
                 no driver for any of its compatibles; it is left untouched and partita runs without a console \
                 (drivers: arm,pl011 arm,sbsa-uart ns16550a"
            ),
            "{text}"
        );
        assert!(text.ends_with("fsl,imx6q-uart)"), "{text}");
    }
}
