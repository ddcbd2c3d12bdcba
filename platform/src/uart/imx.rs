//! The i.MX UART of i.MX 6, 7 and 8M (`fsl,imx21-uart` family:
//! `fsl,imx6q-uart`, `fsl,imx53-uart` and the SoC compatibles falling back
//! to them): 32-bit registers, separate receive and transmit data
//! registers. The firmware has set the baud rate; the UART, its
//! transmitter and receiver are enabled, taking care never to clear
//! UCR2.SRST (writing 0 there resets the UART).

use super::{Driver, Regs};

/// Receiver data.
const URXD: usize = 0x00;
/// Transmitter data.
const UTXD: usize = 0x40;
/// Control 1.
const UCR1: usize = 0x80;
/// Control 2.
const UCR2: usize = 0x84;
/// Control 4.
const UCR4: usize = 0x8c;
/// Status 2.
const USR2: usize = 0x98;
/// Test register (FIFO states).
const UTS: usize = 0xb4;

/// UCR1: UART enable.
const UCR1_UARTEN: u32 = 1 << 0;
/// UCR2: software reset, active low (reads 1 when not in reset).
const UCR2_SRST: u32 = 1 << 0;
/// UCR2: receiver enable.
const UCR2_RXEN: u32 = 1 << 1;
/// UCR2: transmitter enable.
const UCR2_TXEN: u32 = 1 << 2;
/// UCR4: receive data ready interrupt enable.
const UCR4_DREN: u32 = 1 << 0;
/// USR2: receive data ready (at least one character waiting).
const USR2_RDR: u32 = 1 << 0;
/// USR2: transmission complete.
const USR2_TXDC: u32 = 1 << 3;
/// UTS: transmit FIFO full.
const UTS_TXFULL: u32 = 1 << 4;

/// An i.MX UART over its registers.
#[derive(Debug)]
pub struct ImxUart<R> {
    regs: R,
}

impl<R: Regs> ImxUart<R> {
    /// The UART whose block `regs` reaches.
    pub const fn new(regs: R) -> Self {
        ImxUart { regs }
    }

    /// The register access.
    pub fn regs(&self) -> &R {
        &self.regs
    }
}

impl<R: Regs> Driver for ImxUart<R> {
    fn init(&self) {
        let ucr1 = self.regs.read32(UCR1);
        if ucr1 & UCR1_UARTEN == 0 {
            self.regs.write32(UCR1, ucr1 | UCR1_UARTEN);
        }
        let ucr2 = self.regs.read32(UCR2);
        let want = UCR2_SRST | UCR2_RXEN | UCR2_TXEN;
        if ucr2 & want != want {
            self.regs.write32(UCR2, ucr2 | want);
        }
    }

    fn tx_ready(&self) -> bool {
        self.regs.read32(UTS) & UTS_TXFULL == 0
    }

    fn tx(&self, byte: u8) {
        self.regs.write32(UTXD, u32::from(byte));
    }

    fn tx_idle(&self) -> bool {
        self.regs.read32(USR2) & USR2_TXDC != 0
    }

    fn rx(&self) -> Option<u8> {
        if self.regs.read32(USR2) & USR2_RDR == 0 {
            None
        } else {
            Some(self.regs.read32(URXD) as u8)
        }
    }

    fn enable_rx_interrupt(&self) {
        // RDR raises it: asserted while any character waits.
        let ucr4 = self.regs.read32(UCR4);
        self.regs.write32(UCR4, ucr4 | UCR4_DREN);
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::{Fake, Model};
    use super::super::{Uart, UartKind};
    use super::*;
    use std::collections::VecDeque;
    use std::vec::Vec;

    /// An i.MX UART as QEMU's `imx-serial` and the reference manual
    /// describe it: out of reset after boot with UARTEN and TXEN only,
    /// UCR2 written without SRST resets it, bytes sent only with TXEN,
    /// received only with RXEN.
    pub(crate) struct ImxModel {
        pub ucr1: u32,
        pub ucr2: u32,
        pub ucr4: u32,
        pub sent: Vec<u8>,
        pub rx: VecDeque<u8>,
        pub resets: u32,
        pub full_reads: u32,
        full_left: u32,
    }

    impl Default for ImxModel {
        fn default() -> Self {
            ImxModel {
                ucr1: UCR1_UARTEN,
                ucr2: UCR2_SRST | UCR2_TXEN,
                ucr4: 0,
                sent: Vec::new(),
                rx: VecDeque::new(),
                resets: 0,
                full_reads: 0,
                full_left: 0,
            }
        }
    }

    impl ImxModel {
        /// A character arrives on the line.
        pub fn receive(&mut self, b: u8) {
            if self.ucr2 & UCR2_RXEN != 0 {
                self.rx.push_back(b);
            }
        }
    }

    impl Model for ImxModel {
        fn read32(&mut self, offset: usize) -> u32 {
            match offset {
                URXD => self.rx.pop_front().map_or(0, |b| u32::from(b) | 1 << 15), // CHARRDY
                UCR1 => self.ucr1,
                UCR2 => self.ucr2,
                UCR4 => self.ucr4,
                USR2 => {
                    let mut usr2 = USR2_TXDC;
                    if !self.rx.is_empty() {
                        usr2 |= USR2_RDR;
                    }
                    usr2
                }
                UTS => {
                    if self.full_left > 0 {
                        self.full_left -= 1;
                        UTS_TXFULL
                    } else {
                        0
                    }
                }
                _ => panic!("i.MX UART: read of {offset:#x}"),
            }
        }
        fn write32(&mut self, offset: usize, value: u32) {
            match offset {
                UTXD => {
                    if self.ucr1 & UCR1_UARTEN != 0 && self.ucr2 & UCR2_TXEN != 0 {
                        self.sent.push(value as u8);
                        self.full_left = self.full_reads;
                    }
                }
                UCR1 => self.ucr1 = value,
                UCR2 => {
                    if value & UCR2_SRST == 0 {
                        self.resets += 1;
                        self.rx.clear();
                        self.ucr2 = UCR2_SRST;
                    } else {
                        self.ucr2 = value;
                    }
                }
                UCR4 => self.ucr4 = value,
                _ => panic!("i.MX UART: write of {value:#x} to {offset:#x}"),
            }
        }
        fn irq(&self) -> bool {
            self.ucr4 & UCR4_DREN != 0 && !self.rx.is_empty()
        }
    }

    fn uart(model: ImxModel) -> Uart<Fake<ImxModel>> {
        Uart::new(UartKind::Imx, Fake::new(model))
    }

    #[test]
    fn enables_the_receiver_without_resetting() {
        let u = uart(ImxModel::default());
        u.init();
        let m = u.regs().model();
        assert_eq!(m.resets, 0);
        assert_eq!(m.ucr2 & 0x7, 0x7);
    }

    #[test]
    fn a_uart_left_in_reset_by_the_firmware_comes_out_of_it() {
        let u = uart(ImxModel {
            ucr1: 0,
            ucr2: 0,
            ..Default::default()
        });
        u.init();
        u.put_byte(b'!');
        assert_eq!(u.regs().model().sent, b"!");
    }

    #[test]
    fn sends_waiting_for_fifo_room_and_receives() {
        let u = uart(ImxModel {
            full_reads: 2,
            ..Default::default()
        });
        u.init();
        u.write_str("i.MX\n");
        assert!(u.flush());
        assert_eq!(u.regs().model().sent, b"i.MX\r\n");
        u.regs().model_mut().receive(b'r');
        u.enable_rx_interrupt();
        assert!(u.regs().model().irq());
        assert_eq!(u.get_byte(), Some(b'r'));
        assert_eq!(u.get_byte(), None);
        assert!(!u.regs().model().irq());
        assert!(u.regs().only_32bit());
    }
}
