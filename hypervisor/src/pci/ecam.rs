//! ECAM (PCIe Enhanced Configuration Access Mechanism): 4 KiB of
//! configuration space per function at `base + (bus - first bus) << 20 |
//! dev << 15 | func << 12`, mapped by the hypervisor as device memory.

use super::config::{Bdf, ConfigAccess};

/// One host bridge's ECAM window.
pub struct Ecam {
    base: usize,
    first_bus: u8,
    last_bus: u8,
}

impl Ecam {
    /// The window at `base` for buses `first_bus..=last_bus`.
    ///
    /// # Safety
    /// `base` must be mapped as device memory for the whole window
    /// (1 MiB per bus) and used by nothing else while this exists.
    pub unsafe fn new(base: u64, first_bus: u8, last_bus: u8) -> Self {
        Ecam {
            base: base as usize,
            first_bus,
            last_bus,
        }
    }

    /// The register's address, if `bdf`'s bus is in the window.
    fn at(&self, bdf: Bdf, off: u16) -> Option<*mut u32> {
        if bdf.bus < self.first_bus
            || bdf.bus > self.last_bus
            || off >= 4096
            || !off.is_multiple_of(4)
        {
            return None;
        }
        let bus = usize::from(bdf.bus - self.first_bus);
        let offset =
            bus << 20 | usize::from(bdf.dev) << 15 | usize::from(bdf.func) << 12 | usize::from(off);
        Some((self.base + offset) as *mut u32)
    }
}

impl ConfigAccess for Ecam {
    fn read32(&self, bdf: Bdf, off: u16) -> u32 {
        match self.at(bdf, off) {
            // SAFETY: inside the window `new`'s caller mapped, aligned.
            Some(p) => unsafe { p.read_volatile() },
            None => u32::MAX,
        }
    }

    fn write32(&mut self, bdf: Bdf, off: u16, value: u32) {
        if let Some(p) = self.at(bdf, off) {
            // SAFETY: as for `read32`.
            unsafe { p.write_volatile(value) }
        }
    }

    fn write(&mut self, bdf: Bdf, off: u16, width: u8, value: u32) {
        let Some(p) = self.at(bdf, off & !3) else {
            return;
        };
        let byte = usize::from(off & 3);
        // SAFETY: inside the mapped window; the access is naturally
        // aligned (checked) and within the register.
        unsafe {
            let p = p.cast::<u8>().add(byte);
            match width {
                1 => p.write_volatile(value as u8),
                2 if byte % 2 == 0 => p.cast::<u16>().write_volatile(value as u16),
                4 if byte == 0 => p.cast::<u32>().write_volatile(value),
                _ => {}
            }
        }
    }
}
