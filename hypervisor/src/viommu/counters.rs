//! Per-device counters: requests by type and status, fault reports, sync
//! failures and resets, printed as a small table when the guest stops.

use super::wire::{RequestType, Status};
use core::fmt;

/// Rows: the five request types, then "other" (unknown or no type).
pub(crate) const ROWS: usize = RequestType::ALL.len() + 1;
/// Columns: the nine statuses, then "none" (nothing written).
const COLS: usize = Status::ALL.len() + 1;

/// Counters of one device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    requests: [[u64; COLS]; ROWS],
    /// Fault reports queued for the eventq.
    pub faults_reported: u64,
    /// Fault reports dropped because the queue was full.
    pub faults_dropped: u64,
    /// Backend syncs that failed.
    pub sync_failures: u64,
    /// Device resets.
    pub resets: u64,
}

/// The row of `kind` in per-type tables ([`ROWS`] of them).
pub(crate) fn row(kind: Option<RequestType>) -> usize {
    kind.map_or(ROWS - 1, |k| k as usize - 1)
}

fn col(status: Option<Status>) -> usize {
    status.map_or(COLS - 1, |s| s as usize)
}

impl Counters {
    /// Counts one request (`status` `None`: nothing was written). A plain
    /// add: one request at a time cannot bring a 64-bit count to 2^64 (at
    /// one request per nanosecond, 584 years).
    #[inline(always)]
    pub fn record(&mut self, kind: Option<RequestType>, status: Option<Status>) {
        if let Some(cell) = self.cell(kind, status) {
            *cell = cell.wrapping_add(1);
        }
    }

    /// Requests of `kind` answered with `status`.
    pub fn count(&self, kind: Option<RequestType>, status: Option<Status>) -> u64 {
        self.requests
            .get(row(kind))
            .and_then(|r| r.get(col(status)))
            .copied()
            .unwrap_or(0)
    }

    /// All requests counted.
    pub fn total(&self) -> u64 {
        self.requests.iter().flatten().sum()
    }

    /// Moves one request of `kind` from `from` to `to` (a status changed
    /// after the fact).
    pub(crate) fn restate(&mut self, kind: Option<RequestType>, from: Status, to: Status) {
        if let Some(cell) = self.cell(kind, Some(from)) {
            *cell = cell.saturating_sub(1);
        }
        self.record(kind, Some(to));
    }

    #[inline(always)]
    fn cell(&mut self, kind: Option<RequestType>, status: Option<Status>) -> Option<&mut u64> {
        self.requests.get_mut(row(kind))?.get_mut(col(status))
    }
}

impl fmt::Display for Counters {
    /// A table: one row per request type, one column per status.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<7}", "request")?;
        for s in Status::ALL {
            write!(f, " {:>6}", s.name())?;
        }
        writeln!(f, " {:>6}", "none")?;
        let kinds = RequestType::ALL.map(Some);
        for kind in kinds.iter().chain(core::iter::once(&None)) {
            write!(f, "{:<7}", kind.map_or("other", RequestType::name))?;
            for s in Status::ALL {
                write!(f, " {:>6}", self.count(*kind, Some(s)))?;
            }
            writeln!(f, " {:>6}", self.count(*kind, None))?;
        }
        write!(
            f,
            "faults reported {}, dropped {}; sync failures {}; resets {}",
            self.faults_reported, self.faults_dropped, self.sync_failures, self.resets
        )
    }
}
