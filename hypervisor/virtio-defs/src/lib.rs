//! The virtio wire definitions partita's emulated devices and the drivers
//! that talk to them agree on: plain numbers and layouts from the virtio
//! 1.2 specification, no parsing and no policy.
//!
//! - [`mmio`]: the virtio-mmio version 2 register window (offsets, the
//!   [`mmio::Register`] enum, identity values, device status and interrupt
//!   bits);
//! - [`pci`]: the virtio-pci (modern) transport: PCI IDs, the vendor
//!   capabilities, the common configuration structure, ISR bits;
//! - [`features`]: the transport feature bits (VERSION_1 and friends);
//! - [`ring`]: split virtqueue flags and element sizes;
//! - [`iommu`]: the virtio-iommu device (type 23): request types, status
//!   codes, feature bits, request and property layouts, the configuration
//!   space.
//!
//! The hypervisor re-exports these where it used to define them
//! (`virtio::mmio::regs`, `virtio::features`, `virtio::queue`,
//! `viommu::wire`); the bench guest (`tools/bench-guest`, its own
//! workspace) and the QEMU tests use them directly. Nothing here allocates
//! or depends on anything, so every side can take it.
#![no_std]

pub mod features;
pub mod iommu;
pub mod mmio;
pub mod pci;
pub mod ring;
