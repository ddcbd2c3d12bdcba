//! The state every virtio transport shares: device status and its state
//! machine, feature negotiation, the queues, notifications (handled inside
//! the caller's trap), interrupt status and reset. The virtio-mmio
//! ([`mmio`](super::mmio)) and virtio-pci ([`pci`](super::pci)) transports
//! decode their own registers and call into [`TransportCore`], so the rules
//! below hold on both:
//!
//! - Device status: the driver may only add bits (0 resets). FEATURES_OK is
//!   refused (absent on read-back) unless the accepted features are a
//!   subset of those offered and include VERSION_1; DRIVER_OK is refused
//!   without FEATURES_OK. The device is activated when DRIVER_OK is taken.
//! - DEVICE_NEEDS_RESET (with a configuration change notification once
//!   DRIVER_OK is set) follows: a notification of a queue that is not
//!   ready, a bad queue layout when it is enabled, a fatal ring error, or a
//!   device model asking for it. From then on nothing is processed until
//!   reset.
//! - Notifications before DRIVER_OK are remembered and processed when the
//!   driver sets it (the device must not consume buffers before DRIVER_OK,
//!   and a driver busy-waiting on them would otherwise hang).
//! - Interrupt status: bit 0 used buffers, bit 1 configuration change; each
//!   new event is also reported in the returned [`TransportAction`].

use alloc::vec::Vec;

use super::device::{MAX_QUEUES, NotifyResult, QueueContext, VirtioDevice};
use super::features::{self, F_RING_RESET};
use super::memory::GuestMemory;
use super::queue::Queue;
use virtio_defs::mmio::{
    INT_CONFIG_CHANGE, INT_USED_BUFFER, STATUS_ACKNOWLEDGE, STATUS_DEVICE_NEEDS_RESET,
    STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FAILED, STATUS_FEATURES_OK,
};

/// Status bits a driver may set (SUSPEND is not offered).
pub const STATUS_DRIVER_BITS: u32 =
    STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK | STATUS_FEATURES_OK | STATUS_FAILED;

/// What the caller must do after a register access or a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransportAction {
    /// A used-buffer notification was raised (interrupt status bit 0).
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

    /// Adds `other`'s notifications to these.
    #[inline]
    fn merge(&mut self, other: Self) {
        self.used_buffer |= other.used_buffer;
        self.config_change |= other.config_change;
    }
}

/// The transport-independent state of one virtio device: the device
/// model, its queues, status, negotiated features and interrupt status.
pub struct TransportCore<D: VirtioDevice> {
    device: D,
    queues: Vec<Queue>,
    status: u32,
    driver_features: u64,
    interrupt_status: u32,
    config_generation: u32,
    deferred_notify: u64,
    /// Transport features of [`features::offered`] this transport does
    /// not implement (virtio-pci: RING_RESET).
    withheld: u64,
    /// Bit `q` set when a notify of queue `q` runs the device straight
    /// away: the device runs ([`TransportCore::running`]) and queue `q` is
    /// ready. Derived from the status and the queues' readiness by
    /// [`TransportCore::update_runnable`], which every method that changes
    /// either calls (only this file enables, disables or resets a queue,
    /// or writes the status), so that a notify's common case is one test.
    runnable: u64,
    /// Tests: notifies take the general checks only (the reference the
    /// `runnable` test is compared with).
    #[cfg(test)]
    pub(crate) general_notify: bool,
}

impl<D: VirtioDevice> TransportCore<D> {
    /// A core in reset state around `device`, offering
    /// [`features::offered`] less `withheld`.
    pub fn new(device: D, withheld: u64) -> Self {
        let n = device.num_queues().min(MAX_QUEUES);
        let queues = (0..n)
            .map(|q| Queue::new(device.queue_max_size(q)))
            .collect();
        Self {
            device,
            queues,
            status: 0,
            driver_features: 0,
            interrupt_status: 0,
            config_generation: 0,
            deferred_notify: 0,
            withheld,
            runnable: 0,
            #[cfg(test)]
            general_notify: false,
        }
    }

    /// The device model.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The device model, mutably.
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// The device status.
    pub fn status(&self) -> u32 {
        self.status
    }

    /// The interrupt status (bit 0 used buffers, bit 1 config change).
    pub fn interrupt_status(&self) -> u32 {
        self.interrupt_status
    }

    /// Clears the interrupt status bits in `bits` (an acknowledgement).
    pub fn ack_interrupt(&mut self, bits: u32) {
        self.interrupt_status &= !bits;
    }

    /// The configuration generation counter.
    pub fn config_generation(&self) -> u32 {
        self.config_generation
    }

    /// The features offered to the driver.
    pub fn offered_features(&self) -> u64 {
        features::offered(self.device.device_features()) & !self.withheld
    }

    /// The features the driver accepted (final once FEATURES_OK is set).
    pub fn driver_features(&self) -> u64 {
        self.driver_features
    }

    /// Number of queues.
    pub fn num_queues(&self) -> usize {
        self.queues.len()
    }

    /// Queue `q`, if it exists.
    pub fn queue(&self, q: usize) -> Option<&Queue> {
        self.queues.get(q)
    }

    /// Queue `q` if it exists and is not enabled (for the fields a
    /// driver may only write while the queue is off).
    pub fn queue_idle(&mut self, q: usize) -> Option<&mut Queue> {
        self.queues.get_mut(q).filter(|q| !q.ready())
    }

    /// Whether the device processes queues: DRIVER_OK set, neither
    /// DEVICE_NEEDS_RESET nor FAILED.
    pub fn running(&self) -> bool {
        self.status & STATUS_DRIVER_OK != 0
            && self.status & (STATUS_DEVICE_NEEDS_RESET | STATUS_FAILED) == 0
    }

    /// The driver writes 32 bits of its features: the low half (`sel` 0)
    /// or the high one (`sel` 1); ignored once FEATURES_OK is set or for
    /// another `sel`.
    pub fn write_driver_features(&mut self, sel: u32, value: u32) {
        if self.status & STATUS_FEATURES_OK == 0 && sel <= 1 {
            self.driver_features = set_half(self.driver_features, value, sel == 1);
        }
    }

    /// The driver enables (`value` 1) or disables (0) queue `q`; enabling
    /// checks the layout against `mem` (a bad one needs a reset). Other
    /// values, and enabling an enabled queue, are ignored.
    pub fn set_queue_ready<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        q: usize,
        value: u32,
        action: &mut TransportAction,
    ) {
        let Some(queue) = self.queues.get_mut(q) else {
            return;
        };
        if value == 0 {
            queue.disable();
        } else if value == 1 && !queue.ready() && queue.enable(mem).is_err() {
            self.needs_reset(action);
        }
        self.update_runnable();
    }

    /// Resets queue `q` on its own, if RING_RESET was negotiated.
    pub fn reset_queue(&mut self, q: usize) {
        let negotiated =
            self.status & STATUS_FEATURES_OK != 0 && self.driver_features & F_RING_RESET != 0;
        if !negotiated {
            return;
        }
        if let Some(queue) = self.queues.get_mut(q) {
            queue.reset();
            self.deferred_notify &= !(1 << q);
            self.device.queue_reset(q);
            self.update_runnable();
        }
    }

    /// The driver writes `value` to the device status.
    pub fn write_status<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        value: u32,
        action: &mut TransportAction,
    ) {
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
        self.update_runnable();
        if new & !old & STATUS_DRIVER_OK != 0 {
            self.device.activate(self.driver_features);
            let deferred = core::mem::take(&mut self.deferred_notify);
            for q in 0..self.queues.len() {
                if deferred & (1 << q) != 0 && self.running() && self.queues[q].ready() {
                    let a = self.run(mem, Some(q));
                    action.merge(a);
                }
            }
        }
    }

    /// The driver notified queue `q`: runs the device on it now (or
    /// remembers it until DRIVER_OK). An absent queue is ignored; a
    /// disabled one needs a reset.
    ///
    /// The common case first: a ready queue of a running device, one test
    /// of its bit in `runnable` (which holds exactly when the general
    /// checks below would all pass: same work, same result); any other
    /// notify takes those checks.
    #[inline]
    pub fn notify<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        q: usize,
        action: &mut TransportAction,
    ) {
        if q < MAX_QUEUES && self.runnable >> q & 1 != 0 && !self.general_notify() {
            debug_assert!(self.running() && self.queues[q].ready());
            let a = self.run(mem, Some(q));
            action.merge(a);
            return;
        }
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
        action.merge(a);
    }

    /// Tests: whether notifies take the general checks only.
    #[inline(always)]
    fn general_notify(&self) -> bool {
        #[cfg(test)]
        return self.general_notify;
        #[cfg(not(test))]
        false
    }

    /// Recomputes `runnable` from the status and the queues' readiness:
    /// called by every method that changes either.
    fn update_runnable(&mut self) {
        self.runnable = if self.running() {
            // At most MAX_QUEUES (64) queues: every shift is in range.
            self.queues
                .iter()
                .enumerate()
                .filter(|(_, q)| q.ready())
                .fold(0, |bits, (i, _)| bits | 1 << i)
        } else {
            0
        };
    }

    /// Tests: whether `runnable` is what the status and the queues say.
    #[cfg(test)]
    pub(crate) fn runnable_consistent(&self) -> bool {
        (0..MAX_QUEUES).all(|q| {
            let expected = self.running() && self.queues.get(q).is_some_and(Queue::ready);
            (self.runnable >> q & 1 != 0) == expected
        })
    }

    /// Lets the device fill its queues with what the hypervisor has to
    /// report (e.g. a fault on the virtio-iommu event queue).
    pub fn poll<M: GuestMemory + ?Sized>(&mut self, mem: &M) -> TransportAction {
        if !self.running() {
            return TransportAction::NONE;
        }
        self.run(mem, None)
    }

    /// The device configuration changed on the hypervisor's side: bumps
    /// the generation and notifies the driver (once DRIVER_OK is set).
    pub fn config_changed(&mut self) -> TransportAction {
        let mut action = TransportAction::NONE;
        self.signal_config_change(&mut action);
        action
    }

    /// Runs the device on notified queue `q`, or polls it.
    #[inline]
    fn run<M: GuestMemory + ?Sized>(&mut self, mem: &M, q: Option<usize>) -> TransportAction {
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
        self.update_runnable();
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

    /// Device reset (status 0): status, features, interrupt status, queues
    /// and the device model. The configuration generation keeps counting.
    pub fn reset(&mut self) {
        self.status = 0;
        self.driver_features = 0;
        self.interrupt_status = 0;
        self.deferred_notify = 0;
        for q in &mut self.queues {
            q.reset();
        }
        self.update_runnable();
        self.device.reset();
    }
}

/// `old` with its low (or, if `high`, its high) 32 bits replaced by `value`.
pub(crate) fn set_half(old: u64, value: u32, high: bool) -> u64 {
    if high {
        (old & 0xffff_ffff) | (u64::from(value) << 32)
    } else {
        (old & !0xffff_ffff) | u64::from(value)
    }
}

/// The low `width` bytes of `value`.
pub(crate) fn truncate(value: u64, width: usize) -> u64 {
    match width {
        1 => value & 0xff,
        2 => value & 0xffff,
        4 => value & 0xffff_ffff,
        _ => value,
    }
}
