//! Virtio devices emulated by the hypervisor itself: split virtqueues in
//! guest memory (every access bounds-checked against the guest's RAM), the
//! virtio-mmio version 2 and virtio-pci (modern) transports over one shared
//! core, and the [`VirtioDevice`] contract a device model (the
//! virtio-iommu) implements.
//!
//! - [`memory`]: [`GuestMemory`], checked guest-physical accesses and
//!   barriers, with the [`VecMemory`] fake for host tests;
//! - [`queue`] and [`chain`]: the split ring and the descriptor chains
//!   popped from it, with the error policy (bad chain: that request fails;
//!   untrustworthy ring: DEVICE_NEEDS_RESET);
//! - [`device`]: [`VirtioDevice`] and the [`QueueContext`] it works through;
//! - [`features`]: the feature bits the transport offers;
//! - [`transport`]: [`TransportCore`], the status, feature, queue and
//!   interrupt rules every transport shares;
//! - [`mmio`]: [`MmioTransport`], the virtio-mmio register file;
//! - [`pci`]: [`PciTransport`], a virtio-pci (modern) function.

pub mod chain;
pub mod device;
pub mod features;
pub mod memory;
pub mod mmio;
pub mod pci;
pub mod queue;
pub mod transport;

#[cfg(test)]
mod tests;

pub use chain::{Chain, ChainError, MAX_READ};
pub use device::{NotifyResult, QueueContext, VirtioDevice};
pub use memory::{Barrier, GuestMemory, MemError, VecMemory};
pub use mmio::MmioTransport;
pub use pci::PciTransport;
pub use queue::{Queue, QueueError};
pub use transport::{TransportAction, TransportCore};
