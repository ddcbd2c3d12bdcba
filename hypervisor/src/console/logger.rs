//! A `log` backend on the console: `[   1.234567] LEVEL message`, with the
//! time since boot from the architected counter.

use log::{LevelFilter, Log, Metadata, Record};

struct ConsoleLogger;

static LOGGER: ConsoleLogger = ConsoleLogger;

impl Log for ConsoleLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let us = uptime_us();
        super::print(format_args!(
            "[{:5}.{:06}] {:5} {}\n",
            us / 1_000_000,
            us % 1_000_000,
            record.level(),
            record.args()
        ));
    }

    fn flush(&self) {}
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
fn uptime_us() -> u64 {
    crate::arch::aarch64::cpu::uptime_us()
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
fn uptime_us() -> u64 {
    0
}

/// Installs the console logger with the given maximum level.
pub fn init(level: LevelFilter) {
    // A second call only changes the level.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
