//! A guest given single PCI functions (`pci = [...]`): its virtual bridge
//! in its device table, the functions' BARs at stage 2, their INTx lines
//! owned and held against other guests, their streams, its device tree
//! node, the functions stopped when it powers off, and stopped before the
//! virtio-iommu lets their streams go when it resets.

use super::*;
use crate::config::Problem;
use crate::devices::{AccessCtx, MmioDevice};
use crate::pci::config::{Bdf, ConfigAccess, command, reg};
use crate::pci::enumerate::enumerate;
use crate::pci::fake::{ENDPOINT, FakeBar, FakeEcam};
use crate::pci::host::PciHost;
use crate::viommu::wire::Status;
use crate::viommu::wire::request::{Attach, Request};
use crate::vm::build::{BuildError, GuestSpec, build};
use crate::vm::vpci::VpciError;

/// QEMU virt's host bridge with an NVMe at 00:02.0 (INTA: INTID 37) and
/// an edu at 00:06.0 (INTA: INTID 37 too: slots 2 and 6 share a line),
/// enumerated; the fake ECAM stays reachable through the host.
fn hosts() -> (&'static [PciHost], &'static spin::Mutex<FakeEcam>) {
    let mut e = FakeEcam::default();
    e.add(
        Bdf::new(0, 2, 0),
        (0x1b36, 0x0010),
        0x010802,
        ENDPOINT,
        &[FakeBar::Mem64(0x4000, false)],
        1,
    );
    e.add(
        Bdf::new(0, 6, 0),
        (0x1234, 0x11e8),
        0x00ff00,
        ENDPOINT,
        &[FakeBar::Mem32(1 << 20)],
        1,
    );
    let bridge = host().pcie[0].clone();
    let topology = enumerate(&mut e, &bridge);
    let ecam: &'static spin::Mutex<FakeEcam> = Box::leak(Box::new(spin::Mutex::new(e)));
    let config: &'static spin::Mutex<dyn ConfigAccess + Send> = ecam;
    let hosts = Box::leak(Box::new([PciHost {
        path: bridge.path.clone(),
        topology,
        config,
        intx: spin::Mutex::new(Vec::new()),
    }]));
    (hosts, ecam)
}

fn try_build(
    w: &World,
    pci: &'static [PciHost],
    index: usize,
    c: GuestConfig,
) -> Result<Guest, BuildError> {
    let ctx = BuildCtx {
        host: host(),
        gic: w.gic,
        smmus: w.dma,
        vmids: &w.vmids,
        pci,
    };
    build(
        &ctx,
        GuestSpec {
            index,
            config: c,
            kernel: kernel(),
            initrd: None,
            ram: ram(),
        },
    )
}

fn with_pci(name: &str, cpu: u32, functions: &[&str]) -> GuestConfig {
    let mut c = config(name, &[cpu], false);
    c.devices.clear();
    c.pci = functions.iter().map(|s| String::from(*s)).collect();
    c
}

/// Guest `g`'s virtual bridge (at the host's ECAM address): its device,
/// the offset of that address in it, and an access of its vCPU 0.
fn bridge<'a>(w: &World, g: &'a Guest) -> (&'a dyn MmioDevice, u64, AccessCtx<'a>) {
    let ecam_base = host().pcie[0].ecam.base;
    let (dev, off) = g.devices.find(ecam_base).expect("the bridge's window");
    let ctx = AccessCtx {
        vcpu: 0,
        mem: &g.ram,
        gic: w.port,
    };
    (dev, off, ctx)
}

#[test]
fn a_guest_gets_its_function_behind_a_virtual_bridge() {
    let w = World::new();
    let (pci, ecam) = hosts();
    let g = try_build(&w, pci, 0, with_pci("a", 0, &["00:02.0"])).expect("builds");
    // The bridge answers at the host's ECAM address, slot 0 = host 00:02.0.
    let (dev, off, ctx) = bridge(&w, &g);
    assert_eq!(dev.read(&ctx, off, 4), Some(0x0010_1b36));
    assert_eq!(
        dev.read(&ctx, off + (1 << 15), 4),
        Some(u64::from(u32::MAX)),
        "slot 1 empty"
    );
    // Its BAR is mapped at stage 2 where the hypervisor placed it.
    let bar = pci[0].topology.function(Bdf::new(0, 2, 0)).unwrap().bars[0]
        .placed
        .unwrap()
        .1;
    let st2 = g.stage2.lock();
    assert_eq!(st2.0.translate(&st2.1, bar).map(|(pa, _)| pa), Some(bar));
    drop(st2);
    // Its INTx line is the guest's; its stream is bound.
    assert!(g.owned_intids.contains(&37));
    assert_eq!(g.dma.functions, [(String::from("/pcie@10000000"), 0x10)]);
    // The guest enables the function; powering off stops it again.
    let cmd = off + u64::from(reg::COMMAND);
    dev.write(
        &ctx,
        cmd,
        2,
        u64::from(command::MEMORY | command::BUS_MASTER),
    );
    let on = ecam.lock().reg(Bdf::new(0, 2, 0), reg::COMMAND) & 0xffff;
    assert_eq!(on, command::MEMORY | command::BUS_MASTER);
    g.vpci.as_ref().expect("a bridge").quiesce();
    assert_eq!(ecam.lock().reg(Bdf::new(0, 2, 0), reg::COMMAND) & 0x7, 0);
    // Its device tree has the bridge and probe-only.
    let dt = crate::fdt::Tree::parse(&g.images.dtb).expect("dtb");
    assert!(
        dt.find("/pcie@4010000000")
            .is_some_and(|n| n.is_compatible("pci-host-ecam-generic"))
    );
    assert_eq!(
        dt.find("/chosen")
            .and_then(|c| c.prop_u32("linux,pci-probe-only")),
        Some(1)
    );
}

#[test]
fn functions_of_two_guests_may_not_share_an_intx_line_and_missing_ones_are_refused() {
    let w = World::new();
    let (pci, _) = hosts();
    try_build(&w, pci, 0, with_pci("a", 0, &["00:02.0"])).expect("a builds");
    // b: its edu shares a's line, and 00:09.0 does not exist: both said.
    let e = try_build(&w, pci, 1, with_pci("b", 1, &["00:06.0", "00:09.0"]))
        .err()
        .expect("b refused");
    assert!(matches!(e, BuildError::Pci(VpciError::Config(_))), "{e}");
    let [
        Problem::PciIntxShared {
            at: 0,
            intid: 37,
            holder,
            holder_addr,
            ..
        },
        Problem::PciAbsent { at: 1, .. },
    ] = e.problems()
    else {
        panic!("not an INTx conflict and a missing function: {e}");
    };
    assert_eq!((holder.index, holder.name.as_deref()), (0, Some("a")));
    assert_eq!(holder_addr.to_string(), "0000:00:02.0");
    assert!(e.to_string().contains("0000:00:09.0: host bridge"), "{e}");
}

#[test]
fn a_refused_guest_holds_no_intx_line() {
    let w = World::new();
    let (pci, _) = hosts();
    // a takes 00:02.0's line, then is refused for 00:09.0...
    let e = try_build(&w, pci, 0, with_pci("a", 0, &["00:02.0", "00:09.0"]))
        .err()
        .expect("a refused");
    assert!(
        matches!(e.problems(), [Problem::PciAbsent { at: 1, .. }]),
        "{e}"
    );
    assert!(pci[0].intx.lock().is_empty(), "a's line given back");
    // ...so b may have the edu on that line.
    try_build(&w, pci, 1, with_pci("b", 1, &["00:06.0"])).expect("b builds");
}

#[test]
fn a_reset_waits_without_holding_the_host_bridge_for_the_other_guests() {
    // The host bridge's configuration access is shared by every guest
    // given one of its functions: a guest's stop must not hold it through
    // the 100 ms after a Function Level Reset, or another guest's
    // configuration access spins at EL2 (interrupts masked) that long.
    let w = World::new();
    let (pci, ecam) = hosts();
    let nvme = Bdf::new(0, 2, 0);
    {
        // The NVMe offers FLR: a PCI Express capability at 0x40 with
        // Device Capabilities bit 28.
        let mut e = ecam.lock();
        let status = e.reg(nvme, reg::COMMAND) | 1 << 20;
        e.write32_raw(nvme, reg::COMMAND, status);
        e.write32_raw(nvme, 0x34, 0x40);
        e.write32_raw(nvme, 0x40, 0x10);
        e.write32_raw(nvme, 0x44, 1 << 28);
    }
    let g = try_build(&w, pci, 0, with_pci("a", 0, &["00:02.0"])).expect("builds");
    let mut waits = Vec::new();
    g.vpci
        .as_ref()
        .expect("a bridge")
        .quiesce_with(&mut |ms| waits.push((ms, ecam.try_lock().is_some())));
    assert_eq!(waits, [(100, true)], "(ms, host bridge free while waiting)");
}

#[test]
fn a_reset_stops_the_functions_before_the_viommu_lets_their_streams_go() {
    // On a guest reset the virtual bridge's functions stop mastering
    // before the virtio-iommu detaches their endpoints: otherwise a DMA in
    // flight between the two would meet the stream's unattached state
    // (blocked, or the guest's whole RAM while bypass is on) instead of
    // the domain the guest gave it.
    let w = World::new();
    let (pci, ecam) = hosts();
    let nvme = Bdf::new(0, 2, 0);
    let mut c = config("a", &[0], true);
    c.devices.retain(|d| d != "/pcie@10000000");
    c.pci = vec![String::from("00:02.0")];
    let g = try_build(&w, pci, 0, c).expect("builds");
    // The guest attaches its function (endpoint 0: requester ID 00:00.0
    // on its virtual bus) to a domain...
    let attach = Request::Attach(Attach {
        domain: 1,
        endpoint: 0,
        flags: 0,
        reserved: [0; 4],
    })
    .encode();
    let viommu = g.viommu.as_ref().expect("a virtio-iommu");
    viommu.with_model_mut(|m| {
        let mut done = [m.handle_request(&attach, 4)];
        m.finish_batch(&mut done).expect("synced");
        assert_eq!(done[0].response.status(), Some(Status::Ok));
    });
    // ... and lets it master.
    let (dev, off, ctx) = bridge(&w, &g);
    let on = u64::from(command::MEMORY | command::BUS_MASTER);
    dev.write(&ctx, off + u64::from(reg::COMMAND), 2, on);
    assert_eq!(ecam.lock().reg(nvme, reg::COMMAND) & 0xffff, on as u32);
    // Every change of the function's stream (0x10) during the reset
    // notes the function's command register at that moment.
    let seen: &'static Mutex<Vec<Option<u32>>> = Box::leak(Box::new(Mutex::new(Vec::new())));
    *w.dma.on_stream_change.lock() = Some(Box::new(move |sid| {
        if sid == 0x10 {
            let command = ecam.try_lock().map(|e| e.reg(nvme, reg::COMMAND) & 0xffff);
            seen.lock().push(command);
        }
    }));
    g.reset_devices(w.gic);
    *w.dma.on_stream_change.lock() = None;
    let seen = seen.lock().clone();
    assert!(!seen.is_empty(), "the reset detached the endpoint");
    assert!(
        seen.iter()
            .all(|c| c.is_some_and(|c| c & command::BUS_MASTER == 0)),
        "the function's command register at each change of its stream: {seen:x?}"
    );
}
