//! Guests: everything the hypervisor builds for and emulates towards a
//! guest (its device tree first).

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod dma;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod guest;
pub mod guest_dt;
pub mod loader;
pub mod psci;
pub mod resources;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod vcpu;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod viommu;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod viommu_backend;
pub mod viommu_dev;
pub mod viommu_profile;
