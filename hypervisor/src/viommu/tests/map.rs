//! MAP: every status, overlap, the guest's stage 2 and memory types,
//! host-discontiguous pieces and rollback.

use super::*;
use crate::viommu::backend::BackendError;
use crate::viommu::fake::Call;
use crate::viommu::model::ViommuConfig;

fn ready() -> Viommu<FakeBackend> {
    let mut v = device();
    assert_eq!(send(&mut v, attach(1, EP_A)), Status::Ok);
    v
}

#[test]
fn map_writes_the_host_address_through_the_guest_stage2() {
    let mut v = ready();
    assert_eq!(
        send(&mut v, map(1, 0x10_0000, 0x10_ffff, RAM0 + 0x3000, RW)),
        Status::Ok
    );
    let d = &v.backend().domains[&1];
    let c = d.chunks[&0x10_0000];
    assert_eq!((c.pa, c.len), (HOST0 + 0x3000, 0x1_0000));
    assert!(c.attrs.read() && c.attrs.write() && !c.attrs.mmio());
    let m = v.mappings(1).next().expect("mapping");
    assert_eq!(
        (m.start, m.end, m.phys),
        (0x10_0000, 0x10_ffff, RAM0 + 0x3000)
    );
}

#[test]
fn map_statuses() {
    let mut v = ready();
    send(&mut v, attach_bypass(2, EP_B));
    let ok = |s, e, p| map(1, s, e, p, RW);
    assert_eq!(
        send(&mut v, map(1, 0, 0xfff, RAM0, MapFlags(8))),
        Status::Inval,
        "flag"
    );
    assert_eq!(
        send(&mut v, map(0, 0, 0xfff, RAM0, RW)),
        Status::Range,
        "domain range"
    );
    assert_eq!(send(&mut v, map(7, 0, 0xfff, RAM0, RW)), Status::Noent);
    assert_eq!(
        send(&mut v, map(2, 0, 0xfff, RAM0, RW)),
        Status::Inval,
        "bypass domain"
    );
    assert_eq!(
        send(&mut v, ok(0x2000, 0xfff, RAM0)),
        Status::Inval,
        "end < start"
    );
    assert_eq!(
        send(&mut v, ok(0x800, 0x17ff, RAM0)),
        Status::Range,
        "virt_start"
    );
    assert_eq!(
        send(&mut v, ok(0x1000, 0x1ffe, RAM0)),
        Status::Range,
        "virt_end + 1"
    );
    assert_eq!(
        send(&mut v, ok(0x1000, 0x1fff, RAM0 + 8)),
        Status::Range,
        "phys_start"
    );
    assert_eq!(
        send(&mut v, ok(0, u64::MAX, 0)),
        Status::Range,
        "2^64 bytes"
    );
    assert_eq!(
        send(&mut v, ok(0x1000, 0x2fff, u64::MAX - 0xfff)),
        Status::Range,
        "phys wraps"
    );
    assert_eq!(
        send(&mut v, ok(0x1000, 0x1fff, 0x1000)),
        Status::Range,
        "not the guest's"
    );
    assert_eq!(
        send(&mut v, ok(0x1000, 0x2fff, RAM1 + RAM_LEN - 0x1000)),
        Status::Range,
        "runs off RAM"
    );
    assert_eq!(
        send(&mut v, ok(0x1000, 0x1fff, DEV_MMIO)),
        Status::Inval,
        "MMIO without flag"
    );
    let mmio_ram = map(
        1,
        0x1000,
        0x1fff,
        RAM0,
        MapFlags(MapFlags::MMIO | MapFlags::WRITE),
    );
    assert_eq!(send(&mut v, mmio_ram), Status::Inval, "RAM with MMIO flag");
    assert_eq!(v.mapping_count(), 0);
    assert_eq!(v.backend().count(|c| matches!(c, Call::Map(..))), 0);

    v.backend_mut().fail_map = Some(BackendError::NoMemory);
    assert_eq!(send(&mut v, ok(0x1000, 0x1fff, RAM0)), Status::Nomem);
    v.backend_mut().fail_map = Some(BackendError::Hardware);
    assert_eq!(send(&mut v, ok(0x1000, 0x1fff, RAM0)), Status::Deverr);
    assert_eq!(send(&mut v, ok(0x1000, 0x1fff, RAM0)), Status::Ok);
    assert_eq!(
        send(&mut v, ok(0x1000, 0x1fff, RAM0 + 0x1000)),
        Status::Inval,
        "same range"
    );
}

#[test]
fn overlap_is_refused_but_neighbours_are_fine() {
    let mut v = ready();
    assert_eq!(
        send(&mut v, map(1, 0x10_0000, 0x10_ffff, RAM0, RW)),
        Status::Ok
    );
    for (s, e) in [
        (0xf_f000, 0x10_0fff),
        (0x10_8000, 0x10_8fff),
        (0x10_f000, 0x11_0fff),
        (0, 0xffff_ffff),
    ] {
        assert_eq!(
            send(&mut v, map(1, s, e, RAM0 + 0x10_0000, RW)),
            Status::Inval,
            "{s:#x}..{e:#x}"
        );
    }
    assert_eq!(
        send(&mut v, map(1, 0xf_f000, 0xf_ffff, RAM0 + 0x20_0000, RW)),
        Status::Ok
    );
    assert_eq!(
        send(&mut v, map(1, 0x11_0000, 0x11_0fff, RAM0 + 0x30_0000, RW)),
        Status::Ok
    );
    assert_eq!(v.mappings(1).count(), 3);
}

#[test]
fn mmio_maps_only_with_the_flag_and_permissions_pass_through() {
    let mut v = ready();
    let doorbell = MapFlags(MapFlags::WRITE | MapFlags::MMIO);
    assert_eq!(
        send(&mut v, map(1, 0x800_0000, 0x800_0fff, DEV_MMIO, doorbell)),
        Status::Ok
    );
    let c = v.backend().domains[&1].chunks[&0x800_0000];
    assert_eq!(c.pa, DEV_MMIO);
    assert!(
        c.attrs.mmio() && c.attrs.write() && !c.attrs.read(),
        "writes need WRITE; no READ given"
    );
    let ro = MapFlags(MapFlags::READ);
    assert_eq!(send(&mut v, map(1, 0x2000, 0x2fff, RAM0, ro)), Status::Ok);
    let c = v.backend().domains[&1].chunks[&0x2000];
    assert!(c.attrs.read() && !c.attrs.write());
}

#[test]
fn host_discontiguous_ranges_map_in_pieces() {
    let mut v = ready();
    // 8 KiB straddling RAM0's end and RAM1's start.
    let phys = RAM1 - 0x1000;
    assert_eq!(send(&mut v, map(1, 0x4000, 0x5fff, phys, RW)), Status::Ok);
    let chunks: alloc::vec::Vec<_> = v.backend().domains[&1]
        .chunks
        .iter()
        .map(|(&i, c)| (i, c.pa, c.len))
        .collect();
    assert_eq!(
        chunks,
        [
            (0x4000, HOST0 + RAM_LEN - 0x1000, 0x1000),
            (0x5000, HOST1, 0x1000)
        ]
    );
    assert_eq!(v.mappings(1).count(), 1, "one mapping for the guest");
    // UNMAP takes both pieces.
    assert_eq!(send(&mut v, unmap(1, 0x4000, 0x5fff)), Status::Ok);
    assert!(v.backend().domains[&1].chunks.is_empty());
}

#[test]
fn a_failing_piece_rolls_the_earlier_ones_back() {
    let mut v = ready();
    v.backend_mut().fail_map = Some(BackendError::NoMemory);
    v.backend_mut().map_ok_before = 1;
    assert_eq!(
        send(&mut v, map(1, 0x4000, 0x5fff, RAM1 - 0x1000, RW)),
        Status::Nomem
    );
    assert!(v.backend().calls.contains(&Call::Unmap(1, 0x4000, 0x1000)));
    assert_eq!(v.mapping_count(), 0);
    // If even the rollback fails, the mapped prefix is kept as a mapping.
    v.backend_mut().fail_map = Some(BackendError::Hardware);
    v.backend_mut().map_ok_before = 1;
    v.backend_mut().fail_unmap = Some(BackendError::Hardware);
    assert_eq!(
        send(&mut v, map(1, 0x4000, 0x5fff, RAM1 - 0x1000, RW)),
        Status::Deverr
    );
    let m = v.mappings(1).next().expect("prefix kept");
    assert_eq!((m.start, m.end), (0x4000, 0x4fff));
}

#[test]
fn input_range_and_granule_come_from_the_config() {
    let cfg = ViommuConfig {
        page_size_mask: 0x20_0000 | 0x4000_0000,
        input_start: 0x20_0000,
        input_end: 0xffff_ffff,
        ..ViommuConfig::default()
    };
    let mut v = device_with(cfg);
    assert_eq!(v.granule(), 0x20_0000);
    send(&mut v, attach(1, EP_A));
    assert_eq!(
        send(&mut v, map(1, 0x20_0000, 0x20_0fff, RAM0, RW)),
        Status::Range,
        "4K on a 2M granule"
    );
    assert_eq!(
        send(&mut v, map(1, 0, 0x1f_ffff, RAM0, RW)),
        Status::Range,
        "below input_range"
    );
    assert_eq!(
        send(&mut v, map(1, 0xffe0_0000, 0x1_001f_ffff, RAM0, RW)),
        Status::Range,
        "above"
    );
    assert_eq!(
        send(&mut v, map(1, 0x20_0000, 0x3f_ffff, RAM0, RW)),
        Status::Ok
    );
}

#[test]
fn the_mapping_limit_answers_nomem() {
    let cfg = ViommuConfig {
        max_mappings: 2,
        ..ViommuConfig::default()
    };
    let mut v = device_with(cfg);
    send(&mut v, attach(1, EP_A));
    assert_eq!(send(&mut v, map(1, 0x1000, 0x1fff, RAM0, RW)), Status::Ok);
    assert_eq!(send(&mut v, map(1, 0x2000, 0x2fff, RAM0, RW)), Status::Ok);
    assert_eq!(
        send(&mut v, map(1, 0x3000, 0x3fff, RAM0, RW)),
        Status::Nomem
    );
    assert_eq!(send(&mut v, unmap(1, 0x1000, 0x1fff)), Status::Ok);
    assert_eq!(send(&mut v, map(1, 0x3000, 0x3fff, RAM0, RW)), Status::Ok);
}

/// MAP and UNMAP look their domain up before its range check (a domain
/// that exists is in range): every status stays the spec's order's. Over
/// a narrow domain range, each ID around and inside it, existing or not,
/// bypass or not, with bad flags or reserved bytes: the status an oracle
/// of the documented order gives. ATTACH never creates a domain outside
/// the range, which the lookup relies on.
#[test]
fn a_domain_found_before_its_range_check_keeps_the_spec_order() {
    let mut v = device_with(ViommuConfig {
        domain_start: 5,
        domain_end: 9,
        ..ViommuConfig::default()
    });
    assert_eq!(send(&mut v, attach(5, EP_A)), Status::Ok);
    assert_eq!(send(&mut v, attach_bypass(9, EP_B)), Status::Ok);
    for id in [0, 4, 10, u32::MAX] {
        assert_eq!(send(&mut v, attach(id, EP_A)), Status::Range);
    }
    assert!(v.domain_ids().all(|id| (5..=9).contains(&id)));
    let ids = [0, 1, 4, 5, 6, 8, 9, 10, 0x8000_0005, u32::MAX];
    for (k, &id) in ids.iter().enumerate() {
        let exists = id == 5 || id == 9;
        let in_range = (5..=9).contains(&id);
        let bypass = id == 9;
        let base = 0x10_0000 * (k as u64 + 1);
        for bad in [true, false] {
            let flags = if bad { MapFlags(RW.0 | 8) } else { RW };
            let expected = if bad {
                Status::Inval
            } else if !in_range {
                Status::Range
            } else if !exists {
                Status::Noent
            } else if bypass {
                Status::Inval
            } else {
                Status::Ok
            };
            let req = map(id, base, base + 0xfff, RAM0, flags);
            assert_eq!(send(&mut v, req), expected, "MAP domain {id} bad {bad}");
            let req = Request::Unmap(Unmap {
                domain: id,
                virt_start: base,
                virt_end: base + 0xfff,
                reserved: if bad { [0, 0, 1, 0] } else { [0; 4] },
            });
            assert_eq!(send(&mut v, req), expected, "UNMAP domain {id} bad {bad}");
            check_invariants(&v);
        }
    }
}
