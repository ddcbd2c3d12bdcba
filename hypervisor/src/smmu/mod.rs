//! Arm SMMUv3: the stage-2 DMA backend of the hypervisor.
//!
//! Everything here is plain logic over three traits, so it runs in host
//! unit tests against a fake SMMU (the `tests` module):
//! - [`regs::SmmuRegs`]: the register page (MMIO on the target),
//! - [`dma::DmaMemory`]: memory the SMMU reads and writes (stream table,
//!   queues),
//! - [`dma::CacheOps`]: cache maintenance for an SMMU that is not
//!   coherent with the CPU caches.
//!
//! Layers, bottom up: [`idregs`] (ID register decoding), [`regs`] (register
//! map), [`ste`] / [`cmd`] / [`event`] (64-, 16- and 32-byte structure
//! encodings), [`queue`] (command and event rings), [`streamtable`]
//! (linear or two-level stream table), [`driver`] ([`Smmu`]: probe, attach,
//! detach, invalidation, events, global errors), [`streams`] (which
//! stream IDs a device uses, from the host device tree) and [`manager`]
//! ([`SmmuManager`]: every SMMU of the machine, who owns which streams,
//! faults to a [`FaultSink`]). [`hw`] has the hardware's implementations
//! of the three traits and [`HwSmmuManager`].
//!
//! Nothing here reaches above `smmu` except the device tree, page tables
//! and [`crate::arch`]: owners are opaque ([`OwnerId`]), the caller maps
//! the registers and wires the interrupts.

pub mod cmd;
pub mod dma;
pub mod driver;
pub mod error;
pub mod event;
pub mod hw;
pub mod idregs;
pub mod manager;
pub mod queue;
pub mod regs;
pub mod ste;
pub mod streams;
pub mod streamtable;

pub use driver::{GerrorReport, ProbeOptions, Smmu};
pub use error::SmmuError;
pub use hw::HwSmmuManager;
pub use manager::{FaultSink, ManagerError, OwnerId, SmmuManager};

#[cfg(test)]
pub(crate) mod tests;
