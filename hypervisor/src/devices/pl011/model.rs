//! The register model of an emulated Arm PrimeCell UART (PL011, r1p5):
//! what Linux's `amba-pl011` driver and `earlycon=pl011` use. Pure state,
//! no locking and no output of its own: a transmitted byte is handed back
//! to the caller, received bytes are pushed in.
//!
//! Transmission is instant (the transmit FIFO is always empty: `TXFE` set,
//! `TXFF` and `BUSY` clear, the transmit interrupt always asserted); the
//! receive FIFO holds [`FIFO_DEPTH`] bytes (1 with FIFOs off). The receive
//! timeout is immediate: `RTIS` is set whenever a byte waits. Baud rate,
//! line control and DMA registers are stored and read back, nothing else.
//! Every access is bounded (no allocation); offsets outside the register
//! map read as zero and ignore writes.

use heapless::Deque;

/// Bytes the receive FIFO holds (the r1p5 depth).
pub const FIFO_DEPTH: usize = 32;

/// Register offsets.
pub mod reg {
    /// Data.
    pub const DR: u64 = 0x000;
    /// Receive status / error clear.
    pub const RSR_ECR: u64 = 0x004;
    /// Flags.
    pub const FR: u64 = 0x018;
    /// IrDA low-power counter.
    pub const ILPR: u64 = 0x020;
    /// Integer baud-rate divisor.
    pub const IBRD: u64 = 0x024;
    /// Fractional baud-rate divisor.
    pub const FBRD: u64 = 0x028;
    /// Line control.
    pub const LCR_H: u64 = 0x02c;
    /// Control.
    pub const CR: u64 = 0x030;
    /// Interrupt FIFO level select.
    pub const IFLS: u64 = 0x034;
    /// Interrupt mask set/clear.
    pub const IMSC: u64 = 0x038;
    /// Raw interrupt status.
    pub const RIS: u64 = 0x03c;
    /// Masked interrupt status.
    pub const MIS: u64 = 0x040;
    /// Interrupt clear.
    pub const ICR: u64 = 0x044;
    /// DMA control.
    pub const DMACR: u64 = 0x048;
    /// First of PeriphID0..3 and PCellID0..3.
    pub const ID_BASE: u64 = 0xfe0;
}

/// Flag register bits.
pub mod fr {
    /// Transmit FIFO empty.
    pub const TXFE: u32 = 1 << 7;
    /// Receive FIFO full.
    pub const RXFF: u32 = 1 << 6;
    /// Transmit FIFO full.
    pub const TXFF: u32 = 1 << 5;
    /// Receive FIFO empty.
    pub const RXFE: u32 = 1 << 4;
}

/// Interrupt bits (RIS, MIS, IMSC, ICR).
pub mod int {
    /// Receive.
    pub const RX: u32 = 1 << 4;
    /// Transmit.
    pub const TX: u32 = 1 << 5;
    /// Receive timeout.
    pub const RT: u32 = 1 << 6;
    /// Every interrupt bit (modem status 0-3, errors 7-10).
    pub const ALL: u32 = 0x7ff;
}

/// LCR_H.FEN: FIFOs enabled.
const LCR_H_FEN: u32 = 1 << 4;
/// CR at reset: transmit and receive enabled, UART disabled.
const CR_RESET: u32 = 0x300;
/// IFLS at reset: both at half full.
const IFLS_RESET: u32 = 0x12;
/// PeriphID0..3 (part 0x011, designer Arm, revision r1p5) and PCellID0..3,
/// as QEMU's PL011 presents them (Linux's AMBA bus reads them).
const IDS: [u32; 8] = [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];

/// One emulated PL011's registers and receive FIFO.
#[derive(Debug)]
pub struct Pl011Model {
    rx: Deque<u8, FIFO_DEPTH>,
    ibrd: u32,
    fbrd: u32,
    lcr_h: u32,
    cr: u32,
    ifls: u32,
    imsc: u32,
    dmacr: u32,
    ilpr: u32,
    /// Latched interrupt bits the guest clears with ICR (none today but
    /// kept for the modem and error bits a write could set).
    latched: u32,
}

impl Default for Pl011Model {
    fn default() -> Self {
        Self::new()
    }
}

/// What a write asks of the device around the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteOutcome {
    /// A byte the guest transmitted.
    pub tx: Option<u8>,
}

impl Pl011Model {
    /// The power-on state.
    pub const fn new() -> Self {
        Pl011Model {
            rx: Deque::new(),
            ibrd: 0,
            fbrd: 0,
            lcr_h: 0,
            cr: CR_RESET,
            ifls: IFLS_RESET,
            imsc: 0,
            dmacr: 0,
            ilpr: 0,
            latched: 0,
        }
    }

    /// Back to the power-on state (the receive FIFO emptied).
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    fn fifo_on(&self) -> bool {
        self.lcr_h & LCR_H_FEN != 0
    }

    /// Bytes the receive FIFO takes now (1 in character mode).
    fn capacity(&self) -> usize {
        if self.fifo_on() { FIFO_DEPTH } else { 1 }
    }

    /// Receive trigger level in bytes (IFLS.RXIFLSEL: 1/8 .. 7/8).
    fn rx_trigger(&self) -> usize {
        if !self.fifo_on() {
            return 1;
        }
        let eighths = match (self.ifls >> 3) & 7 {
            0 => 1,
            1 => 2,
            2 => 4,
            3 => 6,
            _ => 7,
        };
        FIFO_DEPTH * eighths / 8
    }

    /// Raw interrupt status.
    pub fn ris(&self) -> u32 {
        let mut ris = self.latched | int::TX;
        if self.rx.len() >= self.rx_trigger() {
            ris |= int::RX;
        }
        if !self.rx.is_empty() {
            ris |= int::RT;
        }
        ris
    }

    /// Masked interrupt status.
    pub fn mis(&self) -> u32 {
        self.ris() & self.imsc
    }

    /// Whether the interrupt line is asserted (level).
    pub fn line(&self) -> bool {
        self.mis() != 0
    }

    /// Room in the receive FIFO.
    pub fn rx_room(&self) -> usize {
        self.capacity().saturating_sub(self.rx.len())
    }

    /// Whether the guest can receive now (UART and receiver enabled).
    pub fn rx_enabled(&self) -> bool {
        self.cr & 0x201 == 0x201
    }

    /// Puts received `byte` in the FIFO; false when it is full.
    pub fn push_rx(&mut self, byte: u8) -> bool {
        if self.rx_room() == 0 {
            return false;
        }
        self.rx.push_back(byte).is_ok()
    }

    /// A guest load of register `offset` (a 32-bit register read with any
    /// width gives its low bytes; unaligned offsets read as zero).
    pub fn read(&mut self, offset: u64) -> u32 {
        match offset {
            reg::DR => self.rx.pop_front().map_or(0, u32::from),
            reg::RSR_ECR => 0,
            reg::FR => {
                let mut f = fr::TXFE;
                if self.rx.is_empty() {
                    f |= fr::RXFE;
                }
                if self.rx_room() == 0 {
                    f |= fr::RXFF;
                }
                f
            }
            reg::ILPR => self.ilpr,
            reg::IBRD => self.ibrd,
            reg::FBRD => self.fbrd,
            reg::LCR_H => self.lcr_h,
            reg::CR => self.cr,
            reg::IFLS => self.ifls,
            reg::IMSC => self.imsc,
            reg::RIS => self.ris(),
            reg::MIS => self.mis(),
            reg::DMACR => self.dmacr,
            o if (reg::ID_BASE..reg::ID_BASE + 0x20).contains(&o) && o % 4 == 0 => {
                IDS[((o - reg::ID_BASE) / 4) as usize]
            }
            _ => 0,
        }
    }

    /// A guest store of `value` to register `offset`.
    pub fn write(&mut self, offset: u64, value: u32) -> WriteOutcome {
        let mut out = WriteOutcome::default();
        match offset {
            // Sent only when the UART and its transmitter are enabled
            // (earlycon and Linux enable both).
            reg::DR if self.cr & 0x101 == 0x101 => out.tx = Some(value as u8),
            reg::DR => {}
            reg::RSR_ECR => {}
            reg::ILPR => self.ilpr = value & 0xff,
            reg::IBRD => self.ibrd = value & 0xffff,
            reg::FBRD => self.fbrd = value & 0x3f,
            // Switching the FIFOs off keeps what they hold (typed input
            // is not lost); no more is taken until it is read.
            reg::LCR_H => self.lcr_h = value & 0xff,
            reg::CR => self.cr = value & 0xff87,
            reg::IFLS => self.ifls = value & 0x3f,
            reg::IMSC => self.imsc = value & int::ALL,
            reg::ICR => self.latched &= !value,
            reg::DMACR => self.dmacr = value & 7,
            _ => {}
        }
        out
    }
}
