//! A running guest: its RAM and stage 2, its emulated devices (virtual GIC,
//! virtio-iommu), its vCPU slots, its share of the SMMUs and its boot
//! images, reloaded on reset. Built by [`super::build`].

use super::dma::{GuestDma, Stage2Table};
use super::faults::FaultQueue;
use super::loader::BootLayout;
use super::psci::{GuestView, VcpuPower};
use super::ram::GuestRam;
use super::ratelimit::LogBudget;
use super::vcpu::VcpuSlot;
use super::viommu::GuestViommu;
use crate::config::GuestConfig;
use crate::devices::{AccessCtx, DeviceTable, MmioDevice};
use crate::gic::PhysGic;
use crate::mm::accounting::Owner;
use crate::mm::heap;
use crate::vgic::dist::VGic;
use crate::vgic::hw::NoVcpu;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use spin::Mutex;

/// What the guest's boot images are and where they go.
pub struct Images {
    /// The kernel image.
    pub kernel: &'static [u8],
    /// The initrd, if any.
    pub initrd: Option<&'static [u8]>,
    /// The generated device tree.
    pub dtb: Vec<u8>,
    /// Where each goes in guest RAM.
    pub layout: BootLayout,
}

/// Per-guest event counters.
#[derive(Debug, Default)]
pub struct GuestCounters {
    /// DMA faults the SMMU reported on the guest's streams.
    pub dma_faults: AtomicU64,
}

/// A guest built from its configuration.
pub struct Guest {
    /// Position in the bundle (its owner identity).
    pub index: usize,
    /// Its configuration.
    pub config: GuestConfig,
    /// Its RAM (guest-physical region and where it lives).
    pub ram: GuestRam,
    /// VMID of its stage 2 (CPU and SMMU).
    pub vmid: u16,
    /// VTTBR_EL2 value (VMID and stage-2 root).
    pub vttbr: u64,
    /// VTCR_EL2 value.
    pub vtcr: u64,
    /// Stage-2 translation (shared with its SMMU view).
    pub stage2: Arc<Mutex<Stage2Table>>,
    /// The virtual GIC state (shared with its GICD and GICR devices).
    pub vgic: Arc<Mutex<VGic>>,
    /// Its emulated devices by guest-physical window.
    pub devices: DeviceTable,
    /// Its virtio-iommu, also in `devices` (DMA faults are reported to it).
    pub viommu: Option<Arc<GuestViommu>>,
    /// Its emulated console, also in `devices` (typed input is queued to
    /// it), when it is not given the board's console UART.
    pub console: Option<Arc<crate::devices::pl011::EmulatedPl011>>,
    /// Its virtio-iommu on virtio-pci, also in `devices` (BAR 0) and on
    /// its virtual bus.
    pub viommu_pci: Option<Arc<crate::vm::viommu::GuestViommuPci>>,
    /// Its virtual PCIe host bridge, also in `devices`, when it is given
    /// single PCI functions (stopped on power-off: `quiesce`).
    pub vpci: Option<Arc<crate::devices::vpci::VirtualBridge>>,
    /// Its share of the SMMUs.
    pub dma: Arc<GuestDma>,
    /// The vCPUs.
    pub vcpus: Vec<VcpuSlot>,
    /// INTIDs the guest owns on the physical GIC.
    pub owned_intids: Vec<u32>,
    /// Boot images.
    pub images: Images,
    /// Reset or power-off in progress (serialises them).
    pub stopping: AtomicBool,
    /// Event counters.
    pub counters: GuestCounters,
    /// Its budget of console lines (see [`super::ratelimit`]).
    pub log_budget: LogBudget,
    /// DMA faults waiting for its virtio-iommu (see [`super::faults`]).
    pub faults: FaultQueue,
}

impl GuestView for Guest {
    fn vcpus(&self) -> usize {
        self.vcpus.len()
    }
    fn power(&self, vcpu: usize) -> VcpuPower {
        self.vcpus[vcpu].power()
    }
    fn is_ram(&self, ipa: u64) -> bool {
        self.ram.region().contains(ipa)
    }
}

impl Guest {
    /// The guest's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Copies the kernel, initrd and device tree into guest RAM (at boot and
    /// on every restart).
    pub fn load_images(&self) {
        let i = &self.images;
        // The loader's plan keeps each image inside guest RAM.
        let _ = self.ram.load(i.layout.kernel, i.kernel);
        if let (Some(r), Some(initrd)) = (i.layout.initrd, i.initrd) {
            let _ = self.ram.load(r.base, initrd);
        }
        let _ = self.ram.load(i.layout.dtb, &i.dtb);
    }

    /// Asks the boot vCPU to start at the kernel with the device tree.
    pub fn request_boot(&self) {
        let l = &self.images.layout;
        self.vcpus[0].request_start(l.kernel, l.dtb);
    }

    /// Whom the hypervisor's allocations for this guest are charged to.
    pub fn owner(&self) -> Owner {
        Owner::Guest(self.index)
    }

    /// Logs the hypervisor heap memory charged to this guest, the peak
    /// since boot and what is allocated now, as one line:
    /// `guest '<name>': hypervisor RAM: peak <P> bytes, live <L> bytes`
    /// (the benchmark parses it).
    pub fn log_hypervisor_ram(&self) {
        let u = heap::usage(self.owner());
        log::info!(
            "guest '{}': hypervisor RAM: peak {} bytes, live {} bytes",
            self.config.name,
            u.peak,
            u.live
        );
    }

    /// Whether the guest has a virtio-iommu (either transport).
    pub fn has_viommu(&self) -> bool {
        self.viommu.is_some() || self.viommu_pci.is_some()
    }

    /// Resets every emulated device to its power-on state. The virtual PCI
    /// bridge goes first: its functions stop decoding and mastering (and
    /// get their reset) before the virtio-iommu's domains go, so no DMA of
    /// theirs is in flight then (it would be blocked and logged as faults).
    pub fn reset_devices(&self, gic: &dyn PhysGic) {
        let ctx = AccessCtx {
            vcpu: 0,
            mem: &self.ram,
            gic: &NoVcpu(gic),
        };
        let bridge = self.vpci.as_ref().map(Arc::as_ptr);
        if let Some(b) = &self.vpci {
            b.reset(&ctx);
        }
        for (_, d) in self.devices.iter() {
            let is_bridge =
                bridge.is_some_and(|b| core::ptr::addr_eq(b, d as *const dyn MmioDevice));
            if !is_bridge {
                d.reset(&ctx);
            }
        }
    }

    /// Resets the virtual GIC to its power-on state and disables the
    /// guest's physical interrupts.
    pub fn reset_interrupts(&self, gic: &dyn PhysGic) {
        let mut vgic = self.vgic.lock();
        for &intid in &self.owned_intids {
            for v in &self.vcpus {
                gic.set_enabled(intid, v.pcpu, false);
            }
        }
        let pcpus = vgic.pcpus.clone();
        *vgic = VGic::new(pcpus, vgic.nr_spis, &self.owned_intids);
    }

    /// Logs the counters of every emulated device that has some.
    pub fn log_device_reports(&self) {
        for (_, d) in self.devices.iter() {
            if let Some(r) = d.report() {
                log::info!("guest '{}': {r}", self.config.name);
            }
        }
    }

    /// Counts `n` DMA faults on the guest's streams.
    pub fn count_dma_faults(&self, n: u64) {
        self.counters.dma_faults.fetch_add(n, Ordering::Relaxed);
    }
}
