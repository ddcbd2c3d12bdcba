//! Building a guest from its configuration: stage 2 with its devices'
//! MMIO, virtual GIC, emulated devices, device tree, its RAM cleared and
//! its boot images loaded, and its streams bound on the SMMUs. Everything checked;
//! a guest that cannot be built is refused with a [`BuildError`] and
//! leaves nothing behind.

use super::dma::{DmaControl, DmaError, GuestDma, Unattached};
use super::faults::FaultQueue;
use super::guest::{Guest, GuestCounters, Images};
use super::guest_dt::{self, ConsoleDt, GuestDtError, GuestDtSpec};
use super::loader::{self, LoadError};
use super::ram::GuestRam;
use super::ratelimit::LogBudget;
use super::resources::{ResourceError, device_resources};
use super::vcpu::VcpuSlot;
use super::viommu::{self, vmids::VmidPool};
use super::vpci::{self, VpciError};
use crate::arch::{Arch, Cpu};
use crate::config::GuestConfig;
use crate::config::ViommuTransport;
use crate::config::limits::VIOMMU_MMIO_SIZE;
use crate::devices::gicd::Gicd;
use crate::devices::gicr::Gicr;
use crate::devices::pl011::{EmulatedPl011, WINDOW as PL011_WINDOW};
use crate::devices::viommu_pci::ViommuPciFunction;
use crate::devices::vpci::VirtualBridge;
use crate::devices::{DeviceTable, Overlap};
use crate::fdt::HostDt;
use crate::gic::PhysGic;
use crate::mm::heap_tables::HeapTables;
use crate::mm::layout::Region;
use crate::mm::pagetable::{Attrs, MapError, PageTable, Stage2};
use crate::pci::host::PciHost;
use crate::pci::vbus::Slot;
use crate::vgic::dist::VGic;
use crate::vgic::{DIST_SIZE, REDIST_STRIDE, SPI_BASE};
use crate::viommu::model::ConfigError;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::AtomicBool;
use log::info;
use spin::Mutex;

/// Input-address size of guest stage 2 (capped by the CPU's PA size).
const IPA_BITS: u32 = 40;

/// Why a guest cannot be built.
#[derive(Debug)]
pub enum BuildError {
    /// The host has no GICv3.
    NoGic,
    /// The images do not fit the guest's RAM.
    Layout(LoadError),
    /// A passed-through device's resources cannot be read.
    Device(ResourceError),
    /// The stage-2 table cannot be built.
    Stage2 {
        /// What was being mapped.
        what: &'static str,
        /// Its guest-physical base.
        base: u64,
        /// Why.
        err: MapError,
    },
    /// Two emulated devices' windows overlap.
    Devices(Overlap),
    /// The guest's device tree cannot be generated.
    DeviceTree(GuestDtError),
    /// The device tree does not fit its slot.
    DeviceTreeTooLarge(usize),
    /// The virtio-iommu cannot be created.
    Viommu(ConfigError),
    /// The guest's streams cannot be bound on the SMMU.
    Dma(DmaError),
    /// Its PCI functions cannot be given to it.
    Pci(VpciError),
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BuildError::NoGic => write!(f, "the host has no GICv3"),
            BuildError::Layout(e) => write!(f, "{e}"),
            BuildError::Device(e) => write!(f, "{e}"),
            BuildError::Stage2 { what, base, err } => {
                write!(f, "stage 2 {what} at {base:#x}: {err}")
            }
            BuildError::Devices(e) => write!(f, "{e}"),
            BuildError::DeviceTree(e) => write!(f, "device tree: {e}"),
            BuildError::DeviceTreeTooLarge(n) => write!(f, "device tree too large ({n} bytes)"),
            BuildError::Viommu(e) => write!(f, "virtio-iommu: {e}"),
            BuildError::Dma(e) => write!(f, "{e}"),
            BuildError::Pci(e) => write!(f, "{e}"),
        }
    }
}

impl BuildError {
    /// The rules of the guest's configuration it breaks, when they are
    /// ones only the boot can check (then each is reported like a
    /// validation error, at its key in the TOML file); empty otherwise.
    pub fn problems(&self) -> &[crate::config::Problem] {
        match self {
            BuildError::Pci(VpciError::Config(p)) => p,
            _ => &[],
        }
    }
}

impl core::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            BuildError::NoGic | BuildError::DeviceTreeTooLarge(_) => None,
            BuildError::Layout(e) => Some(e),
            BuildError::Device(e) => Some(e),
            BuildError::Stage2 { err, .. } => Some(err),
            BuildError::Devices(e) => Some(e),
            BuildError::DeviceTree(e) => Some(e),
            BuildError::Viommu(e) => Some(e),
            BuildError::Dma(e) => Some(e),
            BuildError::Pci(e) => Some(e),
        }
    }
}

/// What building a guest needs from the machine.
pub struct BuildCtx<'a> {
    /// The host device tree.
    pub host: &'a HostDt,
    /// The physical GIC.
    pub gic: &'a dyn PhysGic,
    /// The SMMUs.
    pub smmus: &'static dyn DmaControl,
    /// VMIDs of virtio-iommu domains (shared by all guests).
    pub vmids: &'a Arc<VmidPool>,
    /// The enumerated PCIe host bridges (single functions for guests).
    pub pci: &'static [PciHost],
}

/// One guest of the payload, with its RAM carved out.
pub struct GuestSpec {
    /// Position in the bundle.
    pub index: usize,
    /// Its configuration.
    pub config: GuestConfig,
    /// Kernel image.
    pub kernel: &'static [u8],
    /// Initrd, if any.
    pub initrd: Option<&'static [u8]>,
    /// Its RAM: `config.memory_size` bytes the hypervisor set aside.
    pub ram: GuestRam,
}

/// Where guest `config`'s emulated console goes (guest-physical base, SPI
/// number), or `None` when it has none: it is disabled, or the guest is
/// given the board's console UART (itself or a node containing it), or the
/// board's console has no address or SPI to default to.
pub fn console_placement(config: &GuestConfig, host: &HostDt) -> Option<(u64, u32)> {
    if !config.console.enabled {
        return None;
    }
    let uart = host.stdout.as_ref();
    if let Some(u) = uart
        && config.devices.iter().any(|d| {
            u.path == *d
                || u.path
                    .starts_with(&alloc::format!("{}/", d.trim_end_matches('/')))
        })
    {
        return None;
    }
    let base = config.console.base.or(uart.map(|u| u.base & !0xfff))?;
    let spi = config.console.spi.or_else(|| {
        let intid = uart?.interrupt.as_ref()?.intid();
        intid.checked_sub(SPI_BASE)
    })?;
    Some((base, spi))
}

/// Builds the guest of `spec` (see the module documentation).
pub fn build(ctx: &BuildCtx<'_>, spec: GuestSpec) -> Result<Guest, BuildError> {
    let GuestSpec {
        index,
        config,
        kernel,
        initrd,
        ram,
    } = spec;
    let gic = ctx.host.gic.as_ref().ok_or(BuildError::NoGic)?;
    let region = ram.region();
    let layout =
        loader::plan(region, kernel, initrd.map(|i| i.len() as u64)).map_err(BuildError::Layout)?;

    // Devices: MMIO to identity-map, interrupts to own.
    let mut mmio = Vec::new();
    let mut owned: Vec<u32> = Vec::new();
    for path in &config.devices {
        let r = device_resources(ctx.host, path).map_err(BuildError::Device)?;
        mmio.extend(r.mmio);
        owned.extend(r.intids);
    }
    if let Some(t) = &ctx.host.timer {
        owned.extend([t.phys, t.virt].into_iter().flatten().map(|i| i.intid()));
    }
    // Single PCI functions: their BARs and INTx lines (docs/pci.md).
    let vpci = vpci::plan(ctx.host, ctx.pci, index, &config).map_err(BuildError::Pci)?;
    if let Some(v) = &vpci {
        mmio.extend(v.mmio.iter().copied());
        owned.extend(v.intids.iter().copied());
    }
    owned.sort();
    owned.dedup();

    // Stage 2: RAM, then devices (GPA = PA).
    let ipa_bits = IPA_BITS.min(crate::arch::pa_range_bits(Cpu::pa_bits_field()));
    let mut tables = HeapTables;
    let stage2_err = |what, base| move |err| BuildError::Stage2 { what, base, err };
    let mut pt =
        PageTable::<Stage2>::new(&mut tables, ipa_bits, 1).map_err(stage2_err("root", 0))?;
    let ram_pa = ram.to_pa(region.base).unwrap_or(0);
    pt.map(&mut tables, region.base, ram_pa, region.size, Attrs::RWX)
        .map_err(stage2_err("RAM", region.base))?;
    for r in &mmio {
        let base = r.base & !0xfff;
        let size = (r.end() - base).next_multiple_of(0x1000);
        pt.map(&mut tables, base, base, size, Attrs::DEVICE)
            .map_err(stage2_err("MMIO", r.base))?;
    }
    let vmid = (index + 1) as u16;
    let vttbr = (u64::from(vmid) << 48) | pt.root();
    let vtcr = Cpu::vtcr(ipa_bits, pt.start_level());
    let stage2 = Arc::new(Mutex::new((pt, tables)));

    let vcpus: Vec<VcpuSlot> = config
        .cpus
        .iter()
        .map(|&p| VcpuSlot::new(p as usize))
        .collect();
    let pcpus: Vec<usize> = vcpus.iter().map(|v| v.pcpu).collect();
    let vgic = Arc::new(Mutex::new(VGic::new(pcpus, ctx.gic.nr_spis(), &owned)));
    let gicd = Region::new(gic.dist.base, DIST_SIZE);
    let gicr = Region::new(
        gic.redists
            .first()
            .map(|r| r.base)
            .unwrap_or(gic.dist.base + DIST_SIZE),
        REDIST_STRIDE * vcpus.len() as u64,
    );
    let unattached = match config.viommu {
        Some(_) => Some(
            Unattached::new(&stage2.lock().0, viommu::vmids::unattached_vmid(index))
                .map_err(stage2_err("unattached endpoints", 0))?,
        ),
        None => None,
    };
    let dma = Arc::new(GuestDma {
        index,
        name: config.name.clone(),
        devices: config.devices.clone(),
        vmid,
        stage2: stage2.clone(),
        unattached,
        functions: vpci
            .as_ref()
            .map(|v| v.functions.clone())
            .unwrap_or_default(),
        smmus: ctx.smmus,
    });

    // Emulated devices.
    let mut devices = DeviceTable::new();
    devices
        .insert(gicd, Arc::new(Gicd::new(vgic.clone())))
        .map_err(BuildError::Devices)?;
    devices
        .insert(gicr, Arc::new(Gicr::new(vgic.clone())))
        .map_err(BuildError::Devices)?;
    let mut viommu_pci = None;
    let (vpci_dt, vpci_bridge) = match vpci {
        Some(mut v) => {
            // Its virtio-iommu on virtio-pci: the next slot of its bus.
            if let Some(cfg) = config
                .viommu
                .filter(|c| c.transport == ViommuTransport::Pci)
            {
                let bar0 = vpci::viommu_bar0(&v.dt).ok_or(BuildError::Pci(VpciError::NoWindow))?;
                let dev = viommu::create_pci(
                    ram,
                    dma.clone(),
                    ctx.vmids,
                    cfg.spi + SPI_BASE,
                    &config.limits,
                    bar0,
                )
                .map(Arc::new)
                .map_err(BuildError::Viommu)?;
                let slot = v
                    .bus
                    .add(Slot::Emulated(Box::new(ViommuPciFunction(dev.clone()))))
                    .map_err(|e| BuildError::Pci(VpciError::Bus(e)))?;
                v.dt.viommu_slot = Some(slot.dev);
                v.dt.slots.push(vpci::VpciSlot {
                    dev: slot.dev,
                    pin: 1,
                    intid: cfg.spi + SPI_BASE,
                });
                devices
                    .insert(dev.window(), dev.clone())
                    .map_err(BuildError::Devices)?;
                info!(
                    "guest '{}': virtio-iommu (virtio-pci) at 00:{:02x}.0 of its virtual bus, BAR 0 at {bar0:#x}, SPI {}",
                    config.name, slot.dev, cfg.spi
                );
                viommu_pci = Some(dev);
            }
            let bridge = Arc::new(VirtualBridge::new(v.bus));
            devices
                .insert(v.dt.ecam, bridge.clone())
                .map_err(BuildError::Devices)?;
            (Some(v.dt), Some(bridge))
        }
        None => (None, None),
    };
    let viommu = match config
        .viommu
        .filter(|c| c.transport == ViommuTransport::Mmio)
        .as_ref()
    {
        Some(v) => {
            let dev = viommu::create(
                ram,
                dma.clone(),
                ctx.vmids,
                v.spi + SPI_BASE,
                &config.limits,
            )
            .map(|d| Arc::new(d.placed(Region::new(v.base, VIOMMU_MMIO_SIZE))))
            .map_err(BuildError::Viommu)?;
            devices
                .insert(dev.window(), dev.clone())
                .map_err(BuildError::Devices)?;
            info!(
                "guest '{}': virtio-iommu (virtio-mmio) at {:#x}, SPI {}, endpoints = PCI requester IDs",
                config.name, v.base, v.spi
            );
            Some(dev)
        }
        None => None,
    };

    // Its console: the board's UART passed through, or an emulated PL011.
    let console = match console_placement(&config, ctx.host) {
        Some((base, spi)) => {
            let dev = Arc::new(EmulatedPl011::new(
                index as u16,
                &config.name,
                spi + SPI_BASE,
            ));
            devices
                .insert(Region::new(base, PL011_WINDOW), dev.clone())
                .map_err(BuildError::Devices)?;
            info!(
                "guest '{}': emulated PL011 console at {base:#x}, SPI {spi}",
                config.name
            );
            Some((dev, ConsoleDt { base, spi }))
        }
        None => None,
    };

    let device_paths: Vec<&str> = config.devices.iter().map(String::as_str).collect();
    let stdout = ctx
        .host
        .stdout
        .as_ref()
        .map(|u| u.path.as_str())
        .filter(|p| device_paths.contains(p));
    let spec = GuestDtSpec {
        vcpus: vcpus.len(),
        memory: region,
        bootargs: &config.cmdline,
        initrd: layout.initrd,
        gic_dist: gicd,
        gic_redist: gicr,
        psci_method: "hvc",
        devices: &device_paths,
        stdout,
        viommu: config
            .viommu
            .filter(|c| c.transport == ViommuTransport::Mmio)
            .map(Into::into),
        console: console.as_ref().map(|(_, dt)| *dt),
        vpci: vpci_dt.as_ref(),
    };
    let dtb = guest_dt::build(&spec, ctx.host).map_err(BuildError::DeviceTree)?;
    if dtb.len() as u64 > loader::DTB_SLOT {
        return Err(BuildError::DeviceTreeTooLarge(dtb.len()));
    }
    let g = Guest {
        index,
        ram,
        vmid,
        vttbr,
        vtcr,
        stage2,
        vgic,
        devices,
        viommu,
        viommu_pci,
        console: console.map(|(dev, _)| dev),
        vpci: vpci_bridge,
        dma,
        vcpus,
        owned_intids: owned,
        images: Images {
            kernel,
            initrd,
            dtb,
            layout,
        },
        stopping: AtomicBool::new(false),
        counters: GuestCounters::default(),
        log_budget: LogBudget::default(),
        faults: FaultQueue::default(),
        config,
    };
    // Its RAM holds nothing from before (firmware, boot loader), then its
    // images.
    g.ram.clear();
    g.load_images();
    // A guest with a virtio-iommu keeps its streams aborting until the
    // driver attaches them to a domain.
    if let Err(e) = g.dma.attach(!g.has_viommu()) {
        // Errors are logged by the manager (streams it could not confirm).
        let _ = g.dma.detach();
        return Err(BuildError::Dma(e));
    }
    Ok(g)
}
