//! PROBE: the exact output bytes and every status.

use super::*;
use crate::viommu::model::{Response, ViommuConfig};
use crate::viommu::wire::probe::ResvMem;
use crate::viommu::wire::request::Probe;

fn probe(ep: u32) -> alloc::vec::Vec<u8> {
    Request::Probe(Probe { endpoint: ep }).encode()
}

#[test]
fn probe_lists_the_reserved_regions_then_zeroes() {
    let mut v = device();
    let c = v.handle_request(&probe(EP_MSI), 512 + 4);
    let b = c.response.to_bytes();
    assert_eq!(b.len(), 516);
    assert_eq!(c.response.status(), Some(Status::Ok));
    let msi = ResvMem {
        subtype: ResvSubtype::Msi,
        start: MSI_START,
        end: MSI_END,
    };
    let resv = ResvMem {
        subtype: ResvSubtype::Reserved,
        start: RESV_START,
        end: RESV_END,
    };
    assert_eq!(&b[0..24], &msi.encode());
    assert_eq!(&b[24..48], &resv.encode());
    assert!(
        b[48..].iter().all(|&x| x == 0),
        "zero fill, status OK, tail reserved zero"
    );
    // An endpoint without regions: all zero (type 0 ends the list).
    let c = v.handle_request(&probe(EP_A), 516);
    assert!(c.response.to_bytes().iter().all(|&x| x == 0));
    assert_eq!(c.response.used_len(), 516);
}

#[test]
fn probe_statuses() {
    let mut v = device();
    let c = v.handle_request(&probe(EP_FOREIGN), 516);
    assert_eq!(c.response.status(), Some(Status::Noent));
    // Properties buffer smaller than probe_size: INVAL, no property.
    let c = v.handle_request(&probe(EP_MSI), 100);
    assert_eq!(c.response.used_len(), 100);
    assert_eq!(c.response.status(), Some(Status::Inval));
    assert!(c.response.to_bytes()[..96].iter().all(|&x| x == 0));
    // Truncated readable part (the 64 reserved bytes are part of it).
    let c = v.handle_request(&probe(EP_MSI)[..8], 516);
    assert_eq!(c.response.status(), Some(Status::Ioerr));
    // Reserved bytes are ignored.
    let mut raw = probe(EP_MSI);
    raw[8..].fill(0xab);
    assert_eq!(
        v.handle_request(&raw, 516).response.status(),
        Some(Status::Ok)
    );
}

#[test]
fn a_larger_writable_part_keeps_the_tail_last() {
    let mut v = device();
    let c = v.handle_request(&probe(EP_MSI), 600);
    let b = c.response.to_bytes();
    assert_eq!(b.len(), 600);
    assert_eq!(b[0], 1, "first property at the start");
    assert_eq!(c.response.status(), Some(Status::Ok));
}

#[test]
fn too_many_regions_for_probe_size_is_a_device_error() {
    let cfg = ViommuConfig {
        probe_size: 32,
        ..ViommuConfig::default()
    };
    let mut v = device_with(cfg);
    let c = v.handle_request(&probe(EP_MSI), 36);
    assert_eq!(c.response.status(), Some(Status::Deverr));
    assert!(c.response.to_bytes()[..32].iter().all(|&x| x == 0));
    let c = v.handle_request(&probe(EP_A), 36);
    assert_eq!(c.response.status(), Some(Status::Ok));
}

#[test]
fn probe_without_the_feature_writes_nothing() {
    let cfg = ViommuConfig {
        probe_size: 0,
        ..ViommuConfig::default()
    };
    let mut v = device_with(cfg);
    assert_eq!(
        v.device_features() & crate::viommu::Feature::Probe.mask(),
        0
    );
    assert_eq!(
        v.handle_request(&probe(EP_A), 4).response,
        Response::Nothing
    );
    assert_eq!(
        v.handle_request(&probe(EP_A)[..4], 4).response,
        Response::Nothing
    );
}
