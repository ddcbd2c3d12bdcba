//! A guest's virtio-iommu on the virtio-mmio transport: requests are
//! handled within the trap of the queue notify (no exit to anything else),
//! completions signalled with the device's virtual SPI, and DMA faults on
//! the guest's endpoints reported on its event queue.

use super::{AccessCtx, Effect, MmioDevice};
use crate::mm::layout::Region;
use crate::perf;
use crate::viommu::backend::IommuBackend;
use crate::viommu::device::ViommuDevice;
use crate::viommu::model::Viommu;
use crate::virtio::memory::GuestMemory;
use crate::virtio::mmio::regs::Register;
use crate::virtio::mmio::{MmioTransport, TransportAction};
use alloc::string::String;
use spin::Mutex;

/// A virtio-iommu behind a virtio-mmio window, over the guest's RAM `M`.
///
/// It holds the guest's memory itself (rather than using the access
/// context's `&dyn GuestMemory`) so that the queue work of a notify is
/// compiled for that one type: every ring and request access inlined, no
/// dynamic call.
///
/// (`window` first: the trap's test of it loads both words with one
/// load pair, at an offset the instruction can encode.)
#[repr(C)]
pub struct ViommuMmio<B: IommuBackend, M: GuestMemory> {
    /// Its guest-physical window, once placed ([`ViommuMmio::placed`]);
    /// empty before.
    window: Region,
    /// GIC INTID of its interrupt.
    intid: u32,
    /// The guest's RAM (the rings and requests live there).
    mem: M,
    transport: Mutex<MmioTransport<ViommuDevice<B>>>,
}

impl<B: IommuBackend, M: GuestMemory> ViommuMmio<B, M> {
    /// The transport of `model` over the guest's RAM `mem`, signalling
    /// with virtual SPI `intid`.
    pub fn new(model: Viommu<B>, mem: M, intid: u32) -> Self {
        ViommuMmio {
            intid,
            window: Region::new(0, 0),
            mem,
            transport: Mutex::new(MmioTransport::new(ViommuDevice::new(model))),
        }
    }

    /// The device placed at `window` in the guest-physical space: the
    /// window the guest's device table must hold it at (the trap's
    /// dedicated path answers accesses there without the table).
    pub fn placed(mut self, window: Region) -> Self {
        self.window = window;
        self
    }

    /// Its guest-physical window (empty until placed).
    #[inline(always)]
    pub fn window(&self) -> Region {
        self.window
    }

    /// The device's interrupt.
    pub fn intid(&self) -> u32 {
        self.intid
    }

    fn effect(&self, action: TransportAction) -> Effect {
        if action.raise_interrupt() {
            Effect::RaiseSpi(self.intid)
        } else {
            Effect::None
        }
    }

    /// A guest's 32-bit store to QueueNotify from a register holding
    /// `value`: what [`MmioDevice::write`] does with that offset, width 4
    /// and the value's low 4 bytes (the queue index is its low 16 bits, so
    /// the register needs no mask). The trap's dedicated path for the
    /// request path's store (`vm::exits`).
    #[inline(always)]
    pub fn queue_notify(&self, value: u64) -> Effect {
        let t0 = perf::now();
        let mut t = self.transport.lock();
        let action = t.queue_notify(&self.mem, value);
        if perf::ENABLED {
            t.device_mut().profile_mut().mmio(perf::now() - t0);
        }
        drop(t);
        self.effect(action)
    }

    /// Reports a DMA fault on endpoint `ep` at `iova` on the event queue
    /// (if the driver has given it buffers).
    pub fn report_fault(&self, ep: u32, iova: u64, read: bool) -> Effect {
        let mut t = self.transport.lock();
        t.device_mut().model.report_dma_fault(ep, iova, read);
        let action = t.poll(&self.mem);
        drop(t);
        self.effect(action)
    }

    /// Runs `f` on the device model (tests and counters).
    pub fn with_model<R>(&self, f: impl FnOnce(&Viommu<B>) -> R) -> R {
        f(&self.transport.lock().device().model)
    }

    /// Runs `f` on the device model, mutably (tests that set a state up
    /// without a driver).
    #[cfg(test)]
    pub fn with_model_mut<R>(&self, f: impl FnOnce(&mut Viommu<B>) -> R) -> R {
        f(&mut self.transport.lock().device_mut().model)
    }
}

impl<B: IommuBackend + Send, M: GuestMemory + Send + Sync> MmioDevice for ViommuMmio<B, M> {
    fn name(&self) -> &'static str {
        "virtio-iommu"
    }

    // Inlined into the trap's dedicated path (`vm::exits`).
    #[inline(always)]
    fn read(&self, _ctx: &AccessCtx<'_>, offset: u64, width: usize) -> Option<u64> {
        Some(self.transport.lock().read(offset, width))
    }

    // Inlined into the trap's dedicated path (`vm::exits`).
    #[inline(always)]
    fn write(&self, _ctx: &AccessCtx<'_>, offset: u64, width: usize, value: u64) -> Option<Effect> {
        let t0 = perf::now();
        let mut t = self.transport.lock();
        let action = t.write(&self.mem, offset, width, value);
        if perf::ENABLED && offset == Register::QueueNotify.offset() {
            t.device_mut().profile_mut().mmio(perf::now() - t0);
        }
        drop(t);
        Some(self.effect(action))
    }

    /// As if the driver wrote 0 to Status: every endpoint is detached,
    /// every domain destroyed and the queues forgotten; `bypass` keeps its
    /// value.
    fn reset(&self, _ctx: &AccessCtx<'_>) {
        let _ = self
            .transport
            .lock()
            .write(&self.mem, Register::Status.offset(), 4, 0);
    }

    /// The request counters, followed by the request profile in an image
    /// built with it.
    fn report(&self) -> Option<String> {
        Some(self.transport.lock().device().report())
    }
}
