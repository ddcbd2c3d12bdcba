//! Host tests of the virtio layer: guest memory checks, split-ring walking
//! and its error policy, the virtio-mmio register file and handshake, the
//! virtio-pci function (`pci`: capabilities, BAR, INTx, and the real
//! virtio-iommu driven through it), and a seeded fuzz run over rings and
//! registers; otherwise against [`fake::Echo`] and a
//! [`VecMemory`](crate::virtio::VecMemory).

mod errors;
mod fake;
mod fuzz;
mod malformed;
mod memory;
mod mmio;
mod negotiation;
mod pci;
mod queue;
mod walk;
