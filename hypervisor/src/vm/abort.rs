//! Decoding of a stage-2 data abort: the access's size, direction, register
//! and sign extension from ESR_EL2.ISS, and the faulting guest-physical
//! address from HPFAR_EL2 and FAR_EL2. Decoded once per trap, then the
//! access is dispatched by address.

/// One emulated load or store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioAccess {
    /// Guest-physical address.
    pub ipa: u64,
    /// Access size in bytes (1, 2, 4 or 8).
    pub width: usize,
    /// A store (true) or a load.
    pub write: bool,
    /// General-purpose register number (31 = xzr/wzr).
    pub reg: usize,
    /// A load to sign-extend to the register width.
    pub sign_extend: bool,
    /// The register is 64 bits wide (else 32: the upper half is cleared).
    pub sixty_four: bool,
}

/// Why an abort cannot be emulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortError {
    /// ISV = 0: no instruction syndrome (e.g. a load pair, or a write-back
    /// addressing mode); the hypervisor does not decode instructions.
    NoSyndrome,
    /// Not a data abort from a lower EL (EC != 0x24).
    NotDataAbort,
    /// A translation-table walk fault on the guest's own stage-1 tables
    /// (S1PTW), meaning its tables sit outside its memory.
    StageOneWalk,
}

impl core::fmt::Display for AbortError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            AbortError::NoSyndrome => "no instruction syndrome (ISV=0)",
            AbortError::NotDataAbort => "not a data abort",
            AbortError::StageOneWalk => "stage-1 table walk outside guest memory",
        })
    }
}

impl core::error::Error for AbortError {}

/// Decodes a lower-EL data abort from ESR_EL2, HPFAR_EL2 and FAR_EL2.
pub fn decode(esr: u64, hpfar: u64, far: u64) -> Result<MmioAccess, AbortError> {
    if (esr >> 26) & 0x3f != 0x24 {
        return Err(AbortError::NotDataAbort);
    }
    if esr & (1 << 7) != 0 {
        return Err(AbortError::StageOneWalk);
    }
    if esr & (1 << 24) == 0 {
        return Err(AbortError::NoSyndrome);
    }
    let ipa = ((hpfar >> 4) << 12) & 0x000f_ffff_ffff_f000 | (far & 0xfff);
    Ok(MmioAccess {
        ipa,
        width: 1 << ((esr >> 22) & 3),
        write: esr & (1 << 6) != 0,
        reg: ((esr >> 16) & 0x1f) as usize,
        sign_extend: esr & (1 << 21) != 0,
        sixty_four: esr & (1 << 15) != 0,
    })
}

impl MmioAccess {
    /// The value a load puts in the register, from the `width` bytes read.
    pub fn load_value(&self, raw: u64) -> u64 {
        let bits = self.width * 8;
        let mut v = if bits >= 64 {
            raw
        } else {
            raw & ((1 << bits) - 1)
        };
        if self.sign_extend && bits < 64 && v & (1 << (bits - 1)) != 0 {
            v |= !0u64 << bits;
        }
        if !self.sixty_four {
            v &= 0xffff_ffff;
        }
        v
    }

    /// The bytes a store writes, from the register's value.
    pub fn store_value(&self, reg_value: u64) -> u64 {
        if self.width >= 8 {
            reg_value
        } else {
            reg_value & ((1 << (self.width * 8)) - 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esr(isv: bool, sas: u64, sse: bool, srt: u64, sf: bool, wnr: bool) -> u64 {
        (0x24 << 26)
            | (1 << 25)
            | (isv as u64) << 24
            | sas << 22
            | (sse as u64) << 21
            | srt << 16
            | (sf as u64) << 15
            | (wnr as u64) << 6
    }

    #[test]
    fn decodes_a_32bit_store() {
        let a = decode(
            esr(true, 2, false, 3, false, true),
            0x8_0000,
            0xffff_0000_0000_0104,
        )
        .unwrap();
        assert_eq!(a.ipa, 0x800_0104);
        assert_eq!((a.width, a.write, a.reg, a.sixty_four), (4, true, 3, false));
        assert_eq!(a.store_value(0x1234_5678_9abc_def0), 0x9abc_def0);
    }

    #[test]
    fn sign_extends_byte_loads() {
        let a = decode(esr(true, 0, true, 1, true, false), 0x90, 0x7).unwrap();
        assert_eq!(a.ipa, 0x9007);
        assert_eq!(a.load_value(0x80), 0xffff_ffff_ffff_ff80);
        let w = MmioAccess {
            sixty_four: false,
            ..a
        };
        assert_eq!(w.load_value(0x80), 0xffff_ff80);
        let u = MmioAccess {
            sign_extend: false,
            ..a
        };
        assert_eq!(u.load_value(0x1ff), 0xff);
    }

    #[test]
    fn refuses_what_it_cannot_emulate() {
        assert_eq!(
            decode(esr(false, 2, false, 0, false, false), 0, 0),
            Err(AbortError::NoSyndrome)
        );
        assert_eq!(decode(0x20 << 26, 0, 0), Err(AbortError::NotDataAbort));
        assert_eq!(
            decode(esr(true, 2, false, 0, false, false) | 1 << 7, 0, 0),
            Err(AbortError::StageOneWalk)
        );
    }
}
