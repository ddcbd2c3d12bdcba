//! The real glue on the host: guests built and run by the machine over the
//! SMMU manager and the fake SMMU (`smmu/tests/fake.rs`), through the VM
//! layer's port ([`SmmuPort`]) and fault sink ([`FaultRouter`]): the
//! guest's streams bound at build, each virtio-iommu domain's VMID in the
//! stream table entry, bypass switching, streams back to abort across a
//! reset, and a DMA fault reaching the guest.

use super::*;
use crate::arch::exit::{Action, Exit};
use crate::arch::frame::TrapFrame;
use crate::mm::heap_tables::HeapTables;
use crate::pci::config::ConfigAccess;
use crate::pci::enumerate::Topology;
use crate::pci::fake::FakeEcam;
use crate::pci::host::PciHost;
use crate::smmu::manager::{SmmuManager, SmmuParts};
use crate::smmu::ste::SteConfig;
use crate::smmu::tests::fake::{FakeSmmu, QEMU_S2};
use crate::viommu::backend::IommuBackend;
use crate::vm::dma::{FaultRouter, SmmuPort};
use crate::vm::viommu::backend::SmmuBackend;
use crate::vm::viommu::vmids::unattached_vmid;
use core::sync::atomic::Ordering;

pub(super) type FakePort = SmmuPort<FakeSmmu, FakeSmmu, FakeSmmu>;

// SAFETY: the fake SMMU is not thread-safe (Rc<RefCell>); each test uses
// its port on its own thread only, as the machine it builds.
unsafe impl Sync for FakePort {}

/// Requester ID 00:01.0 on `/pcie@10000000` (SID = RID on QEMU virt).
const EP: u32 = 0x08;

/// A world whose SMMU side is the real manager over one fake SMMU with
/// 48-bit output addresses (host heap addresses hold the tables).
pub(super) struct Real {
    pub w: World,
    pub fake: FakeSmmu,
    pub port: &'static FakePort,
}

fn real() -> Real {
    real_with(QEMU_S2)
}

/// [`real`] with the fake SMMU's ID registers `idr` (OAS forced to 48
/// bits).
pub(super) fn real_with(idr: [u32; 6]) -> Real {
    real_on(idr, &[])
}

/// [`real_with`] with the host bridges enumerated as `pci` says.
fn real_on(mut idr: [u32; 6], pci: &'static [PciHost]) -> Real {
    let w = World::new();
    fake::with(|s| s.pa_bits_field = 5); // 48-bit PARange
    let hw = host();
    idr[5] = idr[5] & !7 | 5; // OAS 48 bits
    let fake = FakeSmmu::new(idr);
    let parts = hw.smmus.iter().map(|node| SmmuParts {
        node,
        regs: fake.clone(),
        dma: fake.clone(),
        cache: fake.clone(),
    });
    let smmus: &'static SmmuManager<_, _, _> = Box::leak(Box::new(SmmuManager::probe(parts)));
    assert_eq!(smmus.count(), 1);
    let port = Box::leak(Box::new(SmmuPort { hw, pci, smmus }));
    Real { w, fake, port }
}

impl Real {
    pub(super) fn guest(&self, index: usize, config: GuestConfig) -> Guest {
        self.w.guest_on(self.port, index, config)
    }

    /// (VMID, stage-2 root) the stream table entry of `sid` translates
    /// through; None when it aborts.
    pub(super) fn ste(&self, sid: u32) -> Option<(u16, u64)> {
        let ste = self.fake.state().walk_ste(sid)?;
        if ste.config() == SteConfig::Abort {
            return None;
        }
        let cfg = ste.s2_config().expect("stage 2");
        Some((cfg.vmid, cfg.root))
    }
}

/// Root of guest `g`'s table for unattached virtio-iommu endpoints.
pub(super) fn unattached_root(g: &Guest) -> u64 {
    let u = g.dma.unattached.as_ref().expect("a virtio-iommu guest");
    u.table.lock().table().root()
}

#[test]
fn a_guest_without_virtio_iommu_dmas_through_its_stage_2() {
    let r = real();
    let mut c = config("a", &[0], false);
    c.devices.push(String::from("/pcie@10000000"));
    let g = r.guest(0, c);
    let root = g.stage2.lock().0.root();
    assert_eq!(r.ste(EP), Some((1, root)));
    assert_eq!(r.ste(0xff00), Some((1, root)), "the whole bus range");
    g.dma.detach().unwrap();
    assert_eq!(r.ste(EP), None, "detached: aborts");
}

#[test]
fn only_the_buses_enumeration_found_get_stream_table_entries() {
    use crate::pci::config::Bdf;
    use crate::pci::enumerate::Function;
    // Functions on buses 0 and 1 of the host bridge: its streams are bound
    // on those two buses, not on the other 254 (16 KiB of stream table
    // each).
    let f = |bus| Function {
        bdf: Bdf::new(bus, 0, 0),
        vendor: 0x1b36,
        device: 0x0010,
        class: 0x010802,
        bridge: false,
        bars: Vec::new(),
        intx_pin: 1,
        upstream: None,
    };
    let ecam: &'static spin::Mutex<dyn ConfigAccess + Send> =
        Box::leak(Box::new(spin::Mutex::new(FakeEcam::default())));
    let pci = Box::leak(Box::new([PciHost {
        path: String::from("/pcie@10000000"),
        topology: Topology {
            path: String::from("/pcie@10000000"),
            functions: vec![f(0), f(1)],
            problems: Vec::new(),
        },
        config: ecam,
        intx: spin::Mutex::new(Vec::new()),
    }]));
    let r = real_on(QEMU_S2, pci);
    let mut c = config("a", &[0], false);
    c.devices.push(String::from("/pcie@10000000"));
    let g = r.guest(0, c);
    let root = g.stage2.lock().0.root();
    assert_eq!(r.ste(0x0008), Some((1, root)));
    assert_eq!(r.ste(0x01ff), Some((1, root)), "bus 1");
    assert_eq!(r.ste(0x0200), None, "bus 2: nothing is there");
    assert_eq!(r.ste(0xff00), None);
}

#[test]
fn virtio_iommu_domains_bind_endpoints_with_their_own_vmid() {
    let r = real();
    let g = r.guest(0, config("a", &[0], true));
    let unattached = unattached_root(&g);
    assert_eq!(
        r.ste(EP),
        Some((unattached_vmid(0), unattached)),
        "translates nothing until the driver attaches it"
    );
    let mut b = ById::new(SmmuBackend::new(
        g.ram,
        g.dma.clone(),
        r.w.vmids.reserve(32),
        32,
    ));
    b.domain_create(1, false).unwrap();
    b.attach(EP, 1).unwrap();
    let (vmid, root) = r.ste(EP).expect("translates");
    assert_eq!(vmid, 64, "the first domain VMID");
    assert_ne!(root, g.stage2.lock().0.root(), "its own IO page table");
    assert_eq!(
        r.ste(EP + 1),
        Some((unattached_vmid(0), unattached)),
        "other endpoints still unattached"
    );
    // Global bypass: unattached endpoints go through (a mirror of) the
    // guest's stage 2, the attached one stays in its domain; no stream
    // table entry changes.
    b.set_global_bypass(true).unwrap();
    assert_eq!(r.ste(EP), Some((64, root)));
    assert_eq!(r.ste(EP + 1), Some((unattached_vmid(0), unattached)));
    let u = g.dma.unattached.as_ref().unwrap();
    let st2 = g.stage2.lock();
    assert_eq!(
        u.table.lock().table().translate(&st2.1, RAM_BASE),
        st2.0.translate(&st2.1, RAM_BASE)
    );
    drop(st2);
    b.set_global_bypass(false).unwrap();
    assert_eq!(
        u.table.lock().table().translate(&HeapTables, RAM_BASE),
        None
    );
    b.detach(EP).unwrap();
    b.domain_destroy(1);
    assert_eq!(r.ste(EP), Some((unattached_vmid(0), unattached)));
    assert_eq!(r.w.vmids.in_use(), 0, "the VMID is free again");
}

#[test]
fn a_reset_returns_the_streams_to_abort_and_a_fault_reaches_the_guest() {
    let r = real();
    let g = r.guest(0, config("a", &[0], true));
    let mut b = ById::new(SmmuBackend::new(
        g.ram,
        g.dma.clone(),
        r.w.vmids.reserve(32),
        32,
    ));
    b.domain_create(1, false).unwrap();
    b.attach(EP, 1).unwrap();
    assert!(r.ste(EP).is_some());
    // The real device's backend is the guest's own; this one stands for it.
    drop(b);
    let m = r.w.machine(vec![g]);
    r.port.smmus.set_fault_sink(Box::leak(Box::new(FaultRouter {
        hw: r.port.hw,
        machine: m,
    })));
    // A translation fault on the endpoint: counted and reported.
    let rec = [
        0x10 | u64::from(EP) << 32, // F_TRANSLATION
        1 << 35 | 1 << 39 | 2 << 40,
        0x1234_5000,
        0x1234_5000,
    ];
    assert!(r.fake.state().push_event(rec));
    r.port.smmus.poll_events();
    let g = &m.guests()[0];
    assert_eq!(g.counters.dma_faults.load(Ordering::Relaxed), 1);
    // The guest resets: its streams abort while its images are reloaded,
    // then wait for its virtio-iommu again.
    match m.idle() {
        crate::vm::power::Idle::Enter(_) => {}
        _ => panic!("boot vCPU not entered"),
    }
    let mut frame = TrapFrame::default();
    frame.x[0] = 0x8400_0009; // SYSTEM_RESET
    assert_eq!(
        m.handle_exit(&frame, Exit::Hvc { imm: 0 }),
        Some(Action::Stop)
    );
    assert_eq!(
        r.ste(EP),
        Some((unattached_vmid(0), unattached_root(g))),
        "unattached again after the reset"
    );
}
