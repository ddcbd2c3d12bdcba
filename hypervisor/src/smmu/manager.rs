//! The SMMUs of the machine as the hypervisor runs them: probed at boot
//! (global bypass off, every stream aborting), each guest's streams bound
//! to its stage-2 table, returned to abort when the guest stops, and the
//! event and error interrupts turned into log lines counted per guest.

use super::driver::{ProbeOptions, Smmu};
use super::hw::{ArchCache, HeapDma, MmioRegs};
use super::idregs::{Features, IDR_COUNT, IDR0_OFFSET};
use super::ste::S2Config;
use super::streams::{SidRange, Streams, pcie_host_streams, platform_streams};
use crate::arch::aarch64::cpu;
use crate::fdt::HostDt;
use crate::gic::{hyp_irq, phys};
use crate::mm::el2map;
use crate::vm::dma::{DmaError, DmaOwner};
use alloc::string::String;
use alloc::vec::Vec;
use log::{error, info, warn};
use spin::{Mutex, Once};

type Driver = Smmu<MmioRegs, HeapDma, ArchCache>;

/// One SMMU and the streams guests own on it.
pub struct Instance {
    /// Base address (for messages).
    pub base: u64,
    /// DT phandle (for `iommu-map` / `iommus` lookups).
    pub phandle: Option<u32>,
    /// Output-size encoding for S2PS: min(IDR5.OAS, CPU PARange).
    ps: u8,
    driver: Mutex<Driver>,
    /// (stream range, guest index) bindings.
    owners: Mutex<Vec<(SidRange, usize)>>,
    /// INTIDs of the event queue and global error interrupts.
    evtq_intid: Option<u32>,
    gerror_intid: Option<u32>,
}

static SMMUS: Once<Vec<Instance>> = Once::new();
/// Owners' names and devices by owner index, for event messages.
static OWNERS: Mutex<Vec<(usize, String, Vec<String>)>> = Mutex::new(Vec::new());
/// Where DMA faults on owned streams go: (owner, endpoint, iova, read,
/// repeats) -> reported to the owner's virtio-iommu.
pub type FaultSink = fn(usize, Option<u32>, u64, bool, usize) -> bool;
static SINK: Once<FaultSink> = Once::new();

/// Sets where DMA faults on owned streams are reported.
pub fn set_fault_sink(sink: FaultSink) {
    SINK.call_once(|| sink);
}

fn instances() -> &'static [Instance] {
    SMMUS.get().map(Vec::as_slice).unwrap_or(&[])
}

/// Probes every usable SMMUv3 of the host DT: after this no unconfigured
/// stream can reach memory. Returns how many are in use.
pub fn probe_all(hw: &HostDt) -> usize {
    let mut list = Vec::new();
    for s in &hw.smmus {
        if let Err(e) = el2map::map_device(s.base, s.size.max(0x2_0000)) {
            error!("smmuv3 {:#x}: cannot map its registers: {e}", s.base);
            continue;
        }
        // SAFETY: the register block was just mapped as device memory and
        // only this driver uses it.
        let regs = unsafe { MmioRegs::new(s.base as usize) };
        let mut idr = [0u32; IDR_COUNT];
        for (i, v) in idr.iter_mut().enumerate() {
            *v = super::regs::SmmuRegs::read32(&regs, IDR0_OFFSET + 4 * i);
        }
        let features = Features::decode(idr);
        let opts = ProbeOptions {
            coherent: Some(s.dma_coherent),
            ..ProbeOptions::DEFAULT
        };
        match Smmu::probe_with(regs, HeapDma, ArchCache, &features, opts) {
            Ok(driver) => {
                let ps = (features.oas_field as u8).min(cpu::pa_bits_field() as u8);
                let named = |name: &str| {
                    s.interrupts
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, i)| i.intid())
                };
                info!(
                    "smmuv3 {:#x}: enabled, all streams abort until a guest owns them (stream table {:?})",
                    s.base,
                    driver.stream_table().format()
                );
                list.push(Instance {
                    base: s.base,
                    phandle: s.phandle,
                    ps,
                    driver: Mutex::new(driver),
                    owners: Mutex::new(Vec::new()),
                    evtq_intid: named("eventq"),
                    gerror_intid: named("gerror"),
                });
            }
            Err(e) => error!(
                "smmuv3 {:#x}: not used: {e}; DMA through it is not isolated",
                s.base
            ),
        }
    }
    let n = list.len();
    let list = SMMUS.call_once(|| list);
    // Interrupts go to the boot CPU; events are also drained when it idles.
    if let Some(gic) = phys::get() {
        for inst in list.iter() {
            let mut irqs = (false, false);
            if let Some(i) = inst.evtq_intid {
                irqs.0 = hyp_irq::register(gic, i, true, 0, on_event_irq);
            }
            if let Some(i) = inst.gerror_intid {
                irqs.1 = hyp_irq::register(gic, i, true, 0, on_gerror_irq);
            }
            if let Err(e) = inst.driver.lock().enable_irqs(irqs.0, irqs.1) {
                warn!(
                    "smmuv3 {:#x}: interrupts not enabled ({e}); events are polled",
                    inst.base
                );
            }
        }
    }
    n
}

/// The streams of guest `g`'s devices, per SMMU instance.
fn guest_streams(hw: &HostDt, g: &DmaOwner<'_>) -> Vec<(usize, Streams, String)> {
    let mut out = Vec::new();
    for path in g.devices {
        let mut streams: Vec<Streams> = Vec::new();
        if let Some(p) = hw.pcie.iter().find(|p| &p.path == path) {
            streams.extend(pcie_host_streams(p));
        } else if let Some(node) = hw.tree().find(path) {
            match platform_streams(hw.tree(), &node) {
                Ok(s) => streams.extend(s),
                Err(e) => warn!("guest '{}': {path}: {e}", g.name),
            }
        }
        for s in streams {
            match instances()
                .iter()
                .position(|i| i.phandle == Some(s.smmu_phandle))
            {
                Some(i) => out.push((i, s, path.clone())),
                None => warn!(
                    "guest '{}': {path}: its DMA goes through an SMMU the hypervisor does not run: not isolated",
                    g.name
                ),
            }
        }
    }
    out
}

/// The host DT, kept for re-attaching a guest after its reset.
static HOST: Once<&'static HostDt> = Once::new();

/// Records guest `g` as the owner of its devices' streams and, with
/// `translate`, binds them to its stage-2 table. Without it (a guest with a
/// virtio-iommu) they keep aborting until the guest attaches them to a
/// domain.
pub fn attach_guest(g: &DmaOwner<'_>, translate: bool) -> Result<(), DmaError> {
    let Some(hw) = HOST.get() else { return Ok(()) };
    {
        let mut owners = OWNERS.lock();
        owners.retain(|o| o.0 != g.index);
        owners.push((g.index, String::from(g.name), g.devices.to_vec()));
    }
    for (i, streams, path) in guest_streams(hw, g) {
        let inst = &instances()[i];
        if !translate {
            let mut owners = inst.owners.lock();
            owners.extend(streams.ranges.iter().map(|r| (*r, g.index)));
            info!(
                "guest '{}': {path}: {} stream(s) on smmuv3 {:#x} abort until its virtio-iommu attaches them",
                g.name,
                streams.count(),
                inst.base
            );
            continue;
        }
        let cfg = S2Config::for_table(g.stage2, g.vmid, inst.ps)?;
        inst.driver
            .lock()
            .attach_stage2(streams.ranges.iter().copied(), &cfg)?;
        let mut owners = inst.owners.lock();
        for r in &streams.ranges {
            owners.push((*r, g.index));
        }
        info!(
            "guest '{}': {path}: {} stream(s) on smmuv3 {:#x} translate through its stage 2 (vmid {})",
            g.name,
            streams.count(),
            inst.base,
            g.vmid
        );
    }
    Ok(())
}

/// Returns guest `g`'s streams to abort and invalidates its VMID: call
/// before its memory is reused (reset, power-off).
pub fn detach_guest(g: &DmaOwner<'_>) {
    for inst in instances() {
        let mut owners = inst.owners.lock();
        let mine: Vec<SidRange> = owners
            .iter()
            .filter(|(_, o)| *o == g.index)
            .map(|(r, _)| *r)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let mut drv = inst.driver.lock();
        if let Err(e) = drv.detach(mine.iter().copied()) {
            error!("smmuv3 {:#x}: detaching guest '{}': {e}", inst.base, g.name);
        }
        if let Err(e) = drv.invalidate_vmid(g.vmid) {
            error!("smmuv3 {:#x}: invalidating vmid {}: {e}", inst.base, g.vmid);
        }
        owners.retain(|(_, o)| *o != g.index);
    }
}

/// Keeps the host DT for guest stream lookups.
pub fn set_host(hw: &'static HostDt) {
    HOST.call_once(|| hw);
}

/// The SMMU instance and stream ID of endpoint `ep` of guest `g`: endpoint
/// IDs are the requester IDs of the guest's PCIe host bridges (the guest
/// DT's `iommu-map` is the identity), mapped through the host bridge's own
/// `iommu-map`. None for an endpoint the guest does not own.
pub fn endpoint_sid(devices: &[String], ep: u32) -> Option<(usize, u32)> {
    let hw = HOST.get()?;
    hw.pcie
        .iter()
        .filter(|p| devices.contains(&p.path))
        .filter(|p| ep <= 0xffff && (p.bus_range.0..=p.bus_range.1).contains(&(ep >> 8)))
        .find_map(|p| {
            let (phandle, sid) = p.iommu_for_rid(ep)?;
            let i = instances()
                .iter()
                .position(|x| x.phandle == Some(phandle))?;
            Some((i, sid))
        })
}

/// The endpoint ID (requester ID) of stream `sid` on instance `inst` for
/// guest `g`, if the guest owns it: the inverse of [`endpoint_sid`].
pub fn sid_endpoint(devices: &[String], inst: usize, sid: u32) -> Option<u32> {
    let hw = HOST.get()?;
    hw.pcie
        .iter()
        .filter(|p| devices.contains(&p.path))
        .find_map(|p| {
            p.iommu_map.iter().find_map(|e| {
                let off = sid.checked_sub(e.iommu_base)?;
                let ph = instances().get(inst)?.phandle?;
                (e.iommu_phandle == ph && off < e.length).then(|| e.rid_base + off)
            })
        })
}

/// Points stream `sid` of instance `inst` at a stage-2 table.
pub fn bind_stream(
    inst: usize,
    sid: u32,
    table: &crate::mm::pagetable::PageTable<crate::mm::pagetable::Stage2>,
    vmid: u16,
) -> Result<(), DmaError> {
    let inst = instances().get(inst).ok_or(DmaError::NoSuchSmmu(inst))?;
    let cfg = S2Config::for_table(table, vmid, inst.ps)?;
    Ok(inst
        .driver
        .lock()
        .attach_stage2([SidRange::one(sid)], &cfg)?)
}

/// Returns stream `sid` of instance `inst` to abort (with invalidation).
pub fn abort_stream(inst: usize, sid: u32) -> Result<(), DmaError> {
    let i = instances().get(inst).ok_or(DmaError::NoSuchSmmu(inst))?;
    Ok(i.driver.lock().detach([SidRange::one(sid)])?)
}

/// Issues `cmds` on instance `inst` followed by one CMD_SYNC, and waits.
pub fn issue(inst: usize, cmds: &[super::cmd::Cmd]) -> Result<(), DmaError> {
    let i = instances().get(inst).ok_or(DmaError::NoSuchSmmu(inst))?;
    Ok(i.driver.lock().issue(cmds)?)
}

/// Whether instance `inst` has range invalidation (IDR3.RIL).
pub fn has_ril(inst: usize) -> bool {
    instances()
        .get(inst)
        .is_some_and(|i| i.driver.lock().features().ril)
}

/// Number of SMMU instances in use.
pub fn count() -> usize {
    instances().len()
}

fn owner(inst: &Instance, sid: u32) -> Option<usize> {
    inst.owners
        .lock()
        .iter()
        .find(|(r, _)| r.contains(sid))
        .map(|(_, o)| *o)
}

/// Drains and reports the event queue of every SMMU.
pub fn poll_events() {
    for inst in instances() {
        let batch = inst.driver.lock().drain_events();
        if batch.overflow {
            warn!(
                "smmuv3 {:#x}: event queue overflowed: events were lost",
                inst.base
            );
        }
        // Consecutive events of one kind on one stream (a device retrying,
        // or one DMA burst faulting word by word) make one line.
        let mut i = 0;
        while i < batch.events.len() {
            let ev = &batch.events[i];
            let same = batch.events[i..]
                .iter()
                .take_while(|e| e.sid == ev.sid && e.id == ev.id && e.read == ev.read)
                .count();
            let who = owner(inst, ev.sid);
            let info = who.and_then(|i| OWNERS.lock().iter().find(|o| o.0 == i).cloned());
            let name = info
                .as_ref()
                .map(|o| alloc::format!("guest '{}'", o.1))
                .unwrap_or_else(|| String::from("no guest"));
            let mut forwarded = false;
            if let (Some((i, _, devices)), Some(sink)) = (&info, SINK.get()) {
                // A translation fault on an endpoint of a guest with a
                // virtio-iommu becomes a fault report on its event queue.
                let ep = if ev.is_translation_fault() {
                    instances()
                        .iter()
                        .position(|x| core::ptr::eq(x, inst))
                        .and_then(|inst_idx| sid_endpoint(devices, inst_idx, ev.sid))
                } else {
                    None
                };
                forwarded = sink(*i, ep, ev.input_addr, ev.read, same);
            }
            let forwarded = if forwarded {
                ", reported to its virtio-iommu"
            } else {
                ""
            };
            let more = if same > 1 {
                alloc::format!(" (and {} more like it)", same - 1)
            } else {
                String::new()
            };
            warn!(
                "smmuv3 {:#x}: {} DMA blocked: {ev} ({name}{forwarded}){more}",
                inst.base,
                if ev.read { "read" } else { "write" }
            );
            i += same;
        }
    }
}

fn on_event_irq(_intid: u32) {
    poll_events();
}

fn on_gerror_irq(_intid: u32) {
    for inst in instances() {
        let report = inst.driver.lock().handle_gerror();
        if !report.is_empty() {
            error!("smmuv3 {:#x}: global error: {report:?}", inst.base);
        }
    }
}
