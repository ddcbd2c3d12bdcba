//! Guest device trees: the DTB a guest boots with, generated from its
//! [`GuestDtSpec`] and the host's [`HostDt`].
//!
//! The guest sees generated CPUs, memory, PSCI, an emulated GICv3 (with the
//! host GIC's phandle, so copied `interrupts`, `interrupt-parent` and
//! `interrupt-map` stay valid), the host's generic timer, its virtio-iommu
//! if it has one, and `/chosen`; plus each passed-through host device
//! copied whole at its host path. The copies lose their
//! `iommus`/`iommu-map`/`msi-*` properties (the SMMU and ITS belong to the
//! hypervisor), and bring along the nodes they reference through `clocks`,
//! `resets` or `power-domains`. Before the blob is written every reference
//! in it is checked to resolve.
//!
//! # The virtio-iommu
//!
//! With [`GuestDtSpec::viommu`], the guest gets
//!
//! ```dts
//! viommu: iommu@b000000 {
//!     compatible = "virtio,mmio";
//!     reg = <0x0 0xb000000 0x0 0x200>;          /* the root's cells */
//!     interrupts = <0 96 1>;                     /* GIC_SPI spi, rising edge */
//!     dma-coherent;
//!     #iommu-cells = <1>;
//!     phandle = <...>;                           /* above every host phandle */
//! };
//! ```
//!
//! and the passed-through nodes that sat behind an SMMU the hypervisor runs
//! point at it again, with this **endpoint convention** (which the
//! hypervisor's virtio-iommu follows to find the host stream of an
//! endpoint):
//!
//! - a PCIe host bridge: `iommu-map = <0x0 &viommu 0x0 0x10000>` (for
//!   `bus-range = <0 255>`; in general the requester IDs of its bus range),
//!   no `iommu-map-mask`. **Endpoint ID = requester ID**; the host stream ID
//!   is the RID mapped through the bridge's own host `iommu-map` (and
//!   `iommu-map-mask`).
//! - a platform node: `iommus = <&viommu SID>` per host entry
//!   `<&smmu SID>`. **Endpoint ID = host stream ID** (on the SMMU the host
//!   entry names).
//!
//! Nodes without host `iommus`/`iommu-map` (or whose entries name another
//! IOMMU) get nothing; two nodes sharing an endpoint ID are refused. Without
//! a virtio-iommu the properties stay dropped.

mod check;
mod endpoints;
mod error;
mod phandle;
mod policy;
mod props;
mod refs;
mod spec;
mod synth;
mod tree;
mod write;

#[cfg(test)]
mod tests;

use alloc::string::String;
use alloc::vec::Vec;

pub use error::GuestDtError;
pub use phandle::PhandleAllocator;
pub use policy::{DROPPED_PROPS, FOLLOWED_REFS};
pub use spec::{ConsoleDt, GICR_FRAME_SIZE, GuestDtSpec, MAX_VCPUS, ViommuDt};
pub use synth::{DEFAULT_COMPATIBLE, MODEL};

use synth::RootCells;
use tree::GuestTree;

use crate::fdt::{HostDt, Tree};

/// Generates the DTB for the guest `spec` describes on the host `host`.
///
/// Errors: an inconsistent spec; a host without GIC or timer; a device
/// path missing from the host, disabled, owned by the hypervisor (SMMU,
/// GIC, PSCI, timer, CPUs, memory, `/chosen`) or holding references that
/// cannot be satisfied; a console that is not passed through; with a
/// virtio-iommu, malformed host `iommus`/`iommu-map` or two devices
/// sharing an endpoint ID.
pub fn build(spec: &GuestDtSpec<'_>, host: &HostDt) -> Result<Vec<u8>, GuestDtError> {
    spec.validate()?;
    let tree = host.tree();
    let host_gic = host.gic.as_ref().ok_or(GuestDtError::NoHostGic)?;
    let gic_node = tree.find(&host_gic.path).ok_or(GuestDtError::NoHostGic)?;
    let mut phandles = PhandleAllocator::new(tree);
    let gic_phandle = match host_gic.phandle {
        Some(phandle) => phandle,
        None => phandles.allocate()?,
    };
    let cells = RootCells::of(tree)?;

    let mut guest = GuestTree::new(synth::root_props(tree, cells, gic_phandle)?);
    guest.add_generated(synth::cpus(spec.vcpus)?)?;
    guest.add_generated(synth::memory(spec, cells)?)?;
    guest.add_generated(synth::psci(spec)?)?;
    guest.add_generated(synth::gic(spec, &gic_node, gic_phandle, cells)?)?;
    guest.add_generated(synth::timer(tree)?)?;
    let viommu = match &spec.viommu {
        Some(viommu) => {
            let phandle = phandles.allocate()?;
            guest.add_generated(synth::viommu(viommu, phandle, cells)?)?;
            Some(phandle)
        }
        None => None,
    };
    if let Some(console) = &spec.console {
        let clock = phandles.allocate()?;
        let (clk, uart) = synth::console(console, clock, cells)?;
        guest.add_generated(clk)?;
        guest.add_generated(uart)?;
    }
    if let Some(v) = spec.vpci {
        let gic_cells = gic_node.node().prop_u32("#address-cells").unwrap_or(0);
        // Its functions' DMA goes to the virtio-iommu on the bus, or to the
        // one on virtio-mmio.
        let target = match v.viommu_slot {
            Some(_) => Some(synth::VpciIommu::OnBus(phandles.allocate()?)),
            None => viommu.map(synth::VpciIommu::Mmio),
        };
        guest.add_generated(synth::vpci(v, gic_phandle, gic_cells, target, cells)?)?;
    }
    copy_devices(&mut guest, tree, spec.devices)?;
    if let Some(phandle) = viommu {
        endpoints::point_at_viommu(&mut guest, host, spec.devices, phandle)?;
    }
    guest.add_generated(synth::chosen(spec, tree, &guest)?)?;

    check::references(guest.root())?;
    write::to_dtb(guest.root())
}

/// Copies each requested device, then (transitively) every node they
/// reference through [`FOLLOWED_REFS`].
fn copy_devices(guest: &mut GuestTree, tree: &Tree, devices: &[&str]) -> Result<(), GuestDtError> {
    let mut pending = Vec::new();
    for &path in devices {
        let node = tree
            .find(path)
            .ok_or_else(|| GuestDtError::DeviceNotFound(String::from(path)))?;
        if !node.is_available() {
            return Err(GuestDtError::DeviceDisabled(node.path()));
        }
        pending.push(node);
    }
    pending.reverse();
    // Each copy either adds a host path or covers more of the tree, so this
    // ends after at most one round per host node.
    while let Some(node) = pending.pop() {
        if guest.copy(&node)? {
            pending.extend(refs::followed(tree, &node)?);
        }
    }
    Ok(())
}
