//! partita heartbeat guest: a bare-metal arm64 `Image` that keeps a rhythm
//! beside the hostile guest of `tests/tests/hostile.rs` and reports whether
//! it held.
//!
//! It has no console (the one PL011 is the hostile guest's). Every
//! [`PERIOD_MS`] it wakes (polling the virtual counter, CNTVCT_EL0) and makes
//! one hypercall (PSCI_VERSION, a trap to EL2 and back); it measures each
//! interval between consecutive wake-ups and the time of each hypercall.
//! After `heartbeat.seconds` (from its command line, default
//! [`DEFAULT_SECONDS`]) it reports the verdict through PSCI, the only
//! channel it has:
//!
//! - every interval within `heartbeat.bound_ms` (default [`DEFAULT_BOUND_MS`])
//!   and every hypercall answered with a PSCI version: `SYSTEM_OFF`, which
//!   the hypervisor logs as `guest 'heartbeat' powered off`;
//! - otherwise (or on any exception): `SYSTEM_RESET`, which with
//!   `on_reset = "poweroff"` in its configuration the hypervisor logs as
//!   `guest 'heartbeat' reset; on_reset = poweroff`.
//!
//! A stall of the hypervisor on this guest's CPU (a lock held by another
//! guest's trap, a flood of interrupts or log lines, a crash) shows up as a
//! long interval, or as no verdict at all.

#![no_std]
#![no_main]

use bench_guest::fdt;
use bench_guest::rt::{self, PSCI_VERSION, freq, now, power_off, reset};

/// Default run time in seconds (`heartbeat.seconds=N` overrides it).
const DEFAULT_SECONDS: u64 = 20;
/// Default bound on an interval between two beats, in milliseconds
/// (`heartbeat.bound_ms=N` overrides it). Generous for a loaded host
/// under TCG; a stall the hypervisor causes (a lock spun on for seconds,
/// a one-second stop timeout) exceeds it.
const DEFAULT_BOUND_MS: u64 = 500;
/// Time between two beats.
const PERIOD_MS: u64 = 10;

/// Any exception: the rhythm cannot be vouched for.
#[unsafe(no_mangle)]
extern "C" fn exception_entry() -> ! {
    reset();
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    reset();
}

/// `key=N` of the command line, or `default`.
fn param(dt: Option<fdt::Fdt>, key: &[u8], default: u64) -> u64 {
    dt.and_then(|d| d.bootargs())
        .and_then(|b| fdt::arg(b, key))
        .and_then(|v| v.decimal())
        .unwrap_or(default)
}

#[unsafe(no_mangle)]
extern "C" fn guest_main(dtb: usize) -> ! {
    let dt = fdt::Fdt::new(dtb);
    if let Some(smc) = dt.and_then(|d| d.psci_method_is_smc()) {
        rt::set_psci_smc(smc);
    }
    let ms = freq() / 1000;
    let seconds = param(dt, b"heartbeat.seconds", DEFAULT_SECONDS);
    let bound = param(dt, b"heartbeat.bound_ms", DEFAULT_BOUND_MS) * ms;
    let period = PERIOD_MS * ms;
    let start = now();
    let end = start + seconds * 1000 * ms;
    let (mut last, mut next) = (start, start + period);
    let mut bad = 0u64;
    loop {
        let t = now();
        if t < next {
            core::hint::spin_loop();
            continue;
        }
        if t - last > bound {
            bad += 1;
        }
        let version = rt::psci_call(PSCI_VERSION);
        let back = now();
        if back - t > bound || version >> 16 == 0 || version >> 31 != 0 {
            bad += 1;
        }
        last = back;
        next = back + period;
        if back >= end {
            break;
        }
    }
    if bad == 0 { power_off() } else { reset() }
}
