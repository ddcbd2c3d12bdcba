//! `cargo xtask fuzz [--minutes N]`: the long randomized run of the
//! virtio-iommu backend (issue 12). The host test
//! `random_requests_keep_mappings_owned_and_tables_within_budget` drives
//! batches of random ATTACH/DETACH/MAP/UNMAP requests through the real
//! model, backend and page tables with invariants checked after every
//! batch; CI runs it briefly with a fixed seed. This runs it again and
//! again with fresh seeds and many more batches until the time is up, and
//! on a failure prints the seed that reproduces it.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::XtaskError;
use crate::process;
use crate::workspace::Workspace;

/// The test the run repeats.
const TEST: &str =
    "vm::tests::io_budget::random_requests_keep_mappings_owned_and_tables_within_budget";
/// Batches per round.
const ITERATIONS: u64 = 2_000_000;

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
        eprintln!("fuzz: round {rounds}, seed {seed} ({ITERATIONS} batches)");
        let run = process::run(
            ws.cargo()
                .args([
                    "test",
                    "-p",
                    "hypervisor",
                    "--lib",
                    "--release",
                    "--",
                    TEST,
                    "--exact",
                ])
                .env("PARTITA_FUZZ_ITERS", ITERATIONS.to_string())
                .env("PARTITA_FUZZ_SEED", seed.to_string()),
        );
        if let Err(e) = run {
            eprintln!(
                "fuzz: FAILED with seed {seed}; reproduce with\n  PARTITA_FUZZ_SEED={seed} PARTITA_FUZZ_ITERS={ITERATIONS} cargo test -p hypervisor --lib --release -- {TEST} --exact"
            );
            return Err(e.into());
        }
        rounds += 1;
    }
    println!("fuzz: {rounds} round(s) of {ITERATIONS} batches passed in {minutes} minute(s)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::TEST;

    /// The test the run repeats exists under that path (a renamed test
    /// would make every round run nothing).
    #[test]
    fn the_repeated_test_exists() {
        let (module, name) = TEST.rsplit_once("::").unwrap();
        let file = module.replace("::", "/");
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../hypervisor/src")
            .join(format!("{file}.rs"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(&format!("fn {name}()")), "{}", path.display());
    }
}
