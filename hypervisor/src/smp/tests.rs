//! Which CPUs are started, in which order, and the wait for each.

use super::*;
use crate::arch::fake;
use alloc::string::ToString;

fn cpu(mpidr: u64, method: Option<&str>) -> DtCpu {
    DtCpu {
        path: alloc::format!("/cpus/cpu@{mpidr:x}"),
        mpidr,
        enable_method: method.map(ToString::to_string),
    }
}

/// A starter whose CPUs come up at once unless listed as dead (started,
/// never report) or refused (the firmware says no).
struct Fake<'a> {
    online: &'a OnlineCount,
    started: Vec<(usize, u64)>,
    dead: Vec<u64>,
    refused: Vec<u64>,
}

impl<'a> Fake<'a> {
    fn new(online: &'a OnlineCount) -> Self {
        Fake {
            online,
            started: Vec::new(),
            dead: Vec::new(),
            refused: Vec::new(),
        }
    }
}

impl CpuStarter for Fake<'_> {
    type Error = &'static str;
    fn start(&mut self, index: usize, mpidr: u64) -> Result<(), &'static str> {
        if self.refused.contains(&mpidr) {
            return Err("DENIED");
        }
        self.started.push((index, mpidr));
        if !self.dead.contains(&mpidr) {
            self.online.report(index, mpidr);
        }
        Ok(())
    }
}

#[test]
fn the_boot_cpu_index_is_its_place_in_the_dt() {
    let cpus = [cpu(0x100, None), cpu(0x0, None), cpu(0x1, None)];
    assert_eq!(boot_index(&cpus, 0x0), 1);
    assert_eq!(boot_index(&cpus, 0x100), 0);
    assert_eq!(boot_index(&cpus, 0x7), 0, "not in the DT");
}

#[test]
fn every_other_cpu_is_started_in_dt_order() {
    fake::reset();
    let cpus = [
        cpu(0x0, Some("psci")),
        cpu(0x1, Some("psci")),
        cpu(0x100, None),
        cpu(0x101, Some("psci")),
    ];
    let online = OnlineCount::new();
    online.report(1, 0x1); // this CPU
    let mut s = Fake::new(&online);
    let outcomes = start_secondaries(&cpus, 0x1, &mut s, &online);
    assert_eq!(s.started, [(0, 0x0), (2, 0x100), (3, 0x101)]);
    assert_eq!(
        outcomes,
        [
            (0, Outcome::Online),
            (2, Outcome::Online),
            (3, Outcome::Online)
        ]
    );
    assert_eq!(online.get(), 4);
}

#[test]
fn cpus_started_otherwise_than_by_psci_stay_off() {
    fake::reset();
    let cpus = [
        cpu(0x0, None),
        cpu(0x1, Some("spin-table")),
        cpu(0x2, Some("psci")),
    ];
    let online = OnlineCount::new();
    let mut s = Fake::new(&online);
    let outcomes = start_secondaries(&cpus, 0x0, &mut s, &online);
    assert_eq!(s.started, [(2, 0x2)]);
    assert_eq!(outcomes, [(1, Outcome::NotPsci), (2, Outcome::Online)]);
}

#[test]
fn a_refusal_or_a_silent_cpu_does_not_stop_the_others() {
    fake::reset();
    // 100 ms per clock read: the 2 s wait ends after about 20 polls.
    fake::with(|s| s.tick_us = 100_000);
    let cpus = [
        cpu(0x0, None),
        cpu(0x1, None),
        cpu(0x2, None),
        cpu(0x3, None),
    ];
    let online = OnlineCount::new();
    let mut s = Fake::new(&online);
    s.refused.push(0x1);
    s.dead.push(0x2);
    let outcomes = start_secondaries(&cpus, 0x0, &mut s, &online);
    assert_eq!(
        outcomes,
        [
            (1, Outcome::Refused),
            (2, Outcome::Timeout),
            (3, Outcome::Online)
        ]
    );
    assert_eq!(s.started, [(2, 0x2), (3, 0x3)]);
    // The silent CPU was waited for the whole timeout, no longer.
    let waited = fake::with(|s| s.now_us);
    assert!(
        (ONLINE_TIMEOUT_US..ONLINE_TIMEOUT_US + 500_000).contains(&waited),
        "{waited}"
    );
}

#[test]
fn a_cpu_that_reports_late_is_waited_for() {
    fake::reset();
    // The fake clock stands still: only the report ends the wait.
    fake::with(|s| s.tick_us = 0);
    /// Leaves the report to another thread.
    struct Late;
    impl CpuStarter for Late {
        type Error = &'static str;
        fn start(&mut self, _: usize, _: u64) -> Result<(), &'static str> {
            Ok(())
        }
    }
    let cpus = [cpu(0x0, None), cpu(0x1, None)];
    let online = OnlineCount::new();
    std::thread::scope(|scope| {
        let online = &online;
        scope.spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(5));
            online.report(1, 0x1);
        });
        let outcomes = start_secondaries(&cpus, 0x0, &mut Late, online);
        assert_eq!(outcomes, [(1, Outcome::Online)]);
    });
}
