//! The physical PCIe host bridges (`pci-host-ecam-generic`) as the
//! hypervisor owns them: configuration space through ECAM
//! ([`config::ConfigAccess`], [`ecam::Ecam`]), and at boot the enumeration
//! of every bridge ([`enumerate::enumerate`]): bus numbers for PCI-to-PCI
//! bridges, BARs sized and placed inside the bridge's `ranges` windows
//! where nothing placed them (QEMU leaves them unassigned), and memory
//! decoding and bus mastering left off, so that no function can decode or
//! DMA before a guest that owns it enables it. The result, a
//! [`enumerate::Topology`] per bridge, is listed in the hardware summary.
//!
//! [`view::FunctionView`] is what a guest will see of a physical function
//! assigned to it (the configuration-space filter of issue 13), and
//! [`function::PciFunction`] what a virtual host bridge calls on the
//! functions the hypervisor emulates for a guest (the virtio-pci
//! transport); [`vbus::VirtualBus`] routes a guest's ECAM accesses to
//! either. The virtual host bridge that serves them to guests (its device,
//! device tree node, BAR and interrupt wiring) is not built yet.

pub mod config;
pub mod ecam;
pub mod enumerate;
pub mod function;
pub mod host;
pub mod reset;
pub mod vbus;
pub mod view;

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod vbus_tests;
#[cfg(test)]
mod view_tests;
