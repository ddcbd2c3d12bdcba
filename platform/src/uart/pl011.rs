//! Arm PrimeCell UART (PL011, `arm,pl011`) and the SBSA generic UART
//! (`arm,sbsa-uart`, a PL011 subset without the control register): 32-bit
//! registers, a transmit and a receive FIFO. The firmware has set the baud
//! rate; only the UART and its transmitter and receiver are enabled.

use super::{Driver, Regs};

/// Data register: a byte written is sent, a read takes a received one.
const DR: usize = 0x00;
/// Flag register.
const FR: usize = 0x18;
/// Control register (not on the SBSA UART).
const CR: usize = 0x30;
/// Interrupt mask set/clear.
const IMSC: usize = 0x38;
/// Interrupt clear.
const ICR: usize = 0x44;

/// FR: UART busy transmitting.
const FR_BUSY: u32 = 1 << 3;
/// FR: receive FIFO empty.
const FR_RXFE: u32 = 1 << 4;
/// FR: transmit FIFO full.
const FR_TXFF: u32 = 1 << 5;
/// CR: UART enable.
const CR_UARTEN: u32 = 1 << 0;
/// CR: transmit enable.
const CR_TXE: u32 = 1 << 8;
/// CR: receive enable.
const CR_RXE: u32 = 1 << 9;
/// IMSC: receive interrupt.
const IM_RX: u32 = 1 << 4;
/// IMSC: receive timeout interrupt.
const IM_RT: u32 = 1 << 6;
/// ICR: every interrupt.
const ICR_ALL: u32 = 0x7ff;

/// A PL011 or SBSA UART over its registers.
#[derive(Debug)]
pub struct Pl011<R> {
    regs: R,
    sbsa: bool,
}

impl<R: Regs> Pl011<R> {
    /// A PL011 (`sbsa` false) or an SBSA generic UART (`sbsa` true).
    pub const fn new(regs: R, sbsa: bool) -> Self {
        Pl011 { regs, sbsa }
    }

    /// The register access.
    pub fn regs(&self) -> &R {
        &self.regs
    }
}

impl<R: Regs> Driver for Pl011<R> {
    fn init(&self) {
        if !self.sbsa {
            let cr = self.regs.read32(CR);
            self.regs.write32(CR, cr | CR_UARTEN | CR_TXE | CR_RXE);
        }
    }

    fn tx_ready(&self) -> bool {
        self.regs.read32(FR) & FR_TXFF == 0
    }

    fn tx(&self, byte: u8) {
        self.regs.write32(DR, u32::from(byte));
    }

    fn tx_idle(&self) -> bool {
        self.regs.read32(FR) & FR_BUSY == 0
    }

    fn rx(&self) -> Option<u8> {
        if self.regs.read32(FR) & FR_RXFE != 0 {
            None
        } else {
            Some(self.regs.read32(DR) as u8)
        }
    }

    fn enable_rx_interrupt(&self) {
        // Receive and receive-timeout: the interrupt lasts until the FIFO
        // is read empty.
        self.regs.write32(ICR, ICR_ALL);
        self.regs.write32(IMSC, IM_RX | IM_RT);
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::{Fake, Model};
    use super::super::{Uart, UartKind};
    use super::*;
    use std::collections::VecDeque;
    use std::vec::Vec;

    /// A PL011: a transmit FIFO that is full for `full_reads` flag reads
    /// after each byte, a receive FIFO, the interrupt mask.
    #[derive(Default)]
    pub(crate) struct Pl011Model {
        pub sbsa: bool,
        pub cr: u32,
        pub imsc: u32,
        pub sent: Vec<u8>,
        pub rx: VecDeque<u8>,
        pub full_reads: u32,
        full_left: u32,
        pub busy_reads: u32,
        busy_left: u32,
    }

    impl Model for Pl011Model {
        fn read32(&mut self, offset: usize) -> u32 {
            match offset {
                DR => self.rx.pop_front().map_or(0, u32::from),
                FR => {
                    let mut fr = 0;
                    if self.full_left > 0 {
                        self.full_left -= 1;
                        fr |= FR_TXFF;
                    }
                    if self.busy_left > 0 {
                        self.busy_left -= 1;
                        fr |= FR_BUSY;
                    }
                    if self.rx.is_empty() {
                        fr |= FR_RXFE;
                    }
                    fr
                }
                CR if !self.sbsa => self.cr,
                IMSC => self.imsc,
                _ => panic!("PL011: read of {offset:#x}"),
            }
        }
        fn write32(&mut self, offset: usize, value: u32) {
            match offset {
                DR => {
                    assert!(
                        self.sbsa || self.cr & (CR_UARTEN | CR_TXE) == CR_UARTEN | CR_TXE,
                        "byte sent with the transmitter off"
                    );
                    self.sent.push(value as u8);
                    self.full_left = self.full_reads;
                    self.busy_left = self.busy_reads;
                }
                CR if !self.sbsa => self.cr = value,
                IMSC => self.imsc = value,
                ICR => {}
                _ => panic!("PL011: write of {value:#x} to {offset:#x}"),
            }
        }
        fn irq(&self) -> bool {
            self.imsc & IM_RX != 0 && !self.rx.is_empty()
        }
    }

    fn uart(model: Pl011Model) -> Uart<Fake<Pl011Model>> {
        let kind = if model.sbsa {
            UartKind::SbsaUart
        } else {
            UartKind::Pl011
        };
        Uart::new(kind, Fake::new(model))
    }

    #[test]
    fn enables_and_writes_waiting_for_room() {
        let u = uart(Pl011Model {
            cr: 0x0300, // firmware left TXE|RXE but not UARTEN
            full_reads: 3,
            busy_reads: 2,
            ..Default::default()
        });
        u.init();
        u.write_str("a\nb");
        u.flush();
        let m = u.regs().model();
        assert_eq!(m.cr & 0x301, 0x301, "kept the firmware's bits, enabled");
        assert_eq!(m.sent, b"a\r\nb");
        // Every byte after the first waited for three full reads.
        let waits = u.regs().count_reads(FR);
        assert!(waits >= 3 * 3 + 4 + 2, "{waits} flag reads");
        assert!(u.regs().only_32bit());
    }

    #[test]
    fn receives_and_interrupts_until_read_empty() {
        let u = uart(Pl011Model::default());
        u.init();
        assert_eq!(u.get_byte(), None);
        u.regs().model_mut().rx.extend(b"hi");
        assert!(!u.regs().model().irq(), "masked");
        u.enable_rx_interrupt();
        assert!(u.regs().model().irq());
        assert_eq!(u.get_byte(), Some(b'h'));
        assert_eq!(u.get_byte(), Some(b'i'));
        assert_eq!(u.get_byte(), None);
        assert!(!u.regs().model().irq());
    }

    #[test]
    fn sbsa_uart_has_no_control_register() {
        let u = uart(Pl011Model {
            sbsa: true,
            ..Default::default()
        });
        u.init();
        u.put_byte(b'x');
        assert_eq!(u.regs().model().sent, b"x");
        assert_eq!(u.regs().count_accesses(CR), 0);
    }

    #[test]
    fn a_stuck_transmitter_drops_the_byte_instead_of_hanging() {
        let u = uart(Pl011Model {
            full_reads: u32::MAX,
            ..Default::default()
        });
        u.init();
        u.regs().model_mut().full_left_set(u32::MAX);
        assert!(!u.put_byte(b'x'));
        assert!(u.regs().model().sent.is_empty());
    }

    impl Pl011Model {
        fn full_left_set(&mut self, n: u32) {
            self.full_left = n;
        }
    }
}
