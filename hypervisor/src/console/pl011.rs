//! Arm PrimeCell UART (PL011) driver: polled transmit and receive. The
//! firmware or boot loader has already set the baud rate; we only make sure
//! the UART and its transmitter and receiver are enabled.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_bitfields;
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite};

register_bitfields! [u32,
    /// Flag register.
    FR [
        /// Transmit FIFO full.
        TXFF OFFSET(5) NUMBITS(1) [],
        /// Receive FIFO empty.
        RXFE OFFSET(4) NUMBITS(1) [],
        /// UART busy transmitting.
        BUSY OFFSET(3) NUMBITS(1) [],
    ],
    /// Control register.
    CR [
        /// Receive enable.
        RXE OFFSET(9) NUMBITS(1) [],
        /// Transmit enable.
        TXE OFFSET(8) NUMBITS(1) [],
        /// UART enable.
        UARTEN OFFSET(0) NUMBITS(1) [],
    ],
];

register_structs! {
    /// The PL011 register block.
    #[allow(non_snake_case)]
    Registers {
        (0x00 => dr: ReadWrite<u32>),
        (0x04 => _reserved0),
        (0x18 => fr: ReadOnly<u32, FR::Register>),
        (0x1c => _reserved1),
        (0x30 => cr: ReadWrite<u32, CR::Register>),
        (0x34 => _reserved2),
        (0x38 => imsc: ReadWrite<u32>),
        (0x3c => _reserved3),
        (0x44 => icr: ReadWrite<u32>),
        (0x48 => @END),
    }
}

/// A PL011 at a fixed physical (identity-mapped) address.
pub struct Pl011 {
    regs: *const Registers,
}

// SAFETY: the UART's registers are MMIO; access is serialised by the
// console lock (or happens on one CPU before the others exist).
unsafe impl Send for Pl011 {}

impl Pl011 {
    /// A driver for the PL011 whose registers start at `base`.
    ///
    /// # Safety
    /// `base` must be the address of a PL011 register block, mapped as
    /// device memory (or with the MMU off), not used by anything else.
    pub const unsafe fn new(base: usize) -> Self {
        Pl011 {
            regs: base as *const Registers,
        }
    }

    fn regs(&self) -> &Registers {
        // SAFETY: `new`'s contract: regs points at a live register block.
        unsafe { &*self.regs }
    }

    /// Base address of the register block.
    pub fn base(&self) -> usize {
        self.regs as usize
    }

    /// Enables the UART, its transmitter and receiver (keeps the baud rate).
    pub fn enable(&self) {
        self.regs()
            .cr
            .write(CR::UARTEN::SET + CR::TXE::SET + CR::RXE::SET);
    }

    /// Interrupts on received data (RXIM) and receive timeout (RTIM); the
    /// interrupt ends when the receive FIFO is read empty.
    pub fn enable_rx_interrupt(&self) {
        self.regs().icr.set(0x7ff);
        self.regs().imsc.set((1 << 4) | (1 << 6));
    }

    /// Sends one byte, waiting while the transmit FIFO is full.
    pub fn put_byte(&self, byte: u8) {
        while self.regs().fr.is_set(FR::TXFF) {
            core::hint::spin_loop();
        }
        self.regs().dr.set(byte as u32);
    }

    /// Returns a received byte, if one is waiting.
    pub fn get_byte(&self) -> Option<u8> {
        if self.regs().fr.is_set(FR::RXFE) {
            None
        } else {
            Some(self.regs().dr.get() as u8)
        }
    }

    /// Waits until everything sent has left the UART.
    pub fn flush(&self) {
        while self.regs().fr.is_set(FR::BUSY) {
            core::hint::spin_loop();
        }
    }
}

impl core::fmt::Write for Pl011 {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.put_byte(b'\r');
            }
            self.put_byte(b);
        }
        Ok(())
    }
}
