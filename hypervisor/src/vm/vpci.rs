//! The virtual PCIe host bridge of a guest given single PCI functions
//! (`pci = [...]`): which host functions they are, where the bridge's ECAM
//! window goes in the guest, the BARs to map at stage 2, the INTx lines the
//! guest owns, the streams to bind, and what its device tree node says.
//! The bridge device itself is `devices::vpci`.

use crate::config::{GuestConfig, GuestRef, PciAddr, Problem};
use crate::fdt::{HostDt, PciRange, PciSpace};
use crate::mm::layout::Region;
use crate::pci::config::{Bdf, ConfigAccess};
use crate::pci::host::{IntxClaim, PciHost};
use crate::pci::vbus::{Slot, VbusError, VirtualBus};
use crate::pci::view::FunctionView;
use crate::vm::resources::{ResourceError, intx_intid};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Why a guest's PCI functions cannot be given to it.
#[derive(Debug)]
pub enum VpciError {
    /// An entry of `pci` does not parse.
    BadAddress(String),
    /// No host bridge with that segment number (or it was not enumerated).
    NoBridge(PciAddr),
    /// Functions of two host bridges (one virtual bridge serves one).
    TwoBridges,
    /// A BAR of the function could not be placed at boot.
    Unplaced(PciAddr),
    /// Rules of the configuration that only the enumeration can check
    /// (the function exists, its INTx line is not another guest's), one
    /// problem per entry of `pci` that breaks one.
    Config(Vec<Problem>),
    /// The bridge's `interrupt-map` cannot be read.
    InterruptMap(ResourceError),
    /// More functions than the virtual bus has slots.
    Bus(VbusError),
    /// No room for the virtio-iommu's BAR in the bridge's windows.
    NoWindow,
}

impl fmt::Display for VpciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadAddress(s) => write!(f, "pci: {s:?} is not a PCI address (BB:DD.F)"),
            Self::NoBridge(a) => write!(f, "pci: {a}: no enumerated host bridge {:04x}", a.segment),
            Self::TwoBridges => write!(f, "pci: functions of two host bridges (one is supported)"),
            Self::Unplaced(a) => write!(f, "pci: {a}: a BAR could not be placed at boot"),
            Self::Config(problems) => {
                for (i, p) in problems.iter().enumerate() {
                    let sep = if i == 0 { "" } else { "; " };
                    write!(f, "{sep}{p}")?;
                }
                Ok(())
            }
            Self::InterruptMap(e) => write!(f, "pci: {e}"),
            Self::Bus(e) => write!(f, "pci: {e}"),
            Self::NoWindow => write!(f, "pci: no 64-bit window for the virtio-iommu's BAR"),
        }
    }
}

impl core::error::Error for VpciError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::InterruptMap(e) => Some(e),
            Self::Bus(e) => Some(e),
            _ => None,
        }
    }
}

/// One function of the virtual bus as the device tree describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VpciSlot {
    /// Its device number on the virtual bus.
    pub dev: u8,
    /// Its INTx pin (1-4; 0: none).
    pub pin: u8,
    /// The GIC INTID of that line (the host's, owned by the guest).
    pub intid: u32,
}

/// The guest's virtual bridge as its device tree describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VpciDt {
    /// Guest-physical ECAM window (bus 0).
    pub ecam: Region,
    /// The memory windows (the host bridge's, identity-mapped: the BARs
    /// keep their host addresses).
    pub ranges: Vec<PciRange>,
    /// The functions with an INTx line.
    pub slots: Vec<VpciSlot>,
    /// The host bridge is `dma-coherent`.
    pub dma_coherent: bool,
    /// The device number of the guest's virtio-iommu on the bus (virtio-pci),
    /// if it has one: the bridge's `iommu-map` sends every requester ID
    /// below its own to it.
    pub viommu_slot: Option<u8>,
}

/// What building a guest's virtual bridge gives the guest.
pub struct Vpci {
    /// The bus (made the bridge device once every function is on it).
    pub bus: VirtualBus<dyn ConfigAccess + Send>,
    /// Its device tree node.
    pub dt: VpciDt,
    /// BAR regions to map at stage 2 (device memory, identity).
    pub mmio: Vec<Region>,
    /// INTx INTIDs the guest owns.
    pub intids: Vec<u32>,
    /// The functions' host bridge path and requester IDs (their streams).
    pub functions: Vec<(String, u16)>,
}

/// Where the guest's virtio-iommu on virtio-pci has its BAR 0: the top 16
/// KiB of the bridge's 64-bit window (the enumeration places the host's
/// BARs from the bottom), below the guest's 40-bit IPA limit.
pub fn viommu_bar0(dt: &VpciDt) -> Option<u64> {
    let size = crate::virtio::pci::layout::BAR0_SIZE;
    dt.ranges
        .iter()
        .filter(|r| r.space == PciSpace::Mem64 && r.size >= size)
        .filter_map(|r| {
            let top = r.cpu_addr.checked_add(r.size)?.min(1 << 40);
            let at = top.checked_sub(size)? & !(size - 1);
            (at >= r.cpu_addr).then_some(at)
        })
        .next()
}

/// Builds the virtual bridge of guest `index` from its `config.pci`, over
/// the enumerated host bridges `pci` of host `hw`; None when it has no
/// functions. Claims the functions' INTx lines for the guest; a guest
/// refused holds none.
pub fn plan(
    hw: &HostDt,
    pci: &'static [PciHost],
    index: usize,
    config: &GuestConfig,
) -> Result<Option<Vpci>, VpciError> {
    let planned = plan_functions(hw, pci, index, config);
    if planned.is_err() {
        pci.iter().for_each(|h| h.release_intx(index));
    }
    planned
}

/// [`plan`], claims left to it to release.
fn plan_functions(
    hw: &HostDt,
    pci: &'static [PciHost],
    index: usize,
    config: &GuestConfig,
) -> Result<Option<Vpci>, VpciError> {
    if config.pci.is_empty() {
        return Ok(None);
    }
    let mut bus: VirtualBus<dyn ConfigAccess + Send> = VirtualBus::new();
    let mut host_of: Option<&PciHost> = None;
    let (mut mmio, mut intids, mut functions, mut slots) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut problems = Vec::new();
    for (at, entry) in config.pci.iter().enumerate() {
        let addr = PciAddr::parse(entry).ok_or_else(|| VpciError::BadAddress(entry.clone()))?;
        let bridge = hw
            .pcie
            .get(usize::from(addr.segment))
            .ok_or(VpciError::NoBridge(addr))?;
        let host = pci
            .iter()
            .find(|h| h.path == bridge.path)
            .ok_or(VpciError::NoBridge(addr))?;
        if host_of.is_some_and(|h| h.path != host.path) {
            return Err(VpciError::TwoBridges);
        }
        host_of = Some(host);
        let bdf = Bdf::new(addr.bus, addr.dev, addr.func);
        let Some(f) = host.topology.function(bdf).filter(|f| !f.bridge) else {
            problems.push(Problem::PciAbsent {
                addr,
                at,
                bridge: host.path.clone(),
            });
            continue;
        };
        if f.bars
            .iter()
            .any(|b| b.placed.is_none() && b.kind != crate::pci::enumerate::BarKind::Io)
        {
            return Err(VpciError::Unplaced(addr));
        }
        for bar in &f.bars {
            if let Some((_, cpu)) = bar.placed {
                mmio.push(Region::new(cpu, bar.size.max(0x1000)));
            }
        }
        let view = FunctionView::new(&*host.config.lock(), f)
            .with_bridge_above(host.topology.alone_below(bdf));
        let vbdf = bus
            .add(Slot::Assigned {
                view,
                host: host.config,
            })
            .map_err(VpciError::Bus)?;
        if (1..=4).contains(&f.intx_pin) {
            let intid = intx_intid(hw, &host.path, bdf.rid(), f.intx_pin)
                .map_err(VpciError::InterruptMap)?;
            if let Some(intid) = intid {
                let claim = IntxClaim {
                    intid,
                    guest: GuestRef::named(index, &config.name),
                    addr,
                };
                if let Err(holder) = host.claim_intx(claim) {
                    problems.push(Problem::PciIntxShared {
                        addr,
                        at,
                        intid,
                        holder: holder.guest,
                        holder_addr: holder.addr,
                    });
                    continue;
                }
                intids.push(intid);
                slots.push(VpciSlot {
                    dev: vbdf.dev,
                    pin: f.intx_pin,
                    intid,
                });
            }
        }
        functions.push((host.path.clone(), bdf.rid()));
    }
    if !problems.is_empty() {
        return Err(VpciError::Config(problems));
    }
    let Some(host) = host_of else {
        return Ok(None);
    };
    let bridge = hw
        .pcie
        .iter()
        .find(|p| p.path == host.path)
        .ok_or_else(|| VpciError::BadAddress(host.path.clone()))?;
    let dt = VpciDt {
        // The host bridge's own ECAM address: the guest does not have it.
        ecam: Region::new(bridge.ecam.base, crate::devices::vpci::VPCI_WINDOW),
        ranges: bridge
            .ranges
            .iter()
            .filter(|r| matches!(r.space, PciSpace::Mem32 | PciSpace::Mem64))
            .copied()
            .collect(),
        slots,
        dma_coherent: bridge.dma_coherent,
        viommu_slot: None,
    };
    Ok(Some(Vpci {
        bus,
        dt,
        mmio,
        intids,
        functions,
    }))
}
