//! How a UART driver reaches its registers: [`Regs`], implemented by
//! [`Mmio`] (volatile accesses through the identity map) on the hardware
//! and by register fakes in the host tests. Offsets are bytes from the
//! start of the register block.

/// 8- and 32-bit register accesses in one UART's register block.
pub trait Regs {
    /// Reads the 8-bit register at `offset`.
    fn read8(&self, offset: usize) -> u8;
    /// Writes the 8-bit register at `offset`.
    fn write8(&self, offset: usize, value: u8);
    /// Reads the 32-bit register at `offset`.
    fn read32(&self, offset: usize) -> u32;
    /// Writes the 32-bit register at `offset`.
    fn write32(&self, offset: usize, value: u32);
}

/// Volatile accesses to a register block mapped as device memory (or with
/// the MMU off) at a fixed address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mmio {
    base: usize,
}

impl Mmio {
    /// The register block at `base`.
    ///
    /// # Safety
    /// `base` must be the address of a UART's register block, mapped as
    /// device memory (or with the MMU off), and every offset a driver of
    /// this block's kind accesses must be one of its registers, for as
    /// long as the value (or a copy) lives.
    pub const unsafe fn new(base: usize) -> Mmio {
        Mmio { base }
    }

    /// The base address.
    pub fn base(&self) -> usize {
        self.base
    }
}

impl Regs for Mmio {
    fn read8(&self, offset: usize) -> u8 {
        // SAFETY: `new`'s contract: a mapped register of this block.
        unsafe { core::ptr::read_volatile((self.base + offset) as *const u8) }
    }
    fn write8(&self, offset: usize, value: u8) {
        // SAFETY: as in `read8`.
        unsafe { core::ptr::write_volatile((self.base + offset) as *mut u8, value) }
    }
    fn read32(&self, offset: usize) -> u32 {
        // SAFETY: as in `read8`; the drivers use 4-byte aligned offsets.
        unsafe { core::ptr::read_volatile((self.base + offset) as *const u32) }
    }
    fn write32(&self, offset: usize, value: u32) {
        // SAFETY: as in `read32`.
        unsafe { core::ptr::write_volatile((self.base + offset) as *mut u32, value) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmio_accesses_base_plus_offset() {
        let mut block = [0u32; 4];
        // SAFETY: every offset used below lies in `block`, which outlives `m`.
        let m = unsafe { Mmio::new(block.as_mut_ptr() as usize) };
        m.write32(8, 0x1122_3344);
        m.write8(4, 0xab);
        assert_eq!(m.read32(8), 0x1122_3344);
        assert_eq!(m.read8(4), 0xab);
        assert_eq!(m.read32(0), 0);
        assert_eq!(block[2], 0x1122_3344);
        assert_eq!(block[1] & 0xff, 0xab);
    }
}
