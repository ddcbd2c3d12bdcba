//! `cargo xtask fuzz [--minutes N]`: the long randomized runs of the
//! virtio-iommu backend (issue 12). The host tests [`TESTS`] drive batches
//! of random ATTACH/DETACH/MAP/UNMAP requests through the real model,
//! backend and page tables (the second also through the SMMU manager and
//! driver over a fake SMMU that now and then hangs or slows down, with
//! `bypass` writes) with invariants checked after every batch; CI runs
//! them briefly with fixed seeds. This runs them again and again with
//! fresh seeds and many more batches until the time is up, and on a
//! failure prints the seed that reproduces it.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::XtaskError;
use crate::process;
use crate::workspace::Workspace;

/// The tests the run repeats, and the batches of each per round (the
/// second waits out a hung command queue now and then: about 7 ms a
/// batch).
const TESTS: [(&str, u64); 2] = [
    (
        "vm::tests::io_budget::random_requests_keep_mappings_owned_and_tables_within_budget",
        2_000_000,
    ),
    (
        "vm::tests::fail_closed::random_requests_and_smmu_failures_never_leave_a_stream_on_freed_tables",
        10_000,
    ),
];

/// Runs rounds of [`TEST`] for `minutes`.
pub fn fuzz(ws: &Workspace, minutes: u64) -> Result<(), XtaskError> {
    let deadline = Instant::now() + Duration::from_secs(minutes * 60);
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut rounds = 0u64;
    while Instant::now() < deadline {
        // xorshift: a fresh, reproducible seed per round.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        for (test, iterations) in TESTS {
            eprintln!("fuzz: round {rounds}, seed {seed}, {iterations} batches of {test}");
            let run = process::run(
                ws.cargo()
                    .args([
                        "test",
                        "-p",
                        "hypervisor",
                        "--lib",
                        "--release",
                        "--",
                        test,
                        "--exact",
                    ])
                    .env("PARTITA_FUZZ_ITERS", iterations.to_string())
                    .env("PARTITA_FUZZ_SEED", seed.to_string()),
            );
            if let Err(e) = run {
                eprintln!(
                    "fuzz: FAILED with seed {seed}; reproduce with\n  PARTITA_FUZZ_SEED={seed} PARTITA_FUZZ_ITERS={iterations} cargo test -p hypervisor --lib --release -- {test} --exact"
                );
                return Err(e.into());
            }
        }
        rounds += 1;
    }
    println!("fuzz: {rounds} round(s) passed in {minutes} minute(s)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::TESTS;

    /// The tests the run repeats exist under those paths (a renamed test
    /// would make every round run nothing).
    #[test]
    fn the_repeated_tests_exist() {
        for (test, _) in TESTS {
            let (module, name) = test.rsplit_once("::").unwrap();
            let file = module.replace("::", "/");
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../hypervisor/src")
                .join(format!("{file}.rs"));
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.contains(&format!("fn {name}()")), "{}", path.display());
        }
    }
}
