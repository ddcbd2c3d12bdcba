//! Host tests of the configuration layer: the bundle format (round trip,
//! every corruption) and validation against the QEMU device trees in
//! `fdt/testdata/`.

mod bundle;
mod origin;
mod ownership;
mod pci;
mod validate;
mod viommu;

use super::{GuestConfig, ViommuConfig};
use alloc::string::ToString;
use alloc::vec::Vec;

/// The default Linux guest (`guest-configs/qemu-virt-linux.toml`): CPUs 0
/// and 1, 512 MiB, PL011 and PCIe, a virtio-iommu with the defaults.
fn linux() -> GuestConfig {
    let mut g = GuestConfig::new("linux", &[0, 1], 512 << 20);
    g.viommu = Some(ViommuConfig::default());
    g.cmdline = "console=ttyAMA0 earlycon rdinit=/init".to_string();
    g.devices = ["/pl011@9000000", "/pcie@10000000"]
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>();
    g
}

/// `guest` with its PCIe host's DMA allowed untranslated
/// (`allow_untranslated_dma = ["/pcie@10000000"]`): what the default guest
/// needs on a QEMU board without an SMMU, whose PCIe host has no
/// `iommu-map`.
fn pcie_untranslated(mut guest: GuestConfig) -> GuestConfig {
    guest.allow_untranslated_dma = alloc::vec!["/pcie@10000000".to_string()];
    guest
}
