//! Host tests of the machine: guests built from a QEMU `virt` device tree,
//! run by the fake CPU (`crate::arch::fake`), with a recording physical GIC
//! and SMMU side. One file per area; the harness is here.

mod build;
mod exits;
mod fail_closed;
mod hw_irq;
mod io_budget;
mod io_translate;
mod irq;
mod level_irq;
mod power;
mod ram;
mod smmu;
mod sync_paths;
mod viommu;
mod vpci;

use super::build::{BuildCtx, GuestSpec, build};
use super::dma::{DmaControl, DmaError, DmaOwner, TableRef};
use super::guest::Guest;
use super::machine::Machine;
use super::ram::GuestRam;
use super::viommu::backend::{SmmuBackend, SmmuDomain};
use super::viommu::vmids::VmidPool;
use crate::arch::fake;
use crate::config::{GuestConfig, ResetAction, ViommuConfig, ViommuTransport};
use crate::fdt::HostDt;
use crate::mm::layout::Region;
use crate::mm::pagetable::{PageTable, Stage2};
use crate::smmu::cmd::Cmd;
use crate::smmu::manager::{SyncFailed, SyncQueue};
use crate::vgic::hw::{NoVcpu, RegCtx};
use crate::viommu::backend::{BackendError, IommuBackend, MapAttrs};
use crate::viommu::model::Viommu;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use spin::Mutex;

pub use crate::gic::recorder::RecordingGic as FakeGic;

/// What the VM layer asked of the SMMUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DmaCall {
    /// attach(owner, VMID of the table bound to, or None: abort)
    Attach(usize, Option<u16>),
    /// detach(owner, vmid)
    Detach(usize, u16),
    /// bind_stream(smmu, sid, vmid)
    Bind(usize, u32, u16),
    /// abort_stream(smmu, sid)
    Abort(usize, u32),
    /// issue(smmu, commands)
    Issue(usize, Vec<Cmd>),
    /// poll_events
    Poll,
}

/// A test's look at other state when a stream changes (its stream ID).
pub type StreamHook = Box<dyn Fn(u32) + Send>;

/// An SMMU side that records calls; endpoints are the PCIe requester IDs of
/// `/pcie@10000000` and map 1:1 to stream IDs on instance 0.
#[derive(Default)]
pub struct FakeDma {
    /// Calls in order.
    pub calls: Mutex<Vec<DmaCall>>,
    /// Make attach fail.
    pub fail_attach: core::sync::atomic::AtomicBool,
    /// Called with the stream ID of every `bind_stream` and `abort_stream`
    /// (after it is recorded, no lock held), to look at other state at
    /// that moment.
    pub on_stream_change: Mutex<Option<StreamHook>>,
}

impl FakeDma {
    /// Takes the recorded calls.
    pub fn take(&self) -> Vec<DmaCall> {
        core::mem::take(&mut self.calls.lock())
    }

    /// Runs the `on_stream_change` hook for `sid`.
    fn stream_changed(&self, sid: u32) {
        if let Some(hook) = &*self.on_stream_change.lock() {
            hook(sid);
        }
    }
}

impl DmaControl for FakeDma {
    fn attach(&self, owner: &DmaOwner<'_>, table: Option<TableRef<'_>>) -> Result<(), DmaError> {
        self.calls
            .lock()
            .push(DmaCall::Attach(owner.index, table.map(|t| t.vmid)));
        if self.fail_attach.load(core::sync::atomic::Ordering::Relaxed) {
            return Err(DmaError::NoSuchSmmu(9));
        }
        Ok(())
    }
    fn detach(&self, owner: &DmaOwner<'_>) -> Result<(), DmaError> {
        self.calls
            .lock()
            .push(DmaCall::Detach(owner.index, owner.vmid));
        Ok(())
    }
    fn endpoint_stream(&self, devices: &[String], ep: u32) -> Option<(usize, u32)> {
        (devices.iter().any(|d| d == "/pcie@10000000") && ep <= 0xffff).then_some((0, ep))
    }
    fn bind_stream(
        &self,
        smmu: usize,
        sid: u32,
        _table: &PageTable<Stage2>,
        vmid: u16,
    ) -> Result<(), DmaError> {
        self.calls.lock().push(DmaCall::Bind(smmu, sid, vmid));
        self.stream_changed(sid);
        Ok(())
    }
    fn abort_stream(&self, smmu: usize, sid: u32) -> Result<(), DmaError> {
        self.calls.lock().push(DmaCall::Abort(smmu, sid));
        self.stream_changed(sid);
        Ok(())
    }
    fn issue(&self, smmu: usize, cmds: &[Cmd]) -> Result<(), DmaError> {
        self.calls.lock().push(DmaCall::Issue(smmu, cmds.to_vec()));
        Ok(())
    }
    fn queue(&'static self, smmu: usize) -> Option<&'static dyn SyncQueue> {
        (smmu == 0).then_some(self as &dyn SyncQueue)
    }
    fn has_ril(&self, _smmu: usize) -> bool {
        false
    }
    fn count(&self) -> usize {
        1
    }
    fn poll_events(&self) {
        self.calls.lock().push(DmaCall::Poll);
    }
}

/// Instance 0's queue: recorded as an issue on instance 0.
impl SyncQueue for FakeDma {
    fn sync_cmds(&self, cmds: &[Cmd]) -> Result<(), SyncFailed> {
        DmaControl::sync_cmds(self, 0, cmds)
    }
}

/// QEMU `virt` with GICv3, SMMUv3, PCIe and 4 CPUs.
pub fn host() -> &'static HostDt {
    #[repr(C, align(8))]
    struct Aligned<T: ?Sized>(T);
    static BLOB: &Aligned<[u8]> =
        &Aligned(*include_bytes!("../../fdt/testdata/qemu-virt-smmu.dtb"));
    Box::leak(Box::new(HostDt::parse(&BLOB.0).expect("test DT parses")))
}

/// A minimal arm64 Image: header only, loaded at offset 0.
pub fn kernel() -> &'static [u8] {
    let mut k = vec![0u8; 4096];
    k[16..24].copy_from_slice(&4096u64.to_le_bytes()); // image_size
    k[0x38..0x3c].copy_from_slice(b"ARM\x64");
    k[64..68].copy_from_slice(b"KERN");
    Box::leak(k.into_boxed_slice())
}

/// Guest RAM size in the tests.
pub const RAM_SIZE: u64 = 4 << 20;
/// Guest RAM base (guest-physical).
pub const RAM_BASE: u64 = 0x4000_0000;
/// The virtio-iommu window and SPI of guests that have one.
pub const VIOMMU_BASE: u64 = 0x0b00_0000;
/// SPI number of the virtio-iommu (INTID 128).
pub const VIOMMU_SPI: u32 = 96;

/// Host memory standing in for guest RAM (leaked: the guest keeps it).
pub fn ram() -> GuestRam {
    let layout = core::alloc::Layout::from_size_align(RAM_SIZE as usize, 2 << 20).unwrap();
    // SAFETY: a non-zero layout.
    let mem = unsafe { alloc::alloc::alloc_zeroed(layout) };
    assert!(!mem.is_null());
    // SAFETY: the block is never freed, so it lives for the test, and only
    // this guest uses it.
    unsafe { GuestRam::new(Region::new(RAM_BASE, RAM_SIZE), mem as u64) }
}

/// The configuration of a test guest.
pub fn config(name: &str, cpus: &[u32], viommu: bool) -> GuestConfig {
    let mut c = GuestConfig::new(name, cpus, RAM_SIZE);
    c.memory_base = RAM_BASE;
    c.on_reset = ResetAction::Restart;
    c.devices = vec![String::from("/pl011@9000000")];
    if viommu {
        c.devices.push(String::from("/pcie@10000000"));
        c.viommu = Some(ViommuConfig {
            transport: ViommuTransport::Mmio,
            base: VIOMMU_BASE,
            spi: VIOMMU_SPI,
        });
    }
    c
}

/// A test world: fakes leaked so that the machine can hold them.
pub struct World {
    /// The recording GIC.
    pub gic: &'static FakeGic,
    /// The recording SMMU side.
    pub dma: &'static FakeDma,
    /// Shared VMIDs.
    pub vmids: Arc<VmidPool>,
    /// The recording GIC with no vCPU queue, for vGIC accesses outside an
    /// exit.
    pub port: &'static NoVcpu<'static>,
}

impl World {
    /// Fresh fakes (and a fresh fake CPU 0).
    pub fn new() -> World {
        fake::reset();
        let gic: &'static FakeGic = Box::leak(Box::new(FakeGic::default()));
        World {
            gic,
            dma: Box::leak(Box::new(FakeDma::default())),
            vmids: Arc::new(VmidPool::new(0xff)),
            port: Box::leak(Box::new(NoVcpu(gic))),
        }
    }

    /// A vGIC register access by vCPU 0 outside any exit (no queue).
    pub fn regs(&self) -> RegCtx<'static> {
        RegCtx {
            phys: self.gic,
            vcpu: 0,
            queue: self.port,
        }
    }

    /// What building a guest needs, with the recording SMMU side.
    pub fn ctx(&self) -> BuildCtx<'_> {
        BuildCtx {
            host: host(),
            gic: self.gic,
            smmus: self.dma,
            vmids: &self.vmids,
            pci: &[],
        }
    }

    /// Builds guest `index` from `config`, its streams on the recording
    /// SMMU side.
    pub fn guest(&self, index: usize, config: GuestConfig) -> Guest {
        self.guest_on(self.dma, index, config)
    }

    /// Builds guest `index` from `config`, its streams on `smmus`.
    pub fn guest_on(
        &self,
        smmus: &'static dyn DmaControl,
        index: usize,
        config: GuestConfig,
    ) -> Guest {
        let ctx = BuildCtx {
            host: host(),
            gic: self.gic,
            smmus,
            vmids: &self.vmids,
            pci: &[],
        };
        build(
            &ctx,
            GuestSpec {
                index,
                config,
                kernel: kernel(),
                initrd: None,
                ram: ram(),
            },
        )
        .expect("test guest builds")
    }

    /// The machine running `guests` (leaked, as on the target).
    pub fn machine(&self, guests: Vec<Guest>) -> &'static Machine {
        Box::leak(Box::new(Machine::new(guests, self.gic, self.dma, |_| {
            false
        })))
    }
}

/// Runs the code that follows as physical CPU `cpu`.
pub fn on_cpu(cpu: usize) {
    fake::with(|s| s.cpu = cpu);
}

/// The SMMU backend driven by domain IDs, as the tests that call it
/// directly were written: a thin adaptor that holds each domain's
/// [`SmmuDomain`] (the model holds them in the hypervisor) and looks it up
/// by ID. Everything else goes to the backend itself (`Deref`).
pub(super) struct ById {
    /// The backend.
    pub b: SmmuBackend,
    /// The domains' state the model would hold, by ID.
    pub doms: BTreeMap<u32, SmmuDomain>,
}

impl ById {
    /// `b` with no domain.
    pub fn new(b: SmmuBackend) -> Self {
        Self {
            b,
            doms: BTreeMap::new(),
        }
    }

    /// [`IommuBackend::domain_create`], the state kept under `id`.
    pub fn domain_create(&mut self, id: u32, bypass: bool) -> Result<(), BackendError> {
        let d = self.b.domain_create(id, bypass)?;
        assert!(self.doms.insert(id, d).is_none(), "domain {id} twice");
        Ok(())
    }

    /// [`IommuBackend::domain_destroy`] of `id`'s domain.
    pub fn domain_destroy(&mut self, id: u32) {
        let d = self.doms.remove(&id).expect("a domain to destroy");
        self.b.domain_destroy(d);
    }

    /// [`IommuBackend::attach`] to `id`'s domain.
    pub fn attach(&mut self, ep: u32, id: u32) -> Result<(), BackendError> {
        let d = self.doms.get(&id).expect("a domain to attach to");
        self.b.attach(ep, d)
    }

    /// [`IommuBackend::map`] into `id`'s domain.
    pub fn map(
        &mut self,
        id: u32,
        iova: u64,
        pa: u64,
        len: u64,
        attrs: MapAttrs,
    ) -> Result<(), BackendError> {
        let d = self.doms.get_mut(&id).expect("a domain to map into");
        self.b.map(d, iova, pa, len, attrs)
    }

    /// [`IommuBackend::unmap`] in `id`'s domain.
    pub fn unmap(&mut self, id: u32, iova: u64, len: u64) -> Result<(), BackendError> {
        let d = self.doms.get_mut(&id).expect("a domain to unmap in");
        self.b.unmap(d, iova, len)
    }
}

/// The IO page tables of the translating domains by ID, wherever their
/// state is held (a [`ById`] adaptor, or a device's model).
pub(super) trait DomainTables {
    /// The tables, by ascending domain ID.
    fn domain_tables(&self) -> Vec<(u32, &PageTable<Stage2>)>;
}

impl DomainTables for ById {
    fn domain_tables(&self) -> Vec<(u32, &PageTable<Stage2>)> {
        self.doms
            .iter()
            .filter_map(|(&id, d)| d.table().map(|t| (id, t)))
            .collect()
    }
}

impl DomainTables for Viommu<SmmuBackend> {
    fn domain_tables(&self) -> Vec<(u32, &PageTable<Stage2>)> {
        self.domain_ids()
            .filter_map(|id| Some((id, self.backend_domain(id)?.table()?)))
            .collect()
    }
}

impl core::ops::Deref for ById {
    type Target = SmmuBackend;
    fn deref(&self) -> &SmmuBackend {
        &self.b
    }
}

impl core::ops::DerefMut for ById {
    fn deref_mut(&mut self) -> &mut SmmuBackend {
        &mut self.b
    }
}
