//! The virtio-pci transport as a guest sees it: the capability list walked
//! and checked as Linux's `virtio_pci_modern_probe` and
//! `vp_modern_map_capability` do, BAR sizing and placement, the command
//! register, the driver handshake through the common configuration, the
//! echo device and the real virtio-iommu driven through a notification,
//! ISR read-to-clear and the INTx line, reset, the configuration access
//! window, and a seeded fuzz of every access.

use alloc::vec;

use super::fake::{BUF_BASE, ECHO_F_UPPER, ECHO_ID, ECHO_QMAX, Echo, RAM_BASE, RAM_SIZE, Ring};
use crate::pci::config::{command, reg};
use crate::pci::function::{IntxChange, PciFunction};
use crate::viommu::device::ViommuDevice;
use crate::viommu::fake::{FakeBackend, MemKind, Region};
use crate::viommu::model::{Viommu, ViommuConfig};
use crate::viommu::wire::Status;
use crate::viommu::wire::request::{Attach, Map, MapFlags, Request, Unmap};
use crate::virtio::device::VirtioDevice;
use crate::virtio::features::{F_RING_RESET, F_VERSION_1};
use crate::virtio::memory::{GuestMemory, VecMemory};
use crate::virtio::mmio::regs::{
    STATUS_ACKNOWLEDGE, STATUS_DEVICE_NEEDS_RESET, STATUS_DRIVER, STATUS_DRIVER_OK,
    STATUS_FEATURES_OK,
};
use crate::virtio::pci::PciTransport;
use crate::virtio::pci::layout::{self, BAR0_SIZE, cap, common};

/// Where the guest places BAR 0.
const BAR_ADDR: u64 = 0x80_1000_0000;

/// Where a driver found one virtio structure: (offset in BAR 0, length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Found {
    offset: u64,
    length: u64,
}

/// The structures a driver maps, plus the notification multiplier.
#[derive(Debug)]
struct Probe {
    common: Found,
    notify: Found,
    isr: Found,
    device: Found,
    pci_cfg: u16,
    multiplier: u32,
}

/// A guest driver: the function, its RAM, and accessors.
struct Drv<D: VirtioDevice> {
    mem: VecMemory,
    f: PciTransport<D>,
}

impl<D: VirtioDevice> Drv<D> {
    fn new(dev: D) -> Self {
        Self {
            mem: VecMemory::new(RAM_BASE, RAM_SIZE),
            f: PciTransport::new(dev),
        }
    }

    fn cfg(&mut self, off: u16, width: u8) -> u32 {
        self.f.config_read(off, width).0
    }

    fn set_cfg(&mut self, off: u16, width: u8, v: u32) -> IntxChange {
        self.f.config_write(&self.mem, off, width, v)
    }

    fn rd(&mut self, off: u64, width: usize) -> u64 {
        self.f.bar_read(0, off, width).0
    }

    fn wr(&mut self, off: u64, width: usize, v: u64) -> IntxChange {
        self.f.bar_write(&self.mem, 0, off, width, v)
    }

    /// Sizes BAR 0 as Linux's `__pci_read_base` does: returns its size and
    /// leaves it at `BAR_ADDR` with memory decoding and bus mastering on.
    fn place_bar(&mut self) -> u64 {
        let lo = self.cfg(reg::BAR0, 4);
        let hi = self.cfg(reg::BAR0 + 4, 4);
        self.set_cfg(reg::BAR0, 4, !0);
        self.set_cfg(reg::BAR0 + 4, 4, !0);
        let mask =
            u64::from(self.cfg(reg::BAR0, 4) & !0xf) | u64::from(self.cfg(reg::BAR0 + 4, 4)) << 32;
        self.set_cfg(reg::BAR0, 4, lo);
        self.set_cfg(reg::BAR0 + 4, 4, hi);
        self.set_cfg(reg::BAR0, 4, BAR_ADDR as u32);
        self.set_cfg(reg::BAR0 + 4, 4, (BAR_ADDR >> 32) as u32);
        self.set_cfg(reg::COMMAND, 2, command::MEMORY | command::BUS_MASTER);
        (!mask).wrapping_add(1)
    }

    /// Walks the capability list as `virtio_pci_find_capability` and
    /// `vp_modern_map_capability` do, with their checks.
    fn probe(&mut self) -> Probe {
        let id = self.cfg(reg::ID, 4);
        assert_eq!(id & 0xffff, u32::from(layout::VENDOR_ID));
        let device = id >> 16;
        // Linux takes 0x1040..=0x107f; the echo device's type (0x7e) is not
        // a registered one and lands above.
        assert!(device >= 0x1040, "modern device ID");
        assert!(self.cfg(reg::CLASS, 1) >= 1, "revision");
        assert_ne!(self.cfg(0x06, 2) & (1 << 4), 0, "capabilities list");
        let bar_size = BAR0_SIZE;
        let mut found: [Option<(u16, Found)>; 6] = [None; 6];
        let mut at = (self.cfg(0x34, 1) & !3) as u16;
        let mut hops = 0;
        while at != 0 {
            hops += 1;
            assert!(hops < 48, "capability loop");
            assert!((0x40..0x100).contains(&at), "capability at {at:#x}");
            let vndr = self.cfg(at + cap::VNDR, 1) as u8;
            let next = (self.cfg(at + cap::NEXT, 1) & !3) as u16;
            if vndr == layout::CAP_ID_VNDR {
                let len = self.cfg(at + cap::LEN, 1) as u8;
                let cfg_type = self.cfg(at + cap::CFG_TYPE, 1) as u8;
                let bar = self.cfg(at + cap::BAR, 1) as u8;
                let offset = u64::from(self.cfg(at + cap::OFFSET, 4));
                let length = u64::from(self.cfg(at + cap::LENGTH, 4));
                assert!(len >= cap::SIZE);
                assert!(bar <= 5);
                if cfg_type as usize <= 5 && found[cfg_type as usize].is_none() {
                    found[cfg_type as usize] = Some((at, Found { offset, length }));
                }
            }
            at = next;
        }
        // (cfg_type, minlen, align): as virtio_pci_modern_probe asks.
        let checks = [
            (layout::CAP_COMMON_CFG, common::SIZE, 4),
            (layout::CAP_ISR_CFG, 1, 1),
            (layout::CAP_NOTIFY_CFG, 2, 2),
            (layout::CAP_DEVICE_CFG, 0, 4),
        ];
        for (t, minlen, align) in checks {
            let (at, f) = found[t as usize].unwrap_or_else(|| panic!("cfg_type {t} missing"));
            assert_eq!(self.cfg(at + cap::BAR, 1), 0);
            assert!(f.length >= minlen, "cfg_type {t} too short");
            assert!(f.offset.is_multiple_of(align), "cfg_type {t} misaligned");
            assert!(f.offset + minlen <= bar_size, "cfg_type {t} outside BAR 0");
            assert!(
                f.offset + f.length <= bar_size,
                "cfg_type {t} outside BAR 0"
            );
        }
        let notify_at = found[2].unwrap().0;
        assert_eq!(self.cfg(notify_at + cap::LEN, 1) as u8, cap::SIZE_EXTENDED);
        let multiplier = self.cfg(notify_at + cap::NOTIFY_OFF_MULTIPLIER, 4);
        let pci_cfg = found[5].expect("PCI_CFG capability").0;
        assert_eq!(self.cfg(pci_cfg + cap::LEN, 1) as u8, cap::SIZE_EXTENDED);
        Probe {
            common: found[1].unwrap().1,
            notify: found[2].unwrap().1,
            isr: found[3].unwrap().1,
            device: found[4].unwrap().1,
            pci_cfg,
            multiplier,
        }
    }

    fn status(&mut self) -> u32 {
        self.rd(common::DEVICE_STATUS, 1) as u32
    }

    fn add_status(&mut self, bits: u32) -> IntxChange {
        let s = self.status();
        self.wr(common::DEVICE_STATUS, 1, u64::from(s | bits))
    }

    /// Reset, ACKNOWLEDGE, DRIVER, features `f`, FEATURES_OK: whether it
    /// stuck.
    fn negotiate(&mut self, f: u64) -> bool {
        self.wr(common::DEVICE_STATUS, 1, 0);
        assert_eq!(self.status(), 0);
        self.add_status(STATUS_ACKNOWLEDGE);
        self.add_status(STATUS_DRIVER);
        for sel in 0..2u64 {
            self.wr(common::DRIVER_FEATURE_SELECT, 4, sel);
            self.wr(common::DRIVER_FEATURE, 4, (f >> (32 * sel)) & 0xffff_ffff);
        }
        self.add_status(STATUS_FEATURES_OK);
        self.status() & STATUS_FEATURES_OK != 0
    }

    /// The device's features, both halves.
    fn device_features(&mut self) -> u64 {
        let mut f = 0;
        for sel in 0..2u64 {
            self.wr(common::DEVICE_FEATURE_SELECT, 4, sel);
            f |= self.rd(common::DEVICE_FEATURE, 4) << (32 * sel);
        }
        f
    }

    /// Programs queue `q` as `vp_modern_*` does (two-part 64-bit writes)
    /// and enables it.
    fn setup_queue(&mut self, q: u16, ring: &Ring) {
        self.wr(common::QUEUE_SELECT, 2, u64::from(q));
        assert!(self.rd(common::QUEUE_SIZE, 2) >= u64::from(ring.size));
        assert_eq!(self.rd(common::QUEUE_ENABLE, 2), 0);
        self.wr(common::QUEUE_SIZE, 2, u64::from(ring.size));
        for (field, addr) in [
            (common::QUEUE_DESC, ring.desc),
            (common::QUEUE_DRIVER, ring.avail),
            (common::QUEUE_DEVICE, ring.used),
        ] {
            self.wr(field, 4, addr & 0xffff_ffff);
            self.wr(field + 4, 4, addr >> 32);
        }
        self.wr(common::QUEUE_ENABLE, 2, 1);
        assert_eq!(self.rd(common::QUEUE_ENABLE, 2), 1);
    }

    /// Notifies queue `q` at its notification address.
    fn kick(&mut self, p: &Probe, q: u16) -> IntxChange {
        self.wr(common::QUEUE_SELECT, 2, u64::from(q));
        let off = self.rd(common::QUEUE_NOTIFY_OFF, 2);
        let at = off * u64::from(p.multiplier);
        assert!(at + 2 <= p.notify.length);
        self.wr(p.notify.offset + at, 2, u64::from(q))
    }

    /// Reads (and so clears) the ISR.
    fn isr(&mut self, p: &Probe) -> (u64, IntxChange) {
        self.f.bar_read(0, p.isr.offset, 1)
    }
}

/// Places the BAR, probes, negotiates VERSION_1 | `f` and sets up both
/// echo queues: the two rings and the probe.
fn echo_ready(f: u64) -> (Drv<Echo>, Probe, Ring, Ring) {
    let mut d = Drv::new(Echo::default());
    assert_eq!(d.place_bar(), BAR0_SIZE);
    let p = d.probe();
    assert!(d.negotiate(F_VERSION_1 | f));
    let r0 = Ring::new(super::fake::ring_base(0), 8);
    let r1 = Ring::new(super::fake::ring_base(1), 8);
    d.setup_queue(0, &r0);
    d.setup_queue(1, &r1);
    d.add_status(STATUS_DRIVER_OK);
    assert!(d.f.running());
    (d, p, r0, r1)
}

/// Queues an echo request of `data` with a response buffer at `resp`.
fn echo_request(mem: &VecMemory, ring: &mut Ring, first: u16, data: &[u8], resp: u64) {
    let req = BUF_BASE + 0x1000 * u64::from(first);
    mem.write(req, data).unwrap();
    let head = ring.chain(
        mem,
        first,
        &[(req, data.len() as u32, false), (resp, 16, true)],
    );
    ring.publish(mem, head);
}

#[test]
fn header_identifies_a_modern_virtio_function() {
    let mut d = Drv::new(Echo::default());
    assert_eq!(d.cfg(reg::ID, 2), 0x1af4);
    assert_eq!(d.cfg(reg::ID + 2, 2), 0x1040 + ECHO_ID);
    assert_eq!(d.cfg(reg::CLASS, 4), layout::CLASS_CODE << 8 | 1);
    assert_eq!(d.cfg(0x0e, 1), 0, "type 0 header, single function");
    assert_eq!(d.cfg(0x2c, 4), 0x1100 << 16 | 0x1af4);
    assert_eq!(d.cfg(0x3d, 1), 1, "INTA");
    assert_eq!(d.cfg(0x30, 4), 0, "no expansion ROM");
    assert_eq!(d.cfg(reg::COMMAND, 2), 0);
    assert_eq!(d.cfg(0x06, 2), 1 << 4);
    // Other BARs are not implemented; extended space is empty.
    for bar in 2..6u16 {
        d.set_cfg(reg::BAR0 + 4 * bar, 4, !0);
        assert_eq!(d.cfg(reg::BAR0 + 4 * bar, 4), 0);
    }
    assert_eq!(d.cfg(0x100, 4), 0);
    assert_eq!(d.cfg(0xffc, 4), 0);
    // Bad widths and alignments.
    assert_eq!(d.cfg(0x01, 2), 0);
    assert_eq!(d.cfg(0x00, 3), 0);
    assert_eq!(d.cfg(0x1000, 1), 0);
    assert_eq!(d.cfg(0xfffe, 4), 0);
    // The virtio-iommu's device ID.
    let mut d = Drv::new(viommu_device());
    assert_eq!(d.cfg(reg::ID, 4), 0x1057 << 16 | 0x1af4);
}

#[test]
fn capabilities_pass_linux_checks() {
    let mut d = Drv::new(Echo::default());
    d.place_bar();
    let p = d.probe();
    assert_eq!(
        p.common,
        Found {
            offset: 0,
            length: 0x1000
        }
    );
    assert_eq!(
        p.isr,
        Found {
            offset: 0x1000,
            length: 0x1000
        }
    );
    assert_eq!(
        p.device,
        Found {
            offset: 0x2000,
            length: 0x1000
        }
    );
    assert_eq!(
        p.notify,
        Found {
            offset: 0x3000,
            length: 8
        }
    );
    assert_eq!(p.multiplier, 4);
    assert_eq!(p.pci_cfg, layout::CAP_PCI);
    // Every queue's notification address lies inside the notify region.
    let n = d.rd(common::NUM_QUEUES, 2);
    assert_eq!(n, 2);
    for q in 0..n {
        d.wr(common::QUEUE_SELECT, 2, q);
        let off = d.rd(common::QUEUE_NOTIFY_OFF, 2) * u64::from(p.multiplier);
        assert!(off + 2 <= p.notify.length);
    }
    // The capability bytes are read-only except the PCI_CFG fields.
    let before = d.cfg(layout::CAP_COMMON, 4);
    d.set_cfg(layout::CAP_COMMON, 4, 0);
    d.set_cfg(layout::CAP_COMMON + cap::OFFSET, 4, 0x1234);
    assert_eq!(d.cfg(layout::CAP_COMMON, 4), before);
    assert_eq!(d.cfg(layout::CAP_COMMON + cap::OFFSET, 4), 0);
}

#[test]
fn bar_sizing_placement_and_decoding() {
    let mut d = Drv::new(Echo::default());
    assert_eq!(d.cfg(reg::BAR0, 4), 0b1100, "64-bit prefetchable memory");
    d.set_cfg(reg::BAR0, 4, !0);
    assert_eq!(d.cfg(reg::BAR0, 4), !(BAR0_SIZE as u32 - 1) | 0b1100);
    d.set_cfg(reg::BAR0 + 4, 4, !0);
    assert_eq!(d.cfg(reg::BAR0 + 4, 4), !0);
    d.set_cfg(reg::BAR0, 4, 0x1234_5fff);
    d.set_cfg(reg::BAR0 + 4, 4, 0x80);
    assert_eq!(d.cfg(reg::BAR0, 4), 0x1234_400c);
    // Not decoding until memory space is enabled.
    assert_eq!(d.f.bar0(), None);
    assert_eq!(d.f.bar(0), None);
    d.set_cfg(reg::COMMAND, 2, command::MEMORY | command::IO | 1 << 8);
    assert_eq!(
        d.cfg(reg::COMMAND, 2),
        command::MEMORY,
        "only implemented bits"
    );
    assert_eq!(d.f.bar0(), Some(0x80_1234_4000));
    let w = d.f.bar(0).unwrap();
    assert_eq!((w.addr, w.size), (0x80_1234_4000, BAR0_SIZE));
    assert_eq!(d.f.bar(1), None);
    assert_eq!(d.f.bar(2), None);
    // Byte writes of the BAR merge.
    d.set_cfg(reg::BAR0 + 3, 1, 0x56);
    assert_eq!(d.f.bar0(), Some(0x80_5634_4000));
    d.set_cfg(reg::COMMAND, 2, 0);
    assert_eq!(d.f.bar0(), None);
    // A conventional reset clears the BAR and the command register.
    d.set_cfg(reg::COMMAND, 2, command::MEMORY);
    d.f.reset();
    assert_eq!(d.f.bar0(), None);
    assert_eq!(d.cfg(reg::BAR0, 4), 0b1100);
    assert_eq!(d.cfg(reg::BAR0 + 4, 4), 0);
}

#[test]
fn handshake_and_echo_through_the_notify_region() {
    let (mut d, p, mut r0, _) = echo_ready(ECHO_F_UPPER);
    // No RING_RESET, no notification data, no MSI-X.
    let offered = d.device_features();
    assert_eq!(offered & F_RING_RESET, 0);
    assert_eq!(offered & (1 << 38), 0);
    assert_eq!(offered & F_VERSION_1, F_VERSION_1);
    assert_eq!(d.rd(common::CONFIG_MSIX_VECTOR, 2), 0xffff);
    d.wr(common::CONFIG_MSIX_VECTOR, 2, 0);
    assert_eq!(d.rd(common::CONFIG_MSIX_VECTOR, 2), 0xffff);
    assert_eq!(d.rd(common::QUEUE_MSIX_VECTOR, 2), 0xffff);
    assert_eq!(d.rd(common::QUEUE_RESET, 2), 0);
    assert_eq!(d.rd(common::QUEUE_NOTIFY_DATA, 2), 0);
    assert_eq!(d.f.device().activated, Some(F_VERSION_1 | ECHO_F_UPPER));
    // Driver features read back.
    d.wr(common::DRIVER_FEATURE_SELECT, 4, 1);
    assert_eq!(d.rd(common::DRIVER_FEATURE, 4), 1);
    // Queue addresses read back, both ways.
    d.wr(common::QUEUE_SELECT, 2, 0);
    assert_eq!(d.rd(common::QUEUE_DESC, 8), r0.desc);
    assert_eq!(d.rd(common::QUEUE_DRIVER, 4), r0.avail & 0xffff_ffff);
    assert_eq!(d.rd(common::QUEUE_DEVICE + 4, 4), r0.used >> 32);
    assert_eq!(d.rd(common::QUEUE_SIZE, 2), 8);
    // The request completes inside the notify write, and INTx rises.
    echo_request(&d.mem, &mut r0, 0, b"hello", BUF_BASE + 0x8000);
    assert_eq!(d.kick(&p, 0), IntxChange::Assert);
    assert!(d.f.intx());
    assert_eq!(r0.take_used(&d.mem), Some((0, 5)));
    let mut out = [0u8; 5];
    d.mem.read(BUF_BASE + 0x8000, &mut out).unwrap();
    assert_eq!(&out, b"HELLO");
    assert_eq!(d.cfg(0x06, 2), 1 << 4 | 1 << 3, "interrupt status bit");
    // Another completion: the line is already up.
    echo_request(&d.mem, &mut r0, 2, b"again", BUF_BASE + 0x8100);
    assert_eq!(d.kick(&p, 0), IntxChange::Unchanged);
    // Reading the ISR returns bit 0 and clears it: the line drops.
    assert_eq!(d.isr(&p), (1, IntxChange::Deassert));
    assert!(!d.f.intx());
    assert_eq!(d.isr(&p), (0, IntxChange::Unchanged));
    assert_eq!(d.cfg(0x06, 2), 1 << 4);
    // Device configuration through the BAR.
    assert_eq!(d.rd(p.device.offset, 4), 0xcafe_f00d);
    assert_eq!(d.rd(p.device.offset + 2, 2), 0xcafe);
    d.wr(p.device.offset + 4, 4, 0x5555_aaaa);
    assert_eq!(d.f.device().scratch, 0x5555_aaaa);
    assert_eq!(
        d.rd(p.device.offset + 4, 8),
        0,
        "64-bit device config access"
    );
    assert_eq!(d.rd(common::CONFIG_GENERATION, 1), 0);
}

#[test]
fn intx_disable_masks_the_line_not_the_isr() {
    let (mut d, p, mut r0, _) = echo_ready(0);
    let cmd = command::MEMORY | command::BUS_MASTER;
    d.set_cfg(reg::COMMAND, 2, cmd | command::INTX_DISABLE);
    echo_request(&d.mem, &mut r0, 0, b"x", BUF_BASE + 0x8000);
    assert_eq!(d.kick(&p, 0), IntxChange::Unchanged);
    assert!(!d.f.intx());
    assert_eq!(d.f.isr(), 1);
    assert_ne!(d.cfg(0x06, 2) & (1 << 3), 0);
    // Enabling INTx with the ISR set asserts the line.
    assert_eq!(d.set_cfg(reg::COMMAND, 2, cmd), IntxChange::Assert);
    assert_eq!(
        d.set_cfg(reg::COMMAND + 1, 1, command::INTX_DISABLE >> 8),
        IntxChange::Deassert
    );
}

#[test]
fn config_change_sets_isr_bit_1() {
    let (mut d, p, ..) = echo_ready(0);
    assert_eq!(d.f.config_changed(), IntxChange::Assert);
    assert_eq!(d.rd(common::CONFIG_GENERATION, 1), 1);
    assert_eq!(d.isr(&p), (2, IntxChange::Deassert));
}

#[test]
fn device_reset_clears_queues_isr_and_the_line() {
    let (mut d, p, mut r0, _) = echo_ready(0);
    echo_request(&d.mem, &mut r0, 0, b"x", BUF_BASE + 0x8000);
    d.kick(&p, 0);
    assert!(d.f.intx());
    d.wr(common::QUEUE_SELECT, 2, 1);
    assert_eq!(d.wr(common::DEVICE_STATUS, 1, 0), IntxChange::Deassert);
    assert_eq!(d.status(), 0);
    assert_eq!(d.rd(common::QUEUE_SELECT, 2), 0);
    assert_eq!(d.rd(common::QUEUE_ENABLE, 2), 0);
    assert_eq!(d.rd(common::QUEUE_SIZE, 2), u64::from(ECHO_QMAX));
    assert_eq!(d.f.device().resets, 2, "negotiate's reset, then this one");
    // The PCI side stays: the BAR still decodes.
    assert_eq!(d.f.bar0(), Some(BAR_ADDR));
    // The driver can start again.
    assert!(d.negotiate(F_VERSION_1));
}

#[test]
fn queue_rules_shared_with_mmio() {
    let mut d = Drv::new(Echo::default());
    d.place_bar();
    let p = d.probe();
    // FEATURES_OK refused without VERSION_1 or with RING_RESET (not offered).
    assert!(!d.negotiate(0));
    assert!(!d.negotiate(F_VERSION_1 | F_RING_RESET));
    assert!(d.negotiate(F_VERSION_1));
    // An absent queue: size 0, notify offset 0, writes ignored.
    d.wr(common::QUEUE_SELECT, 2, 7);
    assert_eq!(d.rd(common::QUEUE_SIZE, 2), 0);
    d.wr(common::QUEUE_ENABLE, 2, 1);
    assert_eq!(d.rd(common::QUEUE_ENABLE, 2), 0);
    // A size that is not a power of two: enabling needs a reset.
    d.wr(common::QUEUE_SELECT, 2, 0);
    d.wr(common::QUEUE_SIZE, 2, 6);
    let r = Ring::new(super::fake::ring_base(0), 8);
    d.wr(common::QUEUE_DESC, 8, r.desc);
    d.wr(common::QUEUE_DRIVER, 8, r.avail);
    d.wr(common::QUEUE_DEVICE, 8, r.used);
    d.wr(common::QUEUE_ENABLE, 2, 1);
    assert_ne!(d.status() & STATUS_DEVICE_NEEDS_RESET, 0);
    // Notifying a disabled queue after a fresh start needs a reset too.
    assert!(d.negotiate(F_VERSION_1));
    d.add_status(STATUS_DRIVER_OK);
    d.kick(&p, 1);
    assert_ne!(d.status() & STATUS_DEVICE_NEEDS_RESET, 0);
    // Rings outside RAM are refused.
    assert!(d.negotiate(F_VERSION_1));
    d.wr(common::QUEUE_SELECT, 2, 0);
    d.wr(common::QUEUE_DESC, 8, RAM_BASE + RAM_SIZE as u64);
    d.wr(common::QUEUE_ENABLE, 2, 1);
    assert_eq!(d.rd(common::QUEUE_ENABLE, 2), 0);
    assert_ne!(d.status() & STATUS_DEVICE_NEEDS_RESET, 0);
}

#[test]
fn enabled_queues_ignore_layout_writes_and_zero_enable() {
    let (mut d, _, r0, _) = echo_ready(0);
    d.wr(common::QUEUE_SELECT, 2, 0);
    d.wr(common::QUEUE_DESC, 4, 0);
    d.wr(common::QUEUE_SIZE, 2, 2);
    d.wr(common::QUEUE_ENABLE, 2, 0);
    assert_eq!(d.rd(common::QUEUE_DESC, 8), r0.desc);
    assert_eq!(d.rd(common::QUEUE_SIZE, 2), 8);
    assert_eq!(d.rd(common::QUEUE_ENABLE, 2), 1);
}

#[test]
fn notifications_need_bus_mastering_and_the_right_address() {
    let (mut d, p, mut r0, _) = echo_ready(0);
    d.set_cfg(reg::COMMAND, 2, command::MEMORY);
    echo_request(&d.mem, &mut r0, 0, b"x", BUF_BASE + 0x8000);
    assert_eq!(d.kick(&p, 0), IntxChange::Unchanged);
    assert_eq!(r0.take_used(&d.mem), None);
    d.set_cfg(reg::COMMAND, 2, command::MEMORY | command::BUS_MASTER);
    // A write inside queue 0's slot but not at its start, a byte write,
    // and one past the last queue do nothing.
    d.wr(p.notify.offset + 2, 2, 0);
    d.wr(p.notify.offset, 1, 0);
    d.wr(p.notify.offset + 8, 2, 2);
    assert!(d.f.device().notified.is_empty());
    // 32-bit writes notify too; the queue comes from the address.
    assert_eq!(d.wr(p.notify.offset, 4, 0x55), IntxChange::Assert);
    assert_eq!(d.f.device().notified, vec![0]);
    assert_eq!(r0.take_used(&d.mem), Some((0, 1)));
    // Notifications before DRIVER_OK are kept until then.
    let mut d = Drv::new(Echo::default());
    d.place_bar();
    let p = d.probe();
    assert!(d.negotiate(F_VERSION_1));
    let mut r0 = Ring::new(super::fake::ring_base(0), 8);
    d.setup_queue(0, &r0);
    echo_request(&d.mem, &mut r0, 0, b"early", BUF_BASE + 0x8000);
    assert_eq!(d.kick(&p, 0), IntxChange::Unchanged);
    assert_eq!(r0.take_used(&d.mem), None);
    assert_eq!(d.add_status(STATUS_DRIVER_OK), IntxChange::Assert);
    assert_eq!(r0.take_used(&d.mem), Some((0, 5)));
}

#[test]
fn the_pci_cfg_window_reaches_bar_0() {
    let (mut d, p, mut r0, _) = echo_ready(0);
    let cap = p.pci_cfg;
    let data = cap + cap::PCI_CFG_DATA;
    // Decoding off: the window still works.
    d.set_cfg(reg::COMMAND, 2, command::BUS_MASTER);
    // Read num_queues (16 bits at 0x12).
    d.set_cfg(cap + cap::BAR, 1, 0);
    d.set_cfg(cap + cap::OFFSET, 4, common::NUM_QUEUES as u32);
    d.set_cfg(cap + cap::LENGTH, 4, 2);
    assert_eq!(d.cfg(data, 4) & 0xffff, 2);
    // Write the scratch word of the device config.
    d.set_cfg(cap + cap::OFFSET, 4, p.device.offset as u32 + 4);
    d.set_cfg(cap + cap::LENGTH, 4, 4);
    d.set_cfg(data, 4, 0x0bad_cafe);
    assert_eq!(d.f.device().scratch, 0x0bad_cafe);
    // A notification through the window completes the request.
    echo_request(&d.mem, &mut r0, 0, b"w", BUF_BASE + 0x8000);
    d.set_cfg(cap + cap::OFFSET, 4, p.notify.offset as u32);
    d.set_cfg(cap + cap::LENGTH, 4, 2);
    assert_eq!(d.set_cfg(data, 2, 0), IntxChange::Assert);
    assert_eq!(r0.take_used(&d.mem), Some((0, 1)));
    // Reading the ISR through it clears it and lowers the line.
    d.set_cfg(cap + cap::OFFSET, 4, p.isr.offset as u32);
    d.set_cfg(cap + cap::LENGTH, 4, 1);
    assert!(d.f.intx());
    assert_eq!(d.f.config_read(data, 1), (1, IntxChange::Deassert));
    // Invalid windows (other BAR, misaligned, bad length) do nothing.
    d.set_cfg(cap + cap::OFFSET, 4, p.device.offset as u32 + 4);
    d.set_cfg(cap + cap::LENGTH, 4, 4);
    d.set_cfg(cap + cap::BAR, 1, 1);
    d.set_cfg(data, 4, 1);
    d.set_cfg(cap + cap::BAR, 1, 0);
    d.set_cfg(cap + cap::OFFSET, 4, p.device.offset as u32 + 5);
    d.set_cfg(data, 4, 2);
    d.set_cfg(cap + cap::OFFSET, 4, p.device.offset as u32 + 4);
    d.set_cfg(cap + cap::LENGTH, 4, 3);
    d.set_cfg(data, 4, 3);
    d.set_cfg(cap + cap::OFFSET, 4, BAR0_SIZE as u32);
    d.set_cfg(cap + cap::LENGTH, 4, 4);
    d.set_cfg(data, 4, 4);
    assert_eq!(d.f.device().scratch, 0x0bad_cafe);
}

// ---- the virtio-iommu over PCI ----

fn byte(mem: &VecMemory, at: u64) -> u8 {
    let mut b = [0u8];
    mem.read(at, &mut b).unwrap();
    b[0]
}

const EP: u32 = 8;

fn viommu_device() -> ViommuDevice<FakeBackend> {
    let backend = FakeBackend {
        endpoints: [EP].into_iter().collect(),
        regions: vec![Region {
            gpa: RAM_BASE,
            len: RAM_SIZE as u64,
            host: 0x8_0000_0000,
            kind: MemKind::Ram,
        }],
        ..FakeBackend::default()
    };
    ViommuDevice::new(Viommu::new(backend, ViommuConfig::default()).unwrap())
}

/// Queues one virtio-iommu request with a 4-byte tail; returns where the
/// tail goes.
fn iommu_request(mem: &VecMemory, ring: &mut Ring, n: u16, req: &[u8]) -> u64 {
    let at = BUF_BASE + 0x100 * u64::from(n);
    mem.write(at, req).unwrap();
    let tail = at + 0x80;
    mem.write(tail, &[0xee; 4]).unwrap();
    let first = (2 * n) % ring.size;
    let head = ring.chain(
        mem,
        first,
        &[(at, req.len() as u32, false), (tail, 4, true)],
    );
    ring.publish(mem, head);
    tail
}

#[test]
fn virtio_iommu_attach_map_unmap_through_pci() {
    let mut d = Drv::new(viommu_device());
    d.place_bar();
    let p = d.probe();
    let offered = d.device_features();
    assert!(d.negotiate(offered));
    assert_eq!(d.rd(common::NUM_QUEUES, 2), 2);
    let mut rq = Ring::new(super::fake::ring_base(0), 16);
    let eq = Ring::new(super::fake::ring_base(1), 8);
    d.setup_queue(0, &rq);
    d.setup_queue(1, &eq);
    d.add_status(STATUS_DRIVER_OK);
    // The config space: page_size_mask 4K|2M|1G, through two 32-bit reads.
    let mask = d.rd(p.device.offset, 4) | d.rd(p.device.offset + 4, 4) << 32;
    assert_eq!(mask, 0x4020_1000);
    let attach = Request::Attach(Attach {
        domain: 1,
        endpoint: EP,
        flags: 0,
        reserved: [0; 4],
    })
    .encode();
    let map = Request::Map(Map {
        domain: 1,
        virt_start: 0x10_0000,
        virt_end: 0x10_0fff,
        phys_start: RAM_BASE,
        flags: MapFlags(MapFlags::READ | MapFlags::WRITE),
    })
    .encode();
    let unmap = Request::Unmap(Unmap {
        domain: 1,
        virt_start: 0x10_0000,
        virt_end: 0x10_0fff,
        reserved: [0; 4],
    })
    .encode();
    let t0 = iommu_request(&d.mem, &mut rq, 0, &attach);
    let t1 = iommu_request(&d.mem, &mut rq, 1, &map);
    assert_eq!(d.kick(&p, 0), IntxChange::Assert);
    // Both completed before the write returned.
    assert_eq!(rq.take_used(&d.mem), Some((0, 4)));
    assert_eq!(rq.take_used(&d.mem), Some((2, 4)));
    for t in [t0, t1] {
        assert_eq!(byte(&d.mem, t), Status::Ok as u8);
    }
    assert_eq!(d.f.device().model.mapping_count(), 1);
    assert_eq!(d.isr(&p), (1, IntxChange::Deassert));
    let t2 = iommu_request(&d.mem, &mut rq, 2, &unmap);
    assert_eq!(d.kick(&p, 0), IntxChange::Assert);
    assert_eq!(rq.take_used(&d.mem), Some((4, 4)));
    assert_eq!(byte(&d.mem, t2), Status::Ok as u8);
    assert_eq!(d.f.device().model.mapping_count(), 0);
    // A bad MAP (target outside the guest) gets RANGE, nothing mapped.
    let bad = Request::Map(Map {
        domain: 1,
        virt_start: 0x20_0000,
        virt_end: 0x20_0fff,
        phys_start: 0x1000,
        flags: MapFlags(MapFlags::READ),
    })
    .encode();
    let t3 = iommu_request(&d.mem, &mut rq, 3, &bad);
    d.kick(&p, 0);
    assert_eq!(byte(&d.mem, t3), Status::Range as u8);
    assert_eq!(d.f.device().model.mapping_count(), 0);
}

// ---- fuzz ----

/// xorshift64*.
fn next(s: &mut u64) -> u64 {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    s.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[test]
fn random_accesses_never_panic_and_keep_invariants() {
    let iters: u64 = option_env!("PARTITA_FUZZ_ITERS")
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let (mut d, p, mut r0, _) = echo_ready(0);
    let widths = [1usize, 2, 3, 4, 8];
    let interesting = [0u64, 1, 2, 4, 6, 8, 0xff, 0xffff, 0xffff_ffff, !0];
    for i in 0..iters {
        let r = next(&mut seed);
        let width = widths[(r % 5) as usize];
        let value = if r & 0x100 != 0 {
            interesting[((r >> 9) % 10) as usize]
        } else {
            next(&mut seed)
        };
        let before = d.f.intx();
        let change = match (r >> 16) % 6 {
            0 => d.f.config_read((r >> 20) as u16 % 0x1100, width as u8).1,
            1 => {
                let off = (r >> 20) as u16 % 0x100;
                // Keep BAR 0 where it is most of the time.
                if (0x10..0x18).contains(&off) && r & 0x200 == 0 {
                    continue;
                }
                d.set_cfg(off, width as u8, value as u32)
            }
            2 => {
                d.f.bar_read((r >> 40) as u8 % 2, (r >> 20) % 0x4100, width)
                    .1
            }
            3 | 4 => {
                let off = (r >> 20) % 0x4100;
                let change = d.wr(off, width, value);
                if i % 64 == 0 {
                    echo_request(&d.mem, &mut r0, 0, b"f", BUF_BASE + 0x8000);
                }
                change
            }
            _ => {
                if i % 512 == 0 {
                    d.f.reset()
                } else {
                    d.kick(&p, (r >> 20) as u16 % 3)
                }
            }
        };
        let after = d.f.intx();
        assert_eq!(change, IntxChange::between(before, after), "iteration {i}");
        let status = d.f.status();
        if status & STATUS_DRIVER_OK != 0 {
            assert_ne!(status & STATUS_FEATURES_OK, 0);
        }
        if let Some(bar) = d.f.bar(0) {
            assert!(bar.addr.is_multiple_of(BAR0_SIZE));
        }
        if status & STATUS_FEATURES_OK != 0 {
            assert_eq!(d.f.driver_features() & !d.f.offered_features(), 0);
        }
    }
}
