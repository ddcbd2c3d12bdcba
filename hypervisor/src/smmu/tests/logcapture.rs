//! The lines a test logs, captured per thread: a `log` backend installed
//! once for the test binary that keeps what the capturing thread logs and
//! drops everything else.

extern crate std;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use log::{LevelFilter, Log, Metadata, Record};

std::thread_local! {
    static LINES: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

struct Capture;

static CAPTURE: Capture = Capture;

impl Log for Capture {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }

    fn log(&self, record: &Record) {
        LINES.with(|l| {
            if let Some(lines) = l.borrow_mut().as_mut() {
                lines.push(format!("{} {}", record.level(), record.args()));
            }
        });
    }

    fn flush(&self) {}
}

/// Runs `f` and returns what it logged on this thread, one `LEVEL message`
/// string per record.
pub fn capture<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    static INIT: spin::Once = spin::Once::new();
    INIT.call_once(|| {
        let _ = log::set_logger(&CAPTURE);
        log::set_max_level(LevelFilter::Trace);
    });
    LINES.with(|l| *l.borrow_mut() = Some(Vec::new()));
    let out = f();
    let lines = LINES.with(|l| l.borrow_mut().take()).unwrap_or_default();
    (out, lines)
}
