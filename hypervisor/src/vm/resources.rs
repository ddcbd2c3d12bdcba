//! What a passed-through device brings with it: the MMIO ranges to map into
//! the guest's stage 2 (its `reg`, and for a PCIe host bridge its
//! windows) and the interrupts it may raise (its `interrupts`, and for a
//! bridge the SPIs named in its `interrupt-map`); [`ResourceError`] says
//! why they could not be read.

use crate::fdt::host::irq::{self, IrqError};
use crate::fdt::{HostDt, NodeRef, PropError, Tree};
use crate::mm::layout::Region;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Why a passed-through device's resources could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResourceError {
    /// The path names no node of the host device tree.
    NoSuchNode {
        /// The path asked for.
        path: String,
    },
    /// A node's `reg` cannot be read or translated.
    BadReg {
        /// Path of the node.
        path: String,
        /// Why.
        error: PropError,
    },
    /// A node's `interrupts`/`interrupts-extended` cannot be decoded.
    Interrupts {
        /// Path of the node.
        path: String,
        /// Why.
        error: IrqError,
    },
    /// A host bridge's `interrupt-map` is truncated, names a phandle that
    /// is no node, or a parent without `#interrupt-cells`.
    MalformedInterruptMap {
        /// Path of the bridge.
        path: String,
    },
    /// A GIC specifier in a host bridge's `interrupt-map` cannot be
    /// decoded (the message is the specifier's alone, as it always was).
    InterruptMapSpecifier(IrqError),
}

impl fmt::Display for ResourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSuchNode { path } => {
                write!(f, "{path}: no such node in the host device tree")
            }
            Self::BadReg { path, error } => write!(f, "{path}: bad reg: {error}"),
            Self::Interrupts { path, error } => write!(f, "{path}: {error}"),
            Self::MalformedInterruptMap { path } => write!(f, "{path}: malformed interrupt-map"),
            Self::InterruptMapSpecifier(error) => write!(f, "{error}"),
        }
    }
}

impl core::error::Error for ResourceError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::NoSuchNode { .. } | Self::MalformedInterruptMap { .. } => None,
            Self::BadReg { error, .. } => Some(error),
            Self::Interrupts { error, .. } | Self::InterruptMapSpecifier(error) => Some(error),
        }
    }
}

/// MMIO ranges and GIC INTIDs of one device.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeviceResources {
    /// CPU physical ranges to identity-map (device memory).
    pub mmio: Vec<Region>,
    /// GIC INTIDs the device raises (SPIs).
    pub intids: Vec<u32>,
}

/// Collects the resources of the node at `path` (and its children).
pub fn device_resources(host: &HostDt, path: &str) -> Result<DeviceResources, ResourceError> {
    let tree = host.tree();
    let node = tree.find(path).ok_or_else(|| ResourceError::NoSuchNode {
        path: String::from(path),
    })?;
    let mut res = DeviceResources::default();
    collect(tree, &node, &mut res)?;
    if let Some(p) = host.pcie.iter().find(|p| p.path == path) {
        res.mmio.push(p.ecam);
        for r in &p.ranges {
            if r.size != 0 {
                res.mmio.push(Region::new(r.cpu_addr, r.size));
            }
        }
        for intid in interrupt_map_spis(tree, &node)? {
            if !res.intids.contains(&intid) {
                res.intids.push(intid);
            }
        }
    }
    res.mmio.sort();
    res.mmio.dedup();
    Ok(res)
}

fn collect(
    tree: &Tree,
    node: &NodeRef<'_>,
    res: &mut DeviceResources,
) -> Result<(), ResourceError> {
    if !node.node().is_available() {
        return Ok(());
    }
    if node.node().has_prop("reg")
        && node
            .parent()
            .is_some_and(|p| p.node().has_prop("ranges") || p.parent().is_none())
    {
        let regs = node.reg_cpu().map_err(|error| ResourceError::BadReg {
            path: node.path(),
            error,
        })?;
        res.mmio.extend(regs.into_iter().filter(|r| r.size != 0));
    }
    if node.node().has_prop("interrupts") || node.node().has_prop("interrupts-extended") {
        let list = irq::interrupts(tree, node).map_err(|error| ResourceError::Interrupts {
            path: node.path(),
            error,
        })?;
        for i in list {
            let intid = i.intid();
            if intid >= 32 && !res.intids.contains(&intid) {
                res.intids.push(intid);
            }
        }
    }
    for child in node.children() {
        collect(tree, &child, res)?;
    }
    Ok(())
}

/// SPIs named by a bridge's `interrupt-map` whose parent is a GIC.
fn interrupt_map_spis(tree: &Tree, node: &NodeRef<'_>) -> Result<Vec<u32>, ResourceError> {
    let mut out = Vec::new();
    walk_interrupt_map(tree, node, &mut |_, intid| {
        if !out.contains(&intid) {
            out.push(intid);
        }
    })?;
    Ok(out)
}

/// Calls `f` with the child unit address and interrupt cells (masked by
/// `interrupt-map-mask`) and the GIC INTID (32 and up) of every entry of
/// the bridge's `interrupt-map` whose parent is a GIC.
fn walk_interrupt_map(
    tree: &Tree,
    node: &NodeRef<'_>,
    f: &mut dyn FnMut(&[u32], u32),
) -> Result<(), ResourceError> {
    let Some(map) = node
        .node()
        .prop("interrupt-map")
        .and_then(|p| p.as_u32_list())
    else {
        return Ok(());
    };
    let child_addr = node.node().prop_u32("#address-cells").unwrap_or(3) as usize;
    let child_irq = node.node().prop_u32("#interrupt-cells").unwrap_or(1) as usize;
    let bad = || ResourceError::MalformedInterruptMap { path: node.path() };
    let mut i = 0;
    while i < map.len() {
        let ph_at = i + child_addr + child_irq;
        let phandle = *map.get(ph_at).ok_or_else(bad)?;
        let parent = tree.by_phandle(phandle).ok_or_else(bad)?;
        let p_addr = parent.node().prop_u32("#address-cells").unwrap_or(0) as usize;
        let p_irq = parent.node().prop_u32("#interrupt-cells").ok_or_else(bad)? as usize;
        let spec_at = ph_at + 1 + p_addr;
        let spec = map.get(spec_at..spec_at + p_irq).ok_or_else(bad)?;
        if irq::is_gic(&parent) {
            let int = irq::Interrupt::from_gic_cells(spec)
                .map_err(ResourceError::InterruptMapSpecifier)?;
            if int.intid() >= 32 {
                f(&map[i..ph_at], int.intid());
            }
        }
        i = spec_at + p_irq;
    }
    Ok(())
}

/// The GIC INTID the host bridge at `bridge` routes INTx pin `pin` (1 to
/// 4, INTA to INTD) of the function with requester ID `rid` to, through
/// its `interrupt-map` and `interrupt-map-mask` (None: no entry).
pub fn intx_intid(
    host: &HostDt,
    bridge: &str,
    rid: u16,
    pin: u8,
) -> Result<Option<u32>, ResourceError> {
    let tree = host.tree();
    let node = tree.find(bridge).ok_or_else(|| ResourceError::NoSuchNode {
        path: String::from(bridge),
    })?;
    // The child unit address is phys.hi (bus, device, function in bits
    // 23:8), phys.mid, phys.lo; then the pin.
    let key = [u32::from(rid) << 8, 0, 0, u32::from(pin)];
    let mask = node
        .node()
        .prop("interrupt-map-mask")
        .and_then(|p| p.as_u32_list())
        .unwrap_or_else(|| alloc::vec![u32::MAX; 4]);
    let mut found = None;
    walk_interrupt_map(tree, &node, &mut |child, intid| {
        let matches = child.len() == key.len()
            && child
                .iter()
                .zip(key.iter())
                .zip(mask.iter().chain(core::iter::repeat(&u32::MAX)))
                .all(|((c, k), m)| c & m == k & m);
        if matches && found.is_none() {
            found = Some(intid);
        }
    })?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIRT: &[u8] = include_bytes!("../fdt/testdata/qemu-virt-smmu.dtb");

    #[test]
    fn pl011_and_pcie_resources() {
        let host = HostDt::parse(VIRT).unwrap();
        let uart = device_resources(&host, "/pl011@9000000").unwrap();
        assert_eq!(uart.mmio, alloc::vec![Region::new(0x900_0000, 0x1000)]);
        assert_eq!(uart.intids, alloc::vec![33]);
        let pcie = device_resources(&host, "/pcie@10000000").unwrap();
        assert!(
            pcie.mmio
                .contains(&Region::new(0x40_1000_0000, 0x1000_0000))
        );
        assert!(pcie.mmio.contains(&Region::new(0x1000_0000, 0x2eff_0000)));
        let mut spis = pcie.intids.clone();
        spis.sort();
        assert_eq!(spis, alloc::vec![35, 36, 37, 38]);
        let err = device_resources(&host, "/nope").unwrap_err();
        assert_eq!(
            err,
            ResourceError::NoSuchNode {
                path: "/nope".into()
            }
        );
        assert_eq!(
            alloc::format!("{err}"),
            "/nope: no such node in the host device tree"
        );
    }

    /// `e`'s message and its source's, if it has one.
    fn texts(e: &dyn core::error::Error) -> (String, Option<String>) {
        use alloc::string::ToString;
        (e.to_string(), e.source().map(ToString::to_string))
    }

    #[test]
    fn intx_follows_the_bridges_interrupt_map_and_swizzle() {
        let hw = crate::vm::tests::host();
        // QEMU virt: slot s, pin p -> SPI 3 + (s + p - 1) % 4 (INTID 35-38).
        let spi = |dev: u16, pin| intx_intid(hw, "/pcie@10000000", dev << 3, pin).unwrap();
        assert_eq!(spi(0, 1), Some(35));
        assert_eq!(spi(2, 1), Some(37));
        assert_eq!(spi(2, 2), Some(38));
        assert_eq!(spi(3, 2), Some(35));
        assert_eq!(spi(5, 4), Some(35));
        assert_eq!(spi(1, 0), None, "no pin");
        assert!(intx_intid(hw, "/nothing", 0, 1).is_err());
    }

    #[test]
    fn resource_error_messages() {
        let path = || String::from("/pcie@10000000");
        let bad_reg = PropError::BadLength {
            prop: "reg",
            len: 12,
        };
        for (e, text, source) in [
            (
                ResourceError::NoSuchNode { path: path() },
                "/pcie@10000000: no such node in the host device tree",
                None,
            ),
            (
                ResourceError::BadReg {
                    path: path(),
                    error: bad_reg,
                },
                "/pcie@10000000: bad reg: `reg` has a malformed length (12 bytes)",
                Some("`reg` has a malformed length (12 bytes)"),
            ),
            (
                ResourceError::Interrupts {
                    path: path(),
                    error: IrqError::NoInterruptParent,
                },
                "/pcie@10000000: no interrupt parent",
                Some("no interrupt parent"),
            ),
            (
                ResourceError::MalformedInterruptMap { path: path() },
                "/pcie@10000000: malformed interrupt-map",
                None,
            ),
            (
                ResourceError::InterruptMapSpecifier(IrqError::UnsupportedType(2)),
                "unsupported GIC interrupt type 2",
                Some("unsupported GIC interrupt type 2"),
            ),
        ] {
            assert_eq!(texts(&e), (text.into(), source.map(String::from)));
        }
    }
}
