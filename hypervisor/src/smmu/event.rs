//! Event queue records (32 bytes, four little-endian words), decoded into
//! [`Event`]. Field positions follow `EVTQ_*` in Linux's `arm-smmu-v3.h`
//! (cross-checked with QEMU's `EVT_SET_*`).

use core::fmt;

use super::regs::genmask;

/// Words in an event record.
pub const EVT_DWORDS: usize = 4;
/// Bytes in an event record.
pub const EVT_BYTES: usize = 32;

/// Event numbers (word 0 bits 7:0).
pub mod id {
    /// Unsupported upstream transaction.
    pub const F_UUT: u8 = 0x01;
    /// StreamID out of range (CR2.RECINVSID) or no level-2 table.
    pub const C_BAD_STREAMID: u8 = 0x02;
    /// Fetching the STE aborted.
    pub const F_STE_FETCH: u8 = 0x03;
    /// The STE is invalid or badly configured.
    pub const C_BAD_STE: u8 = 0x04;
    /// Bad ATS translation request.
    pub const F_BAD_ATS_TREQ: u8 = 0x05;
    /// Stream disabled.
    pub const F_STREAM_DISABLED: u8 = 0x06;
    /// Translation forbidden (bypass not allowed).
    pub const F_TRANSL_FORBIDDEN: u8 = 0x07;
    /// SubstreamID out of range.
    pub const C_BAD_SUBSTREAMID: u8 = 0x08;
    /// Fetching the context descriptor aborted.
    pub const F_CD_FETCH: u8 = 0x09;
    /// The context descriptor is invalid.
    pub const C_BAD_CD: u8 = 0x0a;
    /// A table walk access aborted.
    pub const F_WALK_EABT: u8 = 0x0b;
    /// Translation fault: no valid descriptor.
    pub const F_TRANSLATION: u8 = 0x10;
    /// Address size fault.
    pub const F_ADDR_SIZE: u8 = 0x11;
    /// Access flag fault.
    pub const F_ACCESS: u8 = 0x12;
    /// Permission fault.
    pub const F_PERMISSION: u8 = 0x13;
    /// TLB conflict.
    pub const F_TLB_CONFLICT: u8 = 0x20;
    /// Configuration cache conflict.
    pub const F_CFG_CONFLICT: u8 = 0x21;
    /// Page request (PRI).
    pub const E_PAGE_REQUEST: u8 = 0x24;
    /// Fetching the VMS aborted.
    pub const F_VMS_FETCH: u8 = 0x25;
}

const SSV: u64 = 1 << 11;
const SSID_SHIFT: u32 = 12;
const SID_SHIFT: u32 = 32;
const STALL: u64 = 1 << 31;
const RNW: u64 = 1 << 35;
const S2: u64 = 1 << 39;
const CLASS_SHIFT: u32 = 40;
const IPA_MASK: u64 = genmask(51, 12);

/// What the faulting access was doing (CLASS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultClass {
    /// Fetching a context descriptor (0b00).
    Cd,
    /// Walking translation tables (0b01).
    TableWalk,
    /// Translating the input address (0b10).
    Input,
    /// Reserved encoding (0b11).
    Reserved,
}

/// One decoded event record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Event number (see [`id`]).
    pub id: u8,
    /// StreamID of the transaction.
    pub sid: u32,
    /// SubstreamID, when valid (SSV).
    pub ssid: Option<u32>,
    /// Input address of the transaction (word 2).
    pub input_addr: u64,
    /// IPA (word 3 bits 51:12; meaningful for stage-2 faults).
    pub ipa: u64,
    /// The access was a read (RnW).
    pub read: bool,
    /// The fault was at stage 2.
    pub s2: bool,
    /// What was being accessed.
    pub class: FaultClass,
    /// The transaction is stalled (never, with S2S = 0).
    pub stall: bool,
    /// The record as read.
    pub raw: [u64; EVT_DWORDS],
}

impl Event {
    /// Decodes a record. Every bit pattern decodes; fields that an event
    /// number does not define hold whatever the record holds.
    pub fn decode(raw: [u64; EVT_DWORDS]) -> Event {
        let [d0, d1, d2, d3] = raw;
        Event {
            id: d0 as u8,
            sid: (d0 >> SID_SHIFT) as u32,
            ssid: (d0 & SSV != 0).then_some(((d0 >> SSID_SHIFT) & 0xf_ffff) as u32),
            input_addr: d2,
            ipa: d3 & IPA_MASK,
            read: d1 & RNW != 0,
            s2: d1 & S2 != 0,
            class: match (d1 >> CLASS_SHIFT) & 3 {
                0 => FaultClass::Cd,
                1 => FaultClass::TableWalk,
                2 => FaultClass::Input,
                _ => FaultClass::Reserved,
            },
            stall: d1 & STALL != 0,
            raw,
        }
    }

    /// Whether this is a translation, address size, access or permission
    /// fault (what a virtio-iommu reports as a MAPPING fault).
    pub fn is_translation_fault(&self) -> bool {
        (id::F_TRANSLATION..=id::F_PERMISSION).contains(&self.id)
    }

    /// The architecture's name of the event number, if defined.
    pub fn name(&self) -> Option<&'static str> {
        Some(match self.id {
            id::F_UUT => "F_UUT",
            id::C_BAD_STREAMID => "C_BAD_STREAMID",
            id::F_STE_FETCH => "F_STE_FETCH",
            id::C_BAD_STE => "C_BAD_STE",
            id::F_BAD_ATS_TREQ => "F_BAD_ATS_TREQ",
            id::F_STREAM_DISABLED => "F_STREAM_DISABLED",
            id::F_TRANSL_FORBIDDEN => "F_TRANSL_FORBIDDEN",
            id::C_BAD_SUBSTREAMID => "C_BAD_SUBSTREAMID",
            id::F_CD_FETCH => "F_CD_FETCH",
            id::C_BAD_CD => "C_BAD_CD",
            id::F_WALK_EABT => "F_WALK_EABT",
            id::F_TRANSLATION => "F_TRANSLATION",
            id::F_ADDR_SIZE => "F_ADDR_SIZE",
            id::F_ACCESS => "F_ACCESS",
            id::F_PERMISSION => "F_PERMISSION",
            id::F_TLB_CONFLICT => "F_TLB_CONFLICT",
            id::F_CFG_CONFLICT => "F_CFG_CONFLICT",
            id::E_PAGE_REQUEST => "E_PAGE_REQUEST",
            id::F_VMS_FETCH => "F_VMS_FETCH",
            _ => return None,
        })
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({:#04x})", self.id)?,
            None => write!(f, "event {:#04x}", self.id)?,
        }
        write!(f, " sid {:#x}", self.sid)?;
        if let Some(ssid) = self.ssid {
            write!(f, " ssid {ssid:#x}")?;
        }
        if self.is_translation_fault() || self.id == id::F_WALK_EABT {
            let class = match self.class {
                FaultClass::Cd => "CD",
                FaultClass::TableWalk => "TT",
                FaultClass::Input => "IN",
                FaultClass::Reserved => "reserved",
            };
            write!(
                f,
                " {} addr {:#x} ipa {:#x} stage {} class {class}",
                if self.read { "read" } else { "write" },
                self.input_addr,
                self.ipa,
                if self.s2 { 2 } else { 1 },
            )?;
        }
        Ok(())
    }
}
