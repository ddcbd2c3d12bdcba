//! Stream table entries (64 bytes, eight little-endian words): abort,
//! bypass and stage-2-only translation, with decoding for tests and
//! diagnostics. Field positions follow `STRTAB_STE_*` in Linux's
//! `arm-smmu-v3.h` (cross-checked with QEMU's `STE_*` accessors).

use super::error::SmmuError;
use super::idregs::{Features, oas_bits};
use super::regs::genmask;
use crate::mm::pagetable::{PageTable, Stage2};

/// Words in an STE.
pub const STE_DWORDS: usize = 8;
/// Bytes in an STE.
pub const STE_BYTES: usize = 64;

const V: u64 = 1;
const CFG_SHIFT: u32 = 1;
const CFG_ABORT: u64 = 0b000;
const CFG_BYPASS: u64 = 0b100;
const CFG_S1: u64 = 0b101;
const CFG_S2: u64 = 0b110;
const CFG_NESTED: u64 = 0b111;

/// STE.SHCFG bits 45:44 in word 1: 1 = use the incoming shareability.
const STE1_SHCFG_INCOMING: u64 = 1 << 44;

const S2T0SZ: u32 = 32;
const S2SL0: u32 = 38;
const S2IR0: u32 = 40;
const S2OR0: u32 = 42;
const S2SH0: u32 = 44;
const S2TG: u32 = 46;
const S2PS: u32 = 48;
const S2AA64: u64 = 1 << 51;
const S2ENDI: u64 = 1 << 52;
const S2AFFD: u64 = 1 << 53;
const S2PTW: u64 = 1 << 54;
const S2HD: u64 = 1 << 55;
const S2HA: u64 = 1 << 56;
const S2S: u64 = 1 << 57;
const S2R: u64 = 1 << 58;
const S2TTB_MASK: u64 = genmask(51, 4);

/// Table-walk cacheability: write-back read/write-allocate.
const RGN_WBWA: u64 = 0b01;
/// Table-walk cacheability: non-cacheable.
const RGN_NC: u64 = 0b00;

/// What an STE does with a stream (V and Config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SteConfig {
    /// V = 0: every transaction aborts with a `C_BAD_STE` event.
    Invalid,
    /// Abort silently.
    Abort,
    /// Pass through untranslated.
    Bypass,
    /// Stage 1 only.
    Stage1,
    /// Stage 2 only.
    Stage2,
    /// Stage 1 and stage 2.
    Nested,
    /// A reserved Config encoding.
    Reserved(u8),
}

impl SteConfig {
    /// Whether the SMMU may use words other than word 0 for this config,
    /// i.e. whether changing those words needs the entry taken offline
    /// first.
    pub fn uses_more_than_word0(self) -> bool {
        !matches!(self, SteConfig::Invalid | SteConfig::Abort)
    }
}

/// Stage-2 translation parameters of an STE (4 KiB granule, AArch64
/// tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct S2Config {
    /// S2VMID: tags TLB entries; 8 bits unless IDR0.VMID16.
    pub vmid: u16,
    /// S2T0SZ: the input (IPA) size is `64 - t0sz` bits.
    pub t0sz: u8,
    /// S2SL0 (4 KiB granule): 0 = walk starts at level 2, 1 = level 1,
    /// 2 = level 0.
    pub sl0: u8,
    /// S2PS: output size, in the OAS / PARange encoding (0 = 32 bits ...
    /// 6 = 52 bits).
    pub ps: u8,
    /// S2TTB: physical address of the root table (concatenated pages when
    /// the start level needs more than 512 entries).
    pub root: u64,
}

impl S2Config {
    /// The configuration walking `table` with `vmid`, output size `ps`
    /// (typically `Features::oas_field`, or the CPU's PARange if smaller).
    pub fn for_table(table: &PageTable<Stage2>, vmid: u16, ps: u8) -> Result<Self, SmmuError> {
        let sl0 = match table.start_level() {
            2 => 0,
            1 => 1,
            0 => 2,
            _ => return Err(SmmuError::BadConfig("walk cannot start at level 3")),
        };
        let ia = table.ia_bits();
        if !(25..=48).contains(&ia) {
            return Err(SmmuError::BadConfig("input size outside 25..=48 bits"));
        }
        Ok(Self {
            vmid,
            t0sz: (64 - ia) as u8,
            sl0,
            ps,
            root: table.root(),
        })
    }

    /// Input (IPA) size in bits.
    pub fn ia_bits(&self) -> u32 {
        64u32.saturating_sub(u32::from(self.t0sz))
    }

    /// Level at which the walk starts, if S2SL0 is valid for 4 KiB.
    pub fn start_level(&self) -> Option<u32> {
        match self.sl0 {
            0 => Some(2),
            1 => Some(1),
            2 => Some(0),
            _ => None,
        }
    }

    /// Checks the configuration against what the SMMU implements and what
    /// the architecture allows (QEMU rejects the same cases with
    /// `C_BAD_STE`): VMID width, S2PS <= OAS, S2T0SZ within
    /// `[max(16, 64 - PS), 39]`, a start level needing 1 to 16 root pages,
    /// and a root aligned to its size and below `2^PS`.
    pub fn check(&self, features: &Features) -> Result<(), SmmuError> {
        if !features.vmid16 && self.vmid > 0xff {
            return Err(SmmuError::BadConfig("16-bit VMID without IDR0.VMID16"));
        }
        if self.ps > 6 {
            return Err(SmmuError::BadConfig("reserved S2PS encoding"));
        }
        if u32::from(self.ps) > features.oas_field {
            return Err(SmmuError::BadConfig("S2PS larger than IDR5.OAS"));
        }
        // 4 KiB granule: at most 48 bits of input and output.
        let ps_bits = oas_bits(u32::from(self.ps)).min(48);
        let ia = self.ia_bits();
        if self.t0sz > 39 || ia > ps_bits {
            return Err(SmmuError::BadConfig("S2T0SZ out of range"));
        }
        let level = self
            .start_level()
            .ok_or(SmmuError::BadConfig("reserved S2SL0"))?;
        let below = 12 + 9 * (3 - level);
        if ia <= below {
            return Err(SmmuError::BadConfig("start level too low for S2T0SZ"));
        }
        let root_bits = ia - below;
        if root_bits > 13 {
            return Err(SmmuError::BadConfig(
                "more than 16 concatenated root tables",
            ));
        }
        let root_bytes = (8u64 << root_bits).max(4096);
        if !self.root.is_multiple_of(root_bytes) {
            return Err(SmmuError::BadConfig("S2TTB not aligned to the root table"));
        }
        if self.root >> ps_bits != 0 {
            return Err(SmmuError::BadConfig("S2TTB beyond S2PS"));
        }
        Ok(())
    }
}

/// Per-SMMU choices for building STEs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SteOptions {
    /// Table walks snoop the CPU caches (IDR0.COHACC or firmware):
    /// write-back inner-shareable walks; otherwise non-cacheable
    /// outer-shareable (Linux's io-pgtable choice).
    pub coherent_walk: bool,
    /// Set STE.SHCFG = "use incoming" (only with IDR1.ATTR_TYPES_OVR).
    pub shcfg_incoming: bool,
}

/// Decoded word-2 fields of a stage-2 STE (for tests and diagnostics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct S2Fields {
    /// S2IR0.
    pub ir0: u8,
    /// S2OR0.
    pub or0: u8,
    /// S2SH0.
    pub sh0: u8,
    /// S2TG (0 = 4 KiB).
    pub tg: u8,
    /// S2AA64.
    pub aa64: bool,
    /// S2ENDI.
    pub endi: bool,
    /// S2AFFD.
    pub affd: bool,
    /// S2PTW.
    pub ptw: bool,
    /// S2HD or S2HA.
    pub hw_update: bool,
    /// S2S (stall).
    pub stall: bool,
    /// S2R (record faults).
    pub record: bool,
}

/// One stream table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ste(pub [u64; STE_DWORDS]);

const fn field(word: u64, shift: u32, width: u32) -> u64 {
    (word >> shift) & ((1 << width) - 1)
}

impl Ste {
    /// All zero: V = 0.
    pub const INVALID: Ste = Ste([0; STE_DWORDS]);
    /// V = 1, Config = abort: transactions are terminated without an
    /// event. Only word 0 matters.
    pub const ABORT: Ste = Ste([V | CFG_ABORT << CFG_SHIFT, 0, 0, 0, 0, 0, 0, 0]);

    /// V = 1, Config = bypass (not used by the hypervisor, but encodable).
    pub fn bypass(opts: SteOptions) -> Ste {
        let mut s = Ste::INVALID;
        s.0[0] = V | CFG_BYPASS << CFG_SHIFT;
        if opts.shcfg_incoming {
            s.0[1] = STE1_SHCFG_INCOMING;
        }
        s
    }

    /// A stage-2-only entry translating through `cfg` (validate it first
    /// with [`S2Config::check`]): 4 KiB granule, AArch64 tables, little
    /// endian, S2PTW (as Linux), faults recorded (S2R), terminate model
    /// (S2S = 0), no hardware AF/dirty updates.
    pub fn stage2(cfg: &S2Config, opts: SteOptions) -> Ste {
        let (rgn, sh) = if opts.coherent_walk {
            (RGN_WBWA, 3)
        } else {
            (RGN_NC, 2)
        };
        let mut s = Ste::INVALID;
        s.0[0] = V | CFG_S2 << CFG_SHIFT;
        if opts.shcfg_incoming {
            s.0[1] = STE1_SHCFG_INCOMING;
        }
        s.0[2] = u64::from(cfg.vmid)
            | u64::from(cfg.t0sz & 0x3f) << S2T0SZ
            | u64::from(cfg.sl0 & 0x3) << S2SL0
            | rgn << S2IR0
            | rgn << S2OR0
            | sh << S2SH0
            | u64::from(cfg.ps & 0x7) << S2PS
            | S2AA64
            | S2PTW
            | S2R;
        s.0[3] = cfg.root & S2TTB_MASK;
        s
    }

    /// What the entry does with a stream.
    pub fn config(&self) -> SteConfig {
        if self.0[0] & V == 0 {
            return SteConfig::Invalid;
        }
        match field(self.0[0], CFG_SHIFT, 3) {
            CFG_ABORT => SteConfig::Abort,
            CFG_BYPASS => SteConfig::Bypass,
            CFG_S1 => SteConfig::Stage1,
            CFG_S2 => SteConfig::Stage2,
            CFG_NESTED => SteConfig::Nested,
            other => SteConfig::Reserved(other as u8),
        }
    }

    /// S2VMID.
    pub fn vmid(&self) -> u16 {
        self.0[2] as u16
    }

    /// The stage-2 parameters, if the entry translates at stage 2.
    pub fn s2_config(&self) -> Option<S2Config> {
        if !matches!(self.config(), SteConfig::Stage2 | SteConfig::Nested) {
            return None;
        }
        let d2 = self.0[2];
        Some(S2Config {
            vmid: self.vmid(),
            t0sz: field(d2, S2T0SZ, 6) as u8,
            sl0: field(d2, S2SL0, 2) as u8,
            ps: field(d2, S2PS, 3) as u8,
            root: self.0[3] & S2TTB_MASK,
        })
    }

    /// The remaining word-2 fields.
    pub fn s2_fields(&self) -> S2Fields {
        let d2 = self.0[2];
        S2Fields {
            ir0: field(d2, S2IR0, 2) as u8,
            or0: field(d2, S2OR0, 2) as u8,
            sh0: field(d2, S2SH0, 2) as u8,
            tg: field(d2, S2TG, 2) as u8,
            aa64: d2 & S2AA64 != 0,
            endi: d2 & S2ENDI != 0,
            affd: d2 & S2AFFD != 0,
            ptw: d2 & S2PTW != 0,
            hw_update: d2 & (S2HD | S2HA) != 0,
            stall: d2 & S2S != 0,
            record: d2 & S2R != 0,
        }
    }

    /// Whether STE.SHCFG says "use incoming".
    pub fn shcfg_incoming(&self) -> bool {
        field(self.0[1], 44, 2) == 1
    }
}
