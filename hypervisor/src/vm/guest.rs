//! A running guest: its RAM and stage-2 table, virtual GIC, vCPU slots and
//! boot images; creation from a bundle entry, and reloading on reset.

use super::guest_dt::{self, GuestDtSpec};
use super::loader::{self, BootLayout};
use super::psci::{GuestView, VcpuPower};
use super::resources::device_resources;
use crate::arch::aarch64::{cpu, guest as arch_guest};
use crate::config::GuestConfig;
use crate::fdt::HostDt;
use crate::gic::phys;
use crate::mm::accounting::Owner;
use crate::mm::heap;
use crate::mm::heap_tables::HeapTables;
use crate::mm::layout::Region;
use crate::mm::pagetable::{Attrs, PageTable, Stage2};
use crate::vgic::dist::VGic;
use crate::vgic::{DIST_SIZE, REDIST_STRIDE};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use spin::Mutex;

/// Input-address size of guest stage 2 (capped by the CPU's PA size).
const IPA_BITS: u32 = 40;

/// Requests a vCPU's physical CPU acts on when kicked.
pub mod request {
    /// Start the vCPU (entry and context are in the slot).
    pub const START: u32 = 1;
    /// Stop the vCPU (guest off or reset).
    pub const STOP: u32 = 2;
}

/// One vCPU: where it runs and how others talk to it.
pub struct VcpuSlot {
    /// Physical CPU (logical index) it runs on.
    pub pcpu: usize,
    /// [`VcpuPower`] as u8.
    pub power: AtomicU8,
    /// Entry point for the next start.
    pub entry: AtomicU64,
    /// x0 for the next start.
    pub context: AtomicU64,
    /// Virtual SGIs raised by other vCPUs, one bit per SGI.
    pub sgis: AtomicU32,
    /// Pending [`request`] bits.
    pub requests: AtomicU32,
    /// Virtual SPIs raised for this vCPU from another CPU (emulated devices).
    pub spis: Mutex<heapless::Vec<u32, 16>>,
    /// Set when `spis` may be non-empty, so that the exit path takes the
    /// lock only then.
    pub spis_pending: core::sync::atomic::AtomicBool,
}

impl VcpuSlot {
    /// Current power state.
    pub fn power(&self) -> VcpuPower {
        match self.power.load(Ordering::Acquire) {
            0 => VcpuPower::Off,
            1 => VcpuPower::On,
            _ => VcpuPower::OnPending,
        }
    }

    /// Sets the power state.
    pub fn set_power(&self, p: VcpuPower) {
        let v = match p {
            VcpuPower::Off => 0,
            VcpuPower::On => 1,
            VcpuPower::OnPending => 2,
        };
        self.power.store(v, Ordering::Release);
    }
}

/// A guest built from its configuration.
pub struct Guest {
    /// Position in the bundle.
    pub index: usize,
    /// Its configuration.
    pub config: GuestConfig,
    /// Guest-physical RAM.
    pub ram: Region,
    /// Host-physical base of the RAM.
    pub ram_pa: u64,
    /// VMID of its stage 2 (CPU and SMMU).
    pub vmid: u16,
    /// VTTBR_EL2 value (VMID and stage-2 root).
    pub vttbr: u64,
    /// VTCR_EL2 value.
    pub vtcr: u64,
    /// Stage-2 translation (kept for later changes, e.g. by the SMMU).
    pub stage2: Mutex<(PageTable<Stage2>, HeapTables)>,
    /// The virtual GIC.
    pub vgic: Mutex<VGic>,
    /// Guest-physical distributor frame.
    pub gicd: Region,
    /// Guest-physical redistributor frames.
    pub gicr: Region,
    /// The vCPUs.
    pub vcpus: Vec<VcpuSlot>,
    /// INTIDs the guest owns.
    pub owned_intids: Vec<u32>,
    kernel: &'static [u8],
    initrd: Option<&'static [u8]>,
    dtb: Vec<u8>,
    /// Where the images go.
    pub layout: BootLayout,
    /// Reset or power-off in progress (serialises them).
    pub stopping: AtomicU8,
    /// DMA faults the SMMU reported on the guest's streams.
    pub dma_faults: AtomicU64,
}

impl GuestView for Guest {
    fn vcpus(&self) -> usize {
        self.vcpus.len()
    }
    fn power(&self, vcpu: usize) -> VcpuPower {
        self.vcpus[vcpu].power()
    }
    fn is_ram(&self, ipa: u64) -> bool {
        self.ram.contains(ipa)
    }
}

impl Guest {
    /// Builds guest `index` in the host RAM at `ram_pa` (carved for it,
    /// `memory_size` bytes, 2 MiB aligned): stage 2 with its devices,
    /// virtual GIC, device tree and boot images (loaded into its RAM).
    pub fn create(
        index: usize,
        config: GuestConfig,
        kernel: &'static [u8],
        initrd: Option<&'static [u8]>,
        ram_pa: u64,
        host: &HostDt,
    ) -> Result<Guest, String> {
        let gic = host.gic.as_ref().ok_or("the host has no GICv3")?;
        let pgic = phys::get().ok_or("the physical GIC is not initialised")?;
        let ram = Region::new(config.memory_base, config.memory_size);
        let layout = loader::plan(ram, kernel, initrd.map(|i| i.len() as u64))
            .map_err(|e| format!("{e}"))?;

        // Devices: MMIO to identity-map, interrupts to own.
        let mut mmio = Vec::new();
        let mut owned: Vec<u32> = Vec::new();
        for path in &config.devices {
            let r = device_resources(host, path)?;
            mmio.extend(r.mmio);
            owned.extend(r.intids);
        }
        if let Some(t) = &host.timer {
            owned.extend([t.phys, t.virt].into_iter().flatten().map(|i| i.intid()));
        }
        owned.sort();
        owned.dedup();

        // Stage 2: RAM, then devices (GPA = PA).
        let ipa_bits = IPA_BITS.min(cpu::pa_bits());
        let mut tables = HeapTables;
        let mut pt = PageTable::<Stage2>::new(&mut tables, ipa_bits, 1)
            .map_err(|e| format!("stage 2: {e}"))?;
        pt.map(&mut tables, ram.base, ram_pa, ram.size, Attrs::RWX)
            .map_err(|e| format!("stage 2 RAM: {e}"))?;
        for r in &mmio {
            let base = r.base & !0xfff;
            let size = (r.end() - base).next_multiple_of(0x1000);
            pt.map(&mut tables, base, base, size, Attrs::DEVICE)
                .map_err(|e| format!("stage 2 MMIO {:#x}+{:#x}: {e}", r.base, r.size))?;
        }
        let vmid = (index + 1) as u64;
        let vttbr = (vmid << 48) | pt.root();
        let vtcr = arch_guest::vtcr(ipa_bits, pt.start_level());

        let vcpus: Vec<VcpuSlot> = config
            .cpus
            .iter()
            .map(|&p| VcpuSlot {
                pcpu: p as usize,
                power: AtomicU8::new(0),
                entry: AtomicU64::new(0),
                context: AtomicU64::new(0),
                sgis: AtomicU32::new(0),
                requests: AtomicU32::new(0),
                spis: Mutex::new(heapless::Vec::new()),
                spis_pending: core::sync::atomic::AtomicBool::new(false),
            })
            .collect();
        let pcpus: Vec<usize> = vcpus.iter().map(|v| v.pcpu).collect();
        let vgic = VGic::new(pcpus, pgic.nr_spis(), &owned);
        let gicd = Region::new(gic.dist.base, DIST_SIZE);
        let gicr = Region::new(
            gic.redists
                .first()
                .map(|r| r.base)
                .unwrap_or(gic.dist.base + DIST_SIZE),
            REDIST_STRIDE * vcpus.len() as u64,
        );

        let devices: Vec<&str> = config.devices.iter().map(String::as_str).collect();
        let stdout = host
            .stdout
            .as_ref()
            .map(|u| u.path.as_str())
            .filter(|p| devices.contains(p));
        let spec = GuestDtSpec {
            vcpus: vcpus.len(),
            memory: ram,
            bootargs: &config.cmdline,
            initrd: layout.initrd,
            gic_dist: gicd,
            gic_redist: gicr,
            psci_method: "hvc",
            devices: &devices,
            stdout,
            viommu: config.viommu.map(Into::into),
        };
        let dtb = guest_dt::build(&spec, host).map_err(|e| format!("device tree: {e}"))?;
        if dtb.len() as u64 > loader::DTB_SLOT {
            return Err(format!("device tree too large ({} bytes)", dtb.len()));
        }
        let g = Guest {
            index,
            config,
            ram,
            ram_pa,
            vmid: vmid as u16,
            vttbr,
            vtcr,
            stage2: Mutex::new((pt, tables)),
            vgic: Mutex::new(vgic),
            gicd,
            gicr,
            vcpus,
            owned_intids: owned,
            kernel,
            initrd,
            dtb,
            layout,
            stopping: AtomicU8::new(0),
            dma_faults: AtomicU64::new(0),
        };
        g.load_images();
        Ok(g)
    }

    /// Host-physical address of guest-physical `ipa` in RAM.
    pub fn ram_to_pa(&self, ipa: u64) -> Option<u64> {
        self.ram
            .contains(ipa)
            .then(|| ipa - self.ram.base + self.ram_pa)
    }

    fn copy_in(&self, ipa: u64, bytes: &[u8]) {
        if let Some(pa) = self.ram_to_pa(ipa) {
            // SAFETY: the plan keeps each image inside guest RAM, which the
            // hypervisor allocated and identity-maps; nothing else uses it.
            unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), pa as *mut u8, bytes.len()) };
            arch_guest::publish_guest_image(pa as usize, bytes.len());
        }
    }

    /// Copies the kernel, initrd and device tree into guest RAM (at boot and
    /// on every restart).
    pub fn load_images(&self) {
        self.copy_in(self.layout.kernel, self.kernel);
        if let (Some(r), Some(initrd)) = (self.layout.initrd, self.initrd) {
            self.copy_in(r.base, initrd);
        }
        self.copy_in(self.layout.dtb, &self.dtb);
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

    /// Resets the virtual GIC to its power-on state and disables the
    /// guest's physical interrupts.
    pub fn reset_interrupts(&self) {
        let mut vgic = self.vgic.lock();
        if let Some(p) = phys::get() {
            let mut p = p;
            for &intid in &self.owned_intids {
                for v in &self.vcpus {
                    crate::vgic::PhysGic::set_enabled(&mut p, intid, v.pcpu, false);
                }
            }
        }
        let pcpus = vgic.pcpus.clone();
        *vgic = VGic::new(pcpus, vgic.nr_spis, &self.owned_intids);
    }
}
