//! The hypervisor console: a PL011 behind a lock, `println!`, a `log`
//! backend with levels, and an emergency path for crash reports.

pub mod logger;
pub mod pl011;

use core::fmt::{self, Write};
use pl011::Pl011;
use spin::Mutex;

static CONSOLE: Mutex<Option<Pl011>> = Mutex::new(None);

/// Installs the console on the PL011 at `base` (mapped as device memory).
///
/// # Safety
/// `base` must be a PL011 register block, mapped, used by nothing else.
pub unsafe fn init(base: usize) {
    // SAFETY: forwarded from the caller.
    let uart = unsafe { Pl011::new(base) };
    uart.enable();
    *CONSOLE.lock() = Some(uart);
}

/// Base address of the console UART, if one is installed.
pub fn base() -> Option<usize> {
    CONSOLE.lock().as_ref().map(|u| u.base())
}

/// Prints to the console (nothing if there is none yet).
pub fn print(args: fmt::Arguments) {
    if let Some(uart) = CONSOLE.lock().as_mut() {
        let _ = uart.write_fmt(args);
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
    if let Some(uart) = guard.as_mut().and_then(|g| g.as_mut()) {
        let _ = uart.write_fmt(args);
        uart.flush();
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
