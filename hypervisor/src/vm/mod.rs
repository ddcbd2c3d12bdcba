//! Guests: everything the hypervisor builds for and emulates towards a
//! guest. The [`machine::Machine`] holds every [`guest::Guest`] and runs
//! the vCPUs: idle loop and entry ([`power`]), exits ([`exits`]) and
//! interrupt delivery ([`irq`]). A guest is built by [`build`] from its
//! configuration; its devices are in [`crate::devices`], reached through
//! its device table; its share of the SMMUs is [`dma`].

pub mod build;
pub mod console;
pub mod dma;
pub mod exits;
pub mod faults;
pub mod guest;
pub mod guest_dt;
pub mod irq;
pub mod loader;
pub mod machine;
pub mod power;
pub mod psci;
pub mod ram;
pub mod ratelimit;
pub mod resources;
pub mod vcpu;
pub mod viommu;
pub mod vpci;

#[cfg(test)]
pub(crate) mod tests;
