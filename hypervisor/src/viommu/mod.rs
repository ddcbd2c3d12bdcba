//! The virtio-iommu device model (virtio device type 23) as plain logic.
//!
//! A guest's MAP/UNMAP requests trap to EL2 on the queue notify; the
//! transport (virtio-mmio or virtio-pci, elsewhere) copies each request's
//! device-readable bytes out of the queue and hands them to [`Viommu`],
//! which validates them, updates its domains and mappings and drives an
//! [`IommuBackend`] (in the hypervisor: SMMU stage-2 IO page tables, one
//! per domain). The model returns the bytes to write back; after the last
//! request of the notify, one backend sync, then the transport completes
//! them all before the trap returns.
//!
//! - [`wire`]: request, config-space, PROBE-property and fault layouts;
//! - [`backend`]: the [`IommuBackend`] trait and its small types;
//! - [`model`]: [`Viommu`] (domains, endpoints, mappings, PROBE, batches,
//!   reset, bypass, fault queue);
//! - [`device`]: the model as a virtio device (queues, batches, the
//!   event queue), independent of the transport; [`profile`]: where the
//!   EL2 time of a request goes;
//! - [`counters`], [`events`]: bookkeeping.
//!
//! Nothing a guest sends can make the model panic, allocate without bound
//! or map memory the backend's `translate` does not grant.

pub mod backend;
pub mod counters;
pub mod device;
pub mod events;
pub mod idmap;
pub mod model;
pub mod profile;
pub mod wire;

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod tests;

pub use backend::{BackendError, IommuBackend, MapAttrs, Refusal, ResvRegion};
pub use counters::Counters;
pub use model::{BatchResult, Completion, ConfigError, Mapping, Response, Viommu, ViommuConfig};
pub use wire::probe::{FaultReason, ResvSubtype};
pub use wire::{Feature, RequestType, Status};
