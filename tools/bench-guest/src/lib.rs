//! What the bare-metal guests of this crate share: the entry code and PSCI
//! ([`rt`]), a flattened device tree reader ([`fdt`]), the PL011 ([`uart`]),
//! PCI configuration space through ECAM ([`pci`]) and a polling driver of a
//! virtio-iommu on virtio-mmio or virtio-pci ([`viommu`]; the function's
//! structures are found by the host-tested `virtio_pci_probe` crate).
//!
//! The binaries: `bench-guest` (times MAP/UNMAP, `cargo xtask bench`),
//! `hostile` (attacks the hypervisor through its virtio-iommu and a DMA
//! master) and `heartbeat` (measures its own rhythm beside it), those two
//! for the QEMU test `tests/tests/hostile.rs`, and `archtest` (checks
//! exceptions, GIC, timers and PSCI as a guest sees them, under partita and
//! on bare QEMU: `tests/tests/arch.rs`, docs/testing.md).

#![no_std]

pub mod fdt;
pub mod pci;
pub mod rt;
pub mod uart;
pub mod viommu;
