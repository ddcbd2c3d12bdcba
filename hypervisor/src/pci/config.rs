//! PCI configuration space: function addresses ([`Bdf`]), the registers
//! the enumeration uses, and [`ConfigAccess`], the one way to reach them
//! (ECAM on the machine, a fake in host tests).

use core::fmt;
use spin::Mutex;

/// A function's address: bus, device (0-31), function (0-7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf {
    /// Bus number.
    pub bus: u8,
    /// Device number (0-31).
    pub dev: u8,
    /// Function number (0-7).
    pub func: u8,
}

impl Bdf {
    /// The function `bus:dev.func` (`dev` and `func` masked to their
    /// widths).
    pub const fn new(bus: u8, dev: u8, func: u8) -> Self {
        Bdf {
            bus,
            dev: dev & 0x1f,
            func: func & 7,
        }
    }

    /// Its requester ID (bus << 8 | dev << 3 | func).
    pub const fn rid(self) -> u16 {
        (self.bus as u16) << 8 | (self.dev as u16) << 3 | self.func as u16
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.dev, self.func)
    }
}

/// Register offsets of the configuration header.
pub mod reg {
    /// Vendor ID (low 16 bits) and device ID (high 16 bits).
    pub const ID: u16 = 0x00;
    /// Command (low 16 bits) and status (high 16 bits).
    pub const COMMAND: u16 = 0x04;
    /// Revision (bits 7:0) and class code (bits 31:8).
    pub const CLASS: u16 = 0x08;
    /// Header type in bits 23:16 (bit 23: multi-function).
    pub const HEADER: u16 = 0x0c;
    /// First BAR.
    pub const BAR0: u16 = 0x10;
    /// Type 1: primary, secondary, subordinate bus numbers (bits 7:0,
    /// 15:8, 23:16).
    pub const BUS_NUMBERS: u16 = 0x18;
    /// Type 1: memory base (bits 15:4 = address 31:20) and limit (bits
    /// 31:20 = address 31:20).
    pub const MEMORY_WINDOW: u16 = 0x20;
    /// Type 1: prefetchable memory base and limit (as [`MEMORY_WINDOW`],
    /// with bit 0 of each: 64-bit).
    pub const PREF_WINDOW: u16 = 0x24;
    /// Type 1: prefetchable base, address bits 63:32.
    pub const PREF_BASE_UPPER: u16 = 0x28;
    /// Type 1: prefetchable limit, address bits 63:32.
    pub const PREF_LIMIT_UPPER: u16 = 0x2c;
    /// Type 0: expansion ROM base address.
    pub const ROM0: u16 = 0x30;
    /// Type 1: expansion ROM base address.
    pub const ROM1: u16 = 0x38;
    /// Interrupt line (bits 7:0) and pin (bits 15:8: 0 none, 1-4 INTA-D).
    /// Type 1: bridge control in bits 31:16.
    pub const INTERRUPT: u16 = 0x3c;
    /// Type 1: bridge control (16 bits).
    pub const BRIDGE_CONTROL: u16 = 0x3e;
}

/// Command register bits.
pub mod command {
    /// I/O space decoding.
    pub const IO: u32 = 1 << 0;
    /// Memory space decoding.
    pub const MEMORY: u32 = 1 << 1;
    /// Bus mastering (DMA).
    pub const BUS_MASTER: u32 = 1 << 2;
    /// INTx disable.
    pub const INTX_DISABLE: u32 = 1 << 10;
}

/// Reads and writes 32-bit configuration registers. Offsets are 4-byte
/// aligned and below 4 KiB; a function that does not exist reads all ones
/// and ignores writes.
pub trait ConfigAccess {
    /// Reads the register at `off` of function `bdf`.
    fn read32(&self, bdf: Bdf, off: u16) -> u32;
    /// Writes the register at `off` of function `bdf`.
    fn write32(&mut self, bdf: Bdf, off: u16, value: u32);
    /// Writes the `width` (1, 2 or 4) bytes at `off` (naturally aligned)
    /// of function `bdf`, leaving the rest of the register untouched. The
    /// default reads, merges and writes the whole register, which writes
    /// back the other bytes (harmful for write-one-to-clear bits there);
    /// ECAM does a true sub-word access.
    fn write(&mut self, bdf: Bdf, off: u16, width: u8, value: u32) {
        let (aligned, shift) = (off & !3, u32::from(off & 3) * 8);
        let mask = match width {
            1 => 0xff,
            2 => 0xffff,
            _ => u32::MAX,
        } << shift;
        let old = self.read32(bdf, aligned);
        self.write32(bdf, aligned, old & !mask | (value << shift) & mask);
    }
}

/// A [`ConfigAccess`] shared behind a lock (a host bridge several guests
/// have functions of), taken for each access only: a caller that waits
/// between accesses (a reset's 100 ms) does not hold it, so the other
/// guests' configuration accesses never wait that long. Each access is
/// whole; a sequence of them is not (nothing needs it: each guest touches
/// only its own functions).
pub struct PerAccess<'a, C: ConfigAccess + ?Sized>(pub &'a Mutex<C>);

impl<C: ConfigAccess + ?Sized> ConfigAccess for PerAccess<'_, C> {
    fn read32(&self, bdf: Bdf, off: u16) -> u32 {
        self.0.lock().read32(bdf, off)
    }
    fn write32(&mut self, bdf: Bdf, off: u16, value: u32) {
        self.0.lock().write32(bdf, off, value);
    }
    fn write(&mut self, bdf: Bdf, off: u16, width: u8, value: u32) {
        self.0.lock().write(bdf, off, width, value);
    }
}
