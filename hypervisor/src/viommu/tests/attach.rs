//! ATTACH and DETACH: every status, implicit detach, domains vanishing
//! with their last endpoint, Linux's replay, bypass domains.

use super::*;
use crate::viommu::backend::BackendError;
use crate::viommu::fake::Call;
use crate::viommu::wire::request::Attach;

fn attach_raw(domain: u32, endpoint: u32, flags: u32, reserved: [u8; 4]) -> Request {
    Request::Attach(Attach {
        domain,
        endpoint,
        flags,
        reserved,
    })
}

#[test]
fn attach_creates_the_domain_and_binds_the_endpoint() {
    let mut v = device();
    assert_eq!(send(&mut v, attach(1, EP_A)), Status::Ok);
    assert_eq!(v.domain_of(EP_A), Some(1));
    assert_eq!(v.domain_is_bypass(1), Some(false));
    let calls = &v.backend().calls;
    assert!(calls.contains(&Call::Create(1, false)));
    assert!(calls.contains(&Call::Attach(EP_A, 1)));
    // A second endpoint joins the same domain.
    assert_eq!(send(&mut v, attach(1, EP_B)), Status::Ok);
    assert_eq!(
        v.domain_endpoints(1).collect::<alloc::vec::Vec<_>>(),
        [EP_A, EP_B]
    );
    assert_eq!(v.backend().count(|c| matches!(c, Call::Create(..))), 1);
}

#[test]
fn attach_statuses() {
    let mut v = device();
    assert_eq!(
        send(&mut v, attach_raw(1, EP_A, 0, [0, 0, 1, 0])),
        Status::Inval,
        "reserved"
    );
    assert_eq!(
        send(&mut v, attach_raw(1, EP_A, 2, [0; 4])),
        Status::Inval,
        "unknown flag"
    );
    assert_eq!(send(&mut v, attach(1, EP_FOREIGN)), Status::Noent);
    assert_eq!(
        send(&mut v, attach(0, EP_A)),
        Status::Range,
        "below domain_range"
    );
    assert_eq!(
        send(&mut v, attach(1024, EP_A)),
        Status::Range,
        "above domain_range"
    );
    assert_eq!(
        v.domain_ids().count(),
        0,
        "nothing created by refused requests"
    );

    v.backend_mut().fail_create = Some(BackendError::NoResources);
    assert_eq!(send(&mut v, attach(1, EP_A)), Status::Nomem);
    v.backend_mut().fail_create = Some(BackendError::NoMemory);
    assert_eq!(send(&mut v, attach(1, EP_A)), Status::Nomem);
    v.backend_mut().fail_create = Some(BackendError::Hardware);
    assert_eq!(send(&mut v, attach(1, EP_A)), Status::Deverr);
    assert_eq!(v.domain_of(EP_A), None);
}

#[test]
fn bypass_flag_must_match_an_existing_domain() {
    let mut v = device();
    assert_eq!(send(&mut v, attach_bypass(1, EP_A)), Status::Ok);
    assert_eq!(v.domain_is_bypass(1), Some(true));
    assert!(v.backend().calls.contains(&Call::Create(1, true)));
    assert_eq!(send(&mut v, attach(1, EP_B)), Status::Inval);
    assert_eq!(v.domain_of(EP_B), None);
    assert_eq!(send(&mut v, attach_bypass(1, EP_B)), Status::Ok);

    assert_eq!(send(&mut v, attach(2, EP_MSI)), Status::Ok);
    // EP_B was attached to 1, so a refused move leaves it there.
    assert_eq!(send(&mut v, attach_bypass(2, EP_B)), Status::Inval);
    assert_eq!(v.domain_of(EP_B), Some(1));
}

#[test]
fn reattach_without_detach_moves_the_endpoint() {
    let mut v = device();
    send(&mut v, attach(1, EP_A));
    send(&mut v, attach(1, EP_B));
    assert_eq!(
        send(&mut v, map(1, 0x10_0000, 0x10_ffff, RAM0, RW)),
        Status::Ok
    );
    // Move EP_A: domain 1 keeps EP_B and its mapping.
    assert_eq!(send(&mut v, attach(2, EP_A)), Status::Ok);
    assert_eq!(v.domain_of(EP_A), Some(2));
    assert_eq!(v.mappings(1).count(), 1);
    // Move EP_B too: domain 1 loses its last endpoint and vanishes.
    assert_eq!(send(&mut v, attach(2, EP_B)), Status::Ok);
    assert_eq!(v.domain_is_bypass(1), None);
    assert!(!v.backend().domains.contains_key(&1));
    // The endpoint was rebound before its old domain was destroyed.
    let calls = &v.backend().calls;
    let rebind = calls.iter().position(|c| *c == Call::Attach(EP_B, 2));
    let destroy = calls.iter().position(|c| *c == Call::Destroy(1));
    assert!(rebind < destroy);
    assert_eq!(v.backend().count(|c| matches!(c, Call::Detach(_))), 0);
}

#[test]
fn replay_after_the_domain_vanished_succeeds() {
    // Linux: domain D with mappings, its only endpoint moves elsewhere
    // (implicit detach), later comes back: the driver replays every
    // stored mapping of D and expects OK for each.
    let mut v = device();
    send(&mut v, attach(5, EP_A));
    let maps = [
        map(5, 0x0, 0xfff, RAM0, RW),
        map(5, 0x20_0000, 0x3f_ffff, RAM0 + 0x20_0000, RW),
        map(
            5,
            0x800_0000,
            0x800_0fff,
            DEV_MMIO,
            MapFlags(MapFlags::WRITE | MapFlags::MMIO),
        ),
    ];
    for m in maps {
        assert_eq!(send(&mut v, m), Status::Ok);
    }
    send(&mut v, attach(6, EP_A));
    assert_eq!(v.domain_is_bypass(5), None, "domain 5 vanished");
    assert_eq!(send(&mut v, attach(5, EP_A)), Status::Ok);
    assert_eq!(v.mappings(5).count(), 0, "recreated empty");
    for m in maps {
        assert_eq!(send(&mut v, m), Status::Ok, "replayed MAP");
    }
}

#[test]
fn reattach_to_the_same_domain_behaves_as_detach_then_attach() {
    let mut v = device();
    send(&mut v, attach(3, EP_A));
    send(&mut v, map(3, 0x1000, 0x1fff, RAM0, RW));
    // Sole endpoint: the domain is destroyed and recreated empty, so
    // Linux's replay (it counts the endpoint out first) succeeds.
    assert_eq!(send(&mut v, attach(3, EP_A)), Status::Ok);
    assert_eq!(v.mappings(3).count(), 0);
    assert_eq!(send(&mut v, map(3, 0x1000, 0x1fff, RAM0, RW)), Status::Ok);
    // With a second endpoint the domain survives with its mappings.
    send(&mut v, attach(3, EP_B));
    assert_eq!(send(&mut v, attach(3, EP_A)), Status::Ok);
    assert_eq!(v.mappings(3).count(), 1);
    // Same domain, sole endpoint, other bypass kind: a fresh domain.
    send(&mut v, attach(4, EP_B));
    assert_eq!(send(&mut v, attach_bypass(3, EP_A)), Status::Ok);
    assert_eq!(v.domain_is_bypass(3), Some(true));
}

#[test]
fn attach_refuses_a_domain_mapped_over_the_endpoint_reserved_regions() {
    let mut v = device();
    send(&mut v, attach(1, EP_A));
    assert_eq!(
        send(&mut v, map(1, MSI_START, MSI_START + 0xfff, RAM0, RW)),
        Status::Ok
    );
    assert_eq!(send(&mut v, attach(1, EP_MSI)), Status::Unsupp);
    assert_eq!(v.domain_of(EP_MSI), None);
    // Fine in a clean domain; afterwards the regions are off limits.
    assert_eq!(send(&mut v, attach(2, EP_MSI)), Status::Ok);
    assert_eq!(
        send(&mut v, map(2, MSI_START, MSI_START + 0xfff, RAM0, RW)),
        Status::Inval
    );
}

#[test]
fn detach_statuses_and_the_last_endpoint_takes_the_domain() {
    let mut v = device();
    assert_eq!(send(&mut v, detach(1, EP_FOREIGN)), Status::Noent);
    assert_eq!(send(&mut v, detach(0, EP_A)), Status::Range);
    assert_eq!(send(&mut v, detach(1, EP_A)), Status::Inval, "not attached");
    send(&mut v, attach(1, EP_A));
    send(&mut v, attach(1, EP_B));
    send(&mut v, map(1, 0x1000, 0x1fff, RAM0, RW));
    assert_eq!(send(&mut v, detach(2, EP_A)), Status::Inval, "other domain");
    // Reserved bytes are ignored by DETACH.
    let raw = Request::Detach(crate::viommu::wire::request::Detach {
        domain: 1,
        endpoint: EP_A,
        reserved: [0xff; 8],
    });
    assert_eq!(send(&mut v, raw), Status::Ok);
    assert!(v.backend().calls.contains(&Call::Detach(EP_A)));
    assert_eq!(v.mappings(1).count(), 1, "EP_B keeps the domain");
    assert_eq!(send(&mut v, detach(1, EP_B)), Status::Ok);
    assert_eq!(v.domain_ids().count(), 0);
    assert_eq!(v.mapping_count(), 0);
    assert!(v.backend().calls.contains(&Call::Destroy(1)));
}

#[test]
fn a_failed_bind_leaves_the_endpoint_unattached_with_the_errors_status() {
    let mut v = device();
    assert_eq!(send(&mut v, attach(1, EP_A)), Status::Ok);
    assert_eq!(send(&mut v, map(1, 0x1000, 0x1fff, RAM0, RW)), Status::Ok);
    v.backend_mut().fail_attach = Some(BackendError::Hardware);
    assert_eq!(send(&mut v, attach(2, EP_A)), Status::Deverr);
    assert_eq!(v.domain_of(EP_A), None, "fail closed: unattached");
    assert_eq!(v.domain_ids().count(), 0, "old and new domain gone");
    v.backend_mut().fail_attach = Some(BackendError::NoMemory);
    assert_eq!(send(&mut v, attach(3, EP_A)), Status::Nomem);
    assert_eq!(v.domain_ids().count(), 0);
    // A failed DETACH detaches all the same; the domain's other endpoint
    // keeps it.
    assert_eq!(send(&mut v, attach(4, EP_A)), Status::Ok);
    assert_eq!(send(&mut v, attach(4, EP_B)), Status::Ok);
    v.backend_mut().fail_detach = Some(BackendError::Hardware);
    assert_eq!(send(&mut v, detach(4, EP_A)), Status::Deverr);
    assert_eq!(v.domain_of(EP_A), None);
    assert_eq!(v.domain_of(EP_B), Some(4));
    // Over the domain budget nothing changes.
    v.backend_mut().fail_create = Some(BackendError::NoResources);
    assert_eq!(send(&mut v, attach(5, EP_B)), Status::Nomem);
    assert_eq!(v.domain_of(EP_B), Some(4));
}

#[test]
fn a_failed_bypass_switch_leaves_bypass_off_and_the_endpoints_attached() {
    let mut v = device();
    assert_eq!(send(&mut v, attach(1, EP_A)), Status::Ok);
    v.backend_mut().fail_bypass = Some(BackendError::Hardware);
    assert_eq!(v.set_config(0x24, 1, 1), Err(BackendError::Hardware));
    assert_eq!(v.read_config(0x24, 1), 0, "bypass reads back off");
    assert!(!v.backend().global_bypass);
    assert_eq!(v.domain_of(EP_A), Some(1));
    assert_eq!(v.domain_ids().count(), 1);
    check_invariants(&v);
    assert_eq!(v.set_config(0x24, 1, 1), Ok(()), "a later switch works");
    assert!(v.backend().global_bypass);
}
