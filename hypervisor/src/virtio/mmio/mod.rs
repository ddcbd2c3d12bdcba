//! The virtio-mmio (version 2) transport, emulated at EL2: the hypervisor
//! traps the guest's loads and stores to the device's 0x200-byte window and
//! hands each to [`MmioTransport::read`] or [`MmioTransport::write`] as
//! (offset, width, value). A notification is handled inside the trap, so a
//! driver polling the used ring finds its request complete on return.
//!
//! Access rules: registers take only aligned 32-bit accesses; the
//! configuration space (0x100+) takes aligned 8-, 16- and 32-bit accesses.
//! Anything else reads as 0 and is ignored on write, as are reads of
//! write-only registers and writes to read-only ones.
//!
//! Device status, feature negotiation, queue enabling, notifications and
//! reset follow the rules shared with the virtio-pci transport
//! ([`TransportCore`], in [`transport`](super::transport)); this file only
//! decodes the registers. QueueReady enables the selected queue (its layout
//! checked then); QueueReset and RING_RESET are offered.
//!
//! Interrupts: each new event sets its InterruptStatus bit and asks the
//! caller (through [`TransportAction`]) to send one edge on the device's
//! SPI, even if the bit was already set; [`MmioTransport::interrupt_pending`]
//! gives the level for a level-sensitive emulation.

pub mod regs;

use super::device::VirtioDevice;
use super::memory::GuestMemory;
use super::queue::Queue;
use super::transport::{TransportCore, set_half, truncate};
use regs::*;

pub use super::transport::TransportAction;

/// A virtio-mmio device: the register file around the shared transport
/// state (queues, status, the device model).
pub struct MmioTransport<D: VirtioDevice> {
    core: TransportCore<D>,
    device_features_sel: u32,
    driver_features_sel: u32,
    queue_sel: u32,
}

impl<D: VirtioDevice> MmioTransport<D> {
    /// A transport in reset state around `device`.
    pub fn new(device: D) -> Self {
        Self {
            core: TransportCore::new(device, 0),
            device_features_sel: 0,
            driver_features_sel: 0,
            queue_sel: 0,
        }
    }

    /// The device model.
    pub fn device(&self) -> &D {
        self.core.device()
    }

    /// Tests: the shared transport state.
    #[cfg(test)]
    pub(crate) fn core_mut(&mut self) -> &mut TransportCore<D> {
        &mut self.core
    }

    /// The device model, mutably (to hand it events before a [`poll`](Self::poll)).
    pub fn device_mut(&mut self) -> &mut D {
        self.core.device_mut()
    }

    /// The device status register.
    pub fn status(&self) -> u32 {
        self.core.status()
    }

    /// The InterruptStatus register.
    pub fn interrupt_status(&self) -> u32 {
        self.core.interrupt_status()
    }

    /// Whether an interrupt is pending (InterruptStatus non-zero): the
    /// level of the device's interrupt line.
    pub fn interrupt_pending(&self) -> bool {
        self.core.interrupt_status() != 0
    }

    /// The features offered to the driver.
    pub fn offered_features(&self) -> u64 {
        self.core.offered_features()
    }

    /// The features the driver accepted (final once FEATURES_OK is set).
    pub fn driver_features(&self) -> u64 {
        self.core.driver_features()
    }

    /// Queue `q`, if it exists.
    pub fn queue(&self, q: usize) -> Option<&Queue> {
        self.core.queue(q)
    }

    /// Whether the device processes queues: DRIVER_OK set, neither
    /// DEVICE_NEEDS_RESET nor FAILED.
    pub fn running(&self) -> bool {
        self.core.running()
    }

    /// A guest load of `width` bytes at `offset` in the window.
    pub fn read(&mut self, offset: u64, width: usize) -> u64 {
        if offset >= CONFIG_OFFSET {
            return match Self::config_access(offset, width) {
                Some(off) => truncate(self.core.device().config_read(off, width), width),
                None => 0,
            };
        }
        if width != 4 || !offset.is_multiple_of(4) {
            return 0;
        }
        u64::from(self.read_word(offset))
    }

    /// A guest store of `width` bytes of `value` at `offset` in the window.
    #[inline(always)]
    pub fn write<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        offset: u64,
        width: usize,
        value: u64,
    ) -> TransportAction {
        // The register of the request path first: a queue notify is a
        // 32-bit store at its (aligned) offset, decoded as below.
        if offset == Register::QueueNotify.offset() && width == 4 {
            return self.queue_notify(mem, value);
        }
        if offset >= CONFIG_OFFSET {
            if let Some(off) = Self::config_access(offset, width) {
                self.core
                    .device_mut()
                    .config_write(off, width, truncate(value, width));
            }
            return TransportAction::NONE;
        }
        if width != 4 || !offset.is_multiple_of(4) {
            return TransportAction::NONE;
        }
        match Register::from_offset(offset) {
            Some(reg) => self.write_register(mem, reg, value as u32),
            None => TransportAction::NONE,
        }
    }

    /// A guest's 32-bit store of `value` to QueueNotify, as [`Self::write`]
    /// takes it: the queue index is the value's low 16 bits, so bits above
    /// them (above the store's 32 too) do not count and need no mask.
    #[inline(always)]
    pub fn queue_notify<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        value: u64,
    ) -> TransportAction {
        let mut action = TransportAction::NONE;
        self.core.notify(mem, value as u16 as usize, &mut action);
        action
    }

    /// Lets the device fill its queues with what the hypervisor has to
    /// report (e.g. a fault on the virtio-iommu event queue).
    pub fn poll<M: GuestMemory + ?Sized>(&mut self, mem: &M) -> TransportAction {
        self.core.poll(mem)
    }

    /// The device configuration changed on the hypervisor's side: bumps
    /// ConfigGeneration and notifies the driver (once DRIVER_OK is set).
    pub fn config_changed(&mut self) -> TransportAction {
        self.core.config_changed()
    }

    /// Configuration-space offset of an access, if valid.
    fn config_access(offset: u64, width: usize) -> Option<u64> {
        let ok_width = matches!(width, 1 | 2 | 4);
        let end = offset.checked_add(width as u64)?;
        if !ok_width || !offset.is_multiple_of(width as u64) || end > WINDOW_SIZE {
            return None;
        }
        Some(offset - CONFIG_OFFSET)
    }

    /// The selected queue, if it exists.
    fn selected(&self) -> Option<&Queue> {
        self.core.queue(self.queue_sel as usize)
    }

    /// The selected queue if it exists and is not ready (for the
    /// registers the driver may only write while the queue is off).
    fn selected_idle(&mut self) -> Option<&mut Queue> {
        self.core.queue_idle(self.queue_sel as usize)
    }

    /// The register at the aligned `offset` (below the configuration
    /// space), decoded in one step: a `match` on the offset itself, which
    /// compiles to one jump table, instead of the offset's [`Register`]
    /// (a table lookup) and a second `match` on it. Every offset that is
    /// not a readable register (write-only, reserved) reads 0, as
    /// [`Self::read_register`] does; the host test
    /// `register_reads_decode_as_the_register_enum` compares the two.
    #[inline(always)]
    fn read_word(&self, offset: u64) -> u32 {
        use virtio_defs::mmio::offset as o;
        match offset {
            o::MAGIC_VALUE => MAGIC,
            o::VERSION => VERSION,
            o::DEVICE_ID => self.core.device().device_id(),
            o::VENDOR_ID => VENDOR_ID,
            o::DEVICE_FEATURES => {
                let offered = self.offered_features();
                match self.device_features_sel {
                    0 => offered as u32,
                    1 => (offered >> 32) as u32,
                    _ => 0,
                }
            }
            o::QUEUE_NUM_MAX => self.selected().map_or(0, |q| u32::from(q.max_size())),
            o::QUEUE_READY => self.selected().map_or(0, |q| u32::from(q.ready())),
            o::INTERRUPT_STATUS => self.core.interrupt_status(),
            o::STATUS => self.core.status(),
            o::SHM_LEN_LOW | o::SHM_LEN_HIGH | o::SHM_BASE_LOW | o::SHM_BASE_HIGH => u32::MAX,
            o::CONFIG_GENERATION => self.core.config_generation(),
            // Reset completes at once: QueueReset always reads 0. Write-only
            // and reserved offsets read 0.
            _ => 0,
        }
    }

    /// The value of register `reg` (the reference decode of a read, by
    /// register: [`Self::read_word`] must agree with it at every offset).
    #[cfg(test)]
    pub(crate) fn read_register(&self, reg: Register) -> u32 {
        match reg {
            Register::MagicValue => MAGIC,
            Register::Version => VERSION,
            Register::DeviceId => self.core.device().device_id(),
            Register::VendorId => VENDOR_ID,
            Register::DeviceFeatures => {
                let offered = self.offered_features();
                match self.device_features_sel {
                    0 => offered as u32,
                    1 => (offered >> 32) as u32,
                    _ => 0,
                }
            }
            Register::QueueNumMax => self.selected().map_or(0, |q| u32::from(q.max_size())),
            Register::QueueReady => self.selected().map_or(0, |q| u32::from(q.ready())),
            Register::InterruptStatus => self.core.interrupt_status(),
            Register::Status => self.core.status(),
            Register::ShmLenLow
            | Register::ShmLenHigh
            | Register::ShmBaseLow
            | Register::ShmBaseHigh => u32::MAX,
            Register::ConfigGeneration => self.core.config_generation(),
            // Reset completes at once: QueueReset always reads 0.
            Register::QueueReset => 0,
            Register::DeviceFeaturesSel
            | Register::DriverFeatures
            | Register::DriverFeaturesSel
            | Register::QueueSel
            | Register::QueueNum
            | Register::QueueNotify
            | Register::InterruptAck
            | Register::QueueDescLow
            | Register::QueueDescHigh
            | Register::QueueDriverLow
            | Register::QueueDriverHigh
            | Register::QueueDeviceLow
            | Register::QueueDeviceHigh
            | Register::ShmSel => 0,
        }
    }

    fn write_register<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        reg: Register,
        value: u32,
    ) -> TransportAction {
        let mut action = TransportAction::NONE;
        match reg {
            Register::DeviceFeaturesSel => self.device_features_sel = value,
            Register::DriverFeaturesSel => self.driver_features_sel = value,
            Register::DriverFeatures => {
                self.core
                    .write_driver_features(self.driver_features_sel, value);
            }
            Register::QueueSel => self.queue_sel = value,
            Register::QueueNum => {
                if let Some(q) = self.selected_idle() {
                    q.set_size(value);
                }
            }
            Register::QueueDescLow | Register::QueueDescHigh => {
                if let Some(q) = self.selected_idle() {
                    let high = reg == Register::QueueDescHigh;
                    q.set_desc_addr(set_half(q.desc_addr(), value, high));
                }
            }
            Register::QueueDriverLow | Register::QueueDriverHigh => {
                if let Some(q) = self.selected_idle() {
                    let high = reg == Register::QueueDriverHigh;
                    q.set_avail_addr(set_half(q.avail_addr(), value, high));
                }
            }
            Register::QueueDeviceLow | Register::QueueDeviceHigh => {
                if let Some(q) = self.selected_idle() {
                    let high = reg == Register::QueueDeviceHigh;
                    q.set_used_addr(set_half(q.used_addr(), value, high));
                }
            }
            Register::QueueReady => {
                let q = self.queue_sel as usize;
                self.core.set_queue_ready(mem, q, value, &mut action);
            }
            Register::QueueReset => {
                if value == 1 {
                    self.core.reset_queue(self.queue_sel as usize);
                }
            }
            Register::QueueNotify => self.core.notify(mem, value as u16 as usize, &mut action),
            Register::InterruptAck => self.core.ack_interrupt(value),
            Register::Status => {
                if value == 0 {
                    self.reset();
                } else {
                    self.core.write_status(mem, value, &mut action);
                }
            }
            Register::MagicValue
            | Register::Version
            | Register::DeviceId
            | Register::VendorId
            | Register::DeviceFeatures
            | Register::QueueNumMax
            | Register::InterruptStatus
            | Register::ShmSel
            | Register::ShmLenLow
            | Register::ShmLenHigh
            | Register::ShmBaseLow
            | Register::ShmBaseHigh
            | Register::ConfigGeneration => {}
        }
        action
    }

    /// Device reset (Status = 0): registers, queues and the device model.
    fn reset(&mut self) {
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.queue_sel = 0;
        self.core.reset();
    }
}
