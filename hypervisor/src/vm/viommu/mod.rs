//! Each guest's virtio-iommu, the per-guest glue of the device model in
//! [`crate::viommu`]: the SMMU backend ([`backend::SmmuBackend`]: one
//! stage-2 IO page table per domain, bound to the endpoints' streams), the
//! VMIDs of its domains ([`vmids::VmidPool`]), and the creation of the
//! virtio-mmio device a guest registers.

pub mod backend;
pub mod vmids;

use super::dma::GuestDma;
use super::ram::GuestRam;
use crate::devices::viommu_mmio::ViommuMmio;
use crate::viommu::model::{ConfigError, Viommu, ViommuConfig};
use alloc::sync::Arc;
use backend::{IOVA_BITS, SmmuBackend};
use log::warn;
use vmids::VmidPool;

/// A guest's virtio-iommu on virtio-mmio.
pub type GuestViommu = ViommuMmio<SmmuBackend>;

/// Builds the virtio-iommu of a guest with RAM `ram` and SMMU view `dma`,
/// signalling with virtual SPI `intid`, holding at most `max_domains`
/// domains at once. The guest's share of `vmids` is reserved here: up to
/// `max_domains` VMIDs, fewer (logged) when earlier guests took the rest.
pub fn create(
    ram: GuestRam,
    dma: Arc<GuestDma>,
    vmids: &Arc<VmidPool>,
    max_domains: u32,
    intid: u32,
) -> Result<GuestViommu, ConfigError> {
    let cfg = ViommuConfig {
        input_end: (1u64 << IOVA_BITS) - 1,
        ..ViommuConfig::default()
    };
    let want = max_domains as usize;
    let share = vmids.reserve(want);
    if share.quota() < want {
        warn!(
            "guest '{}': virtio-iommu: only {} of its {want} domains can translate (VMIDs {}..={} used up by earlier guests)",
            dma.name,
            share.quota(),
            vmids::FIRST_DOMAIN_VMID,
            vmids.max()
        );
    }
    let model = Viommu::new(SmmuBackend::new(ram, dma, share, want), cfg)?;
    Ok(ViommuMmio::new(model, intid))
}
