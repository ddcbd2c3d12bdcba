//! The SMMU manager over two fake SMMUs described by `two-smmus.dtb`:
//! probe (and refusal), interrupts, the summary's features, owners'
//! streams attached with and without translation, detached, single
//! streams bound and aborted, typed errors. Faults: `manager_faults.rs`;
//! the device-tree functions: `manager_devices.rs`.

use alloc::string::ToString;
use alloc::vec::Vec;

use super::fake::{FakeSmmu, QEMU_S2};
use super::logcapture::capture;
use crate::fdt::HostDt;
use crate::mm::pagetable::tests::FakeMem;
use crate::mm::pagetable::{PageTable, Stage2};
use crate::smmu::cmd::{Cmd, op};
use crate::smmu::error::SmmuError;
use crate::smmu::manager::{
    HwQueue, Instance, ManagerError, OwnerId, Probed, SmmuInterrupt, SmmuIrq, SmmuManager,
    SmmuParts, Stage2Table, owner_streams,
};
use crate::smmu::regs::*;
use crate::smmu::ste::SteConfig;
use crate::smmu::streams::SidRange;
use crate::summary::{SmmuStatus, Summary, smmu_statuses};

#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);

static TWO: &Aligned<[u8]> = &Aligned(*include_bytes!("../../fdt/testdata/two-smmus.dtb"));

/// The manager over fakes.
pub(super) type TestManager = SmmuManager<FakeSmmu, FakeSmmu, FakeSmmu>;

/// One SMMU instance of a [`TestManager`].
type FakeInstance = Instance<FakeSmmu, FakeSmmu, FakeSmmu>;

/// Register bases of the two SMMUs in use.
pub(super) const BASE: [u64; 2] = [0x905_0000, 0x907_0000];
/// Bus 0 -> SMMU 0 (SID = RID), bus 1 -> SMMU 1 (SID 0x1000 + devfn).
pub(super) const PCIE: &str = "/pcie@10000000";
/// Behind the disabled SMMU.
pub(super) const PCIE_OFF: &str = "/pcie@20000000";
/// `iommus` = SMMU 1, SIDs 0x42 and 0x43.
pub(super) const DMA: &str = "/dma@9100000";
/// Truncated `iommus`.
pub(super) const BAD_DMA: &str = "/dma@9110000";

/// The parsed `two-smmus.dtb`.
pub(super) fn two_smmus() -> HostDt {
    HostDt::parse(&TWO.0).expect("dtb")
}

/// Probes the SMMUs of `hw` over fakes with ID registers `idr[i]`.
pub(super) fn probe_with(hw: &HostDt, idr: &[[u32; 6]]) -> (TestManager, Vec<FakeSmmu>) {
    let fakes: Vec<FakeSmmu> = idr.iter().map(|&i| FakeSmmu::new(i)).collect();
    let parts = hw.smmus.iter().zip(&fakes).map(|(node, f)| SmmuParts {
        node,
        regs: f.clone(),
        dma: f.clone(),
        cache: f.clone(),
    });
    (SmmuManager::probe(parts), fakes)
}

/// Both SMMUs of `hw`, with QEMU's stage-2-only ID registers.
pub(super) fn probe_two(hw: &HostDt) -> (TestManager, Vec<FakeSmmu>) {
    probe_with(hw, &[QEMU_S2, QEMU_S2])
}

/// A 40-bit stage-2 table starting at level 1 (fake addresses below 2^40,
/// as the fake CPU's 40-bit PARange requires).
pub(super) fn table(mem: &mut FakeMem) -> PageTable<Stage2> {
    PageTable::new(mem, 40, 1).expect("table")
}

/// Forgets what the fakes consumed so far.
pub(super) fn clear(fakes: &[FakeSmmu]) {
    for f in fakes {
        f.state().consumed.clear();
    }
}

fn assert_stage2(fake: &FakeSmmu, sid: u32, table: &PageTable<Stage2>, vmid: u16) {
    let ste = fake.state().walk_ste(sid).expect("reachable");
    let cfg = ste.s2_config().expect("stage 2");
    assert_eq!((cfg.vmid, cfg.root), (vmid, table.root()), "sid {sid:#x}");
}

fn aborts(fake: &FakeSmmu, sid: u32) -> bool {
    // Two-level table: no level-2 table yet also aborts.
    fake.state()
        .walk_ste(sid)
        .is_none_or(|s| s.config() == SteConfig::Abort)
}

#[test]
fn probes_two_instances() {
    let hw = two_smmus();
    assert_eq!(hw.smmus.len(), 2, "the disabled SMMU is not in the host DT");
    let ((m, fakes), log) = capture(|| probe_two(&hw));
    assert_eq!(m.count(), 2);
    let features = fakes[0].features();
    assert_eq!(
        m.probed(),
        [
            Probed {
                base: BASE[0],
                features,
                result: Ok(0)
            },
            Probed {
                base: BASE[1],
                features,
                result: Ok(1)
            },
        ]
    );
    assert_eq!(m.features_at(BASE[1]), Some(&features));
    assert_eq!(m.features(1), Some(&features));
    assert!(m.has_ril(0));
    assert_eq!(m.base(1), Some(BASE[1]));
    assert_eq!(m.base(2), None);
    let phandles: Vec<Option<u32>> = hw.smmus.iter().map(|s| s.phandle).collect();
    assert_eq!(m.phandles(), phandles);
    for (f, base) in fakes.iter().zip(BASE) {
        let s = f.state();
        assert_eq!(s.cr0 & CR0_SMMUEN, CR0_SMMUEN);
        assert_eq!(s.gbpa & GBPA_ABORT, GBPA_ABORT);
        assert!(s.cmds().contains(&Cmd::cfgi_all()));
        drop(s);
        assert!(aborts(f, 0) && aborts(f, 0x1000) && aborts(f, 0xffff));
        let line = alloc::format!(
            "INFO smmuv3 {base:#x}: enabled, all streams abort until a guest owns them (stream table TwoLevel)"
        );
        assert!(log.contains(&line), "{log:#?}");
    }
    assert!(
        log.iter()
            .any(|l| l.starts_with("DEBUG smmuv3 0x9050000: IDR0-5 ["))
    );
}

#[test]
fn refuses_an_unusable_smmu_and_keeps_its_features() {
    let hw = two_smmus();
    let mut s1_only = QEMU_S2;
    s1_only[0] = (s1_only[0] & !1) | 2;
    let ((m, fakes), log) = capture(|| probe_with(&hw, &[s1_only, QEMU_S2]));
    assert_eq!(m.count(), 1);
    assert_eq!(m.base(0), Some(BASE[1]));
    assert_eq!(m.phandles(), [hw.smmus[1].phandle]);
    assert_eq!(
        m.probed()[0].result,
        Err(SmmuError::Unusable("no stage-2 translation"))
    );
    assert_eq!(m.features_at(BASE[0]), Some(&fakes[0].features()));
    assert!(log.contains(
        &"ERROR smmuv3 0x9050000: not used: SMMU unusable: no stage-2 translation; DMA through it is not isolated"
            .to_string()
    ));
    // The summary still shows what it advertises.
    let statuses = smmu_statuses(&hw, &m);
    assert!(matches!(statuses[0], SmmuStatus::Probed(f) if !f.stage2));
    let summary = Summary {
        hw: &hw,
        board: "test",
        online: Some(1),
        psci_version: None,
        counter_hz: Some(1),
        gic_spis: None,
        smmus: statuses,
        pci: Vec::new(),
    };
    let text = alloc::format!("{summary}");
    assert!(text.contains(
        "smmuv3 /smmuv3@9050000 at 0x9050000: stages=s1 vmid16=yes ril=yes sidsize=16 oas=44-bit"
    ));
    assert!(text.contains("(unusable for DMA isolation: no stage-2 translation)"));
    assert!(text.contains("smmuv3 /smmuv3@9070000 at 0x9070000: stages=s2 "));
}

#[test]
fn summary_features_come_from_the_manager() {
    let hw = two_smmus();
    // The caller could map only the second SMMU's registers.
    let fake = FakeSmmu::new(QEMU_S2);
    let parts = SmmuParts {
        node: &hw.smmus[1],
        regs: fake.clone(),
        dma: fake.clone(),
        cache: fake.clone(),
    };
    let m: TestManager = SmmuManager::probe([parts]);
    let statuses = smmu_statuses(&hw, &m);
    assert!(
        matches!(&statuses[0], SmmuStatus::Unreachable(why) if why == "its registers could not be mapped")
    );
    assert!(matches!(statuses[1], SmmuStatus::Probed(f) if f == fake.features()));
    let empty = TestManager::empty();
    assert_eq!(empty.count(), 0);
    assert!(
        smmu_statuses(&hw, &empty)
            .iter()
            .all(|s| matches!(s, SmmuStatus::Unreachable(_)))
    );
}

#[test]
fn interrupts_are_named_registered_and_enabled() {
    let hw = two_smmus();
    let (m, fakes) = probe_two(&hw);
    let irqs = [
        SmmuIrq {
            smmu: 0,
            kind: SmmuInterrupt::EventQueue,
            intid: 32 + 74,
        },
        SmmuIrq {
            smmu: 0,
            kind: SmmuInterrupt::GlobalError,
            intid: 32 + 77,
        },
        SmmuIrq {
            smmu: 1,
            kind: SmmuInterrupt::EventQueue,
            intid: 32 + 80,
        },
    ];
    assert_eq!(m.irqs(), irqs);
    // The GIC takes all but the first SMMU's global error interrupt.
    let mut seen = Vec::new();
    m.enable_irqs(|irq| {
        seen.push(irq);
        irq.kind == SmmuInterrupt::EventQueue
    });
    assert_eq!(seen, irqs);
    assert_eq!(fakes[0].state().irq_ctrl, IRQ_CTRL_EVTQ_IRQEN);
    assert_eq!(fakes[1].state().irq_ctrl, IRQ_CTRL_EVTQ_IRQEN);
    // An SMMU that does not acknowledge: logged, events are polled.
    fakes[1].state().ack_stuck = true;
    fakes[1].state().irq_ctrlack = 0xdead;
    let ((), log) = capture(|| m.enable_irqs(|_| true));
    assert_eq!(
        fakes[0].state().irq_ctrlack,
        IRQ_CTRL_EVTQ_IRQEN | IRQ_CTRL_GERROR_IRQEN
    );
    assert_eq!(
        log,
        [
            "WARN smmuv3 0x9070000: interrupts not enabled (SMMU did not acknowledge a write (IRQ_CTRLACK)); events are polled"
        ]
    );
}

#[test]
fn attach_translates_an_owners_streams() {
    let hw = two_smmus();
    let (m, fakes) = probe_two(&hw);
    let mut mem = FakeMem::default();
    let t = table(&mut mem);
    let a = OwnerId(3);
    let streams = owner_streams(&hw, &[PCIE, DMA], m.phandles());
    let st2 = Stage2Table {
        table: &t,
        vmid: 5,
        label: "its stage 2",
    };
    let (r, log) = capture(|| m.attach(a, "a", &streams, Some(st2)));
    r.expect("attach");
    for sid in [0, 0x10, 0xff] {
        assert_stage2(&fakes[0], sid, &t, 5);
    }
    for sid in [0x1000, 0x10ff, 0x42, 0x43] {
        assert_stage2(&fakes[1], sid, &t, 5);
    }
    assert!(aborts(&fakes[0], 0x100) && aborts(&fakes[1], 0x1100) && aborts(&fakes[1], 0x44));
    // Output size: min(OAS 44 bits, the CPU's 40) = encoding 2.
    let ste = fakes[0].state().walk_ste(0).expect("ste");
    assert_eq!(ste.s2_config().map(|c| c.ps), Some(2));
    assert_eq!(
        m.owned_streams(a, 0),
        [SidRange {
            first: 0,
            last: 0xff
        }]
    );
    assert_eq!(
        m.owned_streams(a, 1),
        [
            SidRange {
                first: 0x1000,
                last: 0x10ff
            },
            SidRange {
                first: 0x42,
                last: 0x43
            }
        ]
    );
    assert_eq!(m.owner_of(1, 0x43), Some(a));
    assert_eq!(m.owner_of(0, 0x43), Some(a));
    assert_eq!(m.owner_of(0, 0x100), None);
    assert_eq!(
        log,
        [
            "INFO guest 'a': /pcie@10000000: 256 stream(s) on smmuv3 0x9050000 translate through its stage 2 (vmid 5)",
            "INFO guest 'a': /pcie@10000000: 256 stream(s) on smmuv3 0x9070000 translate through its stage 2 (vmid 5)",
            "INFO guest 'a': /dma@9100000: 2 stream(s) on smmuv3 0x9070000 translate through its stage 2 (vmid 5)",
        ]
    );
    t.destroy(&mut mem);
}

#[test]
fn attach_without_translation_records_streams_that_still_abort() {
    let hw = two_smmus();
    let (m, fakes) = probe_two(&hw);
    clear(&fakes);
    let b = OwnerId(1);
    let streams = owner_streams(&hw, &[DMA, PCIE_OFF, BAD_DMA], m.phandles());
    let (r, log) = capture(|| m.attach(b, "b", &streams, None));
    r.expect("attach");
    assert!(aborts(&fakes[1], 0x42) && aborts(&fakes[1], 0x43));
    assert!(fakes.iter().all(|f| f.state().consumed.is_empty()));
    assert_eq!(
        m.owned_streams(b, 1),
        [SidRange {
            first: 0x42,
            last: 0x43
        }]
    );
    assert_eq!(m.owner_of(1, 0x42), Some(b));
    assert_eq!(
        log,
        [
            "WARN guest 'b': /pcie@20000000: its DMA goes through an SMMU the hypervisor does not run: not isolated",
            "WARN guest 'b': /dma@9110000: malformed `iommus`",
            "INFO guest 'b': /dma@9100000: 2 stream(s) on smmuv3 0x9070000 abort until its virtio-iommu attaches them",
        ]
    );
}

#[test]
fn detach_aborts_one_owners_streams_and_invalidates_its_vmid() {
    let hw = two_smmus();
    let (m, fakes) = probe_two(&hw);
    let mut mem = FakeMem::default();
    let (ta, tb) = (table(&mut mem), table(&mut mem));
    let (a, b) = (OwnerId(0), OwnerId(1));
    let pcie = owner_streams(&hw, &[PCIE], m.phandles());
    let dma = owner_streams(&hw, &[DMA], m.phandles());
    let st2 = |t, vmid| {
        Some(Stage2Table {
            table: t,
            vmid,
            label: "its stage 2",
        })
    };
    m.attach(a, "a", &pcie, st2(&ta, 1)).expect("attach a");
    m.attach(b, "b", &dma, st2(&tb, 2)).expect("attach b");
    clear(&fakes);

    let (r, log) = capture(|| m.detach(a, 1));
    r.expect("detach");
    assert!(log.is_empty(), "{log:#?}");
    for sid in [0, 0x80, 0xff] {
        assert!(aborts(&fakes[0], sid), "sid {sid:#x}");
    }
    assert!(aborts(&fakes[1], 0x1000) && aborts(&fakes[1], 0x10ff));
    for f in &fakes {
        let cmds = f.state().cmds();
        let vmids: Vec<u16> = cmds
            .iter()
            .filter(|c| c.opcode() == op::TLBI_S12_VMALL)
            .map(Cmd::vmid)
            .collect();
        // The driver's own invalidation when the entries go, then the
        // VMID's.
        assert!(
            !vmids.is_empty() && vmids.iter().all(|&v| v == 1),
            "{vmids:?}"
        );
        assert_eq!(cmds.last(), Some(&Cmd::sync()));
    }
    // The other owner is untouched.
    assert_stage2(&fakes[1], 0x42, &tb, 2);
    assert_stage2(&fakes[1], 0x43, &tb, 2);
    assert_eq!(
        m.owned_streams(b, 1),
        [SidRange {
            first: 0x42,
            last: 0x43
        }]
    );
    assert!(m.owned_streams(a, 0).is_empty() && m.owned_streams(a, 1).is_empty());
    assert_eq!(m.owner_of(0, 0x10), None);
    // Nothing left to detach: nothing issued.
    clear(&fakes);
    m.detach(a, 1).expect("again");
    assert!(fakes.iter().all(|f| f.state().consumed.is_empty()));
    // Attached again (after a reset), the same streams translate.
    m.attach(a, "a", &pcie, st2(&ta, 1)).expect("reattach");
    assert_stage2(&fakes[0], 0x80, &ta, 1);
    ta.destroy(&mut mem);
    tb.destroy(&mut mem);
}

#[test]
fn single_streams_bind_and_abort() {
    let hw = two_smmus();
    let (m, fakes) = probe_two(&hw);
    let mut mem = FakeMem::default();
    let (own, domain) = (table(&mut mem), table(&mut mem));
    let a = OwnerId(0);
    let streams = owner_streams(&hw, &[PCIE], m.phandles());
    m.attach(a, "a", &streams, None).expect("attach");
    // A virtio-iommu domain for 00:02.0, its own stage 2 for 01:00.1.
    let dom = Stage2Table {
        table: &domain,
        vmid: 64,
        label: "its stage 2",
    };
    m.bind_stream(0, 0x10, dom).expect("bind");
    let st2 = Stage2Table {
        table: &own,
        vmid: 1,
        label: "its stage 2",
    };
    m.bind_stream(1, 0x1001, st2).expect("bind");
    assert_stage2(&fakes[0], 0x10, &domain, 64);
    assert_stage2(&fakes[1], 0x1001, &own, 1);
    assert!(aborts(&fakes[0], 0x11) && aborts(&fakes[1], 0x1000));
    // Recorded ownership does not change.
    assert_eq!(
        m.owned_streams(a, 0),
        [SidRange {
            first: 0,
            last: 0xff
        }]
    );

    clear(&fakes);
    m.abort_stream(0, 0x10).expect("abort");
    assert!(aborts(&fakes[0], 0x10));
    assert!(fakes[0].state().cmds().contains(&Cmd::tlbi_s12_vmall(64)));
    assert!(fakes[1].state().consumed.is_empty());
    assert_stage2(&fakes[1], 0x1001, &own, 1);
    // Commands of the caller's own (a domain's invalidation).
    clear(&fakes);
    m.issue(1, &[Cmd::tlbi_s12_vmall(64)]).expect("issue");
    assert_eq!(
        fakes[1].state().cmds(),
        [Cmd::tlbi_s12_vmall(64), Cmd::sync()]
    );
    own.destroy(&mut mem);
    domain.destroy(&mut mem);
}

#[test]
fn errors_are_typed() {
    let hw = two_smmus();
    let (m, fakes) = probe_two(&hw);
    let mut mem = FakeMem::default();
    let t = table(&mut mem);
    let st2 = Stage2Table {
        table: &t,
        vmid: 1,
        label: "its stage 2",
    };
    assert_eq!(m.bind_stream(2, 0, st2), Err(ManagerError::NoSuchSmmu(2)));
    assert_eq!(m.abort_stream(7, 0), Err(ManagerError::NoSuchSmmu(7)));
    assert_eq!(m.issue(9, &[]), Err(ManagerError::NoSuchSmmu(9)));
    let e = ManagerError::NoSuchSmmu(7);
    assert_eq!(e.to_string(), "no such SMMU (instance 7)");
    assert!(core::error::Error::source(&e).is_none());

    // A table the SMMU cannot walk.
    let level3 = PageTable::<Stage2>::new(&mut mem, 22, 3).expect("table");
    let bad = Stage2Table {
        table: &level3,
        vmid: 1,
        label: "its stage 2",
    };
    let e = m.bind_stream(0, 0, bad).expect_err("level 3");
    let why = SmmuError::BadConfig("walk cannot start at level 3");
    assert_eq!(e, ManagerError::Table(why));
    assert_eq!(
        e.to_string(),
        "bad stage-2 configuration: walk cannot start at level 3"
    );
    // The same through an attach names the SMMU and the device.
    let streams = owner_streams(&hw, &[PCIE], m.phandles());
    let e = m
        .attach(OwnerId(0), "a", &streams, Some(bad))
        .expect_err("level 3");
    assert_eq!(
        e,
        ManagerError::Device {
            path: PCIE.to_string(),
            base: BASE[0],
            error: why
        }
    );
    assert_eq!(
        e.to_string(),
        "smmuv3 0x9050000: /pcie@10000000: bad stage-2 configuration: walk cannot start at level 3"
    );
    let source = core::error::Error::source(&e).expect("source");
    assert_eq!(source.to_string(), why.to_string());
    assert_eq!(m.owned_streams(OwnerId(0), 0), []);

    // The driver's error, from the SMMU at its base.
    let next = fakes[1].state().consumed.len();
    fakes[1].state().inject = Some((next, 1));
    let e = m.issue(1, &[Cmd::tlbi_s12_vmall(3)]).expect_err("injected");
    assert!(
        matches!(e, ManagerError::Smmu { base, error: SmmuError::CommandError { code: 1, .. } } if base == BASE[1]),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with("smmuv3 0x9070000: SMMU command error 1")
    );
    let _: &dyn core::error::Error = &e;
    level3.destroy(&mut mem);
    t.destroy(&mut mem);
}

#[test]
fn an_empty_manager_has_nothing() {
    let m = TestManager::empty();
    assert_eq!((m.count(), m.probed().len(), m.phandles().len()), (0, 0, 0));
    assert!(m.irqs().is_empty() && !m.has_ril(0));
    m.poll_events();
    assert_eq!(m.detach(OwnerId(0), 1), Ok(()));
    assert_eq!(m.abort_stream(0, 1), Err(ManagerError::NoSuchSmmu(0)));
    let streams = owner_streams(&two_smmus(), &[PCIE, DMA], m.phandles());
    assert!(streams.devices.is_empty());
    assert_eq!(streams.problems.len(), 3, "{:?}", streams.problems);
    assert_eq!(m.attach(OwnerId(0), "a", &streams, None), Ok(()));
}

/// The queue a hot path keeps ([`SmmuManager::queue`]) against the
/// manager's `sync_cmds` on the same instance: two managers over fakes
/// given the same random batches (empty, small, past the queue's room so
/// that it wraps and is submitted in parts, with command errors injected),
/// the same answers, the same commands consumed by each SMMU and the same
/// log lines; no queue for an instance there is not.
#[test]
fn the_kept_queue_is_the_managers_sync_on_its_instance() {
    let hw = two_smmus();
    let (kept, kept_fakes) = probe_two(&hw);
    let (general, general_fakes) = probe_two(&hw);
    assert!(kept.queue(2).is_none() && general.sync_cmds(2, &[]).is_err());
    // Found by its own type only: a manager over other types than the
    // machine's is not kept as the machine's (the target then syncs
    // through the port), nor is an instance there is not.
    assert!(kept.instance_as::<HwQueue>(0).is_none());
    assert!(kept.instance_as::<FakeInstance>(2).is_none());
    let mut rng = crate::test_rng::Rng(0x2545_f491_4f6c_dd1du64);
    let mut rand = move |n: u64| rng.below(n);
    let mut answers = [0usize; 2];
    for step in 0..400 {
        let inst = rand(2) as usize;
        let n = match rand(4) {
            0 => 0,
            1 | 2 => 1 + rand(3),
            _ => rand(600),
        };
        let cmds: Vec<Cmd> = (0..n)
            .map(|i| Cmd::tlbi_s2_ipa(rand(4) as u16, (step * 1000 + i) << 12, true))
            .collect();
        if rand(8) == 0 {
            // A command error on one of this batch's entries (or its sync).
            let at = rand(n + 1) as usize;
            for f in [&kept_fakes[inst], &general_fakes[inst]] {
                let next = f.state().consumed.len();
                f.state().inject = Some((next + at, 1));
            }
        }
        let (a, la) = if step % 2 == 0 {
            let queue = kept.queue(inst).expect("instance");
            capture(|| queue.sync_cmds(&cmds))
        } else {
            // The instance by its concrete type, as the target keeps the
            // machine's (a direct call).
            let queue = kept.instance_as::<FakeInstance>(inst).expect("its type");
            capture(|| queue.sync_cmds(&cmds))
        };
        let (b, lb) = capture(|| general.sync_cmds(inst, &cmds));
        assert_eq!(a, b, "step {step}: answer");
        assert_eq!(la, lb, "step {step}: log lines");
        answers[usize::from(a.is_err())] += 1;
        for i in 0..2 {
            assert_eq!(
                kept_fakes[i].state().cmds(),
                general_fakes[i].state().cmds(),
                "step {step}: instance {i}'s commands"
            );
        }
    }
    assert!(answers[0] > 200 && answers[1] > 10, "{answers:?}");
}
