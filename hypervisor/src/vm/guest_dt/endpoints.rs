//! The passed-through devices' side of the guest's virtio-iommu. The copy
//! dropped the host's `iommus` and `iommu-map` (they name the SMMU, which
//! the hypervisor keeps); with a virtio-iommu, every node of a requested
//! device's subtree that had them, pointing at an SMMU the hypervisor runs
//! (an [`HostDt::smmus`] entry), points at the virtio-iommu instead:
//!
//! - a PCIe host bridge (`iommu-map` on the host) gets
//!   `iommu-map = <RID0 &viommu RID0 LEN>` with `[RID0, RID0 + LEN)` the
//!   requester IDs of its `bus-range` (`<0x0 &viommu 0x0 0x10000>` for
//!   buses 0-255) and no `iommu-map-mask`: endpoint ID = requester ID;
//! - a platform node (`iommus` on the host) gets `iommus = <&viommu SID>`
//!   for each of its host entries `<&smmu SID>` (SMMUv3, one cell):
//!   endpoint ID = host stream ID.
//!
//! The hypervisor maps an endpoint back to the host stream through the same
//! host properties (the bridge's own `iommu-map`, the node's `iommus`).
//! Entries naming another IOMMU are left out; a node left with none gets
//! no property. Two nodes that would share an endpoint ID are refused
//! ([`GuestDtError::ViommuEndpointClash`]).

use alloc::string::String;
use alloc::vec::Vec;

use super::GuestDtError;
use super::refs::malformed;
use super::tree::GuestTree;
use crate::fdt::{HostDt, NodeRef, Prop, Tree};

/// Requester IDs of a PCIe host bridge whose bus range is unknown: all.
const ALL_RIDS: (u32, u32) = (0, 0x1_0000);

/// Points the passed-through `devices` (host paths, already copied into
/// `guest`) at the virtio-iommu with phandle `viommu`.
pub fn point_at_viommu(
    guest: &mut GuestTree,
    host: &HostDt,
    devices: &[&str],
    viommu: u32,
) -> Result<(), GuestDtError> {
    let tree = host.tree();
    let smmus: Vec<u32> = host.smmus.iter().filter_map(|s| s.phandle).collect();
    let mut taken = Taken::default();
    let mut visited: Vec<String> = Vec::new();
    let mut pending: Vec<NodeRef<'_>> = devices.iter().filter_map(|p| tree.find(p)).collect();
    pending.reverse();
    while let Some(node) = pending.pop() {
        let path = node.path();
        if visited.contains(&path) {
            continue;
        }
        let mut props = Vec::new();
        if let Some(map) = node.prop("iommu-map")
            && map_targets(map, &path)?.iter().any(|t| smmus.contains(t))
        {
            let (start, len) = rid_span(host, &path);
            taken.claim(&path, start, len)?;
            props.push(Prop::new("iommu-map", &cells(&[start, viommu, start, len])));
        }
        if let Some(iommus) = node.prop("iommus") {
            let mut value = Vec::new();
            for sid in smmu_stream_ids(tree, iommus, &path, &smmus)? {
                taken.claim(&path, sid, 1)?;
                value.extend(cells(&[viommu, sid]));
            }
            if !value.is_empty() {
                props.push(Prop::new("iommus", &value));
            }
        }
        if !props.is_empty() {
            let copy = guest
                .copied_mut(&path)
                .ok_or_else(|| GuestDtError::DeviceNotFound(path.clone()))?;
            copy.props
                .retain(|p| !props.iter().any(|new| new.name == p.name));
            copy.props.extend(props);
        }
        pending.extend(node.children());
        visited.push(path);
    }
    Ok(())
}

/// Big-endian cells.
fn cells(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|c| c.to_be_bytes()).collect()
}

/// The requester IDs `(first, count)` of the bridge at `path`: its
/// `bus-range` as the host tree gives it, or [`ALL_RIDS`].
fn rid_span(host: &HostDt, path: &str) -> (u32, u32) {
    host.pcie
        .iter()
        .find(|p| p.path == path)
        .map_or(ALL_RIDS, |p| {
            let (first, last) = (p.bus_range.0.min(0xff), p.bus_range.1.min(0xff));
            (first << 8, (last.saturating_sub(first) + 1) << 8)
        })
}

/// The IOMMU phandles of an `iommu-map` (`<rid-base phandle iommu-base
/// length>` entries, as Linux reads them).
fn map_targets(map: &Prop, path: &str) -> Result<Vec<u32>, GuestDtError> {
    let values = map
        .as_u32_list()
        .ok_or_else(|| malformed(path, &map.name))?;
    if values.len() % 4 != 0 {
        return Err(malformed(path, &map.name));
    }
    Ok(values.chunks_exact(4).map(|entry| entry[1]).collect())
}

/// The stream IDs of the `iommus` entries that name one of `smmus` with
/// one specifier cell. A phandle no host node has, or a target without
/// `#iommu-cells`, is an error.
fn smmu_stream_ids(
    tree: &Tree,
    iommus: &Prop,
    path: &str,
    smmus: &[u32],
) -> Result<Vec<u32>, GuestDtError> {
    let values = iommus
        .as_u32_list()
        .ok_or_else(|| malformed(path, &iommus.name))?;
    let mut out = Vec::new();
    let mut rest = values.as_slice();
    while let [phandle, tail @ ..] = rest {
        if *phandle == 0 {
            rest = tail;
            continue;
        }
        let target = tree
            .by_phandle(*phandle)
            .ok_or_else(|| GuestDtError::BadReference {
                path: String::from(path),
                prop: iommus.name.clone(),
                phandle: *phandle,
            })?;
        let n = target
            .prop_u32("#iommu-cells")
            .ok_or_else(|| malformed(&target.path(), "#iommu-cells"))? as usize;
        let (args, tail) = tail
            .split_at_checked(n)
            .ok_or_else(|| malformed(path, &iommus.name))?;
        if let [sid] = args
            && smmus.contains(phandle)
        {
            out.push(*sid);
        }
        rest = tail;
    }
    Ok(out)
}

/// Endpoint IDs handed out so far: `[start, end)` and the node.
#[derive(Default)]
struct Taken(Vec<(u64, u64, String)>);

impl Taken {
    /// Claims `count` endpoints from `start` for the node at `path`.
    fn claim(&mut self, path: &str, start: u32, count: u32) -> Result<(), GuestDtError> {
        let (s, e) = (u64::from(start), u64::from(start) + u64::from(count));
        if let Some((os, _, owner)) = self.0.iter().find(|(os, oe, _)| s < *oe && *os < e) {
            return Err(GuestDtError::ViommuEndpointClash {
                path: String::from(path),
                endpoint: u32::try_from(s.max(*os)).unwrap_or(u32::MAX),
                owner: owner.clone(),
            });
        }
        self.0.push((s, e, String::from(path)));
        Ok(())
    }
}
