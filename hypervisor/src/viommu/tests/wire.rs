//! Wire layouts: request parsing and encoding, the config space, PROBE
//! properties, fault reports, feature bits.

use crate::viommu::wire::config::{CONFIG_LEN, ConfigSpace};
use crate::viommu::wire::probe::{Fault, FaultReason, ResvMem, ResvSubtype};
use crate::viommu::wire::request::{MapFlags, ParseError, Probe, Request};
use crate::viommu::wire::{Feature, RequestType, Status};

use super::{attach, detach, map, unmap};

#[test]
fn requests_round_trip_with_the_documented_offsets() {
    for req in [
        attach(7, 0x1234),
        detach(7, 0x1234),
        map(3, 0x1000, 0x1fff, 0x4000_0000, MapFlags(5)),
        unmap(3, 0x1000, 0x1fff),
        Request::Probe(Probe { endpoint: 9 }),
    ] {
        let bytes = req.encode();
        assert_eq!(bytes.len(), req.kind().readable_len());
        assert_eq!(Request::parse(&bytes), Ok(req));
    }
    let m = map(3, 0x1000, 0x1fff, 0x4000_0000, MapFlags(5)).encode();
    assert_eq!(m.len(), 36);
    assert_eq!(m[0], 3);
    assert_eq!(&m[4..8], &3u32.to_le_bytes());
    assert_eq!(&m[8..16], &0x1000u64.to_le_bytes());
    assert_eq!(&m[16..24], &0x1fffu64.to_le_bytes());
    assert_eq!(&m[24..32], &0x4000_0000u64.to_le_bytes());
    assert_eq!(&m[32..36], &5u32.to_le_bytes());
}

#[test]
fn parse_errors() {
    assert_eq!(Request::parse(&[]), Err(ParseError::NoHead));
    assert_eq!(Request::parse(&[1, 0, 0]), Err(ParseError::NoHead));
    assert_eq!(
        Request::parse(&[9, 0, 0, 0]),
        Err(ParseError::UnknownType(9))
    );
    let mut short = map(1, 0, 0xfff, 0, MapFlags(1)).encode();
    short.pop();
    assert_eq!(
        Request::parse(&short),
        Err(ParseError::Truncated(RequestType::Map))
    );
    // Extra bytes and head reserved bytes are ignored.
    let mut long = attach(1, 2).encode();
    long[1] = 0xff;
    long.extend_from_slice(&[0xee; 16]);
    assert_eq!(Request::parse(&long), Ok(attach(1, 2)));
}

#[test]
fn config_space_layout_and_accessors() {
    let mut c = ConfigSpace {
        page_size_mask: 0x4020_1000,
        input_start: 0x1000,
        input_end: 0xffff_ffff_ffff,
        domain_start: 1,
        domain_end: 1023,
        probe_size: 512,
        bypass: false,
    };
    let b = c.to_bytes();
    assert_eq!(b.len(), CONFIG_LEN);
    assert_eq!(c.read(0x00, 8), 0x4020_1000);
    assert_eq!(c.read(0x00, 4), 0x4020_1000);
    assert_eq!(c.read(0x04, 4), 0);
    assert_eq!(c.read(0x08, 8), 0x1000);
    assert_eq!(c.read(0x10, 4), 0xffff_ffff);
    assert_eq!(c.read(0x14, 4), 0xffff);
    assert_eq!(c.read(0x18, 4), 1);
    assert_eq!(c.read(0x1c, 4), 1023);
    assert_eq!(c.read(0x20, 4), 512);
    assert_eq!(c.read(0x24, 1), 0);
    assert_eq!(c.read(0x26, 8), 0, "past the end reads zero");
    assert_eq!(c.read(usize::MAX, 8), 0);
    assert_eq!(c.read(0, 3), 0, "odd width");

    // Only bypass is writable, only with 0 or 1.
    assert_eq!(c.write(0x00, 8, 0), None);
    assert_eq!(c.read(0x00, 8), 0x4020_1000);
    assert_eq!(c.write(0x24, 1, 2), None);
    assert_eq!(c.write(0x24, 1, 1), Some(true));
    assert_eq!(c.read(0x24, 1), 1);
    assert_eq!(c.write(0x24, 1, 1), None, "no change");
    // A 32-bit write covering bypass and the reserved bytes.
    assert_eq!(c.write(0x24, 4, 0xffff_ff00), Some(false));
    // A 32-bit write at 0x20 reaches bypass in its high byte only.
    assert_eq!(c.write(0x20, 8, 1 << 32), Some(true));
    assert_eq!(c.read(0x20, 4), 512);
    assert_eq!(c.write(usize::MAX, 8, 1), None);
}

#[test]
fn resv_mem_property_bytes() {
    let p = ResvMem {
        subtype: ResvSubtype::Msi,
        start: 0x0800_0000,
        end: 0x080f_ffff,
    };
    let b = p.encode();
    assert_eq!(&b[0..2], &1u16.to_le_bytes());
    assert_eq!(&b[2..4], &20u16.to_le_bytes());
    assert_eq!(b[4], 1);
    assert_eq!(&b[5..8], &[0, 0, 0]);
    assert_eq!(&b[8..16], &0x0800_0000u64.to_le_bytes());
    assert_eq!(&b[16..24], &0x080f_ffffu64.to_le_bytes());
    assert_eq!(ResvMem::decode(&b), Some(p));
    assert_eq!(ResvMem::decode(&b[..20]), None);
}

#[test]
fn fault_report_bytes() {
    let f = Fault {
        reason: FaultReason::Mapping,
        endpoint: 0x20000,
        read: false,
        write: true,
        address: Some(0xdead_b000),
    };
    let b = f.encode();
    assert_eq!(b.len(), 24);
    assert_eq!(b[0], 2);
    assert_eq!(&b[1..4], &[0, 0, 0]);
    assert_eq!(&b[4..8], &0x102u32.to_le_bytes());
    assert_eq!(&b[8..12], &0x20000u32.to_le_bytes());
    assert_eq!(&b[12..16], &[0; 4]);
    assert_eq!(&b[16..24], &0xdead_b000u64.to_le_bytes());
    let none = Fault {
        address: None,
        read: true,
        write: false,
        ..f
    }
    .encode();
    assert_eq!(&none[4..8], &1u32.to_le_bytes());
    assert_eq!(&none[16..24], &[0; 8]);
}

#[test]
fn numbers_match_the_spec() {
    assert_eq!(Feature::InputRange.mask(), 1 << 0);
    assert_eq!(Feature::DomainRange.mask(), 1 << 1);
    assert_eq!(Feature::MapUnmap.mask(), 1 << 2);
    assert_eq!(Feature::Bypass.mask(), 1 << 3);
    assert_eq!(Feature::Probe.mask(), 1 << 4);
    assert_eq!(Feature::Mmio.mask(), 1 << 5);
    assert_eq!(Feature::BypassConfig.mask(), 1 << 6);
    assert_eq!(Feature::Version1.mask(), 1 << 32);
    for (i, s) in Status::ALL.iter().enumerate() {
        assert_eq!(*s as usize, i);
        assert_eq!(Status::from_u8(i as u8), Some(*s));
    }
    assert_eq!(Status::from_u8(9), None);
    for t in RequestType::ALL {
        assert_eq!(RequestType::from_u8(t as u8), Some(t));
    }
    assert_eq!(RequestType::from_u8(0), None);
    assert_eq!(RequestType::from_u8(6), None);
}
