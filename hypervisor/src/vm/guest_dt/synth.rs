//! The nodes the hypervisor generates rather than copies: the root's
//! properties, `/cpus`, `/memory`, `/psci`, the emulated GICv3, the
//! generic timer (copied from the host's), the virtio-iommu and `/chosen`.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::policy::DROPPED_PROPS;
use super::props::{self, flag_prop, reg_prop, strs_prop, u32_prop, u64_prop};
use super::refs::malformed;
use super::tree::GuestTree;
use super::{ConsoleDt, GuestDtError, GuestDtSpec, ViommuDt};
use crate::fdt::{Node, NodeRef, Prop, Tree};

/// Root `compatible` when the host root has none.
pub const DEFAULT_COMPATIBLE: &str = "linux,dummy-virt";
/// Root `model` of every guest.
pub const MODEL: &str = "partita guest";

/// The root's `#address-cells` and `#size-cells`, which the generated
/// `reg` properties use.
#[derive(Clone, Copy, Debug)]
pub struct RootCells {
    /// `#address-cells`.
    pub address: u32,
    /// `#size-cells`.
    pub size: u32,
}

impl RootCells {
    /// The host root's values (defaults 2 and 1), which copied nodes at the
    /// root rely on; 0 address cells is refused.
    pub fn of(tree: &Tree) -> Result<Self, GuestDtError> {
        let address = tree.root.child_address_cells().filter(|&n| n > 0);
        let address = address.ok_or_else(|| malformed("/", "#address-cells"))?;
        let size = tree
            .root
            .child_size_cells()
            .ok_or_else(|| malformed("/", "#size-cells"))?;
        Ok(Self { address, size })
    }
}

/// The root's properties: host `compatible` (or [`DEFAULT_COMPATIBLE`]),
/// [`MODEL`], the cell counts and `interrupt-parent` = the GIC.
pub fn root_props(
    tree: &Tree,
    cells: RootCells,
    gic_phandle: u32,
) -> Result<Vec<Prop>, GuestDtError> {
    let compatible = match tree.root.prop("compatible") {
        Some(p) if p.as_str_list().is_some() => p.clone(),
        _ => strs_prop("compatible", &[DEFAULT_COMPATIBLE], "compatible")?,
    };
    Ok(vec![
        compatible,
        strs_prop("model", &[MODEL], "model")?,
        u32_prop("#address-cells", cells.address),
        u32_prop("#size-cells", cells.size),
        u32_prop("interrupt-parent", gic_phandle),
    ])
}

/// `/cpus` with one `cpu@i` per vCPU, MPIDR `i`, started through PSCI.
pub fn cpus(vcpus: usize) -> Result<Node, GuestDtError> {
    let mut cpus = Node::new("cpus");
    cpus.props = vec![u32_prop("#address-cells", 1), u32_prop("#size-cells", 0)];
    for i in 0..vcpus {
        let mpidr = u32::try_from(i).map_err(|_| GuestDtError::BadVcpuCount { vcpus })?;
        let mut cpu = Node::new(&format!("cpu@{mpidr:x}"));
        cpu.props = vec![
            strs_prop("device_type", &["cpu"], "device_type")?,
            strs_prop("compatible", &["arm,armv8"], "compatible")?,
            u32_prop("reg", mpidr),
            strs_prop("enable-method", &["psci"], "enable-method")?,
        ];
        cpus.children.push(cpu);
    }
    Ok(cpus)
}

/// `/memory@BASE`.
pub fn memory(spec: &GuestDtSpec<'_>, cells: RootCells) -> Result<Node, GuestDtError> {
    let mut node = Node::new(&format!("memory@{:x}", spec.memory.base));
    node.props = vec![
        strs_prop("device_type", &["memory"], "device_type")?,
        reg_prop(&[spec.memory], cells.address, cells.size, "memory")?,
    ];
    Ok(node)
}

/// `/psci` with the spec's conduit.
pub fn psci(spec: &GuestDtSpec<'_>) -> Result<Node, GuestDtError> {
    let mut node = Node::new("psci");
    node.props = vec![
        strs_prop(
            "compatible",
            &["arm,psci-1.0", "arm,psci-0.2"],
            "compatible",
        )?,
        strs_prop("method", &[spec.psci_method], "PSCI method")?,
    ];
    Ok(node)
}

/// The emulated GICv3 `intc@DIST`: the spec's distributor and
/// redistributor frames, no ITS, and from the host GIC its phandle, its
/// maintenance `interrupts` and its `#address-cells` (the parent
/// unit-address size of copied `interrupt-map`s).
pub fn gic(
    spec: &GuestDtSpec<'_>,
    host_gic: &NodeRef<'_>,
    phandle: u32,
    cells: RootCells,
) -> Result<Node, GuestDtError> {
    let mut node = Node::new(&format!("intc@{:x}", spec.gic_dist.base));
    node.props = vec![
        strs_prop("compatible", &["arm,gic-v3"], "compatible")?,
        u32_prop("#interrupt-cells", 3),
        flag_prop("interrupt-controller"),
        reg_prop(
            &[spec.gic_dist, spec.gic_redist],
            cells.address,
            cells.size,
            "GIC region",
        )?,
        u32_prop("#redistributor-regions", 1),
    ];
    for name in ["interrupts", "#address-cells"] {
        if let Some(p) = host_gic.prop(name) {
            node.props.push(p.clone());
        }
    }
    node.props.push(u32_prop("phandle", phandle));
    Ok(node)
}

/// The host's first enabled generic timer node, copied (PPIs unchanged).
pub fn timer(tree: &Tree) -> Result<Node, GuestDtError> {
    let host = tree
        .nodes()
        .into_iter()
        .find(|n| {
            n.is_available()
                && (n.is_compatible("arm,armv8-timer") || n.is_compatible("arm,armv7-timer"))
        })
        .ok_or(GuestDtError::NoHostTimer)?;
    let mut node = Node::new(&host.name);
    node.props = host
        .props
        .iter()
        .filter(|p| !DROPPED_PROPS.contains(&p.name.as_str()))
        .cloned()
        .collect();
    Ok(node)
}

/// GIC specifier type of an SPI.
const GIC_SPI: u32 = 0;
/// GIC specifier flags of a rising-edge interrupt.
const IRQ_TYPE_EDGE_RISING: u32 = 1;

/// The virtio-iommu `iommu@BASE`: a virtio-mmio device (`reg` in the
/// root's cells), its SPI as a rising edge, `dma-coherent`, one cell per
/// endpoint ID (`#iommu-cells = <1>`) and the fresh `phandle` that the
/// devices' `iommus` and `iommu-map` point at.
pub fn viommu(viommu: &ViommuDt, phandle: u32, cells: RootCells) -> Result<Node, GuestDtError> {
    let mut node = Node::new(&format!("iommu@{:x}", viommu.base));
    let interrupts: Vec<u8> = [GIC_SPI, viommu.spi, IRQ_TYPE_EDGE_RISING]
        .iter()
        .flat_map(|c| c.to_be_bytes())
        .collect();
    node.props = vec![
        strs_prop("compatible", &["virtio,mmio"], "compatible")?,
        reg_prop(
            &[viommu.window()],
            cells.address,
            cells.size,
            "virtio-iommu window",
        )?,
        Prop::new("interrupts", &interrupts),
        flag_prop("dma-coherent"),
        u32_prop("#iommu-cells", 1),
        u32_prop("phandle", phandle),
    ];
    Ok(node)
}

/// GIC specifier flags of a level-high interrupt.
const IRQ_TYPE_LEVEL_HIGH: u32 = 4;

/// The emulated console: a fixed 24 MHz clock `partita-uartclk` with
/// phandle `clock`, and `pl011@BASE` (`arm,pl011`, `arm,primecell`, its
/// SPI level-high, `uartclk` and `apb_pclk` both that clock), as QEMU's
/// `virt` describes its PL011.
pub fn console(
    console: &ConsoleDt,
    clock: u32,
    cells: RootCells,
) -> Result<(Node, Node), GuestDtError> {
    let mut clk = Node::new("partita-uartclk");
    clk.props = vec![
        strs_prop("compatible", &["fixed-clock"], "compatible")?,
        u32_prop("#clock-cells", 0),
        u32_prop("clock-frequency", 24_000_000),
        strs_prop("clock-output-names", &["clk24mhz"], "clock name")?,
        u32_prop("phandle", clock),
    ];
    let mut uart = Node::new(&format!("pl011@{:x}", console.base));
    let interrupts: Vec<u8> = [GIC_SPI, console.spi, IRQ_TYPE_LEVEL_HIGH]
        .iter()
        .flat_map(|c| c.to_be_bytes())
        .collect();
    let clocks: Vec<u8> = [clock, clock]
        .iter()
        .flat_map(|c| c.to_be_bytes())
        .collect();
    uart.props = vec![
        strs_prop("compatible", &["arm,pl011", "arm,primecell"], "compatible")?,
        reg_prop(
            &[crate::mm::layout::Region::new(console.base, 0x1000)],
            cells.address,
            cells.size,
            "console window",
        )?,
        Prop::new("interrupts", &interrupts),
        Prop::new("clocks", &clocks),
        strs_prop("clock-names", &["uartclk", "apb_pclk"], "clock names")?,
    ];
    Ok((clk, uart))
}

/// Where a virtual bridge's functions' DMA goes: to the virtio-iommu
/// that is a function of the bus (its node a child of the bridge, with
/// this phandle), or to the guest's virtio-iommu on virtio-mmio.
#[derive(Clone, Copy, Debug)]
pub enum VpciIommu {
    /// The virtio-pci function at `VpciDt::viommu_slot`.
    OnBus(u32),
    /// The `virtio,mmio` node with this phandle.
    Mmio(u32),
}

/// The guest's virtual PCIe host bridge `pcie@BASE`: generic ECAM of bus
/// 0, the host bridge's memory windows (BARs keep their host addresses),
/// one `interrupt-map` entry per function with an INTx line (its virtual
/// slot and pin to the host's SPI, level-high), `dma-coherent` as the host
/// bridge is. `/chosen` says `linux,pci-probe-only`: the BARs are the
/// hypervisor's.
pub fn vpci(
    v: &crate::vm::vpci::VpciDt,
    gic_phandle: u32,
    gic_address_cells: u32,
    iommu: Option<VpciIommu>,
    cells: RootCells,
) -> Result<Node, GuestDtError> {
    let mut node = Node::new(&format!("pcie@{:x}", v.ecam.base));
    let mut ranges = Vec::new();
    for r in &v.ranges {
        let space: u32 = match r.space {
            crate::fdt::PciSpace::Mem32 => 0b10,
            _ => 0b11,
        };
        let hi = space << 24 | u32::from(r.prefetchable) << 30;
        ranges.extend_from_slice(&hi.to_be_bytes());
        ranges.extend_from_slice(&r.pci_addr.to_be_bytes());
        props::push_cells(&mut ranges, r.cpu_addr, cells.address)
            .ok_or_else(|| malformed("/pcie", "ranges"))?;
        ranges.extend_from_slice(&r.size.to_be_bytes());
    }
    let mut map = Vec::new();
    for s in &v.slots {
        let child = [u32::from(s.dev) << 11, 0, 0, u32::from(s.pin)];
        for c in child {
            map.extend_from_slice(&c.to_be_bytes());
        }
        map.extend_from_slice(&gic_phandle.to_be_bytes());
        for _ in 0..gic_address_cells {
            map.extend_from_slice(&0u32.to_be_bytes());
        }
        for c in [GIC_SPI, s.intid - 32, IRQ_TYPE_LEVEL_HIGH] {
            map.extend_from_slice(&c.to_be_bytes());
        }
    }
    // Each virtual slot has its own entry: the mask keeps the device
    // number (phys.hi bits 15:11) and the pin.
    let mask: Vec<u8> = [0xf800u32, 0, 0, 7]
        .iter()
        .flat_map(|c| c.to_be_bytes())
        .collect();
    node.props = vec![
        strs_prop("compatible", &["pci-host-ecam-generic"], "compatible")?,
        strs_prop("device_type", &["pci"], "device_type")?,
        reg_prop(&[v.ecam], cells.address, cells.size, "virtual ECAM")?,
        Prop::new(
            "bus-range",
            &[0u32.to_be_bytes(), 0u32.to_be_bytes()].concat(),
        ),
        u32_prop("#address-cells", 3),
        u32_prop("#size-cells", 2),
        u32_prop("#interrupt-cells", 1),
        Prop::new("ranges", &ranges),
        Prop::new("interrupt-map", &map),
        Prop::new("interrupt-map-mask", &mask),
    ];
    if v.dma_coherent {
        node.props.push(flag_prop("dma-coherent"));
    }
    if let Some(VpciIommu::Mmio(phandle)) = iommu {
        // Every function of the bus (32 slots, function 0 each).
        let map: Vec<u8> = [0, phandle, 0, 32 << 3]
            .iter()
            .flat_map(|c| c.to_be_bytes())
            .collect();
        node.props.push(Prop::new("iommu-map", &map));
    }
    if let (Some(dev), Some(VpciIommu::OnBus(phandle))) = (v.viommu_slot, iommu) {
        // The virtio-iommu on the bus (binding virtio/pci-iommu.yaml): the
        // requester IDs below its own go to it; its own is left out.
        let rid = u32::from(dev) << 3;
        let map: Vec<u8> = [0, phandle, 0, rid]
            .iter()
            .flat_map(|c| c.to_be_bytes())
            .collect();
        node.props.push(Prop::new("iommu-map", &map));
        let mut iommu = Node::new(&format!("iommu@{dev:x},0"));
        let reg: Vec<u8> = [rid << 8, 0, 0, 0, 0]
            .iter()
            .flat_map(|c| c.to_be_bytes())
            .collect();
        iommu.props = vec![
            strs_prop(
                "compatible",
                &["virtio,pci-iommu", "pci1af4,1057"],
                "compatible",
            )?,
            Prop::new("reg", &reg),
            u32_prop("#iommu-cells", 1),
            u32_prop("phandle", phandle),
        ];
        node.children.push(iommu);
    }
    Ok(node)
}

/// `/chosen`: bootargs, the console (which must be a passed-through
/// device; written as its full host path plus any `:options`) and the
/// initrd as 64-bit values.
pub fn chosen(
    spec: &GuestDtSpec<'_>,
    tree: &Tree,
    guest: &GuestTree,
) -> Result<Node, GuestDtError> {
    let mut node = Node::new("chosen");
    node.props
        .push(strs_prop("bootargs", &[spec.bootargs], "bootargs")?);
    if let Some(stdout) = spec.stdout {
        let not_passed = || GuestDtError::StdoutNotPassedThrough(stdout.into());
        let uart = tree.resolve(stdout).ok_or_else(not_passed)?;
        let path = uart.path();
        if !guest.covers(&path) {
            return Err(not_passed());
        }
        let value = match stdout.split_once(':') {
            Some((_, options)) => format!("{path}:{options}"),
            None => path,
        };
        node.props
            .push(strs_prop("stdout-path", &[&value], "stdout path")?);
    } else if let Some(console) = &spec.console {
        let path = format!("/pl011@{:x}", console.base);
        node.props
            .push(strs_prop("stdout-path", &[&path], "stdout path")?);
    }
    if spec.vpci.is_some() {
        // The BARs of the functions given singly are the hypervisor's.
        node.props.push(u32_prop("linux,pci-probe-only", 1));
    }
    if let Some(initrd) = spec.initrd {
        let end = initrd
            .checked_end()
            .ok_or(GuestDtError::InitrdOutsideMemory { initrd })?;
        node.props.push(u64_prop("linux,initrd-start", initrd.base));
        node.props.push(u64_prop("linux,initrd-end", end));
    }
    Ok(node)
}
