//! UNMAP: the spec's seven examples, split ranges, every status.

use super::*;
use crate::viommu::backend::BackendError;
use crate::viommu::wire::request::Unmap;

fn ready() -> Viommu<FakeBackend> {
    let mut v = device();
    assert_eq!(send(&mut v, attach(1, EP_A)), Status::Ok);
    v
}

/// Page `n` as an IOVA.
fn p(n: u64) -> u64 {
    n * PAGE
}

/// Maps pages `first..=last` of domain 1.
fn map_pages(v: &mut Viommu<FakeBackend>, first: u64, last: u64) {
    let m = map(1, p(first), p(last + 1) - 1, RAM0 + p(first), RW);
    assert_eq!(send(v, m), Status::Ok);
}

fn unmap_pages(v: &mut Viommu<FakeBackend>, first: u64, last: u64) -> Status {
    send(v, unmap(1, p(first), p(last + 1) - 1))
}

#[test]
fn the_spec_examples() {
    // (1) nothing mapped: OK, nothing unmapped.
    let mut v = ready();
    assert_eq!(unmap_pages(&mut v, 0, 4), Status::Ok);
    // (2) map(0, 9); unmap(0, 9).
    let mut v = ready();
    map_pages(&mut v, 0, 9);
    assert_eq!(unmap_pages(&mut v, 0, 9), Status::Ok);
    assert_eq!(v.mapping_count(), 0);
    // (3) a = map(0, 4); b = map(5, 9); unmap(0, 9).
    let mut v = ready();
    map_pages(&mut v, 0, 4);
    map_pages(&mut v, 5, 9);
    assert_eq!(unmap_pages(&mut v, 0, 9), Status::Ok);
    assert_eq!(v.mapping_count(), 0);
    // (4) map(0, 9); unmap(0, 4) fails, nothing unmapped.
    let mut v = ready();
    map_pages(&mut v, 0, 9);
    assert_eq!(unmap_pages(&mut v, 0, 4), Status::Range);
    assert_eq!(v.mapping_count(), 1);
    // (5) a = map(0, 4); b = map(5, 9); unmap(0, 4) removes a.
    let mut v = ready();
    map_pages(&mut v, 0, 4);
    map_pages(&mut v, 5, 9);
    assert_eq!(unmap_pages(&mut v, 0, 4), Status::Ok);
    assert_eq!(
        v.mappings(1)
            .map(|m| m.start)
            .collect::<alloc::vec::Vec<_>>(),
        [p(5)]
    );
    // (6) a = map(0, 4); unmap(0, 9).
    let mut v = ready();
    map_pages(&mut v, 0, 4);
    assert_eq!(unmap_pages(&mut v, 0, 9), Status::Ok);
    assert_eq!(v.mapping_count(), 0);
    // (7) a = map(0, 4); b = map(10, 14); unmap(0, 14).
    let mut v = ready();
    map_pages(&mut v, 0, 4);
    map_pages(&mut v, 10, 14);
    assert_eq!(unmap_pages(&mut v, 0, 14), Status::Ok);
    assert_eq!(v.mapping_count(), 0);
}

#[test]
fn a_split_at_either_end_removes_nothing() {
    let mut v = ready();
    map_pages(&mut v, 0, 1);
    map_pages(&mut v, 2, 3);
    map_pages(&mut v, 4, 5);
    // Starts inside the first mapping.
    assert_eq!(unmap_pages(&mut v, 1, 5), Status::Range);
    // Ends inside the last mapping.
    assert_eq!(unmap_pages(&mut v, 0, 4), Status::Range);
    // Inside one mapping.
    assert_eq!(
        send(&mut v, unmap(1, p(2) + 0x800, p(2) + 0x8ff)),
        Status::Range
    );
    assert_eq!(v.mapping_count(), 3);
    assert_eq!(unmap_pages(&mut v, 2, 3), Status::Ok);
    assert_eq!(v.mapping_count(), 2);
    // The whole address space takes the rest.
    assert_eq!(send(&mut v, unmap(1, 0, u64::MAX)), Status::Ok);
    assert_eq!(v.mapping_count(), 0);
}

#[test]
fn unmap_statuses() {
    let mut v = ready();
    send(&mut v, attach_bypass(2, EP_B));
    map_pages(&mut v, 0, 0);
    let reserved = Request::Unmap(Unmap {
        domain: 1,
        virt_start: 0,
        virt_end: p(1) - 1,
        reserved: [0, 1, 0, 0],
    });
    assert_eq!(send(&mut v, reserved), Status::Inval);
    assert_eq!(v.mapping_count(), 1, "refused, not performed");
    assert_eq!(send(&mut v, unmap(2000, 0, 0xfff)), Status::Range);
    assert_eq!(send(&mut v, unmap(9, 0, 0xfff)), Status::Noent);
    assert_eq!(
        send(&mut v, unmap(2, 0, 0xfff)),
        Status::Inval,
        "bypass domain"
    );
    assert_eq!(
        send(&mut v, unmap(1, 0x2000, 0x1000)),
        Status::Inval,
        "end < start"
    );
    v.backend_mut().fail_unmap = Some(BackendError::Hardware);
    assert_eq!(unmap_pages(&mut v, 0, 0), Status::Deverr);
    assert_eq!(
        v.mapping_count(),
        1,
        "the backend kept it, so does the model"
    );
    v.backend_mut().fail_unmap = Some(BackendError::NoMemory);
    assert_eq!(unmap_pages(&mut v, 0, 0), Status::Nomem);
    assert_eq!(unmap_pages(&mut v, 0, 0), Status::Ok);
}
