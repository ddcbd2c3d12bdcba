//! A seeded property test: random request sequences (well-formed, mutated
//! and garbage, with random buffer lengths), random backend failures,
//! resets, config writes and faults. After every step: nothing panicked,
//! the model matches the fake, every backend mapping lies in guest memory
//! of its type, and every response has the length the rules give.

use super::*;
use crate::viommu::backend::BackendError;
use crate::viommu::model::{MAX_RESPONSE_LEN, Response, ViommuConfig};
use crate::viommu::wire::RequestType;
use crate::viommu::wire::probe::FaultReason;
use crate::viommu::wire::request::{Attach, Probe, Unmap};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::test_rng::Rng;

fn domain(r: &mut Rng) -> u32 {
    let any = r.next() as u32;
    if r.chance(90) {
        r.pick(&[1, 2, 3, 4, 1, 2])
    } else {
        r.pick(&[0, 1023, 1024, u32::MAX, any])
    }
}

/// A domain that exists, most of the time.
fn live_domain(r: &mut Rng, live: &[u32]) -> u32 {
    if live.is_empty() || r.chance(20) {
        domain(r)
    } else {
        r.pick(live)
    }
}

fn endpoint(r: &mut Rng) -> u32 {
    let any = r.next() as u32;
    if r.chance(90) {
        r.pick(&[EP_A, EP_B, EP_MSI])
    } else {
        r.pick(&[EP_FOREIGN, 0, any])
    }
}

fn iova(r: &mut Rng) -> u64 {
    match r.below(10) {
        0 => MSI_START + r.below(4) * PAGE,
        1 => r.next(),
        2 => r.below(512) * PAGE + r.below(PAGE),
        _ => r.below(512) * PAGE,
    }
}

fn phys(r: &mut Rng) -> u64 {
    match r.below(10) {
        0 => DEV_MMIO + r.below(DEV_LEN / PAGE + 2) * PAGE,
        1 => RAM1 - r.below(8) * PAGE,
        2 => RAM1 + RAM_LEN - r.below(8) * PAGE,
        3 => r.next() & !0xfff,
        4 => r.below(0x1_0000) * PAGE,
        _ => RAM0 + r.below(RAM_LEN / PAGE) * PAGE,
    }
}

fn span(r: &mut Rng) -> u64 {
    match r.below(10) {
        0 => r.next(),
        1 => r.below(PAGE * 4),
        _ => (1 + r.below(16)) * PAGE,
    }
}

/// Flags that usually fit the target's memory type.
fn flags(r: &mut Rng, phys: u64) -> MapFlags {
    if r.chance(10) {
        return MapFlags(if r.chance(30) {
            r.next() as u32
        } else {
            r.below(8) as u32
        });
    }
    let device = (DEV_MMIO..DEV_MMIO + DEV_LEN).contains(&phys);
    MapFlags(if device {
        MapFlags::WRITE | MapFlags::MMIO
    } else {
        r.pick(&[RW.0, RW.0, MapFlags::READ])
    })
}

fn request(r: &mut Rng, live: &[u32]) -> Vec<u8> {
    let mut bytes = match r.below(12) {
        0 | 1 => {
            let flags = if r.chance(5) {
                r.next() as u32
            } else {
                u32::from(r.chance(20))
            };
            let reserved = if r.chance(3) { [1, 0, 0, 0] } else { [0; 4] };
            Request::Attach(Attach {
                domain: domain(r),
                endpoint: endpoint(r),
                flags,
                reserved,
            })
            .encode()
        }
        2 => detach(live_domain(r, live), endpoint(r)).encode(),
        3..=7 => {
            let start = iova(r);
            let end = start.wrapping_add(span(r)).wrapping_sub(1);
            let phys = phys(r);
            map(live_domain(r, live), start, end, phys, flags(r, phys)).encode()
        }
        8 | 9 => {
            let start = iova(r);
            let end = start
                .wrapping_add(span(r).saturating_mul(r.below(4)))
                .wrapping_sub(1);
            let reserved = if r.chance(3) { [0, 0, 0, 9] } else { [0; 4] };
            Request::Unmap(Unmap {
                domain: live_domain(r, live),
                virt_start: start,
                virt_end: end,
                reserved,
            })
            .encode()
        }
        10 => Request::Probe(Probe {
            endpoint: endpoint(r),
        })
        .encode(),
        _ => (0..r.below(80)).map(|_| r.next() as u8).collect(),
    };
    if r.chance(10) {
        match r.below(3) {
            0 if !bytes.is_empty() => {
                let i = r.below(bytes.len() as u64) as usize;
                bytes[i] ^= 1 << r.below(8);
            }
            1 => bytes.truncate(r.below(bytes.len() as u64 + 1) as usize),
            _ => bytes.extend((0..r.below(16)).map(|_| r.next() as u8)),
        }
    }
    bytes
}

fn resp_len(r: &mut Rng, req: &[u8], probe_size: u32) -> usize {
    if r.chance(8) {
        return match r.below(3) {
            0 => r.below(8) as usize,
            1 => r.below(MAX_RESPONSE_LEN as u64 + 64) as usize,
            _ => r.next() as usize,
        };
    }
    if req.first() == Some(&(RequestType::Probe as u8)) {
        probe_size as usize + 4
    } else {
        4
    }
}

fn inject_failures(r: &mut Rng, v: &mut Viommu<FakeBackend>) {
    let errors = [
        BackendError::NoMemory,
        BackendError::NoResources,
        BackendError::Hardware,
    ];
    let b = v.backend_mut();
    if r.chance(5) {
        b.fail_create = Some(r.pick(&errors));
    }
    if r.chance(5) {
        b.fail_map = Some(r.pick(&errors));
        b.map_ok_before = r.below(3) as usize;
    }
    if r.chance(3) {
        b.fail_unmap = Some(r.pick(&errors));
    }
    if r.chance(3) {
        b.fail_sync = Some(r.pick(&errors));
    }
}

fn check_response(req: &[u8], len: usize, response: &Response, probe_size: u32) {
    match response {
        Response::Written(bytes) => assert_eq!(bytes.len(), len, "written length"),
        Response::Status { len: n, .. } => assert_eq!(*n, len, "written length"),
        Response::Nothing => {
            let kind = req.first().copied().and_then(RequestType::from_u8);
            let allowed = !(4..=MAX_RESPONSE_LEN).contains(&len)
                || kind.is_none() && req.len() >= 4
                || kind == Some(RequestType::Probe) && probe_size == 0;
            assert!(allowed, "nothing written for {req:02x?} / {len}");
        }
    }
}

fn run(seed: u64, steps: usize) {
    let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let cfg = ViommuConfig {
        probe_size: r.pick(&[0, 32, 512]),
        bypass: r.chance(50),
        max_mappings: r.pick(&[4, 64, 1 << 16]),
        ..ViommuConfig::default()
    };
    let mut v = device_with(cfg);
    // What the counters must hold: every completion's type (as the first
    // byte names it) and final status.
    let mut tally: BTreeMap<(Option<u8>, Option<u8>), u64> = BTreeMap::new();
    for _ in 0..steps {
        match r.below(100) {
            0 => {
                let _ = v.reset();
                assert_eq!(v.domain_ids().count(), 0);
            }
            1..=3 => {
                let _ = v.set_config(
                    r.below(48) as usize,
                    r.pick(&[1, 2, 3, 4, 8]),
                    r.next() & 0x1_0000_0101,
                );
            }
            4..=6 => {
                let reason = r.pick(&[
                    FaultReason::Unknown,
                    FaultReason::Domain,
                    FaultReason::Mapping,
                ]);
                v.report_fault(
                    endpoint(&mut r),
                    r.next(),
                    r.chance(50),
                    r.chance(50),
                    reason,
                );
                if r.chance(50) {
                    let _ = v.next_event();
                }
            }
            _ => {
                inject_failures(&mut r, &mut v);
                let live: Vec<u32> = v.domain_ids().collect();
                let batch: Vec<(Vec<u8>, usize)> = (0..1 + r.below(8))
                    .map(|_| {
                        let req = request(&mut r, &live);
                        let len = resp_len(&mut r, &req, cfg.probe_size);
                        (req, len)
                    })
                    .collect();
                let out = v.process_batch(batch.iter().map(|(q, l)| (q.as_slice(), *l)));
                assert_eq!(out.completions.len(), batch.len());
                for ((req, len), c) in batch.iter().zip(&out.completions) {
                    check_response(req, *len, &c.response, cfg.probe_size);
                    // The type is decoded once, by the parse or (for a
                    // request that does not parse) from its first byte:
                    // always what the first byte names.
                    let kind = req.first().copied().and_then(RequestType::from_u8);
                    assert_eq!(c.kind, kind, "type of {req:02x?} / {len}");
                    let key = (kind.map(|k| k as u8), c.response.status().map(|s| s as u8));
                    *tally.entry(key).or_default() += 1;
                }
            }
        }
        // Clear leftover one-shot failures so they do not leak into reset.
        let b = v.backend_mut();
        b.fail_create = None;
        b.fail_map = None;
        b.fail_unmap = None;
        b.fail_sync = None;
        b.calls.clear();
        check_invariants(&v);
    }
    let kinds = RequestType::ALL.map(Some);
    for kind in kinds.iter().chain([&None]) {
        let statuses = Status::ALL.map(Some);
        for status in statuses.iter().chain([&None]) {
            let key = (kind.map(|k| k as u8), status.map(|s| s as u8));
            let want = tally.get(&key).copied().unwrap_or(0);
            assert_eq!(
                v.counters().count(*kind, *status),
                want,
                "{kind:?} {status:?}"
            );
        }
    }
}

#[test]
fn random_sequences_keep_the_invariants() {
    for seed in 0..400 {
        run(seed, 60);
    }
}

#[test]
fn long_sequences_keep_the_invariants() {
    for seed in 1000..1010 {
        run(seed, 2000);
    }
}
