//! A guest's virtio-iommu on the virtio-pci transport, a function of its
//! virtual PCI bus (the last slot): its configuration space is reached
//! through the virtual bridge ([`ViommuPciFunction`], a `PciFunction`),
//! its BAR 0 is a window of its own in the guest's device table, placed by
//! the hypervisor (the guest's bridge is probe-only). MAP/UNMAP requests
//! are handled within the trap of the notify write, as on virtio-mmio; its
//! INTx line is an emulated SPI raised when the line rises.

use super::{AccessCtx, Effect, MmioDevice};
use crate::mm::layout::Region;
use crate::pci::function::{BarWindow, IntxChange, PciFunction};
use crate::perf;
use crate::viommu::backend::IommuBackend;
use crate::viommu::device::ViommuDevice;
use crate::viommu::model::Viommu;
use crate::virtio::memory::{GuestMemory, MemError};
use crate::virtio::pci::PciTransport;
use crate::virtio::pci::layout::{BAR0_SIZE, NOTIFY_OFFSET, REGION_SIZE};
use alloc::string::String;
use alloc::sync::Arc;
use spin::Mutex;

/// No guest memory: for the configuration writes the hypervisor itself
/// makes (BAR placement), which reach no queue.
struct NoMemory;

impl GuestMemory for NoMemory {
    fn check(&self, gpa: u64, len: u64) -> Result<(), MemError> {
        Err(MemError::OutOfRange { gpa, len })
    }
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        Err(MemError::OutOfRange {
            gpa,
            len: buf.len() as u64,
        })
    }
    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        Err(MemError::OutOfRange {
            gpa,
            len: data.len() as u64,
        })
    }
}

/// The virtio-iommu function (see the module documentation), over the
/// guest's RAM `M`.
///
/// Like [`super::viommu_mmio::ViommuMmio`] it holds the guest's memory
/// itself, so that the queue work of a notify is compiled for that one
/// type (no dynamic call per ring or request access); configuration
/// writes that reach the queues (through the PCI configuration access
/// capability) use it too, whatever memory the bus passes.
pub struct ViommuPci<B: IommuBackend, M: GuestMemory> {
    /// GIC INTID of its INTx line.
    intid: u32,
    /// Guest-physical address of BAR 0.
    bar0: u64,
    /// The guest's RAM (the rings and requests live there).
    mem: M,
    transport: Mutex<PciTransport<ViommuDevice<B>>>,
}

impl<B: IommuBackend, M: GuestMemory> ViommuPci<B, M> {
    /// The function around `model` over the guest's RAM `mem`, BAR 0
    /// placed at `bar0` (16 KiB aligned), INTx raising virtual SPI `intid`.
    pub fn new(model: Viommu<B>, mem: M, intid: u32, bar0: u64) -> Self {
        let mut t = PciTransport::new(ViommuDevice::new(model));
        place(&mut t, bar0);
        ViommuPci {
            intid,
            bar0,
            mem,
            transport: Mutex::new(t),
        }
    }

    /// Where BAR 0 is.
    pub fn bar0(&self) -> BarWindow {
        BarWindow {
            addr: self.bar0,
            size: BAR0_SIZE,
        }
    }

    /// Where BAR 0 is, as the guest's device table holds it (the trap's
    /// dedicated path answers accesses there without the table).
    #[inline(always)]
    pub fn window(&self) -> Region {
        Region::new(self.bar0, BAR0_SIZE)
    }

    fn effect(&self, change: IntxChange) -> Effect {
        match change {
            IntxChange::Assert => Effect::RaiseSpi(self.intid),
            _ => Effect::None,
        }
    }

    /// Reports a DMA fault on endpoint `ep` at `iova` on the event queue.
    pub fn report_fault(&self, ep: u32, iova: u64, read: bool) -> Effect {
        let mut t = self.transport.lock();
        t.device_mut().model.report_dma_fault(ep, iova, read);
        let change = t.poll(&self.mem);
        drop(t);
        self.effect(change)
    }

    /// Runs `f` on the device model (tests and counters).
    pub fn with_model<R>(&self, f: impl FnOnce(&Viommu<B>) -> R) -> R {
        f(&self.transport.lock().device().model)
    }
}

/// Writes BAR 0 (low and high halves) of `t` with `bar0`.
fn place<D: crate::virtio::device::VirtioDevice>(t: &mut PciTransport<D>, bar0: u64) {
    let _ = t.config_write(&NoMemory, 0x10, 4, bar0 as u32);
    let _ = t.config_write(&NoMemory, 0x14, 4, (bar0 >> 32) as u32);
}

impl<B: IommuBackend + Send, M: GuestMemory + Send + Sync> MmioDevice for ViommuPci<B, M> {
    fn name(&self) -> &'static str {
        "virtio-iommu (virtio-pci)"
    }

    // Inlined into the trap's dedicated path (`vm::exits`).
    #[inline(always)]
    fn read(&self, _ctx: &AccessCtx<'_>, offset: u64, width: usize) -> Option<u64> {
        let mut t = self.transport.lock();
        t.bar(0)?;
        Some(t.bar_read(0, offset, width).0)
    }

    // Inlined into the trap's dedicated path (`vm::exits`).
    #[inline(always)]
    fn write(&self, _ctx: &AccessCtx<'_>, offset: u64, width: usize, value: u64) -> Option<Effect> {
        let t0 = perf::now();
        let mut t = self.transport.lock();
        t.bar(0)?;
        let change = t.bar_write_in(&self.mem, 0, offset, width, value);
        if perf::ENABLED && (NOTIFY_OFFSET..NOTIFY_OFFSET + REGION_SIZE).contains(&offset) {
            // The profile's "mmio" share: the whole access of a notify.
            t.device_mut().profile_mut().mmio(perf::now() - t0);
        }
        drop(t);
        Some(self.effect(change))
    }

    /// A conventional reset (the guest restarts), then BAR 0 placed again.
    fn reset(&self, _ctx: &AccessCtx<'_>) {
        let mut t = self.transport.lock();
        let _ = t.reset();
        place(&mut t, self.bar0);
    }

    /// The request counters, followed by the request profile in an image
    /// built with it (as the virtio-mmio device prints them).
    fn report(&self) -> Option<String> {
        Some(self.transport.lock().device().report())
    }
}

/// The function as the virtual bus reaches it: its configuration space.
pub struct ViommuPciFunction<B: IommuBackend, M: GuestMemory>(pub Arc<ViommuPci<B, M>>);

impl<B: IommuBackend, M: GuestMemory> PciFunction for ViommuPciFunction<B, M> {
    fn config_read(&mut self, offset: u16, width: u8) -> (u32, IntxChange) {
        self.0.transport.lock().config_read(offset, width)
    }
    fn config_write(
        &mut self,
        _mem: &dyn GuestMemory,
        offset: u16,
        width: u8,
        value: u32,
    ) -> IntxChange {
        let mut t = self.0.transport.lock();
        // BAR 0 is the hypervisor's: sizing is answered, moving is not.
        let change = t.config_write_in(&self.0.mem, offset, width, value);
        if (0x10..0x18).contains(&offset) && value != u32::MAX {
            place(&mut t, self.0.bar0);
        }
        change
    }
    fn bar(&self, index: u8) -> Option<BarWindow> {
        self.0.transport.lock().bar(index)
    }
    fn bar_read(&mut self, index: u8, offset: u64, width: usize) -> (u64, IntxChange) {
        self.0.transport.lock().bar_read(index, offset, width)
    }
    fn bar_write(
        &mut self,
        _mem: &dyn GuestMemory,
        index: u8,
        offset: u64,
        width: usize,
        value: u64,
    ) -> IntxChange {
        self.0
            .transport
            .lock()
            .bar_write_in(&self.0.mem, index, offset, width, value)
    }
    fn intx(&self) -> bool {
        self.0.transport.lock().intx()
    }
    fn reset(&mut self) -> IntxChange {
        let mut t = self.0.transport.lock();
        let change = t.reset();
        place(&mut t, self.0.bar0);
        change
    }
}
