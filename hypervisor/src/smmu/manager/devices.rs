//! Owners' devices and their streams, from the host device tree: which
//! streams a list of devices emits on which SMMU instance
//! ([`owner_streams`]), and endpoint (PCI requester ID) <-> StreamID
//! through a host bridge's `iommu-map` ([`endpoint_sid`],
//! [`sid_endpoint`]). Pure functions: the instances are given as their
//! phandles ([`super::SmmuManager::phandles`], index = instance).

use crate::fdt::{HostDt, PcieHost};
use crate::smmu::streams::{Streams, StreamsError, pcie_rid_streams, platform_streams};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// The streams of one device on one SMMU instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceStreams {
    /// The device's path in the host device tree.
    pub path: String,
    /// The SMMU instance.
    pub smmu: usize,
    /// Its StreamIDs there.
    pub streams: Streams,
}

/// A device whose DMA the SMMUs in use cannot isolate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamProblem {
    /// Its `iommus` cannot be read.
    Iommus {
        /// The device's path.
        path: String,
        /// What is wrong with the property.
        error: StreamsError,
    },
    /// Its DMA goes through an SMMU that is not in use.
    SmmuNotRun {
        /// The device's path.
        path: String,
    },
}

impl fmt::Display for StreamProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamProblem::Iommus { path, error } => write!(f, "{path}: {error}"),
            StreamProblem::SmmuNotRun { path } => write!(
                f,
                "{path}: its DMA goes through an SMMU the hypervisor does not run: not isolated"
            ),
        }
    }
}

impl core::error::Error for StreamProblem {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            StreamProblem::Iommus { error, .. } => Some(error),
            StreamProblem::SmmuNotRun { .. } => None,
        }
    }
}

/// The streams of an owner's devices, per instance, and the devices that
/// cannot be isolated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerStreams {
    /// Streams on instances in use, in device order.
    pub devices: Vec<DeviceStreams>,
    /// Devices whose DMA is not isolated.
    pub problems: Vec<StreamProblem>,
}

fn instance_of(smmus: &[Option<u32>], phandle: u32) -> Option<usize> {
    smmus.iter().position(|p| *p == Some(phandle))
}

/// The streams of `devices` (paths in `hw`): a PCIe host bridge's whole
/// bus range through its `iommu-map`, a platform device's `iommus`. A path
/// that is neither a host bridge nor a node has no streams. `smmus` are the
/// phandles of the instances in use (index = instance).
pub fn owner_streams(
    hw: &HostDt,
    devices: &[impl AsRef<str>],
    smmus: &[Option<u32>],
) -> OwnerStreams {
    owner_streams_within(hw, devices, smmus, &|p: &PcieHost| p.bus_range)
}

/// As [`owner_streams`], a host bridge's streams limited to the buses
/// `buses` gives for it (first, last): the buses enumeration found in use,
/// so that no stream table memory is spent on buses nothing is on.
pub fn owner_streams_within(
    hw: &HostDt,
    devices: &[impl AsRef<str>],
    smmus: &[Option<u32>],
    buses: &dyn Fn(&PcieHost) -> (u32, u32),
) -> OwnerStreams {
    let mut out = OwnerStreams::default();
    for path in devices.iter().map(AsRef::as_ref) {
        let mut streams: Vec<Streams> = Vec::new();
        if let Some(p) = hw.pcie.iter().find(|p| p.path == path) {
            let (first, last) = buses(p);
            let rids = (first.min(255) << 8)..=(last.min(255) << 8 | 0xff);
            streams.extend(pcie_rid_streams(p, rids));
        } else if let Some(node) = hw.tree().find(path) {
            match platform_streams(hw.tree(), &node) {
                Ok(s) => streams.extend(s),
                Err(error) => out.problems.push(StreamProblem::Iommus {
                    path: path.to_string(),
                    error,
                }),
            }
        }
        for s in streams {
            match instance_of(smmus, s.smmu_phandle) {
                Some(smmu) => out.devices.push(DeviceStreams {
                    path: path.to_string(),
                    smmu,
                    streams: s,
                }),
                None => out.problems.push(StreamProblem::SmmuNotRun {
                    path: path.to_string(),
                }),
            }
        }
    }
    out
}

/// The SMMU instance and StreamID of endpoint `ep` of an owner of
/// `devices`: endpoint IDs are the requester IDs of the owner's PCIe host
/// bridges (the owner's view of `iommu-map` is the identity), mapped
/// through the host bridge's own `iommu-map`. `None` for an endpoint on no
/// bridge of `devices`, or behind an SMMU not in use.
pub fn endpoint_sid(
    hw: &HostDt,
    devices: &[impl AsRef<str>],
    smmus: &[Option<u32>],
    ep: u32,
) -> Option<(usize, u32)> {
    hw.pcie
        .iter()
        .filter(|p| devices.iter().any(|d| d.as_ref() == p.path))
        .filter(|p| ep <= 0xffff && (p.bus_range.0..=p.bus_range.1).contains(&(ep >> 8)))
        .find_map(|p| {
            let (phandle, sid) = p.iommu_for_rid(ep)?;
            Some((instance_of(smmus, phandle)?, sid))
        })
}

/// The endpoint ID (requester ID) of stream `sid` of the SMMU with phandle
/// `smmu_phandle`, if it is on a host bridge of `devices`: the inverse of
/// [`endpoint_sid`] (the first `iommu-map` entry that produces `sid`).
pub fn sid_endpoint(
    hw: &HostDt,
    devices: &[impl AsRef<str>],
    smmu_phandle: u32,
    sid: u32,
) -> Option<u32> {
    hw.pcie
        .iter()
        .filter(|p| devices.iter().any(|d| d.as_ref() == p.path))
        .find_map(|p| {
            p.iommu_map.iter().find_map(|e| {
                let off = sid.checked_sub(e.iommu_base)?;
                (e.iommu_phandle == smmu_phandle && off < e.length).then(|| e.rid_base + off)
            })
        })
}
