//! A guest's budget of console lines: what a guest can make the hypervisor
//! print (an access to an unclaimed address, an undefined system register,
//! an exception it cannot take) is limited per guest, so that a guest in a
//! loop cannot flood the serial line or hold the console lock. Lines over
//! the budget are counted, and the count is printed with the next line
//! that passes.

use crate::arch::{Arch, Cpu};
use spin::Mutex;

/// Lines a guest may cause in a burst.
pub const BURST: u32 = 20;
/// Lines per second a guest may cause in the long run.
pub const PER_SECOND: u64 = 5;

#[derive(Debug)]
struct State {
    /// Lines that may still be printed now.
    tokens: u32,
    /// When the tokens were last topped up (µs).
    since_us: u64,
    /// Lines dropped since the last one printed.
    suppressed: u64,
}

/// One guest's budget.
#[derive(Debug)]
pub struct LogBudget {
    state: Mutex<State>,
}

impl Default for LogBudget {
    fn default() -> Self {
        LogBudget {
            state: Mutex::new(State {
                tokens: BURST,
                since_us: Cpu::uptime_us(),
                suppressed: 0,
            }),
        }
    }
}

impl LogBudget {
    /// Takes one line from the budget: `Some(n)` when the line may be
    /// printed (`n` lines were suppressed before it), `None` when it is
    /// over budget (and counted).
    pub fn take(&self) -> Option<u64> {
        let now = Cpu::uptime_us();
        let mut s = self.state.lock();
        let earned = now.saturating_sub(s.since_us).saturating_mul(PER_SECOND) / 1_000_000;
        if earned > 0 {
            s.tokens = (u64::from(s.tokens) + earned).min(u64::from(BURST)) as u32;
            s.since_us = now;
        }
        if s.tokens == 0 {
            s.suppressed += 1;
            return None;
        }
        s.tokens -= 1;
        Some(core::mem::take(&mut s.suppressed))
    }
}

/// Logs a warning caused by guest `$g` within its line budget.
macro_rules! guest_warn {
    ($g:expr, $($arg:tt)+) => {
        if let Some(dropped) = $g.log_budget.take() {
            if dropped > 0 {
                log::warn!(
                    "guest '{}': {dropped} more message(s) suppressed (over {} a second)",
                    $g.name(),
                    $crate::vm::ratelimit::PER_SECOND
                );
            }
            log::warn!($($arg)+);
        }
    };
}
pub(crate) use guest_warn;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::fake;

    #[test]
    fn a_burst_then_the_steady_rate_and_a_count_of_what_was_dropped() {
        fake::reset();
        fake::with(|s| s.tick_us = 0);
        let b = LogBudget::default();
        for _ in 0..BURST {
            assert_eq!(b.take(), Some(0));
        }
        assert_eq!(b.take(), None);
        assert_eq!(b.take(), None);
        // A second later: PER_SECOND more, the first says 2 were dropped.
        fake::with(|s| s.now_us += 1_000_000);
        assert_eq!(b.take(), Some(2));
        for _ in 1..PER_SECOND {
            assert_eq!(b.take(), Some(0));
        }
        assert_eq!(b.take(), None);
        // A long quiet time refills only up to the burst.
        fake::with(|s| s.now_us += 3_600_000_000);
        for _ in 0..BURST {
            assert!(b.take().is_some());
        }
        assert_eq!(b.take(), None);
    }
}
