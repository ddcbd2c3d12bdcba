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
//! Device status: the driver may only add bits (0 resets). FEATURES_OK is
//! refused (absent on read-back) unless the accepted features are a subset
//! of those offered and include VERSION_1; DRIVER_OK is refused without
//! FEATURES_OK. The device is activated when DRIVER_OK is taken.
//! DEVICE_NEEDS_RESET (with a configuration change notification once
//! DRIVER_OK is set) follows: a notification of a queue that is not ready,
//! a bad queue layout at QueueReady, a fatal ring error, or a device model
//! asking for it. From then on nothing is processed until reset.
//!
//! Notifications before DRIVER_OK are remembered and processed when the
//! driver sets it (the device must not consume buffers before DRIVER_OK,
//! and a driver busy-waiting on them would otherwise hang).
//!
//! Interrupts: each new event sets its InterruptStatus bit and asks the
//! caller (through [`TransportAction`]) to send one edge on the device's
//! SPI, even if the bit was already set; [`MmioTransport::interrupt_pending`]
//! gives the level for a level-sensitive emulation.

pub mod regs;

use alloc::vec::Vec;

use super::device::{MAX_QUEUES, NotifyResult, QueueContext, VirtioDevice};
use super::features::{self, F_RING_RESET};
use super::memory::GuestMemory;
use super::queue::Queue;
use regs::*;

/// What the caller must do after a register write or a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransportAction {
    /// A used-buffer notification was raised (InterruptStatus bit 0).
    pub used_buffer: bool,
    /// A configuration change notification was raised (bit 1).
    pub config_change: bool,
}

impl TransportAction {
    /// Nothing to do.
    pub const NONE: Self = Self {
        used_buffer: false,
        config_change: false,
    };

    /// Whether to inject the device's interrupt.
    pub fn raise_interrupt(&self) -> bool {
        self.used_buffer || self.config_change
    }
}

/// A virtio-mmio device: the register file, the queues and the device model.
pub struct MmioTransport<D: VirtioDevice> {
    device: D,
    queues: Vec<Queue>,
    status: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    interrupt_status: u32,
    config_generation: u32,
    deferred_notify: u64,
}

/// `old` with its low (or, if `high`, its high) 32 bits replaced by `value`.
fn set_half(old: u64, value: u32, high: bool) -> u64 {
    if high {
        (old & 0xffff_ffff) | (u64::from(value) << 32)
    } else {
        (old & !0xffff_ffff) | u64::from(value)
    }
}

/// The low `width` bytes of `value`.
fn truncate(value: u64, width: usize) -> u64 {
    match width {
        1 => value & 0xff,
        2 => value & 0xffff,
        4 => value & 0xffff_ffff,
        _ => value,
    }
}

impl<D: VirtioDevice> MmioTransport<D> {
    /// A transport in reset state around `device`.
    pub fn new(device: D) -> Self {
        let n = device.num_queues().min(MAX_QUEUES);
        let queues = (0..n)
            .map(|q| Queue::new(device.queue_max_size(q)))
            .collect();
        Self {
            device,
            queues,
            status: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            interrupt_status: 0,
            config_generation: 0,
            deferred_notify: 0,
        }
    }

    /// The device model.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The device model, mutably (to hand it events before a [`poll`](Self::poll)).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// The device status register.
    pub fn status(&self) -> u32 {
        self.status
    }

    /// The InterruptStatus register.
    pub fn interrupt_status(&self) -> u32 {
        self.interrupt_status
    }

    /// Whether an interrupt is pending (InterruptStatus non-zero): the
    /// level of the device's interrupt line.
    pub fn interrupt_pending(&self) -> bool {
        self.interrupt_status != 0
    }

    /// The features offered to the driver.
    pub fn offered_features(&self) -> u64 {
        features::offered(self.device.device_features())
    }

    /// The features the driver accepted (final once FEATURES_OK is set).
    pub fn driver_features(&self) -> u64 {
        self.driver_features
    }

    /// Queue `q`, if it exists.
    pub fn queue(&self, q: usize) -> Option<&Queue> {
        self.queues.get(q)
    }

    /// Whether the device processes queues: DRIVER_OK set, neither
    /// DEVICE_NEEDS_RESET nor FAILED.
    pub fn running(&self) -> bool {
        self.status & STATUS_DRIVER_OK != 0
            && self.status & (STATUS_DEVICE_NEEDS_RESET | STATUS_FAILED) == 0
    }

    /// A guest load of `width` bytes at `offset` in the window.
    pub fn read(&mut self, offset: u64, width: usize) -> u64 {
        if offset >= CONFIG_OFFSET {
            return match Self::config_access(offset, width) {
                Some(off) => truncate(self.device.config_read(off, width), width),
                None => 0,
            };
        }
        if width != 4 || !offset.is_multiple_of(4) {
            return 0;
        }
        let Some(reg) = Register::from_offset(offset) else {
            return 0;
        };
        u64::from(self.read_register(reg))
    }

    /// A guest store of `width` bytes of `value` at `offset` in the window.
    pub fn write(
        &mut self,
        mem: &dyn GuestMemory,
        offset: u64,
        width: usize,
        value: u64,
    ) -> TransportAction {
        if offset >= CONFIG_OFFSET {
            if let Some(off) = Self::config_access(offset, width) {
                self.device.config_write(off, width, truncate(value, width));
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

    /// Lets the device fill its queues with what the hypervisor has to
    /// report (e.g. a fault on the virtio-iommu event queue).
    pub fn poll(&mut self, mem: &dyn GuestMemory) -> TransportAction {
        if !self.running() {
            return TransportAction::NONE;
        }
        self.run(mem, None)
    }

    /// The device configuration changed on the hypervisor's side: bumps
    /// ConfigGeneration and notifies the driver (once DRIVER_OK is set).
    pub fn config_changed(&mut self) -> TransportAction {
        let mut action = TransportAction::NONE;
        self.signal_config_change(&mut action);
        action
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
    fn selected(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(self.queue_sel as usize)
    }

    /// The selected queue if it exists and is not ready (for the
    /// registers the driver may only write while the queue is off).
    fn selected_idle(&mut self) -> Option<&mut Queue> {
        self.selected().filter(|q| !q.ready())
    }

    fn read_register(&mut self, reg: Register) -> u32 {
        match reg {
            Register::MagicValue => MAGIC,
            Register::Version => VERSION,
            Register::DeviceId => self.device.device_id(),
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
            Register::InterruptStatus => self.interrupt_status,
            Register::Status => self.status,
            Register::ShmLenLow
            | Register::ShmLenHigh
            | Register::ShmBaseLow
            | Register::ShmBaseHigh => u32::MAX,
            Register::ConfigGeneration => self.config_generation,
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

    fn write_register(
        &mut self,
        mem: &dyn GuestMemory,
        reg: Register,
        value: u32,
    ) -> TransportAction {
        let mut action = TransportAction::NONE;
        match reg {
            Register::DeviceFeaturesSel => self.device_features_sel = value,
            Register::DriverFeaturesSel => self.driver_features_sel = value,
            Register::DriverFeatures => {
                let sel = self.driver_features_sel;
                if self.status & STATUS_FEATURES_OK == 0 && sel <= 1 {
                    self.driver_features = set_half(self.driver_features, value, sel == 1);
                }
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
            Register::QueueReady => self.write_queue_ready(mem, value, &mut action),
            Register::QueueReset => self.write_queue_reset(value),
            Register::QueueNotify => self.notify(mem, value as u16 as usize, &mut action),
            Register::InterruptAck => self.interrupt_status &= !value,
            Register::Status => self.write_status(mem, value, &mut action),
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

    fn write_queue_ready(
        &mut self,
        mem: &dyn GuestMemory,
        value: u32,
        action: &mut TransportAction,
    ) {
        let Some(q) = self.selected() else {
            return;
        };
        // 0 disables; 1 enables a disabled queue after checking its layout
        // (a bad one needs a reset); other values are ignored.
        if value == 0 {
            q.disable();
        } else if value == 1 && !q.ready() && q.enable(mem).is_err() {
            self.needs_reset(action);
        }
    }

    fn write_queue_reset(&mut self, value: u32) {
        let negotiated =
            self.status & STATUS_FEATURES_OK != 0 && self.driver_features & F_RING_RESET != 0;
        if value != 1 || !negotiated {
            return;
        }
        let index = self.queue_sel as usize;
        if let Some(q) = self.queues.get_mut(index) {
            q.reset();
            self.deferred_notify &= !(1 << index);
            self.device.queue_reset(index);
        }
    }

    fn write_status(&mut self, mem: &dyn GuestMemory, value: u32, action: &mut TransportAction) {
        if value == 0 {
            self.reset();
            return;
        }
        let old = self.status;
        let mut new = old | (value & STATUS_DRIVER_BITS);
        if new & !old & STATUS_FEATURES_OK != 0
            && !features::acceptable(self.offered_features(), self.driver_features)
        {
            new &= !STATUS_FEATURES_OK;
        }
        if new & STATUS_FEATURES_OK == 0 {
            new &= !STATUS_DRIVER_OK;
        }
        self.status = new;
        if new & !old & STATUS_DRIVER_OK != 0 {
            self.device.activate(self.driver_features);
            let deferred = core::mem::take(&mut self.deferred_notify);
            for q in 0..self.queues.len() {
                if deferred & (1 << q) != 0 && self.running() && self.queues[q].ready() {
                    let a = self.run(mem, Some(q));
                    action.used_buffer |= a.used_buffer;
                    action.config_change |= a.config_change;
                }
            }
        }
    }

    fn notify(&mut self, mem: &dyn GuestMemory, q: usize, action: &mut TransportAction) {
        let Some(queue) = self.queues.get(q) else {
            return;
        };
        if self.status & (STATUS_DEVICE_NEEDS_RESET | STATUS_FAILED) != 0 {
            return;
        }
        if !queue.ready() {
            self.needs_reset(action);
            return;
        }
        if self.status & STATUS_DRIVER_OK == 0 {
            self.deferred_notify |= 1 << q;
            return;
        }
        let a = self.run(mem, Some(q));
        action.used_buffer |= a.used_buffer;
        action.config_change |= a.config_change;
    }

    /// Runs the device on notified queue `q`, or polls it.
    fn run(&mut self, mem: &dyn GuestMemory, q: Option<usize>) -> TransportAction {
        let mut ctx = QueueContext::new(mem, &mut self.queues);
        let result = match q {
            Some(q) => self.device.notify(q, &mut ctx),
            None => self.device.poll(&mut ctx),
        };
        let outcome = ctx.finish();
        let mut action = TransportAction::NONE;
        if outcome.notify {
            self.interrupt_status |= INT_USED_BUFFER;
            action.used_buffer = true;
        }
        match result {
            NotifyResult::Done => {}
            NotifyResult::ConfigChanged => self.signal_config_change(&mut action),
            NotifyResult::NeedsReset => self.needs_reset(&mut action),
        }
        if outcome.fatal.is_some() {
            self.needs_reset(&mut action);
        }
        action
    }

    /// Sets DEVICE_NEEDS_RESET and, once DRIVER_OK is set, sends the
    /// configuration change notification the specification asks for.
    fn needs_reset(&mut self, action: &mut TransportAction) {
        if self.status & STATUS_DEVICE_NEEDS_RESET != 0 {
            return;
        }
        self.status |= STATUS_DEVICE_NEEDS_RESET;
        if self.status & STATUS_DRIVER_OK != 0 {
            self.interrupt_status |= INT_CONFIG_CHANGE;
            action.config_change = true;
        }
    }

    fn signal_config_change(&mut self, action: &mut TransportAction) {
        self.config_generation = self.config_generation.wrapping_add(1);
        if self.status & STATUS_DRIVER_OK != 0 {
            self.interrupt_status |= INT_CONFIG_CHANGE;
            action.config_change = true;
        }
    }

    /// Device reset (Status = 0): registers, queues and the device model.
    fn reset(&mut self) {
        self.status = 0;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
        self.interrupt_status = 0;
        self.deferred_notify = 0;
        for q in &mut self.queues {
            q.reset();
        }
        self.device.reset();
    }
}
