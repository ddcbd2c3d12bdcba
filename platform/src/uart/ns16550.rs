//! 8250/16550-compatible UARTs (`ns16550a`, `ns16550`, Synopsys DesignWare
//! `snps,dw-apb-uart`, TI `ti,am654-uart`): byte registers spaced by
//! `1 << reg-shift` bytes, accessed 8 or 32 bits wide (`reg-io-width`).
//! The firmware has set the line (baud, format); only the divisor latch is
//! closed if it was left open, so that the data register is the data
//! register.

use super::{Driver, Regs};

/// Receive buffer (read) / transmit holding register (write).
const RBR_THR: usize = 0;
/// Interrupt enable.
const IER: usize = 1;
/// Line control.
const LCR: usize = 3;
/// Line status.
const LSR: usize = 5;

/// IER: received data available.
const IER_RDI: u32 = 1 << 0;
/// LCR: divisor latch access.
const LCR_DLAB: u32 = 1 << 7;
/// LSR: data ready.
const LSR_DR: u32 = 1 << 0;
/// LSR: transmit holding register empty.
const LSR_THRE: u32 = 1 << 5;
/// LSR: transmitter empty (holding and shift registers).
const LSR_TEMT: u32 = 1 << 6;

/// How wide the register accesses are (`reg-io-width`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoWidth {
    /// 8-bit accesses (the default).
    Byte,
    /// 32-bit accesses (DesignWare APB UARTs).
    Word,
}

impl IoWidth {
    /// Bytes per access.
    pub const fn bytes(self) -> u8 {
        match self {
            IoWidth::Byte => 1,
            IoWidth::Word => 4,
        }
    }
}

/// Where the registers are: stride `1 << reg_shift`, accesses `io_width` wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// log2 of the distance between registers (`reg-shift`, 0 to 3).
    pub reg_shift: u8,
    /// Access width (`reg-io-width`).
    pub io_width: IoWidth,
}

/// A 16550-compatible UART over its registers.
#[derive(Debug)]
pub struct Ns16550<R> {
    regs: R,
    layout: Layout,
}

impl<R: Regs> Ns16550<R> {
    /// The UART with registers laid out as `layout`.
    pub const fn new(regs: R, layout: Layout) -> Self {
        Ns16550 { regs, layout }
    }

    /// The register access.
    pub fn regs(&self) -> &R {
        &self.regs
    }

    fn offset(&self, index: usize) -> usize {
        index << self.layout.reg_shift
    }

    fn read(&self, index: usize) -> u32 {
        let offset = self.offset(index);
        match self.layout.io_width {
            IoWidth::Byte => u32::from(self.regs.read8(offset)),
            IoWidth::Word => self.regs.read32(offset) & 0xff,
        }
    }

    fn write(&self, index: usize, value: u32) {
        let offset = self.offset(index);
        match self.layout.io_width {
            IoWidth::Byte => self.regs.write8(offset, value as u8),
            IoWidth::Word => self.regs.write32(offset, value & 0xff),
        }
    }
}

impl<R: Regs> Driver for Ns16550<R> {
    fn init(&self) {
        let lcr = self.read(LCR);
        if lcr & LCR_DLAB != 0 {
            self.write(LCR, lcr & !LCR_DLAB);
        }
    }

    fn tx_ready(&self) -> bool {
        self.read(LSR) & LSR_THRE != 0
    }

    fn tx(&self, byte: u8) {
        self.write(RBR_THR, u32::from(byte));
    }

    fn tx_idle(&self) -> bool {
        self.read(LSR) & LSR_TEMT != 0
    }

    fn rx(&self) -> Option<u8> {
        if self.read(LSR) & LSR_DR == 0 {
            None
        } else {
            Some(self.read(RBR_THR) as u8)
        }
    }

    fn enable_rx_interrupt(&self) {
        // Data-available only: the interrupt lasts while data is waiting.
        self.write(IER, IER_RDI);
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::{Fake, Model};
    use super::super::{Uart, UartKind};
    use super::*;
    use std::collections::VecDeque;
    use std::vec::Vec;

    /// A 16550 seen through a given layout: accesses at other strides or
    /// widths panic. The holding register stays busy for `busy_reads`
    /// status reads after each byte.
    pub(crate) struct Model16550 {
        layout: Layout,
        pub lcr: u32,
        pub ier: u32,
        pub dll: u32,
        pub sent: Vec<u8>,
        pub rx: VecDeque<u8>,
        pub busy_reads: u32,
        busy_left: u32,
    }

    impl Model16550 {
        pub fn new(layout: Layout) -> Self {
            Model16550 {
                layout,
                lcr: 0x03, // 8N1
                ier: 0,
                dll: 1,
                sent: Vec::new(),
                rx: VecDeque::new(),
                busy_reads: 0,
                busy_left: 0,
            }
        }

        fn index(&self, offset: usize, width: u8) -> usize {
            assert_eq!(width, self.layout.io_width.bytes(), "access width");
            let stride = 1usize << self.layout.reg_shift;
            assert_eq!(offset % stride, 0, "offset {offset:#x} off the stride");
            let index = offset / stride;
            assert!(index < 8, "offset {offset:#x} beyond the 8 registers");
            index
        }

        fn read(&mut self, index: usize) -> u32 {
            let dlab = self.lcr & LCR_DLAB != 0;
            match index {
                RBR_THR if dlab => self.dll,
                RBR_THR => self.rx.pop_front().map_or(0, u32::from),
                IER => self.ier,
                LCR => self.lcr,
                LSR => {
                    let mut lsr = 0;
                    if self.busy_left > 0 {
                        self.busy_left -= 1;
                    } else {
                        lsr |= LSR_THRE | LSR_TEMT;
                    }
                    if !self.rx.is_empty() {
                        lsr |= LSR_DR;
                    }
                    lsr
                }
                _ => panic!("16550: read of register {index}"),
            }
        }

        fn write(&mut self, index: usize, value: u32) {
            assert!(value <= 0xff, "{value:#x} in a byte register");
            let dlab = self.lcr & LCR_DLAB != 0;
            match index {
                RBR_THR if dlab => self.dll = value,
                RBR_THR => {
                    self.sent.push(value as u8);
                    self.busy_left = self.busy_reads;
                }
                IER if dlab => panic!("wrote the divisor's high byte"),
                IER => self.ier = value,
                LCR => self.lcr = value,
                _ => panic!("16550: write of {value:#x} to register {index}"),
            }
        }
    }

    impl Model for Model16550 {
        fn read8(&mut self, offset: usize) -> u8 {
            let i = self.index(offset, 1);
            self.read(i) as u8
        }
        fn write8(&mut self, offset: usize, value: u8) {
            let i = self.index(offset, 1);
            self.write(i, value.into());
        }
        fn read32(&mut self, offset: usize) -> u32 {
            let i = self.index(offset, 4);
            self.read(i)
        }
        fn write32(&mut self, offset: usize, value: u32) {
            let i = self.index(offset, 4);
            self.write(i, value);
        }
        fn irq(&self) -> bool {
            self.ier & IER_RDI != 0 && !self.rx.is_empty()
        }
    }

    fn uart(layout: Layout) -> Uart<Fake<Model16550>> {
        Uart::new(
            UartKind::Ns16550(layout),
            Fake::new(Model16550::new(layout)),
        )
    }

    const LAYOUTS: [Layout; 3] = [
        // QEMU's and most PC-style ns16550a nodes.
        Layout {
            reg_shift: 0,
            io_width: IoWidth::Byte,
        },
        // TI K3 (am654, j721e).
        Layout {
            reg_shift: 2,
            io_width: IoWidth::Byte,
        },
        // DesignWare APB (RK3588).
        Layout {
            reg_shift: 2,
            io_width: IoWidth::Word,
        },
    ];

    #[test]
    fn writes_and_reads_in_every_layout() {
        for layout in LAYOUTS {
            let u = uart(layout);
            u.regs().model_mut().busy_reads = 2;
            u.init();
            u.write_str("ok\n");
            assert!(u.flush());
            u.regs().model_mut().rx.extend(b"xy");
            assert_eq!(u.get_byte(), Some(b'x'));
            assert_eq!(u.get_byte(), Some(b'y'));
            assert_eq!(u.get_byte(), None);
            let m = u.regs().model();
            assert_eq!(m.sent, b"ok\r\n", "{layout:?}");
            assert!(
                u.regs()
                    .log()
                    .iter()
                    .all(|a| a.width == layout.io_width.bytes()),
                "{layout:?}"
            );
        }
    }

    #[test]
    fn an_open_divisor_latch_is_closed_before_sending() {
        let u = uart(LAYOUTS[2]);
        u.regs().model_mut().lcr = 0x83;
        u.init();
        u.put_byte(b'z');
        let m = u.regs().model();
        assert_eq!(m.lcr, 0x03);
        assert_eq!(m.dll, 1, "the baud divisor is untouched");
        assert_eq!(m.sent, b"z");
    }

    #[test]
    fn init_leaves_a_closed_latch_alone() {
        let u = uart(LAYOUTS[0]);
        u.init();
        assert!(u.regs().writes().is_empty(), "{:?}", u.regs().writes());
    }

    #[test]
    fn receive_interrupt_follows_waiting_data() {
        let u = uart(LAYOUTS[1]);
        u.init();
        u.regs().model_mut().rx.push_back(b'q');
        assert!(!u.regs().model().irq());
        u.enable_rx_interrupt();
        assert!(u.regs().model().irq());
        assert_eq!(u.get_byte(), Some(b'q'));
        assert!(!u.regs().model().irq());
    }
}
