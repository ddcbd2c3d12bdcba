//! DMA faults through the manager: event queues drained into one log line
//! per run of identical events, runs on owned streams handed to a
//! recording [`FaultSink`] (which, like the VM layer's, maps the stream
//! back to an endpoint and "forwards" translation faults), unowned streams
//! reported as "no guest", interrupts draining only their instance, and
//! global errors.

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::logcapture::capture;
use super::manager::{BASE, DMA, PCIE, TestManager, clear, probe_two, table, two_smmus};
use crate::fdt::HostDt;
use crate::mm::pagetable::tests::FakeMem;
use crate::smmu::event::{Event, id};
use crate::smmu::manager::{
    DmaFault, FaultHandled, FaultSink, OwnerId, Stage2Table, owner_streams, sid_endpoint,
};
use crate::smmu::regs::{GERROR_EVTQ_ABT_ERR, Q_OVF};

/// An event record: `id` on stream `sid` at `addr`.
fn record(id: u8, sid: u32, addr: u64, read: bool) -> [u64; 4] {
    [
        u64::from(id) | u64::from(sid) << 32,
        u64::from(read) << 35 | 1 << 39 | 2 << 40,
        addr,
        addr,
    ]
}

/// One call of the sink.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    owner: OwnerId,
    smmu: usize,
    phandle: Option<u32>,
    event: Event,
    repeats: usize,
    /// The endpoint the sink found for the stream.
    endpoint: Option<u32>,
}

/// A sink that records every call and, like the VM layer's, forwards a
/// translation fault when the stream maps back to an endpoint of the
/// owner's host bridges.
struct Recorder {
    hw: HostDt,
    devices: Vec<&'static str>,
    seen: spin::Mutex<Vec<Seen>>,
}

impl FaultSink for Recorder {
    fn dma_fault(&self, f: &DmaFault<'_>) -> FaultHandled {
        let endpoint = f
            .smmu_phandle
            .and_then(|ph| sid_endpoint(&self.hw, &self.devices, ph, f.event.sid));
        self.seen.lock().push(Seen {
            owner: f.owner,
            smmu: f.smmu,
            phandle: f.smmu_phandle,
            event: *f.event,
            repeats: f.repeats,
            endpoint,
        });
        FaultHandled {
            reported: f.event.is_translation_fault() && endpoint.is_some(),
            log: Some(0),
        }
    }
}

/// Two SMMUs; owner 4 ("a") holds the host bridge with translation and the
/// platform device without.
fn setup() -> (TestManager, Vec<crate::smmu::tests::fake::FakeSmmu>, HostDt) {
    let hw = two_smmus();
    let (m, fakes) = probe_two(&hw);
    // The table lives as long as the test.
    let mem = Box::leak(Box::new(FakeMem::default()));
    let t = Box::leak(Box::new(table(mem)));
    let st2 = Stage2Table {
        table: t,
        vmid: 5,
        label: "its stage 2",
    };
    let a = OwnerId(4);
    m.attach(
        a,
        "a",
        &owner_streams(&hw, &[PCIE], m.phandles()),
        Some(st2),
    )
    .expect("attach");
    m.attach(a, "a", &owner_streams(&hw, &[DMA], m.phandles()), None)
        .expect("attach");
    clear(&fakes);
    (m, fakes, hw)
}

fn recorder(hw: HostDt) -> &'static Recorder {
    Box::leak(Box::new(Recorder {
        hw,
        devices: alloc::vec![PCIE, DMA],
        seen: spin::Mutex::new(Vec::new()),
    }))
}

#[test]
fn faults_go_to_the_sink_with_their_owner_and_repeats() {
    let (m, fakes, hw) = setup();
    let sink = recorder(two_smmus());
    m.set_fault_sink(sink);
    let t = id::F_TRANSLATION;
    {
        let mut s = fakes[0].state();
        for i in 0..3 {
            assert!(s.push_event(record(t, 0x10, 0x8000 + i * 8, false)));
        }
        s.push_event(record(t, 0x10, 0x9000, true));
        s.push_event(record(id::C_BAD_STE, 0x11, 0, false));
        s.push_event(record(t, 0x300, 0xa000, false));
    }
    fakes[1].state().push_event(record(t, 0x1008, 0xb000, true));
    fakes[1].state().push_event(record(t, 0x42, 0xc000, false));
    let ((), log) = capture(|| m.poll_events());

    let ev = |raw| Event::decode(raw);
    let ph: Vec<Option<u32>> = hw.smmus.iter().map(|s| s.phandle).collect();
    let a = OwnerId(4);
    let seen = |smmu: usize, raw, repeats, endpoint| Seen {
        owner: a,
        smmu,
        phandle: ph[smmu],
        event: ev(raw),
        repeats,
        endpoint,
    };
    assert_eq!(
        *sink.seen.lock(),
        [
            // Three writes on 00:02.0 make one run, the read another.
            seen(0, record(t, 0x10, 0x8000, false), 3, Some(0x10)),
            seen(0, record(t, 0x10, 0x9000, true), 1, Some(0x10)),
            // Not a translation fault: counted, not forwarded.
            seen(0, record(id::C_BAD_STE, 0x11, 0, false), 1, Some(0x11)),
            // Stream 0x300 of SMMU 0 is nobody's: not given to the sink.
            // Bus 1 through the second SMMU: endpoint 01:01.0.
            seen(1, record(t, 0x1008, 0xb000, true), 1, Some(0x108)),
            // The platform device has no endpoint ID.
            seen(1, record(t, 0x42, 0xc000, false), 1, None),
        ]
    );
    assert_eq!(
        log,
        [
            "WARN smmuv3 0x9050000: write DMA blocked: F_TRANSLATION (0x10) sid 0x10 write addr 0x8000 ipa 0x8000 stage 2 class IN (guest 'a', reported to its virtio-iommu) (and 2 more like it)",
            "WARN smmuv3 0x9050000: read DMA blocked: F_TRANSLATION (0x10) sid 0x10 read addr 0x9000 ipa 0x9000 stage 2 class IN (guest 'a', reported to its virtio-iommu)",
            "WARN smmuv3 0x9050000: write DMA blocked: C_BAD_STE (0x04) sid 0x11 (guest 'a')",
            "WARN smmuv3 0x9050000: write DMA blocked: F_TRANSLATION (0x10) sid 0x300 write addr 0xa000 ipa 0xa000 stage 2 class IN (no guest)",
            "WARN smmuv3 0x9070000: read DMA blocked: F_TRANSLATION (0x10) sid 0x1008 read addr 0xb000 ipa 0xb000 stage 2 class IN (guest 'a', reported to its virtio-iommu)",
            "WARN smmuv3 0x9070000: write DMA blocked: F_TRANSLATION (0x10) sid 0x42 write addr 0xc000 ipa 0xc000 stage 2 class IN (guest 'a')",
        ]
    );
    // Drained: nothing more.
    let ((), log) = capture(|| m.poll_events());
    assert!(log.is_empty() && sink.seen.lock().len() == 5);
}

/// A sink with a log budget of two lines: then silent, until it has
/// earned one more line, which says how many were left out.
struct Budgeted {
    calls: core::sync::atomic::AtomicU64,
}

impl FaultSink for Budgeted {
    fn dma_fault(&self, _f: &DmaFault<'_>) -> FaultHandled {
        let n = self
            .calls
            .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        FaultHandled {
            reported: false,
            log: match n {
                0 | 1 => Some(0),
                2..=4 => None,
                _ => Some(3),
            },
        }
    }
}

#[test]
fn a_guests_fault_lines_follow_its_log_budget() {
    let (m, fakes, _) = setup();
    m.set_fault_sink(Box::leak(Box::new(Budgeted {
        calls: core::sync::atomic::AtomicU64::new(0),
    })));
    {
        let mut s = fakes[0].state();
        // Six runs (alternating direction), one line each at most.
        for i in 0..6 {
            s.push_event(record(id::F_TRANSLATION, 0x10, 0x8000 + i * 8, i % 2 == 0));
        }
    }
    let ((), log) = capture(|| m.poll_events());
    assert_eq!(log.len(), 4, "{log:#?}");
    assert!(log[0].contains("read DMA blocked") && log[1].contains("write DMA blocked"));
    assert_eq!(
        log[2],
        "WARN smmuv3 0x9050000: 3 more DMA fault line(s) of guest 'a' left out"
    );
    assert!(log[3].contains("addr 0x8028"), "the sixth run: {}", log[3]);
}

#[test]
fn without_a_sink_faults_are_only_logged() {
    let (m, fakes, _) = setup();
    fakes[0]
        .state()
        .push_event(record(id::F_TRANSLATION, 0x10, 0x8000, false));
    let ((), log) = capture(|| m.poll_events());
    assert_eq!(
        log,
        [
            "WARN smmuv3 0x9050000: write DMA blocked: F_TRANSLATION (0x10) sid 0x10 write addr 0x8000 ipa 0x8000 stage 2 class IN (guest 'a')"
        ]
    );
}

#[test]
fn a_detached_owners_faults_are_nobodys() {
    let (m, fakes, _) = setup();
    let sink = recorder(two_smmus());
    m.set_fault_sink(sink);
    m.detach(OwnerId(4), 5).expect("detach");
    fakes[0]
        .state()
        .push_event(record(id::F_TRANSLATION, 0x10, 0x8000, false));
    let ((), log) = capture(|| m.poll_events());
    assert!(sink.seen.lock().is_empty());
    assert!(log[0].ends_with("(no guest)"), "{log:?}");
}

#[test]
fn an_interrupt_drains_only_its_instance() {
    let (m, fakes, _) = setup();
    let sink = recorder(two_smmus());
    m.set_fault_sink(sink);
    for f in &fakes {
        f.state()
            .push_event(record(id::F_TRANSLATION, 0x42, 0x1000, true));
    }
    // SMMU 1's event queue interrupt (SPI 80).
    let ((), log) = capture(|| m.handle_event_irq(32 + 80));
    assert_eq!(log.len(), 1);
    assert!(log[0].starts_with("WARN smmuv3 0x9070000: read DMA blocked"));
    // Some other interrupt: nothing.
    let ((), log) = capture(|| m.handle_event_irq(32 + 77));
    assert!(log.is_empty());
    // SMMU 0's (SPI 74); SID 0x42 there is 00:08.2 of the bridge.
    let ((), log) = capture(|| m.handle_event_irq(32 + 74));
    assert_eq!(log.len(), 1);
    assert!(log[0].starts_with("WARN smmuv3 0x9050000: read DMA blocked"));
    let endpoints: Vec<Option<u32>> = sink.seen.lock().iter().map(|s| s.endpoint).collect();
    assert_eq!(endpoints, [None, Some(0x42)]);
}

#[test]
fn overflow_and_global_errors_are_logged() {
    let (m, fakes, _) = setup();
    fakes[0].state().evtq_prod ^= Q_OVF;
    let ((), log) = capture(|| m.poll_events());
    assert_eq!(
        log,
        ["WARN smmuv3 0x9050000: event queue overflowed: events were lost"]
    );
    // An event queue write aborted: GERROR.EVTQ_ABT_ERR, seen on SMMU 0's
    // global error interrupt (SPI 77) and acknowledged.
    fakes[0].state().gerror ^= GERROR_EVTQ_ABT_ERR;
    let ((), log) = capture(|| m.handle_gerror_irq(32 + 77));
    assert_eq!(log.len(), 1);
    assert!(
        log[0].starts_with(&alloc::format!(
            "ERROR smmuv3 {:#x}: global error: ",
            BASE[0]
        )),
        "{log:?}"
    );
    assert_eq!(fakes[0].state().gerror_active(), 0);
    // Acknowledged: nothing active any more.
    let ((), log) = capture(|| m.handle_gerror_irq(32 + 77));
    assert!(log.is_empty());
}
