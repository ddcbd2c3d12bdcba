//! partita: a static-partitioning type-1 hypervisor for arm64, running at EL2.
//!
//! The library holds everything that can be tested on the host (device-tree
//! parsing, page tables, SMMU register decoding, the hardware summary); the
//! `arch` module is the only home of assembly and system registers and is
//! compiled only for the bare-metal target, like the boot flow that uses it.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod arch;
pub mod boot;
pub mod cmdline;
pub mod config;
pub mod console;
pub mod devices;
pub mod fdt;
pub mod gic;
pub mod mm;
pub mod pci;
pub mod perf;
pub mod smmu;
pub mod smp;
pub mod summary;
pub mod vgic;
pub mod viommu;
pub mod virtio;
pub mod vm;

#[cfg(test)]
mod error_types;
#[cfg(test)]
pub(crate) mod test_rng;
