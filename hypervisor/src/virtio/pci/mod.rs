//! The virtio-pci (modern, virtio 1.2 4.1) transport, emulated at EL2: one
//! PCI function with a type 0 header, vendor-specific capabilities that
//! place the virtio structures in its BAR 0, and the BAR's registers. The
//! virtual host bridge the function sits behind calls it through
//! [`PciFunction`]: configuration accesses, BAR accesses (routed by the
//! window [`PciFunction::bar`] reports), the INTx line. The layout is in
//! [`layout`].
//!
//! Device status, feature negotiation, queue enabling and notifications
//! follow the rules shared with virtio-mmio ([`TransportCore`]). What this
//! transport adds or differs in:
//!
//! - A notification is a 16- or 32-bit write at `NOTIFY_OFFSET + 4 * q`;
//!   the queue comes from the address (as QEMU), and the device handles it
//!   before the write returns, so a driver polling the used ring finds its
//!   requests complete. Nothing is processed while bus mastering is off in
//!   the command register (the device could not reach memory).
//! - Interrupts are INTx, level: asserted while the ISR is non-zero and
//!   INTx is not disabled in the command register. Reading the ISR clears
//!   it (and so deasserts the line). No MSI-X: both vector fields read
//!   NO_VECTOR.
//! - Not offered: RING_RESET (queue_reset), NOTIFICATION_DATA; their
//!   fields read 0 and ignore writes. `queue_enable` takes only 1 (the
//!   driver must not write 0).
//! - Common configuration fields take their natural width (64-bit queue
//!   addresses as two 32-bit halves or one 64-bit access); the ISR any
//!   width at its offset; device configuration aligned 8-, 16- and 32-bit
//!   accesses, handed to the device model. Anything else reads 0 and is
//!   ignored on write.
//! - Configuration space takes aligned 8-, 16- and 32-bit accesses below
//!   4 KiB. Writable: command (memory space, bus master, INTx disable),
//!   BAR 0 (64-bit, address bits only: all ones reads back the size
//!   mask), cache line size, interrupt line, and the PCI configuration
//!   access capability's `bar`, `offset`, `length` and `pci_cfg_data` (an
//!   access to the data does the access of `length` bytes at `offset` of
//!   BAR 0, memory decoding on or off).

pub mod layout;

use super::device::VirtioDevice;
use super::memory::GuestMemory;
use super::queue::Queue;
use super::transport::{TransportAction, TransportCore, set_half, truncate};
use crate::pci::config::{command, reg};
use crate::pci::function::{BarWindow, IntxChange, PciFunction};
use layout::*;
use virtio_defs::features::F_RING_RESET;

/// Status register bit: the INTx line is asserted (before the disable).
const STATUS_INTERRUPT: u16 = 1 << 3;
/// Status register bit: a capabilities list is present.
const STATUS_CAP_LIST: u16 = 1 << 4;
/// Command register bits the function implements.
const COMMAND_MASK: u16 = (command::MEMORY | command::BUS_MASTER | command::INTX_DISABLE) as u16;

/// A virtio device behind a virtio-pci function.
pub struct PciTransport<D: VirtioDevice> {
    core: TransportCore<D>,
    device_feature_select: u32,
    driver_feature_select: u32,
    queue_select: u16,
    /// The header and capabilities as bytes: fixed values, plus the fields
    /// kept here (cache line size, interrupt line, the PCI configuration
    /// access capability's fields). Command, status and BAR 0 are not.
    config: [u8; CONFIG_DEFINED],
    command: u16,
    /// BAR 0's low dword as written (address bits masked on read).
    bar0_low: u32,
    bar0_high: u32,
}

/// The region of BAR 0 an offset falls in, and the offset inside it.
enum Region {
    Common(u64),
    Isr(u64),
    Device(u64),
    Notify(u64),
}

impl Region {
    fn of(offset: u64) -> Option<Self> {
        let inside = offset % REGION_SIZE;
        match offset / REGION_SIZE {
            0 => Some(Self::Common(inside)),
            1 => Some(Self::Isr(inside)),
            2 => Some(Self::Device(inside)),
            3 => Some(Self::Notify(inside)),
            _ => None,
        }
    }
}

/// Whether a `width`-byte access at `offset` is naturally aligned, of a
/// width in `widths`, and ends by `limit`.
fn access_ok(offset: u64, width: usize, widths: &[usize], limit: u64) -> bool {
    widths.contains(&width)
        && offset.is_multiple_of(width as u64)
        && offset
            .checked_add(width as u64)
            .is_some_and(|end| end <= limit)
}

impl<D: VirtioDevice> PciTransport<D> {
    /// A function in reset state around `device`: decoding off, BAR 0 at 0.
    pub fn new(device: D) -> Self {
        let core = TransportCore::new(device, F_RING_RESET);
        let config = Self::initial_config(&core);
        Self {
            core,
            device_feature_select: 0,
            driver_feature_select: 0,
            queue_select: 0,
            config,
            command: 0,
            bar0_low: 0,
            bar0_high: 0,
        }
    }

    /// The header and capability bytes after reset.
    fn initial_config(core: &TransportCore<D>) -> [u8; CONFIG_DEFINED] {
        let mut c = [0u8; CONFIG_DEFINED];
        let mut put = |off: u16, bytes: &[u8]| {
            let off = usize::from(off);
            c[off..off + bytes.len()].copy_from_slice(bytes);
        };
        let device_id = DEVICE_ID_BASE.wrapping_add(core.device().device_id() as u16);
        put(reg::ID, &VENDOR_ID.to_le_bytes());
        put(reg::ID + 2, &device_id.to_le_bytes());
        put(
            reg::CLASS,
            &(CLASS_CODE << 8 | u32::from(REVISION)).to_le_bytes(),
        );
        put(0x2c, &SUBSYSTEM_VENDOR_ID.to_le_bytes());
        put(0x2e, &SUBSYSTEM_ID.to_le_bytes());
        put(0x34, &[CAP_FIRST as u8]);
        put(reg::INTERRUPT + 1, &[INTERRUPT_PIN]);
        let notify_len = (core.num_queues().max(1) as u32) * NOTIFY_OFF_MULTIPLIER;
        let caps: [(u16, u16, u8, u64, u32); 5] = [
            (
                CAP_COMMON,
                CAP_NOTIFY,
                CAP_COMMON_CFG,
                COMMON_OFFSET,
                REGION_SIZE as u32,
            ),
            (
                CAP_NOTIFY,
                CAP_ISR,
                CAP_NOTIFY_CFG,
                NOTIFY_OFFSET,
                notify_len,
            ),
            (
                CAP_ISR,
                CAP_DEVICE,
                CAP_ISR_CFG,
                ISR_OFFSET,
                REGION_SIZE as u32,
            ),
            (
                CAP_DEVICE,
                CAP_PCI,
                CAP_DEVICE_CFG,
                DEVICE_OFFSET,
                REGION_SIZE as u32,
            ),
            (CAP_PCI, 0, CAP_PCI_CFG, 0, 0),
        ];
        for (at, next, cfg_type, offset, length) in caps {
            let len = match cfg_type {
                CAP_NOTIFY_CFG | CAP_PCI_CFG => cap::SIZE_EXTENDED,
                _ => cap::SIZE,
            };
            put(at + cap::VNDR, &[CAP_ID_VNDR, next as u8, len, cfg_type, 0]);
            put(at + cap::OFFSET, &(offset as u32).to_le_bytes());
            put(at + cap::LENGTH, &length.to_le_bytes());
        }
        put(
            CAP_NOTIFY + cap::NOTIFY_OFF_MULTIPLIER,
            &NOTIFY_OFF_MULTIPLIER.to_le_bytes(),
        );
        c
    }

    /// The device model.
    pub fn device(&self) -> &D {
        self.core.device()
    }

    /// The device model, mutably (to hand it events before a [`poll`](Self::poll)).
    pub fn device_mut(&mut self) -> &mut D {
        self.core.device_mut()
    }

    /// The device status.
    pub fn status(&self) -> u32 {
        self.core.status()
    }

    /// Whether the device processes queues.
    pub fn running(&self) -> bool {
        self.core.running()
    }

    /// The features offered to the driver.
    pub fn offered_features(&self) -> u64 {
        self.core.offered_features()
    }

    /// The features the driver accepted.
    pub fn driver_features(&self) -> u64 {
        self.core.driver_features()
    }

    /// Queue `q`, if it exists.
    pub fn queue(&self, q: usize) -> Option<&Queue> {
        self.core.queue(q)
    }

    /// The ISR status, without clearing it.
    pub fn isr(&self) -> u8 {
        self.core.interrupt_status() as u8
    }

    /// The command register.
    pub fn command(&self) -> u16 {
        self.command
    }

    /// Where BAR 0 is while memory decoding is on.
    pub fn bar0(&self) -> Option<u64> {
        (self.command & command::MEMORY as u16 != 0).then(|| self.bar0_address())
    }

    /// BAR 0's programmed address (whether decoded or not).
    fn bar0_address(&self) -> u64 {
        u64::from(self.bar0_high) << 32 | u64::from(self.bar0_low) & !(BAR0_SIZE - 1)
    }

    /// Whether the device may reach guest memory (bus mastering on).
    fn bus_master(&self) -> bool {
        self.command & command::BUS_MASTER as u16 != 0
    }

    /// Lets the device fill its queues with what the hypervisor has to
    /// report (e.g. a fault on the virtio-iommu event queue).
    pub fn poll<M: GuestMemory + ?Sized>(&mut self, mem: &M) -> IntxChange {
        let before = self.intx();
        if self.bus_master() {
            self.core.poll(mem);
        }
        IntxChange::between(before, self.intx())
    }

    /// A configuration-space write over guest RAM of type `M` (the
    /// [`PciFunction`] form takes `&dyn GuestMemory`; a caller that knows
    /// the type gets the queue work compiled for it).
    pub fn config_write_in<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        offset: u16,
        width: u8,
        value: u32,
    ) -> IntxChange {
        let before = self.intx();
        self.write_config(mem, offset, width, value);
        IntxChange::between(before, self.intx())
    }

    /// A write to BAR `index` over guest RAM of type `M` (see
    /// [`Self::config_write_in`]): a notify runs the queue work inlined.
    pub fn bar_write_in<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        index: u8,
        offset: u64,
        width: usize,
        value: u64,
    ) -> IntxChange {
        if index != 0 {
            return IntxChange::Unchanged;
        }
        let before = self.intx();
        self.write_bar0(mem, offset, width, value);
        IntxChange::between(before, self.intx())
    }

    /// The device configuration changed on the hypervisor's side.
    pub fn config_changed(&mut self) -> IntxChange {
        let before = self.intx();
        self.core.config_changed();
        IntxChange::between(before, self.intx())
    }

    // ---- configuration space ----

    /// The dword of configuration space at `at` (a multiple of 4).
    fn config_dword(&self, at: u16) -> u32 {
        match at {
            reg::COMMAND => {
                let mut status = STATUS_CAP_LIST;
                if self.core.interrupt_status() != 0 {
                    status |= STATUS_INTERRUPT;
                }
                u32::from(self.command) | u32::from(status) << 16
            }
            reg::BAR0 => self.bar0_low & !(BAR0_SIZE as u32 - 1) | BAR0_FLAGS,
            0x14 => self.bar0_high,
            _ => match self.config.get(usize::from(at)..usize::from(at) + 4) {
                Some(b) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                None => 0,
            },
        }
    }

    /// Writes byte `b` at configuration offset `at`, where writable.
    fn config_write_byte(&mut self, at: u16, b: u8) {
        let shift_in = |word: u32, lane: u16| {
            let s = 8 * u32::from(lane);
            word & !(0xff << s) | u32::from(b) << s
        };
        match at {
            0x04 | 0x05 => {
                let word = shift_in(u32::from(self.command), at - 0x04) as u16;
                self.command = word & COMMAND_MASK;
            }
            0x10..=0x13 => self.bar0_low = shift_in(self.bar0_low, at - 0x10),
            0x14..=0x17 => self.bar0_high = shift_in(self.bar0_high, at - 0x14),
            // Cache line size and interrupt line: scratch for software.
            0x0c | 0x3c => self.config[usize::from(at)] = b,
            _ if Self::pci_cfg_writable(at) => self.config[usize::from(at)] = b,
            _ => {}
        }
    }

    /// Whether `at` is a writable byte of the PCI configuration access
    /// capability (`bar`, `offset`, `length`, `pci_cfg_data`).
    fn pci_cfg_writable(at: u16) -> bool {
        at == CAP_PCI + cap::BAR || (CAP_PCI + cap::OFFSET..CAP_END).contains(&at)
    }

    /// The PCI configuration access capability's BAR access, if its fields
    /// describe a valid one: (offset in BAR 0, width).
    fn pci_cfg_target(&self) -> Option<(u64, usize)> {
        let word = |off: u16| self.config_dword(CAP_PCI + off);
        let bar = self.config[usize::from(CAP_PCI + cap::BAR)];
        let offset = u64::from(word(cap::OFFSET));
        let width = word(cap::LENGTH) as usize;
        (bar == 0 && access_ok(offset, width, &[1, 2, 4], BAR0_SIZE)).then_some((offset, width))
    }

    fn read_config(&mut self, offset: u16, width: u8) -> u32 {
        let (off, w) = (u64::from(offset), usize::from(width));
        if !access_ok(off, w, &[1, 2, 4], u64::from(CONFIG_SIZE)) {
            return 0;
        }
        let data = u64::from(CAP_PCI_DATA)..u64::from(CAP_END);
        if off < data.end
            && off + w as u64 > data.start
            && let Some((bar_off, bar_w)) = self.pci_cfg_target()
        {
            let value = self.read_bar0(bar_off, bar_w) as u32;
            let at = usize::from(CAP_PCI_DATA);
            self.config[at..at + 4].copy_from_slice(&value.to_le_bytes());
        }
        let dword = self.config_dword(offset & !3);
        truncate(u64::from(dword >> (8 * (offset & 3))), w) as u32
    }

    fn write_config<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        offset: u16,
        width: u8,
        value: u32,
    ) {
        let (off, w) = (u64::from(offset), usize::from(width));
        if !access_ok(off, w, &[1, 2, 4], u64::from(CONFIG_SIZE)) {
            return;
        }
        for (i, b) in value.to_le_bytes().iter().take(w).enumerate() {
            self.config_write_byte(offset + i as u16, *b);
        }
        let data = u64::from(CAP_PCI_DATA)..u64::from(CAP_END);
        if off < data.end
            && off + w as u64 > data.start
            && let Some((bar_off, bar_w)) = self.pci_cfg_target()
        {
            let value = self.config_dword(CAP_PCI_DATA);
            self.write_bar0(mem, bar_off, bar_w, truncate(u64::from(value), bar_w));
        }
    }

    // ---- BAR 0 ----

    fn read_bar0(&mut self, offset: u64, width: usize) -> u64 {
        if !access_ok(offset, width, &[1, 2, 4, 8], BAR0_SIZE) {
            return 0;
        }
        match Region::of(offset) {
            Some(Region::Common(off)) => self.read_common(off, width),
            Some(Region::Isr(0)) => {
                let isr = self.core.interrupt_status();
                self.core.ack_interrupt(isr);
                u64::from(isr)
            }
            Some(Region::Device(off)) if width != 8 => {
                truncate(self.core.device().config_read(off, width), width)
            }
            _ => 0,
        }
    }

    fn write_bar0<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        offset: u64,
        width: usize,
        value: u64,
    ) {
        // The request path first: a queue notify (2 or 4 bytes, aligned to
        // the multiplier, inside the notification region), then the rest.
        let mult = u64::from(NOTIFY_OFF_MULTIPLIER);
        let notify = offset.wrapping_sub(NOTIFY_OFFSET);
        if notify < REGION_SIZE && matches!(width, 2 | 4) && notify.is_multiple_of(mult) {
            if self.bus_master() {
                let mut action = TransportAction::NONE;
                self.core.notify(mem, (notify / mult) as usize, &mut action);
            }
            return;
        }
        if !access_ok(offset, width, &[1, 2, 4, 8], BAR0_SIZE) {
            return;
        }
        match Region::of(offset) {
            Some(Region::Common(off)) => self.write_common(mem, off, width, value),
            Some(Region::Device(off)) if width != 8 => {
                self.core
                    .device_mut()
                    .config_write(off, width, truncate(value, width));
            }
            Some(Region::Notify(off)) => {
                let mult = u64::from(NOTIFY_OFF_MULTIPLIER);
                if matches!(width, 2 | 4) && off.is_multiple_of(mult) && self.bus_master() {
                    let mut action = TransportAction::NONE;
                    self.core.notify(mem, (off / mult) as usize, &mut action);
                }
            }
            _ => {}
        }
    }

    /// The selected queue, if it exists.
    fn selected(&self) -> Option<&Queue> {
        self.core.queue(usize::from(self.queue_select))
    }

    fn read_common(&self, off: u64, width: usize) -> u64 {
        use common::*;
        let q = self.selected();
        match (off, width) {
            (DEVICE_FEATURE_SELECT, 4) => u64::from(self.device_feature_select),
            (DEVICE_FEATURE, 4) => match self.device_feature_select {
                0 => self.offered_features() & 0xffff_ffff,
                1 => self.offered_features() >> 32,
                _ => 0,
            },
            (DRIVER_FEATURE_SELECT, 4) => u64::from(self.driver_feature_select),
            (DRIVER_FEATURE, 4) => match self.driver_feature_select {
                0 => self.driver_features() & 0xffff_ffff,
                1 => self.driver_features() >> 32,
                _ => 0,
            },
            (CONFIG_MSIX_VECTOR, 2) | (QUEUE_MSIX_VECTOR, 2) => u64::from(NO_VECTOR),
            (NUM_QUEUES, 2) => self.core.num_queues() as u64,
            (DEVICE_STATUS, 1) => u64::from(self.core.status() & 0xff),
            (CONFIG_GENERATION, 1) => u64::from(self.core.config_generation() & 0xff),
            (QUEUE_SELECT, 2) => u64::from(self.queue_select),
            // A queue that does not exist has size 0.
            (QUEUE_SIZE, 2) => q.map_or(0, |q| u64::from(q.size() & 0xffff)),
            (QUEUE_ENABLE, 2) => q.map_or(0, |q| u64::from(q.ready())),
            (QUEUE_NOTIFY_OFF, 2) => q.map_or(0, |_| u64::from(self.queue_select)),
            (QUEUE_DESC | QUEUE_DRIVER | QUEUE_DEVICE, 4 | 8) | (0x24 | 0x2c | 0x34, 4) => {
                let field = off & !7;
                let addr = q.map_or(0, |q| match field {
                    QUEUE_DESC => q.desc_addr(),
                    QUEUE_DRIVER => q.avail_addr(),
                    _ => q.used_addr(),
                });
                if width == 8 {
                    addr
                } else if off == field {
                    addr & 0xffff_ffff
                } else {
                    addr >> 32
                }
            }
            _ => 0,
        }
    }

    fn write_common<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        off: u64,
        width: usize,
        value: u64,
    ) {
        use common::*;
        let q = usize::from(self.queue_select);
        let v32 = value as u32;
        match (off, width) {
            (DEVICE_FEATURE_SELECT, 4) => self.device_feature_select = v32,
            (DRIVER_FEATURE_SELECT, 4) => self.driver_feature_select = v32,
            (DRIVER_FEATURE, 4) => self
                .core
                .write_driver_features(self.driver_feature_select, v32),
            (DEVICE_STATUS, 1) => {
                if value == 0 {
                    self.reset_device();
                } else {
                    let mut action = TransportAction::NONE;
                    self.core.write_status(mem, v32, &mut action);
                }
            }
            (QUEUE_SELECT, 2) => self.queue_select = value as u16,
            (QUEUE_SIZE, 2) => {
                if let Some(queue) = self.core.queue_idle(q) {
                    queue.set_size(v32);
                }
            }
            (QUEUE_ENABLE, 2) if value == 1 => {
                let mut action = TransportAction::NONE;
                self.core.set_queue_ready(mem, q, 1, &mut action);
            }
            (QUEUE_DESC | QUEUE_DRIVER | QUEUE_DEVICE, 4 | 8) | (0x24 | 0x2c | 0x34, 4) => {
                let Some(queue) = self.core.queue_idle(q) else {
                    return;
                };
                let field = off & !7;
                let old = match field {
                    QUEUE_DESC => queue.desc_addr(),
                    QUEUE_DRIVER => queue.avail_addr(),
                    _ => queue.used_addr(),
                };
                let new = if width == 8 {
                    value
                } else {
                    set_half(old, v32, off != field)
                };
                match field {
                    QUEUE_DESC => queue.set_desc_addr(new),
                    QUEUE_DRIVER => queue.set_avail_addr(new),
                    _ => queue.set_used_addr(new),
                }
            }
            _ => {}
        }
    }

    /// Device reset (device_status = 0): the common configuration's
    /// selectors, the queues, ISR and the device model; the PCI side
    /// (command, BARs) stays.
    fn reset_device(&mut self) {
        self.device_feature_select = 0;
        self.driver_feature_select = 0;
        self.queue_select = 0;
        self.core.reset();
    }
}

impl<D: VirtioDevice> PciFunction for PciTransport<D> {
    fn config_read(&mut self, offset: u16, width: u8) -> (u32, IntxChange) {
        let before = self.intx();
        let value = self.read_config(offset, width);
        (value, IntxChange::between(before, self.intx()))
    }

    fn config_write(
        &mut self,
        mem: &dyn GuestMemory,
        offset: u16,
        width: u8,
        value: u32,
    ) -> IntxChange {
        self.config_write_in(mem, offset, width, value)
    }

    fn bar(&self, index: u8) -> Option<BarWindow> {
        let addr = self.bar0().filter(|_| index == 0)?;
        Some(BarWindow {
            addr,
            size: BAR0_SIZE,
        })
    }

    fn bar_read(&mut self, index: u8, offset: u64, width: usize) -> (u64, IntxChange) {
        if index != 0 {
            return (0, IntxChange::Unchanged);
        }
        let before = self.intx();
        let value = self.read_bar0(offset, width);
        (value, IntxChange::between(before, self.intx()))
    }

    fn bar_write(
        &mut self,
        mem: &dyn GuestMemory,
        index: u8,
        offset: u64,
        width: usize,
        value: u64,
    ) -> IntxChange {
        self.bar_write_in(mem, index, offset, width, value)
    }

    fn intx(&self) -> bool {
        self.core.interrupt_status() != 0 && self.command & command::INTX_DISABLE as u16 == 0
    }

    fn reset(&mut self) -> IntxChange {
        let before = self.intx();
        self.reset_device();
        self.config = Self::initial_config(&self.core);
        self.command = 0;
        self.bar0_low = 0;
        self.bar0_high = 0;
        IntxChange::between(before, self.intx())
    }
}
