//! Guests as owners of SMMU streams: the glue between the guests and the
//! [`HwSmmuManager`] the boot probed. A guest is [`OwnerId`] = its index;
//! its devices come from its configuration, its streams from the host
//! device tree; DMA faults on its streams are counted in
//! [`Guest::dma_faults`] and forwarded to its virtio-iommu
//! ([`GuestFaults`], the manager's [`FaultSink`]).

use super::guest::Guest;
use crate::fdt::HostDt;
use crate::smmu::manager::{
    DmaFault, ManagerError, OwnerId, Stage2Table, endpoint_sid as ep_sid, owner_streams,
    sid_endpoint,
};
use crate::smmu::{FaultSink, HwSmmuManager};
use core::sync::atomic::Ordering;
use spin::Once;

/// The host DT and the SMMUs, once probed.
struct Dma {
    hw: &'static HostDt,
    smmus: &'static HwSmmuManager,
}

static DMA: Once<Dma> = Once::new();
/// The manager before (or without) the probe: no SMMU.
static NONE: HwSmmuManager = HwSmmuManager::empty();
/// The sink, once the guests exist.
static SINK: Once<GuestFaults> = Once::new();

/// Makes `smmus` (probed over `hw`) the SMMUs guests' streams go to.
pub fn install(hw: &'static HostDt, smmus: &'static HwSmmuManager) {
    DMA.call_once(|| Dma { hw, smmus });
}

/// The SMMUs (none before [`install`]).
pub fn smmus() -> &'static HwSmmuManager {
    DMA.get().map_or(&NONE, |d| d.smmus)
}

/// Guest `g` as a stream owner.
pub fn owner(g: &Guest) -> OwnerId {
    OwnerId(g.index)
}

/// Records guest `g` as the owner of its devices' streams and, with
/// `translate`, binds them to its stage-2 table. Without it (a guest with a
/// virtio-iommu) they keep aborting until the guest attaches them to a
/// domain. Nothing to do before [`install`].
pub fn attach_guest(g: &Guest, translate: bool) -> Result<(), ManagerError> {
    let Some(d) = DMA.get() else {
        return Ok(());
    };
    let streams = owner_streams(d.hw, &g.config.devices, d.smmus.phandles());
    let name = &g.config.name;
    if translate {
        let st2 = g.stage2.lock();
        let table = Stage2Table {
            table: &st2.0,
            vmid: g.vmid,
        };
        d.smmus.attach(owner(g), name, &streams, Some(table))
    } else {
        d.smmus.attach(owner(g), name, &streams, None)
    }
}

/// Returns guest `g`'s streams to abort and invalidates its VMID: call
/// before its memory is reused (reset, power-off). Errors are logged.
pub fn detach_guest(g: &Guest) {
    let _ = smmus().detach(owner(g), g.vmid);
}

/// The SMMU instance and stream ID of endpoint `ep` of guest `g` (a
/// requester ID of one of its PCIe host bridges); `None` for an endpoint
/// the guest does not own.
pub fn endpoint_sid(g: &Guest, ep: u32) -> Option<(usize, u32)> {
    let d = DMA.get()?;
    ep_sid(d.hw, &g.config.devices, d.smmus.phandles(), ep)
}

/// Drains and reports the event queue of every SMMU.
pub fn poll_events() {
    smmus().poll_events();
}

/// Remembers the guests so that DMA faults on their streams are counted and
/// forwarded.
pub fn set_guests(guests: &'static [Guest]) {
    let sink = SINK.call_once(|| GuestFaults { guests });
    smmus().set_fault_sink(sink);
}

/// The guests' side of DMA faults.
pub struct GuestFaults {
    guests: &'static [Guest],
}

impl FaultSink for GuestFaults {
    fn dma_fault(&self, fault: &DmaFault<'_>) -> bool {
        let Some(g) = self.guests.get(fault.owner.0) else {
            return false;
        };
        g.dma_faults
            .fetch_add(fault.repeats as u64, Ordering::Relaxed);
        // A translation fault on an endpoint of a guest with a
        // virtio-iommu becomes a fault report on its event queue.
        let ev = fault.event;
        if !ev.is_translation_fault() {
            return false;
        }
        let (Some(d), Some(phandle)) = (DMA.get(), fault.smmu_phandle) else {
            return false;
        };
        match sid_endpoint(d.hw, &g.config.devices, phandle, ev.sid) {
            Some(ep) => super::viommu::report_fault(g, ep, ev.input_addr, ev.read),
            None => false,
        }
    }
}
