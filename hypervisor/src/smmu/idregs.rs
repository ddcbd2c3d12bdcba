//! Decoding of the SMMUv3 identification registers IDR0, IDR1, IDR3 and
//! IDR5 into the features the hypervisor adapts to.

use core::fmt;

/// Byte offset of IDR0; IDR1..IDR5 follow at 4-byte steps.
pub const IDR0_OFFSET: usize = 0x0;
/// How many IDR registers [`Features::decode`] takes (IDR0..IDR5).
pub const IDR_COUNT: usize = 6;

/// Stream table formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamTableLevels {
    /// Only a linear table.
    Linear,
    /// Two-level tables are supported.
    TwoLevel,
}

/// What an SMMUv3 advertises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// Stage-1 translation (IDR0.S1P).
    pub stage1: bool,
    /// Stage-2 translation (IDR0.S2P); required by the hypervisor.
    pub stage2: bool,
    /// AArch64 translation tables supported (IDR0.TTF).
    pub aarch64_tables: bool,
    /// Coherent table walks and queue accesses (IDR0.COHACC).
    pub coherent: bool,
    /// 16-bit VMIDs (IDR0.VMID16).
    pub vmid16: bool,
    /// Message-signalled interrupts (IDR0.MSI).
    pub msi: bool,
    /// Stream table levels (IDR0.ST_LEVEL).
    pub st_levels: StreamTableLevels,
    /// Stream ID width in bits (IDR1.SIDSIZE).
    pub sid_bits: u32,
    /// log2 of the maximum command queue entries (IDR1.CMDQS).
    pub cmdq_log2: u32,
    /// log2 of the maximum event queue entries (IDR1.EVENTQS).
    pub evtq_log2: u32,
    /// Range invalidation (IDR3.RIL).
    pub ril: bool,
    /// Output address size in bits (IDR5.OAS).
    pub oas_bits: u32,
    /// Raw IDR5.OAS encoding (same encoding as S2PS/VTCR.PS).
    pub oas_field: u32,
    /// 4 KiB translation granule (IDR5.GRAN4K).
    pub gran4k: bool,
    /// 16 KiB translation granule (IDR5.GRAN16K).
    pub gran16k: bool,
    /// 64 KiB translation granule (IDR5.GRAN64K).
    pub gran64k: bool,
}

const fn bits(v: u32, lo: u32, width: u32) -> u32 {
    (v >> lo) & ((1 << width) - 1)
}

/// Bits of address for an OAS / PARange encoding.
pub fn oas_bits(field: u32) -> u32 {
    crate::arch::pa_range_bits(field as u64)
}

impl Features {
    /// Decodes IDR0..IDR5 (index i holds IDRi).
    pub fn decode(idr: [u32; IDR_COUNT]) -> Features {
        let (idr0, idr1, idr3, idr5) = (idr[0], idr[1], idr[3], idr[5]);
        Features {
            stage1: bits(idr0, 1, 1) != 0,
            stage2: bits(idr0, 0, 1) != 0,
            aarch64_tables: bits(idr0, 2, 2) & 0b10 != 0,
            coherent: bits(idr0, 4, 1) != 0,
            vmid16: bits(idr0, 18, 1) != 0,
            msi: bits(idr0, 13, 1) != 0,
            st_levels: if bits(idr0, 27, 2) == 1 {
                StreamTableLevels::TwoLevel
            } else {
                StreamTableLevels::Linear
            },
            sid_bits: bits(idr1, 0, 6),
            cmdq_log2: bits(idr1, 21, 5),
            evtq_log2: bits(idr1, 16, 5),
            ril: bits(idr3, 10, 1) != 0,
            oas_field: bits(idr5, 0, 3),
            oas_bits: oas_bits(bits(idr5, 0, 3)),
            gran4k: bits(idr5, 4, 1) != 0,
            gran16k: bits(idr5, 5, 1) != 0,
            gran64k: bits(idr5, 6, 1) != 0,
        }
    }

    /// Why this SMMU cannot serve as the stage-2 DMA backend, if it cannot.
    pub fn unusable_reason(&self) -> Option<&'static str> {
        if !self.stage2 {
            Some("no stage-2 translation")
        } else if !self.aarch64_tables {
            Some("no AArch64 translation tables")
        } else if !self.gran4k {
            Some("no 4 KiB granule")
        } else {
            None
        }
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

impl fmt::Display for Features {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stages = match (self.stage1, self.stage2) {
            (true, true) => "s1+s2",
            (false, true) => "s2",
            (true, false) => "s1",
            (false, false) => "none",
        };
        write!(
            f,
            "stages={stages} vmid16={} ril={} sidsize={} oas={}-bit granules=",
            yes(self.vmid16),
            yes(self.ril),
            self.sid_bits,
            self.oas_bits
        )?;
        let mut sep = "";
        for (on, name) in [
            (self.gran4k, "4k"),
            (self.gran16k, "16k"),
            (self.gran64k, "64k"),
        ] {
            if on {
                write!(f, "{sep}{name}")?;
                sep = ",";
            }
        }
        write!(
            f,
            " coherent={} msi={} stream-table={}",
            yes(self.coherent),
            yes(self.msi),
            match self.st_levels {
                StreamTableLevels::Linear => "linear",
                StreamTableLevels::TwoLevel => "2-level",
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    /// IDR values read from QEMU 10's SMMUv3 with both stages.
    const QEMU_NESTED: [u32; 6] = [0x0d44_101b, 0x0273_0010, 0, 0x0000_1414, 0, 0x0000_0074];

    #[test]
    fn decodes_qemu_smmu() {
        let f = Features::decode(QEMU_NESTED);
        assert!(f.stage1 && f.stage2 && f.vmid16 && f.ril);
        assert_eq!(f.sid_bits, 16);
        assert_eq!(f.oas_bits, 44);
        assert!(f.gran4k && f.gran16k && f.gran64k);
        assert_eq!(f.unusable_reason(), None);
        let text = format!("{f}");
        assert!(text.starts_with(
            "stages=s1+s2 vmid16=yes ril=yes sidsize=16 oas=44-bit granules=4k,16k,64k"
        ));
    }

    #[test]
    fn stage1_only_is_unusable() {
        let mut idr = QEMU_NESTED;
        idr[0] &= !1;
        let f = Features::decode(idr);
        assert!(format!("{f}").starts_with("stages=s1 "));
        assert_eq!(f.unusable_reason(), Some("no stage-2 translation"));
    }
}
