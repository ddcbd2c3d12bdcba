//! Buffers and the device around the requests: unknown types, short and
//! long buffers, batches and their sync, reset, the bypass config, the
//! fault queue, features and counters.

use super::*;
use crate::viommu::backend::BackendError;
use crate::viommu::events::EVENT_QUEUE_DEPTH;
use crate::viommu::fake::Call;
use crate::viommu::model::{ConfigError, MAX_RESPONSE_LEN, Response, ViommuConfig};
use crate::viommu::wire::probe::FaultReason;
use crate::viommu::wire::{Feature, RequestType};

#[test]
fn unknown_types_write_nothing() {
    let mut v = device();
    for t in [0u8, 6, 0x7f, 0xff] {
        let mut req = attach(1, EP_A).encode();
        req[0] = t;
        let c = v.handle_request(&req, 4);
        assert_eq!(c.response, Response::Nothing);
        assert_eq!(c.response.used_len(), 0);
        assert_eq!(c.kind, None);
    }
    assert_eq!(v.domain_ids().count(), 0);
    assert_eq!(v.counters().count(None, None), 4);
}

#[test]
fn short_and_oversized_buffers() {
    let mut v = device();
    let req = attach(1, EP_A).encode();
    // No room for the tail: nothing written, nothing done.
    for len in [0, 1, 3] {
        assert_eq!(v.handle_request(&req, len).response, Response::Nothing);
    }
    // A writable part the device will not allocate.
    assert_eq!(
        v.handle_request(&req, MAX_RESPONSE_LEN + 1).response,
        Response::Nothing
    );
    assert_eq!(
        v.handle_request(&req, usize::MAX).response,
        Response::Nothing
    );
    assert_eq!(v.domain_ids().count(), 0);
    // Readable part too short for the head or the type: IOERR.
    for short in [&[][..], &req[..1], &req[..3], &req[..19]] {
        let c = v.handle_request(short, 4);
        assert_eq!(
            c.response.status(),
            Some(Status::Ioerr),
            "{} bytes",
            short.len()
        );
    }
    assert_eq!(v.domain_ids().count(), 0);
    // A longer writable part: zeros, the tail at its end.
    let c = v.handle_request(&req, 16);
    assert_eq!(c.response.to_bytes(), [0u8; 16]);
    assert_eq!(c.response.used_len(), 16);
    assert_eq!(v.domain_of(EP_A), Some(1));
    // Trailing readable bytes are ignored.
    let mut long = attach(2, EP_B).encode();
    long.extend_from_slice(&[0xff; 40]);
    assert_eq!(
        v.handle_request(&long, 4).response.status(),
        Some(Status::Ok)
    );
}

#[test]
fn one_sync_per_batch() {
    let mut v = device();
    let batch = [
        (attach(1, EP_A).encode(), 4),
        (map(1, 0x1000, 0x1fff, RAM0, RW).encode(), 4),
        (map(1, 0x2000, 0x2fff, RAM0, RW).encode(), 4),
        (unmap(1, 0x1000, 0x1fff).encode(), 4),
    ];
    let out = v.process_batch(batch.iter().map(|(r, l)| (r.as_slice(), *l)));
    assert_eq!(out.sync, Ok(()));
    assert!(
        out.completions
            .iter()
            .all(|c| c.response.status() == Some(Status::Ok))
    );
    let calls = &v.backend().calls;
    assert_eq!(v.backend().count(|c| *c == Call::Sync), 1);
    assert_eq!(calls.last(), Some(&Call::Sync));
    check_invariants(&v);
}

#[test]
fn a_failed_sync_turns_revoking_successes_into_ioerr() {
    let mut v = device();
    send(&mut v, attach(1, EP_A));
    send(&mut v, attach(2, EP_B));
    send(&mut v, map(1, 0x1000, 0x1fff, RAM0, RW));
    v.backend_mut().fail_sync = Some(BackendError::Hardware);
    let batch = [
        unmap(1, 0x1000, 0x1fff),
        map(1, 0x3000, 0x3fff, RAM0, RW),
        detach(2, EP_B),
        attach(3, EP_A),
        map(9, 0x1000, 0x1fff, RAM0, RW),
    ];
    let out = v.process_batch(batch.iter().map(|r| (r.encode(), 4)));
    assert_eq!(out.sync, Err(BackendError::Hardware));
    let statuses: alloc::vec::Vec<_> = out
        .completions
        .iter()
        .map(|c| c.response.status())
        .collect();
    assert_eq!(
        statuses,
        [
            Some(Status::Ioerr),
            Some(Status::Ok),
            Some(Status::Ioerr),
            Some(Status::Ioerr),
            Some(Status::Noent)
        ]
    );
    let counters = v.counters();
    assert_eq!(counters.sync_failures, 1);
    assert_eq!(
        counters.count(Some(RequestType::Unmap), Some(Status::Ioerr)),
        1
    );
    assert_eq!(
        counters.count(Some(RequestType::Unmap), Some(Status::Ok)),
        0
    );
    // The state changes stand (the tables hold them).
    check_invariants(&v);
    assert_eq!(v.domain_of(EP_A), Some(3));
}

#[test]
fn reset_detaches_everything_and_keeps_bypass() {
    let mut v = device();
    v.set_config(0x24, 1, 1).expect("sync");
    send(&mut v, attach(1, EP_A));
    send(&mut v, attach_bypass(2, EP_B));
    send(&mut v, map(1, 0x1000, 0x1fff, RAM0, RW));
    v.report_fault(EP_A, 0x5000, true, false, FaultReason::Mapping);
    assert_eq!(v.reset(), Ok(()));
    check_invariants(&v);
    assert_eq!(v.domain_ids().count(), 0);
    assert_eq!(v.mapping_count(), 0);
    assert!(v.backend().bound.is_empty());
    assert!(v.backend().domains.is_empty());
    assert_eq!(v.pending_events(), 0);
    assert_eq!(v.read_config(0x24, 1), 1, "bypass survives reset");
    assert!(v.backend().global_bypass);
    assert_eq!(v.counters().resets, 1);
    // After reset the same IDs start over.
    assert_eq!(send(&mut v, attach(1, EP_A)), Status::Ok);
    assert_eq!(send(&mut v, map(1, 0x1000, 0x1fff, RAM0, RW)), Status::Ok);
}

#[test]
fn bypass_config_reaches_the_backend() {
    let mut v = device();
    assert_eq!(
        v.backend().calls,
        [Call::GlobalBypass(false)],
        "initial state told"
    );
    assert_eq!(v.read_config(0x24, 1), 0);
    v.set_config(0x24, 1, 1).expect("sync");
    assert!(v.backend().global_bypass);
    assert_eq!(
        v.backend().calls[1..],
        [Call::GlobalBypass(true), Call::Sync]
    );
    // Ignored writes: other fields, invalid values, no change.
    v.set_config(0x00, 8, 0).expect("ignored");
    v.set_config(0x24, 1, 7).expect("ignored");
    v.set_config(0x24, 1, 1).expect("ignored");
    assert_eq!(v.backend().calls.len(), 3);
    assert_eq!(v.read_config(0, 8), 0x4020_1000);
    v.backend_mut().fail_sync = Some(BackendError::Hardware);
    assert_eq!(v.set_config(0x24, 1, 0), Err(BackendError::Hardware));
    assert!(!v.backend().global_bypass);
    // Constructed with bypass on.
    let on = device_with(ViommuConfig {
        bypass: true,
        ..ViommuConfig::default()
    });
    assert!(on.backend().global_bypass);
    assert_eq!(on.read_config(0x24, 1), 1);
}

#[test]
fn config_space_reflects_the_parameters() {
    let v = device();
    assert_eq!(v.read_config(0x00, 8), 0x4020_1000);
    assert_eq!(v.read_config(0x08, 8), 0);
    assert_eq!(v.read_config(0x10, 8), u64::MAX);
    assert_eq!(v.read_config(0x18, 4), 1);
    assert_eq!(v.read_config(0x1c, 4), 1023);
    assert_eq!(v.read_config(0x20, 4), 512);
    let want = Feature::Version1.mask()
        | Feature::InputRange.mask()
        | Feature::DomainRange.mask()
        | Feature::MapUnmap.mask()
        | Feature::Probe.mask()
        | Feature::Mmio.mask()
        | Feature::BypassConfig.mask();
    assert_eq!(v.device_features(), want);
    assert_eq!(v.device_features() & Feature::Bypass.mask(), 0);
}

#[test]
fn bad_configs_are_refused() {
    let bad = |cfg| Viommu::new(fake(), cfg).err();
    let d = ViommuConfig::default();
    assert_eq!(
        bad(ViommuConfig {
            page_size_mask: 0,
            ..d
        }),
        Some(ConfigError::NoPageSize)
    );
    assert_eq!(
        bad(ViommuConfig {
            input_start: 2,
            input_end: 1,
            ..d
        }),
        Some(ConfigError::EmptyInputRange)
    );
    assert_eq!(
        bad(ViommuConfig {
            domain_start: 2,
            domain_end: 1,
            ..d
        }),
        Some(ConfigError::EmptyDomainRange)
    );
    assert_eq!(
        bad(ViommuConfig {
            probe_size: 8192,
            ..d
        }),
        Some(ConfigError::ProbeSizeTooLarge)
    );
}

#[test]
fn fault_reports_queue_in_order_and_overflow_is_counted() {
    let mut v = device();
    assert_eq!(v.next_event(), None);
    for i in 0..EVENT_QUEUE_DEPTH as u64 + 3 {
        v.report_fault(EP_A, i * PAGE, false, true, FaultReason::Mapping);
    }
    assert_eq!(v.pending_events(), EVENT_QUEUE_DEPTH);
    assert_eq!(v.counters().faults_dropped, 3);
    let first = v.next_event().expect("event");
    assert_eq!(first[0], FaultReason::Mapping as u8);
    assert_eq!(&first[4..8], &0x102u32.to_le_bytes());
    assert_eq!(&first[8..12], &EP_A.to_le_bytes());
    assert_eq!(&first[16..24], &0u64.to_le_bytes());
    let second = v.next_event().expect("event");
    assert_eq!(&second[16..24], &PAGE.to_le_bytes());
}

#[test]
fn a_dma_fault_names_domain_for_an_unattached_endpoint_and_mapping_otherwise() {
    let mut v = device();
    assert_eq!(send(&mut v, attach(1, EP_A)), Status::Ok);
    v.report_dma_fault(EP_A, 0x5000, true);
    v.report_dma_fault(EP_B, 0x6000, false);
    let a = v.next_event().expect("event");
    assert_eq!(a[0], FaultReason::Mapping as u8);
    assert_eq!(&a[8..12], &EP_A.to_le_bytes());
    assert_eq!(&a[4..8], &0x101u32.to_le_bytes(), "read, address valid");
    let b = v.next_event().expect("event");
    assert_eq!(
        b[0],
        FaultReason::Domain as u8,
        "EP_B is attached to nothing"
    );
    assert_eq!(&b[8..12], &EP_B.to_le_bytes());
    assert_eq!(&b[4..8], &0x102u32.to_le_bytes(), "write, address valid");
    assert_eq!(&b[16..24], &0x6000u64.to_le_bytes());
}

#[test]
fn every_type_and_status_has_a_counter_of_its_own() {
    // Each (type, status) cell, "other" and "none" included, counted a
    // different number of times, then each read back alone.
    use crate::viommu::counters::Counters;
    let kinds: Vec<Option<RequestType>> = RequestType::ALL
        .iter()
        .copied()
        .map(Some)
        .chain([None])
        .collect();
    let statuses: Vec<Option<Status>> = Status::ALL
        .iter()
        .copied()
        .map(Some)
        .chain([None])
        .collect();
    let mut c = Counters::default();
    let mut n = 0;
    for &k in &kinds {
        for &s in &statuses {
            n += 1;
            for _ in 0..n {
                c.record(k, s);
            }
        }
    }
    let mut n = 0;
    for &k in &kinds {
        for &s in &statuses {
            n += 1;
            assert_eq!(c.count(k, s), n, "{k:?} {s:?}");
        }
    }
    assert_eq!(c.total(), n * (n + 1) / 2);
}

#[test]
fn counters_count_and_print() {
    let mut v = device();
    send(&mut v, attach(1, EP_A));
    send(&mut v, attach(1, EP_FOREIGN));
    send(&mut v, map(1, 0x1000, 0x1fff, RAM0, RW));
    v.handle_request(&[0x42, 0, 0, 0], 4);
    let c = v.counters();
    assert_eq!(c.count(Some(RequestType::Attach), Some(Status::Ok)), 1);
    assert_eq!(c.count(Some(RequestType::Attach), Some(Status::Noent)), 1);
    assert_eq!(c.count(Some(RequestType::Map), Some(Status::Ok)), 1);
    assert_eq!(c.count(None, None), 1);
    assert_eq!(c.total(), 4);
    let text = alloc::format!("{c}");
    assert!(text.starts_with("request"));
    assert!(text.contains("attach"));
    assert!(text.contains("other"));
    assert_eq!(text.lines().count(), 8);
}
