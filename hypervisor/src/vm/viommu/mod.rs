//! Each guest's virtio-iommu, the per-guest glue of the device model in
//! [`crate::viommu`]: the SMMU backend ([`backend::SmmuBackend`]: one
//! stage-2 IO page table per domain, bound to the endpoints' streams), the
//! VMIDs of its domains ([`vmids::VmidPool`]), and the creation of the
//! virtio-mmio device a guest registers.

pub mod backend;
mod pending;
pub mod vmids;

use super::dma::GuestDma;
use super::ram::GuestRam;
use crate::config::GuestLimits;
use crate::devices::viommu_mmio::ViommuMmio;
use crate::devices::viommu_pci::ViommuPci;
use crate::viommu::model::{ConfigError, Viommu, ViommuConfig};
use alloc::sync::Arc;
use backend::{IOVA_BITS, SmmuBackend};
use log::warn;
use vmids::VmidPool;

/// A guest's virtio-iommu on virtio-mmio.
pub type GuestViommu = ViommuMmio<SmmuBackend, GuestRam>;

/// Builds the virtio-iommu of a guest with RAM `ram` and SMMU view `dma`,
/// signalling with virtual SPI `intid`, within the guest's `limits`
/// (domains, IO page-table pages, mappings). The guest's share of `vmids`
/// is reserved here: up to `limits.domains` VMIDs, fewer (logged) when
/// earlier guests took the rest.
pub fn create(
    ram: GuestRam,
    dma: Arc<GuestDma>,
    vmids: &Arc<VmidPool>,
    intid: u32,
    limits: &GuestLimits,
) -> Result<GuestViommu, ConfigError> {
    Ok(ViommuMmio::new(model(ram, dma, vmids, limits)?, ram, intid))
}

/// A guest's virtio-iommu on virtio-pci (a function of its virtual PCI
/// bus, BAR 0 at `bar0`, INTx on virtual SPI `intid`).
pub type GuestViommuPci = ViommuPci<SmmuBackend, GuestRam>;

/// As [`create`], on virtio-pci.
pub fn create_pci(
    ram: GuestRam,
    dma: Arc<GuestDma>,
    vmids: &Arc<VmidPool>,
    intid: u32,
    limits: &GuestLimits,
    bar0: u64,
) -> Result<GuestViommuPci, ConfigError> {
    Ok(ViommuPci::new(
        model(ram, dma, vmids, limits)?,
        ram,
        intid,
        bar0,
    ))
}

/// The device model over its SMMU backend, within `limits`.
fn model(
    ram: GuestRam,
    dma: Arc<GuestDma>,
    vmids: &Arc<VmidPool>,
    limits: &GuestLimits,
) -> Result<Viommu<SmmuBackend>, ConfigError> {
    let cfg = ViommuConfig {
        input_end: (1u64 << IOVA_BITS) - 1,
        max_mappings: limits.io_mappings as usize,
        ..ViommuConfig::default()
    };
    let want = limits.domains as usize;
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
    let backend = SmmuBackend::with_table_limit(ram, dma, share, want, limits.io_table_pages());
    Viommu::new(backend, cfg)
}
