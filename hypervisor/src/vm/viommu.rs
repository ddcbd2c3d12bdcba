//! Each guest's virtio-iommu at EL2: the virtio-mmio window trapped in its
//! stage 2, requests handled within the trap of the queue notify (no exit to
//! anything else), completions signalled with a virtual SPI, and SMMU faults
//! on the guest's endpoints forwarded as fault reports on the event queue.

use super::guest::Guest;
use super::vcpu;
use super::viommu_backend::{IOVA_BITS, SmmuBackend};
use super::viommu_dev::ViommuDevice;
use crate::arch::aarch64::cache;
use crate::config::limits::VIOMMU_MMIO_SIZE;
use crate::mm::heap;
use crate::perf;
use crate::viommu::backend::IommuBackend;
use crate::viommu::model::{Viommu, ViommuConfig};
use crate::viommu::wire::probe::FaultReason;
use crate::virtio::memory::{Barrier, GuestMemory, MemError};
use crate::virtio::mmio::{MmioTransport, TransportAction};
use alloc::boxed::Box;
use alloc::vec::Vec;
use log::{error, info};
use spin::{Mutex, Once};
use virtio_defs::mmio::offset::{QUEUE_NOTIFY, STATUS};

type Transport = MmioTransport<ViommuDevice<SmmuBackend>>;

/// One guest's virtio-iommu.
pub struct Instance {
    /// Guest-physical window.
    pub base: u64,
    /// GIC INTID of its interrupt.
    pub intid: u32,
    transport: Mutex<Transport>,
}

/// Each guest's instance, allocated on its own and charged to that guest
/// (docs/guests.md, "Hypervisor RAM per guest").
static VIOMMUS: Once<Vec<Option<Box<Instance>>>> = Once::new();

/// The guest's RAM as virtio sees it: guest-physical addresses, bounds
/// checked, reached through the hypervisor's identity map of host RAM.
pub struct GuestRam<'g> {
    guest: &'g Guest,
}

impl<'g> GuestRam<'g> {
    /// The RAM of `guest`.
    pub fn new(guest: &'g Guest) -> Self {
        GuestRam { guest }
    }
}

impl GuestRam<'_> {
    /// Host address of `gpa..gpa+len`, which must lie wholly in the
    /// guest's RAM: one overflow-safe comparison against the region.
    #[inline(always)]
    fn host(&self, gpa: u64, len: usize) -> Result<usize, MemError> {
        let off = self.offset(gpa, len as u64)?;
        Ok((self.guest.ram_pa + off) as usize)
    }

    /// Offset of `gpa..gpa+len` in the guest's RAM region, if it lies
    /// wholly inside (a zero-length range may sit at the region's end).
    #[inline(always)]
    fn offset(&self, gpa: u64, len: u64) -> Result<u64, MemError> {
        let ram = &self.guest.ram;
        let off = gpa.wrapping_sub(ram.base);
        if gpa < ram.base || off > ram.size || len > ram.size - off {
            return Err(if gpa.checked_add(len).is_none() {
                MemError::Wraps { gpa, len }
            } else {
                MemError::OutOfRange { gpa, len }
            });
        }
        Ok(off)
    }
}

/// A little-endian integer of guest RAM read or written in one access when
/// its host address is naturally aligned. The image is built for strict
/// alignment (early boot runs with the MMU off), so an unaligned access
/// would be split into bytes; the ring fields and descriptors the split
/// queue reads are aligned by the layout checked at queue enable.
macro_rules! aligned_access {
    ($read:ident, $write:ident, $t:ty) => {
        fn $read(&self, gpa: u64) -> Result<$t, MemError> {
            let src = self.host(gpa, size_of::<$t>())?;
            let v = if src.is_multiple_of(align_of::<$t>()) {
                // SAFETY: in the guest's RAM (checked by `host`), which the
                // hypervisor allocated and identity-maps; aligned. One
                // volatile load: the guest may change it, we read it once.
                unsafe { (src as *const $t).read_volatile() }
            } else {
                // SAFETY: as above, without the alignment.
                unsafe { (src as *const $t).read_unaligned() }
            };
            Ok(<$t>::from_le(v))
        }
        fn $write(&self, gpa: u64, value: $t) -> Result<(), MemError> {
            let dst = self.host(gpa, size_of::<$t>())?;
            let v = value.to_le();
            if dst.is_multiple_of(align_of::<$t>()) {
                // SAFETY: as in the read.
                unsafe { (dst as *mut $t).write_volatile(v) };
            } else {
                // SAFETY: as in the read.
                unsafe { (dst as *mut $t).write_unaligned(v) };
            }
            Ok(())
        }
    };
}

impl GuestMemory for GuestRam<'_> {
    fn check(&self, gpa: u64, len: u64) -> Result<(), MemError> {
        self.offset(gpa, len).map(|_| ())
    }
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        match buf.len() {
            2 => buf.copy_from_slice(&self.read_u16(gpa)?.to_le_bytes()),
            4 => buf.copy_from_slice(&self.read_u32(gpa)?.to_le_bytes()),
            8 => buf.copy_from_slice(&self.read_u64(gpa)?.to_le_bytes()),
            n => {
                let src = self.host(gpa, n)? as *const u8;
                // SAFETY: the whole range lies in the guest's RAM (checked
                // by `host`), which the hypervisor allocated and
                // identity-maps.
                unsafe { core::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), n) };
            }
        }
        Ok(())
    }
    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        match *data {
            [a, b] => self.write_u16(gpa, u16::from_le_bytes([a, b])),
            [a, b, c, d] => self.write_u32(gpa, u32::from_le_bytes([a, b, c, d])),
            _ => {
                let dst = self.host(gpa, data.len())? as *mut u8;
                // SAFETY: as in `read`.
                unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
                Ok(())
            }
        }
    }
    aligned_access!(read_u16, write_u16, u16);
    aligned_access!(read_u32, write_u32, u32);
    aligned_access!(read_u64, write_u64, u64);
    fn barrier(&self, kind: Barrier) {
        match kind {
            Barrier::Acquire => cache::dmb_ishld(),
            _ => cache::dmb_ish(),
        }
    }
}

/// Creates the virtio-iommu of every guest whose configuration asks for one.
pub fn create_all(guests: &'static [Guest], vmid16: bool) {
    let list = guests
        .iter()
        .map(|g| {
            let cfg = g.config.viommu.as_ref()?;
            let model_cfg = ViommuConfig {
                input_end: (1u64 << IOVA_BITS) - 1,
                ..ViommuConfig::default()
            };
            heap::charged_to(g.owner(), || match Viommu::new(SmmuBackend::new(g, vmid16), model_cfg) {
                Ok(model) => {
                    info!(
                        "guest '{}': virtio-iommu (virtio-mmio) at {:#x}, SPI {}, endpoints = PCI requester IDs",
                        g.config.name, cfg.base, cfg.spi
                    );
                    Some(Box::new(Instance {
                        base: cfg.base,
                        intid: cfg.spi + 32,
                        transport: Mutex::new(MmioTransport::new(ViommuDevice::new(model))),
                    }))
                }
                Err(e) => {
                    error!("guest '{}': virtio-iommu not created: {e:?}", g.config.name);
                    None
                }
            })
        })
        .collect();
    VIOMMUS.call_once(|| list);
}

fn instance(g: &Guest) -> Option<&'static Instance> {
    VIOMMUS.get()?.get(g.index)?.as_deref()
}

fn signal(g: &Guest, inst: &Instance, action: TransportAction) {
    if action.raise_interrupt() {
        vcpu::raise_virtual_spi(g, inst.intid);
    }
}

/// Emulates an access to the guest's virtio-iommu window: Some(read value)
/// (None for a write) when `ipa` is in it, else None.
pub fn mmio_access(g: &Guest, ipa: u64, width: usize, write: Option<u64>) -> Option<Option<u64>> {
    let inst = instance(g)?;
    let off = ipa
        .checked_sub(inst.base)
        .filter(|&o| o < VIOMMU_MMIO_SIZE)?;
    let t0 = perf::now();
    let mut t = inst.transport.lock();
    Some(match write {
        Some(v) => {
            let action = t.write(&GuestRam::new(g), off, width, v);
            if perf::ENABLED && off == QUEUE_NOTIFY {
                t.device_mut().profile_mut().mmio(perf::now() - t0);
            }
            drop(t);
            signal(g, inst, action);
            None
        }
        None => Some(t.read(off, width)),
    })
}

/// Forwards an SMMU fault on endpoint `ep` of guest `g` to the guest's
/// virtio-iommu event queue. Returns false when the guest has none.
pub fn report_fault(g: &Guest, ep: u32, iova: u64, read: bool) -> bool {
    let Some(inst) = instance(g) else {
        return false;
    };
    let mut t = inst.transport.lock();
    t.device_mut()
        .model
        .report_fault(ep, iova, read, !read, FaultReason::Mapping);
    let action = t.poll(&GuestRam::new(g));
    drop(t);
    signal(g, inst, action);
    true
}

/// The request counters of guest `g`'s virtio-iommu, for the console,
/// followed by the request profile in an image built with it.
pub fn counters(g: &Guest) -> Option<alloc::string::String> {
    let inst = instance(g)?;
    let t = inst.transport.lock();
    let dev = t.device();
    let mut text = alloc::format!("{}", dev.model.counters());
    if perf::ENABLED {
        let table = dev.model.backend().table_ticks();
        text = alloc::format!("{text}\n{}", dev.profile().lines(table));
    }
    Some(text)
}

/// Resets guest `g`'s virtio-iommu (guest reset): as if the driver wrote 0
/// to Status, every endpoint is detached, every domain destroyed and the
/// queues forgotten; `bypass` keeps its value.
pub fn reset(g: &Guest) {
    if let Some(inst) = instance(g) {
        let mut t = inst.transport.lock();
        let _ = t.write(&GuestRam::new(g), STATUS, 4, 0);
    }
}
