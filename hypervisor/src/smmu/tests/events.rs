//! Event record decoding (`EVTQ_*` of Linux's `arm-smmu-v3.h`) and event
//! queue draining through the driver: wrap-around and overflow.

use alloc::format;

use super::fake::{FakeSmmu, QEMU_S2};
use super::probe;
use crate::smmu::event::{Event, FaultClass, id};
use crate::smmu::regs::Q_OVF;

/// A stage-2 translation fault record as the SMMU writes it.
fn fault(sid: u32, ipa: u64, read: bool) -> [u64; 4] {
    [
        u64::from(id::F_TRANSLATION) | u64::from(sid) << 32,
        u64::from(read) << 35 | 1 << 39 | 2 << 40,
        ipa,
        ipa,
    ]
}

#[test]
fn decodes_a_stage2_fault() {
    let raw = [
        0x10 | 1 << 11 | 0x5 << 12 | 0x42 << 32,
        1 << 35 | 1 << 39 | 2 << 40 | 0x1234,
        0xdead_b000,
        0x8_0000_1fff,
    ];
    let e = Event::decode(raw);
    assert_eq!(e.id, id::F_TRANSLATION);
    assert_eq!(e.sid, 0x42);
    assert_eq!(e.ssid, Some(5));
    assert_eq!(e.input_addr, 0xdead_b000);
    assert_eq!(e.ipa, 0x8_0000_1000);
    assert!(e.read && e.s2 && !e.stall);
    assert_eq!(e.class, FaultClass::Input);
    assert!(e.is_translation_fault());
    assert_eq!(e.raw, raw);
    assert_eq!(
        format!("{e}"),
        "F_TRANSLATION (0x10) sid 0x42 ssid 0x5 read addr 0xdeadb000 ipa 0x800001000 stage 2 \
         class IN"
    );
}

#[test]
fn decodes_other_events() {
    let bad_ste = Event::decode([0x04 | 7 << 32, 0, 0, 0]);
    assert_eq!(bad_ste.name(), Some("C_BAD_STE"));
    assert_eq!(bad_ste.ssid, None);
    assert!(!bad_ste.is_translation_fault());
    assert_eq!(format!("{bad_ste}"), "C_BAD_STE (0x04) sid 0x7");
    for (n, name) in [
        (0x11, "F_ADDR_SIZE"),
        (0x12, "F_ACCESS"),
        (0x13, "F_PERMISSION"),
        (0x02, "C_BAD_STREAMID"),
    ] {
        let e = Event::decode([n, 0, 0, 0]);
        assert_eq!(e.name(), Some(name));
        assert!(format!("{e}").starts_with(name));
    }
    let perm = Event::decode([0x13, 1 << 40, 0x1000, 0]);
    assert!(!perm.read && !perm.s2);
    assert_eq!(perm.class, FaultClass::TableWalk);
    let unknown = Event::decode([0x7e | 3 << 32, u64::MAX, u64::MAX, u64::MAX]);
    assert_eq!(unknown.name(), None);
    assert_eq!(format!("{unknown}"), "event 0x7e sid 0x3");
    assert_eq!(unknown.class, FaultClass::Reserved);
}

fn small_evtq() -> FakeSmmu {
    let mut idr = QEMU_S2;
    idr[1] = (idr[1] & !(0x1f << 16)) | 2 << 16; // EVENTQS = 2: 4 records
    FakeSmmu::new(idr)
}

#[test]
fn drains_in_order_across_the_wrap() {
    let fake = small_evtq();
    let mut smmu = probe(&fake);
    assert!(smmu.drain_events().events.is_empty());
    for round in 0..5u64 {
        for i in 0..3 {
            assert!(
                fake.state()
                    .push_event(fault(i, round << 20 | u64::from(i) << 12, true))
            );
        }
        let batch = smmu.drain_events();
        assert!(!batch.overflow);
        let sids: alloc::vec::Vec<u32> = batch.events.iter().map(|e| e.sid).collect();
        assert_eq!(sids, [0, 1, 2], "round {round}");
        assert_eq!(batch.events[2].ipa, round << 20 | 2 << 12);
        let s = fake.state();
        assert_eq!(s.evtq_cons, s.evtq_prod, "CONS caught up");
    }
    // 15 records through 4 slots: the wrap bit has flipped.
    assert_eq!(fake.state().evtq_cons & 7, 15 & 7);
}

#[test]
fn reports_and_acknowledges_overflow() {
    let fake = small_evtq();
    let mut smmu = probe(&fake);
    for i in 0..4 {
        assert!(fake.state().push_event(fault(i, 0, false)));
    }
    assert!(!fake.state().push_event(fault(9, 0, false)), "queue full");
    assert_eq!(fake.state().evtq_prod & Q_OVF, Q_OVF);
    let batch = smmu.drain_events();
    assert!(batch.overflow);
    assert_eq!(batch.events.len(), 4);
    assert!(batch.events.iter().all(|e| !e.read && e.s2));
    // OVACKFLG now matches OVFLG.
    assert_eq!(fake.state().evtq_cons & Q_OVF, Q_OVF);
    assert!(fake.state().push_event(fault(5, 0, false)));
    let batch = smmu.drain_events();
    assert!(!batch.overflow);
    assert_eq!(batch.events.len(), 1);
}

#[test]
fn nonsense_prod_ends_the_drain() {
    let fake = small_evtq();
    let mut smmu = probe(&fake);
    // 7 entries ahead of CONS in a 4-entry queue.
    fake.state().evtq_prod = 7;
    let batch = smmu.drain_events();
    assert!(batch.events.is_empty());
}

#[test]
fn non_coherent_events_are_invalidated_before_reading() {
    let mut idr = QEMU_S2;
    idr[0] &= !(1 << 4); // no COHACC
    let fake = FakeSmmu::new(idr);
    let mut smmu = probe(&fake);
    fake.state().invalidates.clear();
    fake.state().push_event(fault(1, 0x1000, true));
    let batch = smmu.drain_events();
    assert_eq!(batch.events.len(), 1);
    let s = fake.state();
    assert_eq!(s.invalidates.len(), 1);
    let base = s.evtq_base & crate::smmu::regs::Q_BASE_ADDR_MASK;
    assert_eq!(s.invalidates[0], (base, 32));
}
