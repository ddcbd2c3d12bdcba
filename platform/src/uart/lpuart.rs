//! NXP LPUART with 32-bit registers, as on i.MX 7ULP, 8ULP, 8QXP, 93 and 95
//! (`fsl,imx7ulp-lpuart` and the compatibles falling back to it): the
//! classic registers start 0x10 into the block (after VERID, PARAM, GLOBAL
//! and PINCFG). The firmware has set the baud rate; the transmitter and
//! receiver are enabled, nothing else changed.

use super::{Driver, Regs};

/// Baud rate register.
#[cfg(test)]
const BAUD: usize = 0x10;
/// Status register.
const STAT: usize = 0x14;
/// Control register.
const CTRL: usize = 0x18;
/// Data register.
const DATA: usize = 0x1c;
/// Watermark register (FIFO fill levels and thresholds).
const WATER: usize = 0x2c;

/// STAT: transmit data register empty (TX FIFO at or below its watermark).
const STAT_TDRE: u32 = 1 << 23;
/// STAT: transmission complete.
const STAT_TC: u32 = 1 << 22;
/// STAT: receive overrun (write 1 to clear; reception stops while set).
const STAT_OR: u32 = 1 << 19;
/// CTRL: receiver interrupt enable (RDRF).
const CTRL_RIE: u32 = 1 << 21;
/// CTRL: transmitter enable.
const CTRL_TE: u32 = 1 << 19;
/// CTRL: receiver enable.
const CTRL_RE: u32 = 1 << 18;
/// WATER: number of words in the receive FIFO.
const WATER_RXCOUNT_SHIFT: u32 = 24;
/// WATER: the receive watermark field.
const WATER_RXWATER_MASK: u32 = 0x3 << 16;

/// An LPUART over its registers.
#[derive(Debug)]
pub struct Lpuart<R> {
    regs: R,
}

impl<R: Regs> Lpuart<R> {
    /// The UART whose block (VERID at offset 0) `regs` reaches.
    pub const fn new(regs: R) -> Self {
        Lpuart { regs }
    }

    /// The register access.
    pub fn regs(&self) -> &R {
        &self.regs
    }
}

impl<R: Regs> Driver for Lpuart<R> {
    fn init(&self) {
        let ctrl = self.regs.read32(CTRL);
        if ctrl & (CTRL_TE | CTRL_RE) != CTRL_TE | CTRL_RE {
            self.regs.write32(CTRL, ctrl | CTRL_TE | CTRL_RE);
        }
    }

    fn tx_ready(&self) -> bool {
        self.regs.read32(STAT) & STAT_TDRE != 0
    }

    fn tx(&self, byte: u8) {
        self.regs.write32(DATA, u32::from(byte));
    }

    fn tx_idle(&self) -> bool {
        self.regs.read32(STAT) & STAT_TC != 0
    }

    fn rx(&self) -> Option<u8> {
        let stat = self.regs.read32(STAT);
        if stat & STAT_OR != 0 {
            // Only the overrun flag: the other status flags are also
            // write-1-to-clear.
            self.regs.write32(STAT, STAT_OR);
        }
        if self.regs.read32(WATER) >> WATER_RXCOUNT_SHIFT == 0 {
            return None;
        }
        Some(self.regs.read32(DATA) as u8)
    }

    fn enable_rx_interrupt(&self) {
        // RDRF is set while the receive FIFO holds more than RXWATER
        // words: with a watermark of 0, while it holds any.
        let water = self.regs.read32(WATER);
        self.regs.write32(WATER, water & !WATER_RXWATER_MASK);
        let ctrl = self.regs.read32(CTRL);
        self.regs.write32(CTRL, ctrl | CTRL_RIE);
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::{Fake, Model};
    use super::super::{Uart, UartKind};
    use super::*;
    use std::collections::VecDeque;
    use std::vec::Vec;

    /// An LPUART: an 8-word TX FIFO drained `drain_every` status reads,
    /// a receive FIFO, the overrun flag that stops reception.
    pub(crate) struct LpuartModel {
        pub baud: u32,
        pub ctrl: u32,
        pub water: u32,
        pub overrun: bool,
        pub sent: Vec<u8>,
        pub fifo: VecDeque<u8>,
        pub rx: VecDeque<u8>,
        pub drain_every: u32,
        reads: u32,
    }

    impl Default for LpuartModel {
        fn default() -> Self {
            LpuartModel {
                baud: 0x0f00_0088,
                ctrl: 0,
                water: 0,
                overrun: false,
                sent: Vec::new(),
                fifo: VecDeque::new(),
                rx: VecDeque::new(),
                drain_every: 1,
                reads: 0,
            }
        }
    }

    impl LpuartModel {
        fn rxwater(&self) -> usize {
            ((self.water & WATER_RXWATER_MASK) >> 16) as usize
        }
    }

    impl Model for LpuartModel {
        fn read32(&mut self, offset: usize) -> u32 {
            match offset {
                BAUD => self.baud,
                STAT => {
                    self.reads += 1;
                    if self.reads.is_multiple_of(self.drain_every)
                        && let Some(b) = self.fifo.pop_front()
                    {
                        self.sent.push(b);
                    }
                    let mut stat = 0;
                    if self.fifo.len() <= (self.water & 3) as usize {
                        stat |= STAT_TDRE;
                    }
                    if self.fifo.is_empty() {
                        stat |= STAT_TC;
                    }
                    if self.rx.len() > self.rxwater() {
                        stat |= 1 << 21; // RDRF
                    }
                    if self.overrun {
                        stat |= STAT_OR;
                    }
                    stat
                }
                CTRL => self.ctrl,
                DATA => self.rx.pop_front().map_or(1 << 12, u32::from), // RXEMPT
                WATER => {
                    (self.rx.len() as u32) << WATER_RXCOUNT_SHIFT
                        | (self.fifo.len() as u32) << 8
                        | self.water
                }
                _ => panic!("LPUART: read of {offset:#x}"),
            }
        }
        fn write32(&mut self, offset: usize, value: u32) {
            match offset {
                STAT => {
                    assert_eq!(value, STAT_OR, "cleared other status flags");
                    self.overrun = false;
                }
                CTRL => self.ctrl = value,
                DATA => {
                    assert!(self.ctrl & CTRL_TE != 0, "byte sent with TE clear");
                    assert!(self.fifo.len() < 8, "TX FIFO overflow");
                    self.fifo.push_back(value as u8);
                }
                WATER => self.water = value & 0x0003_0003,
                _ => panic!("LPUART: write of {value:#x} to {offset:#x}"),
            }
        }
        fn irq(&self) -> bool {
            self.ctrl & CTRL_RIE != 0 && self.rx.len() > self.rxwater()
        }
    }

    fn uart(model: LpuartModel) -> Uart<Fake<LpuartModel>> {
        Uart::new(UartKind::Lpuart, Fake::new(model))
    }

    #[test]
    fn enables_and_sends_through_the_fifo() {
        let u = uart(LpuartModel {
            drain_every: 3,
            ..Default::default()
        });
        u.init();
        u.write_str("hello\n");
        assert!(u.flush());
        let m = u.regs().model();
        assert_eq!(m.sent, b"hello\r\n");
        assert_eq!(m.ctrl & (CTRL_TE | CTRL_RE), CTRL_TE | CTRL_RE);
        assert_eq!(m.baud, 0x0f00_0088, "baud untouched");
        assert!(u.regs().only_32bit());
    }

    #[test]
    fn receives_and_clears_an_overrun() {
        let u = uart(LpuartModel {
            overrun: true,
            ..Default::default()
        });
        u.init();
        u.regs().model_mut().rx.extend(b"ab");
        assert_eq!(u.get_byte(), Some(b'a'));
        assert!(!u.regs().model().overrun);
        assert_eq!(u.get_byte(), Some(b'b'));
        assert_eq!(u.get_byte(), None);
    }

    #[test]
    fn receive_interrupt_with_a_zero_watermark() {
        let u = uart(LpuartModel {
            water: 0x0001_0000 | 2, // firmware: RXWATER 1, TXWATER 2
            ..Default::default()
        });
        u.init();
        u.regs().model_mut().rx.push_back(b'k');
        u.enable_rx_interrupt();
        let water = u.regs().model().water;
        assert_eq!(water, 2, "RX watermark 0, TX watermark kept");
        assert!(u.regs().model().irq(), "one byte is enough");
        assert_eq!(u.get_byte(), Some(b'k'));
        assert!(!u.regs().model().irq());
    }
}
