//! The hypervisor console: a PL011 behind a lock, `println!`, a `log`
//! backend with levels, an emergency path for crash reports, and the
//! guests' emulated consoles sharing the line ([`write_guest`], [`lines`]):
//! one lock, whole lines, each guest's line tagged `[name] ` when
//! several guests share the line; the guest with the focus ([`focus`])
//! gets what is typed (see `vm::console`).

pub mod keys;
pub mod lines;
pub mod logger;
pub mod pl011;

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use lines::{HYPERVISOR, Lines};
use pl011::Pl011;
use spin::Mutex;

struct Console {
    uart: Pl011,
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

fn raw_bytes(uart: &Pl011, bytes: &[u8]) {
    for &b in bytes {
        uart.put_byte(b);
    }
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

/// Installs the console on the PL011 at `base` (mapped as device memory).
///
/// # Safety
/// `base` must be a PL011 register block, mapped, used by nothing else.
pub unsafe fn init(base: usize) {
    // SAFETY: forwarded from the caller.
    let uart = unsafe { Pl011::new(base) };
    uart.enable();
    *CONSOLE.lock() = Some(Console {
        uart,
        lines: Lines::new(),
    });
}

/// Base address of the console UART, if one is installed.
pub fn base() -> Option<usize> {
    CONSOLE.lock().as_ref().map(|c| c.uart.base())
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
/// the PL011 at `base`. Only the boot CPU runs at that point.
///
/// # Safety
/// `base` must be a PL011 register block nobody else is using.
pub unsafe fn early_print(base: usize, args: fmt::Arguments) {
    // SAFETY: forwarded from the caller.
    let mut uart = unsafe { Pl011::new(base) };
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
