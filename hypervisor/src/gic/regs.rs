//! How the GIC driver reaches registers: [`GicRegs`], implemented by
//! [`Mmio`] (device memory through the identity map) on the hardware and
//! by a recording register file in the host tests.

/// 32- and 64-bit register accesses at physical (= virtual) addresses in
/// the GIC's frames.
pub trait GicRegs {
    /// Reads the 32-bit register at `addr`.
    fn read32(&self, addr: usize) -> u32;
    /// Writes the 32-bit register at `addr`.
    fn write32(&self, addr: usize, value: u32);
    /// Reads the 64-bit register at `addr`.
    fn read64(&self, addr: usize) -> u64;
    /// Writes the 64-bit register at `addr`.
    fn write64(&self, addr: usize, value: u64);
}

/// Volatile accesses to the GIC's frames, mapped as device memory.
#[derive(Debug)]
pub struct Mmio {
    _private: (),
}

impl Mmio {
    /// Accesses through the identity map.
    ///
    /// # Safety
    /// Every address the driver passes (inside the distributor and
    /// redistributor frames of the DT's GIC) must be mapped as device
    /// memory and be a register of that GIC, for as long as the value
    /// lives.
    pub const unsafe fn new() -> Mmio {
        Mmio { _private: () }
    }
}

impl GicRegs for Mmio {
    fn read32(&self, addr: usize) -> u32 {
        // SAFETY: `new`'s contract: a mapped GIC register.
        unsafe { core::ptr::read_volatile(addr as *const u32) }
    }
    fn write32(&self, addr: usize, value: u32) {
        // SAFETY: as in `read32`.
        unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
    }
    fn read64(&self, addr: usize) -> u64 {
        // SAFETY: as in `read32`.
        unsafe { core::ptr::read_volatile(addr as *const u64) }
    }
    fn write64(&self, addr: usize, value: u64) {
        // SAFETY: as in `read32`.
        unsafe { core::ptr::write_volatile(addr as *mut u64, value) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmio_accesses_the_addresses_it_is_given() {
        let mut frame = [0u64; 4];
        let base = frame.as_mut_ptr() as usize;
        // SAFETY: every address below lies in `frame`, which outlives `m`.
        let m = unsafe { Mmio::new() };
        m.write64(base + 8, 0x1122_3344_5566_7788);
        m.write32(base + 16, 0xdead_beef);
        assert_eq!(m.read32(base + 8), 0x5566_7788);
        assert_eq!(m.read64(base + 16), 0xdead_beef);
        assert_eq!(m.read64(base), 0);
        assert_eq!(frame[1], 0x1122_3344_5566_7788);
    }
}
