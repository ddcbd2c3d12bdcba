//! The error type of guest device-tree generation: why a guest's device
//! tree could not be built from its specification and the host tree.

use alloc::string::String;
use core::fmt;

use crate::mm::layout::Region;

/// Why [`super::build`] refused to generate a guest device tree.
#[derive(Debug, PartialEq, Eq)]
pub enum GuestDtError {
    /// The guest has no vCPU, or more than [`super::MAX_VCPUS`].
    BadVcpuCount {
        /// The requested number of vCPUs.
        vcpus: usize,
    },
    /// A region of the specification is empty or wraps around the address
    /// space.
    BadRegion {
        /// Which region (`"memory"`, `"GIC distributor"`, ...).
        what: &'static str,
        /// The region as given.
        region: Region,
    },
    /// The redistributor region is too small for one 128 KiB frame per vCPU.
    RedistTooSmall {
        /// The region as given.
        region: Region,
        /// Bytes needed.
        needed: u64,
    },
    /// Two regions of the specification overlap.
    Overlap {
        /// The first region's name.
        first: &'static str,
        /// The second region's name.
        second: &'static str,
    },
    /// The initrd does not lie inside guest memory.
    InitrdOutsideMemory {
        /// The initrd as given.
        initrd: Region,
    },
    /// The virtio-iommu SPI is above [`crate::fdt::MAX_SPI`].
    BadViommuSpi {
        /// The SPI number.
        spi: u32,
    },
    /// Two passed-through devices would share a virtio-iommu endpoint ID
    /// (endpoint IDs are the requester IDs of a PCIe host bridge and the
    /// host stream IDs of platform devices).
    ViommuEndpointClash {
        /// The node whose endpoint is already taken.
        path: String,
        /// The endpoint ID.
        endpoint: u32,
        /// The node that has it.
        owner: String,
    },
    /// The PSCI conduit is neither `"hvc"` nor `"smc"`.
    BadPsciMethod(String),
    /// A string for the guest (bootargs, a path) contains a NUL byte.
    BadString {
        /// What the string is.
        what: &'static str,
    },
    /// An address or size does not fit the root's `#address-cells` /
    /// `#size-cells`.
    TooWide {
        /// What was being encoded.
        what: &'static str,
        /// The value.
        value: u64,
    },
    /// The host tree has no usable interrupt controller.
    NoHostGic,
    /// The host tree has no enabled `arm,armv8-timer` node.
    NoHostTimer,
    /// A requested device path names no node of the host tree.
    DeviceNotFound(String),
    /// A requested device is disabled (`status` not `"okay"`) on the host.
    DeviceDisabled(String),
    /// A node the hypervisor owns (SMMU, interrupt controller, PSCI, timer,
    /// CPUs, memory, boot configuration) would be passed to the guest.
    HypervisorOwned {
        /// Path of the owned node.
        path: String,
        /// What it is.
        what: &'static str,
    },
    /// A copied node would land where a generated node already is.
    PathConflict(String),
    /// A copied node holds a property that references other nodes in a way
    /// the generator cannot satisfy (`dmas`, `phys`, `*-gpios`, ...).
    UnsupportedReference {
        /// Path of the node.
        path: String,
        /// The property.
        prop: String,
    },
    /// A reference names a phandle that no node of the host tree has.
    BadReference {
        /// Path of the referencing node.
        path: String,
        /// The property.
        prop: String,
        /// The phandle.
        phandle: u32,
    },
    /// A reference names a phandle that no node of the guest tree has
    /// (e.g. an `interrupt-parent` that is not the GIC nor a copied node).
    DanglingReference {
        /// Path of the referencing node.
        path: String,
        /// The property.
        prop: String,
        /// The phandle.
        phandle: u32,
    },
    /// A property needed to copy or check a node is missing or malformed.
    Malformed {
        /// Path of the node.
        path: String,
        /// The property.
        prop: String,
    },
    /// The console path is not inside a passed-through device.
    StdoutNotPassedThrough(String),
    /// No phandle above the host's largest is left.
    PhandlesExhausted,
    /// The device-tree writer refused a node or property.
    Writer {
        /// Path of the node being written.
        path: String,
        /// The writer's error.
        error: vm_fdt::Error,
    },
}

impl fmt::Display for GuestDtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadVcpuCount { vcpus } => {
                write!(f, "{vcpus} vCPUs requested, need 1 to {}", super::MAX_VCPUS)
            }
            Self::BadRegion { what, region } => {
                write!(f, "{what} region {region} is empty or wraps around")
            }
            Self::RedistTooSmall { region, needed } => write!(
                f,
                "GIC redistributor region {region} is smaller than the {needed:#x} bytes the vCPUs need"
            ),
            Self::Overlap { first, second } => write!(f, "{first} and {second} regions overlap"),
            Self::InitrdOutsideMemory { initrd } => {
                write!(f, "initrd {initrd} is not inside guest memory")
            }
            Self::BadViommuSpi { spi } => write!(
                f,
                "virtio-iommu SPI {spi} is above the highest SPI {}",
                crate::fdt::MAX_SPI
            ),
            Self::ViommuEndpointClash {
                path,
                endpoint,
                owner,
            } => write!(
                f,
                "{path}: virtio-iommu endpoint {endpoint:#x} is already {owner}'s"
            ),
            Self::BadPsciMethod(m) => write!(f, "PSCI method {m:?} is neither \"hvc\" nor \"smc\""),
            Self::BadString { what } => write!(f, "{what} contains a NUL byte"),
            Self::TooWide { what, value } => {
                write!(
                    f,
                    "{what} {value:#x} does not fit the root's address/size cells"
                )
            }
            Self::NoHostGic => write!(f, "host device tree has no usable interrupt controller"),
            Self::NoHostTimer => write!(f, "host device tree has no enabled arm,armv8-timer"),
            Self::DeviceNotFound(p) => write!(f, "device {p:?} is not in the host device tree"),
            Self::DeviceDisabled(p) => write!(f, "device {p} is disabled in the host device tree"),
            Self::HypervisorOwned { path, what } => {
                write!(
                    f,
                    "{path} ({what}) belongs to the hypervisor and cannot be passed through"
                )
            }
            Self::PathConflict(p) => write!(f, "{p} clashes with a node the hypervisor generates"),
            Self::UnsupportedReference { path, prop } => {
                write!(
                    f,
                    "{path}: `{prop}` references nodes that cannot be passed through"
                )
            }
            Self::BadReference {
                path,
                prop,
                phandle,
            } => {
                write!(
                    f,
                    "{path}: `{prop}` names phandle {phandle:#x}, which no host node has"
                )
            }
            Self::DanglingReference {
                path,
                prop,
                phandle,
            } => {
                write!(
                    f,
                    "{path}: `{prop}` names phandle {phandle:#x}, which is not in the guest tree"
                )
            }
            Self::Malformed { path, prop } => write!(f, "{path}: `{prop}` is missing or malformed"),
            Self::StdoutNotPassedThrough(p) => {
                write!(f, "console {p:?} is not a passed-through device")
            }
            Self::PhandlesExhausted => write!(f, "no free phandle above the host's"),
            Self::Writer { path, error } => write!(f, "{path}: device tree writer: {error}"),
        }
    }
}

/// No [`core::error::Error::source`]: the only wrapped error,
/// [`vm_fdt::Error`] in [`GuestDtError::Writer`], implements
/// `std::error::Error` only with vm-fdt's `std` feature, which a `no_std`
/// hypervisor cannot enable; its text is part of the message instead.
impl core::error::Error for GuestDtError {}
