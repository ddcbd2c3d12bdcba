//! Command queue entries (16 bytes, two little-endian words) and the
//! planning of stage-2 TLB invalidations. Field positions follow
//! `CMDQ_*` in Linux's `arm-smmu-v3.h` (cross-checked with QEMU's `CMD_*`
//! accessors).

use alloc::vec::Vec;
use core::fmt;

use super::error::SmmuError;
use super::regs::genmask;

/// Words in a command.
pub const CMD_DWORDS: usize = 2;
/// Bytes in a command.
pub const CMD_BYTES: usize = 16;

/// Opcodes (word 0 bits 7:0).
pub mod op {
    /// CFGI_STE: invalidate cached configuration of one stream.
    pub const CFGI_STE: u8 = 0x03;
    /// CFGI_ALL: invalidate all cached configuration (CFGI_STE_RANGE, 2^32).
    pub const CFGI_ALL: u8 = 0x04;
    /// TLBI_EL2_ALL: invalidate every EL2 TLB entry.
    pub const TLBI_EL2_ALL: u8 = 0x20;
    /// TLBI_S12_VMALL: invalidate every entry of one VMID.
    pub const TLBI_S12_VMALL: u8 = 0x28;
    /// TLBI_S2_IPA: invalidate stage-2 entries by IPA (or IPA range).
    pub const TLBI_S2_IPA: u8 = 0x2a;
    /// TLBI_NSNH_ALL: invalidate every non-secure, non-hyp TLB entry.
    pub const TLBI_NSNH_ALL: u8 = 0x30;
    /// CMD_SYNC: completes when every earlier command has completed.
    pub const CMD_SYNC: u8 = 0x46;
}

const SID_SHIFT: u32 = 32;
const VMID_SHIFT: u32 = 32;
const NUM_SHIFT: u32 = 12;
const SCALE_SHIFT: u32 = 20;
const SYNC_CS_SHIFT: u32 = 12;
const LEAF: u64 = 1;
const TTL_SHIFT: u32 = 8;
const TG_SHIFT: u32 = 10;
const CFGI_RANGE_ALL: u64 = 31;
/// TLBI address field: IPA bits 51:12.
pub const IPA_MASK: u64 = genmask(51, 12);

/// Largest chunk count of one range command (NUM + 1).
pub const RANGE_NUM_MAX: u64 = 32;
/// Largest SCALE of one range command.
pub const RANGE_SCALE_MAX: u32 = 31;
/// TG for 4 KiB pages.
pub const TG_4K: u8 = 1;
/// Default page count above which an SMMU without range invalidation
/// gets one `TLBI_S12_VMALL` instead of one `TLBI_S2_IPA` per page.
pub const DEFAULT_PAGE_LIMIT: u64 = 64;

/// The range fields of a `TLBI_S2_IPA`: it covers `(num + 1) << scale`
/// pages of granule `tg` (1 = 4 KiB) from its address; `ttl` is the level
/// hint (0 = any level).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlbiRange {
    /// NUM: chunk count minus one (0..=31).
    pub num: u8,
    /// SCALE: log2 of the chunk size in pages (0..=31).
    pub scale: u8,
    /// TG: granule (0 = not a range command, 1 = 4 KiB).
    pub tg: u8,
    /// TTL: level of the leaf entries, 0 if unknown.
    pub ttl: u8,
}

impl TlbiRange {
    /// Pages covered.
    pub fn pages(&self) -> u64 {
        (u64::from(self.num & 0x1f) + 1) << (self.scale & 0x1f)
    }
}

/// One command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cmd(pub [u64; CMD_DWORDS]);

impl Cmd {
    const fn opcode_only(op: u8) -> Cmd {
        Cmd([op as u64, 0])
    }

    /// CFGI_STE for `sid`; `leaf` limits it to the STE (not the level-1
    /// descriptor of a two-level table).
    pub const fn cfgi_ste(sid: u32, leaf: bool) -> Cmd {
        Cmd([op::CFGI_STE as u64 | (sid as u64) << SID_SHIFT, leaf as u64])
    }

    /// CFGI_ALL (Range = 31 covers every stream, as Linux encodes it).
    pub const fn cfgi_all() -> Cmd {
        Cmd([op::CFGI_ALL as u64, CFGI_RANGE_ALL])
    }

    /// TLBI_S12_VMALL for `vmid`.
    pub const fn tlbi_s12_vmall(vmid: u16) -> Cmd {
        Cmd([op::TLBI_S12_VMALL as u64 | (vmid as u64) << VMID_SHIFT, 0])
    }

    /// TLBI_S2_IPA of the single address `ipa` (TG = 0: entries of any
    /// level containing it); `leaf` limits it to leaf entries.
    pub const fn tlbi_s2_ipa(vmid: u16, ipa: u64, leaf: bool) -> Cmd {
        Cmd([
            op::TLBI_S2_IPA as u64 | (vmid as u64) << VMID_SHIFT,
            (ipa & IPA_MASK) | leaf as u64,
        ])
    }

    /// TLBI_S2_IPA of the range `range` from `ipa` (needs IDR3.RIL).
    pub const fn tlbi_s2_ipa_range(vmid: u16, ipa: u64, leaf: bool, range: TlbiRange) -> Cmd {
        Cmd([
            op::TLBI_S2_IPA as u64
                | ((range.num & 0x1f) as u64) << NUM_SHIFT
                | ((range.scale & 0x1f) as u64) << SCALE_SHIFT
                | (vmid as u64) << VMID_SHIFT,
            (ipa & IPA_MASK)
                | leaf as u64
                | ((range.ttl & 3) as u64) << TTL_SHIFT
                | ((range.tg & 3) as u64) << TG_SHIFT,
        ])
    }

    /// TLBI_NSNH_ALL.
    pub const fn tlbi_nsnh_all() -> Cmd {
        Cmd::opcode_only(op::TLBI_NSNH_ALL)
    }

    /// TLBI_EL2_ALL (only when IDR0.HYP).
    pub const fn tlbi_el2_all() -> Cmd {
        Cmd::opcode_only(op::TLBI_EL2_ALL)
    }

    /// CMD_SYNC with CS = none: completion is observed by polling
    /// CMDQ_CONS.
    pub const fn sync() -> Cmd {
        Cmd::opcode_only(op::CMD_SYNC)
    }

    /// The opcode.
    pub fn opcode(&self) -> u8 {
        self.0[0] as u8
    }

    /// StreamID (CFGI_STE).
    pub fn sid(&self) -> u32 {
        (self.0[0] >> SID_SHIFT) as u32
    }

    /// VMID (TLBI_S12_VMALL, TLBI_S2_IPA).
    pub fn vmid(&self) -> u16 {
        (self.0[0] >> VMID_SHIFT) as u16
    }

    /// Leaf bit (CFGI_STE, TLBI_S2_IPA).
    pub fn leaf(&self) -> bool {
        self.0[1] & LEAF != 0
    }

    /// Address (TLBI_S2_IPA).
    pub fn ipa(&self) -> u64 {
        self.0[1] & IPA_MASK
    }

    /// Range fields (TLBI_S2_IPA; `tg == 0` for the single-address form).
    pub fn range(&self) -> TlbiRange {
        TlbiRange {
            num: ((self.0[0] >> NUM_SHIFT) & 0x1f) as u8,
            scale: ((self.0[0] >> SCALE_SHIFT) & 0x1f) as u8,
            tg: ((self.0[1] >> TG_SHIFT) & 3) as u8,
            ttl: ((self.0[1] >> TTL_SHIFT) & 3) as u8,
        }
    }

    /// CS (CMD_SYNC): 0 none, 1 IRQ, 2 SEV.
    pub fn sync_cs(&self) -> u8 {
        ((self.0[0] >> SYNC_CS_SHIFT) & 3) as u8
    }

    /// Pages a TLBI_S2_IPA covers: 1 for the single-address form.
    pub fn tlbi_pages(&self) -> u64 {
        let r = self.range();
        if r.tg == 0 { 1 } else { r.pages() }
    }

    /// The opcode's name.
    pub fn name(&self) -> &'static str {
        match self.opcode() {
            op::CFGI_STE => "CFGI_STE",
            op::CFGI_ALL => "CFGI_ALL",
            op::TLBI_EL2_ALL => "TLBI_EL2_ALL",
            op::TLBI_S12_VMALL => "TLBI_S12_VMALL",
            op::TLBI_S2_IPA => "TLBI_S2_IPA",
            op::TLBI_NSNH_ALL => "TLBI_NSNH_ALL",
            op::CMD_SYNC => "CMD_SYNC",
            _ => "command",
        }
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.opcode() {
            op::CFGI_STE => write!(f, "CFGI_STE sid {:#x} leaf {}", self.sid(), self.leaf()),
            op::TLBI_S12_VMALL => write!(f, "TLBI_S12_VMALL vmid {}", self.vmid()),
            op::TLBI_S2_IPA => write!(
                f,
                "TLBI_S2_IPA vmid {} ipa {:#x} pages {} leaf {}",
                self.vmid(),
                self.ipa(),
                self.tlbi_pages(),
                self.leaf()
            ),
            op::CFGI_ALL | op::TLBI_EL2_ALL | op::TLBI_NSNH_ALL | op::CMD_SYNC => {
                f.write_str(self.name())
            }
            other => write!(
                f,
                "opcode {other:#04x} [{:#018x}, {:#018x}]",
                self.0[0], self.0[1]
            ),
        }
    }
}

/// Range-form `TLBI_S2_IPA` commands covering the 4 KiB pages
/// `[first_page, first_page + pages)` exactly, with the fewest commands:
/// each takes the lowest set bit of the remaining count as SCALE and the
/// five bits from there as NUM + 1 (Linux's `__arm_smmu_tlb_inv_range`).
/// TTL stays 0 (the leaf level is not known: blocks of any size may be
/// mapped). A lone page with SCALE = NUM = 0 is issued in the single-address
/// form instead, because TTL = NUM = SCALE = 0 with TG != 0 is not a valid
/// range command.
pub fn range_tlbis(vmid: u16, first_page: u64, pages: u64, leaf: bool) -> RangeTlbis {
    RangeTlbis {
        vmid,
        leaf,
        page: first_page,
        remaining: pages,
    }
}

/// Iterator returned by [`range_tlbis`].
#[derive(Debug, Clone)]
pub struct RangeTlbis {
    vmid: u16,
    leaf: bool,
    page: u64,
    remaining: u64,
}

/// SCALE and NUM + 1 of the next range command for `remaining` (non-zero)
/// pages: the one split rule behind [`RangeTlbis`]'s commands and its
/// count.
#[inline(always)]
fn range_step(remaining: u64) -> (u32, u64) {
    let low = remaining.trailing_zeros();
    let scale = low.min(RANGE_SCALE_MAX);
    let chunks = remaining >> scale;
    // Below the SCALE cap the lowest bit of `chunks` is set, so
    // `chunks & 31` is 1..=31; at the cap take as many as allowed.
    let num = if low <= RANGE_SCALE_MAX {
        chunks & (RANGE_NUM_MAX - 1)
    } else {
        chunks.min(RANGE_NUM_MAX)
    };
    (scale, num)
}

impl Iterator for RangeTlbis {
    type Item = Cmd;

    fn next(&mut self) -> Option<Cmd> {
        if self.remaining == 0 {
            return None;
        }
        let (scale, num) = range_step(self.remaining);
        let ipa = self.page << 12;
        let cmd = if num == 1 && scale == 0 {
            Cmd::tlbi_s2_ipa(self.vmid, ipa, self.leaf)
        } else {
            let range = TlbiRange {
                num: (num - 1) as u8,
                scale: scale as u8,
                tg: TG_4K,
                ttl: 0,
            };
            Cmd::tlbi_s2_ipa_range(self.vmid, ipa, self.leaf, range)
        };
        let covered = num << scale;
        self.page += covered;
        self.remaining -= covered;
        Some(cmd)
    }

    /// Exact: the commands left, counted without building them.
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.clone().count();
        (n, Some(n))
    }

    /// The commands left, counted by the split rule alone (the invalidation
    /// plan counts them to reserve room before it pushes any).
    fn count(self) -> usize {
        let mut remaining = self.remaining;
        let mut n = 0;
        while remaining != 0 {
            let (scale, num) = range_step(remaining);
            remaining -= num << scale;
            n += 1;
        }
        n
    }
}

/// The commands that invalidate stage-2 entries of `vmid` for the bytes
/// `[ipa, ipa + len)` (widened to whole 4 KiB pages), without the
/// `CMD_SYNC`: range commands when the SMMU has range invalidation
/// (`ril`), else one single-address command per page, or one
/// `TLBI_S12_VMALL` when that would take more than `page_limit` commands.
/// `leaf`: only leaf entries changed (no table was freed). An empty range
/// needs no command. Fails if the range overflows or ends above 2^52.
pub fn plan_s2_invalidation(
    vmid: u16,
    ipa: u64,
    len: u64,
    leaf: bool,
    ril: bool,
    page_limit: u64,
) -> Result<Vec<Cmd>, SmmuError> {
    let mut cmds = Vec::new();
    plan_s2_invalidation_into(&mut cmds, vmid, ipa, len, leaf, ril, page_limit)?;
    Ok(cmds)
}

/// [`plan_s2_invalidation`] appending to `out` (a buffer kept for its
/// capacity on the unmap fast path); on error `out` is left as it was.
///
/// Inlined: a range within one 4 KiB page with room in `out` (the usual
/// UNMAP) gets its one command here, the same the general plan
/// ([`plan_s2_invalidation_general`], out of line) gives it; anything else
/// goes there.
#[inline]
pub fn plan_s2_invalidation_into(
    out: &mut Vec<Cmd>,
    vmid: u16,
    ipa: u64,
    len: u64,
    leaf: bool,
    ril: bool,
    page_limit: u64,
) -> Result<(), SmmuError> {
    if out.len() < out.capacity()
        && let Some(cmd) = one_page_plan(vmid, ipa, len, leaf, ril, page_limit)
    {
        out.push(cmd);
        return Ok(());
    }
    plan_s2_invalidation_general(out, vmid, ipa, len, leaf, ril, page_limit)
}

/// The plan of a range within one 4 KiB page (the usual UNMAP): its one
/// `TLBI_S2_IPA`, the command [`plan_s2_invalidation`] gives it; None
/// for any other range (empty, across a page boundary, reaching past
/// 2^52: the general plan's case, errors included).
#[inline(always)]
pub fn one_page_plan(
    vmid: u16,
    ipa: u64,
    len: u64,
    leaf: bool,
    ril: bool,
    page_limit: u64,
) -> Option<Cmd> {
    // One page: `[ipa, ipa + len)` non-empty, within `ipa`'s page, below
    // 2^52. `ipa < 2^52` bounds the page's end by 2^52 (so the sum cannot
    // overflow): the general plan's checked sum, 2^52 bound and page count
    // of one, in three tests.
    (len != 0 && ipa < 1 << 52 && len <= 4096 - (ipa & 0xfff) && (ril || page_limit >= 1))
        .then(|| Cmd::tlbi_s2_ipa(vmid, ipa & !0xfff, leaf))
}

/// [`plan_s2_invalidation_into`] past its inlined case: every range.
#[inline(never)]
pub(crate) fn plan_s2_invalidation_general(
    out: &mut Vec<Cmd>,
    vmid: u16,
    ipa: u64,
    len: u64,
    leaf: bool,
    ril: bool,
    page_limit: u64,
) -> Result<(), SmmuError> {
    if len == 0 {
        return Ok(());
    }
    let end = ipa.checked_add(len).ok_or(SmmuError::BadRange)?;
    if end > 1 << 52 {
        return Err(SmmuError::BadRange);
    }
    let first = ipa >> 12;
    let pages = end.div_ceil(4096) - first;
    // Room for every command is reserved first, in one step: out of
    // memory fails the plan (leaving `out` as it was), it never aborts.
    // (The check is inline: the fast path has the room already.)
    let reserve = |out: &mut Vec<Cmd>, n: usize| {
        if out.capacity() - out.len() >= n {
            return Ok(());
        }
        out.try_reserve(n).map_err(|_| SmmuError::NoMemory {
            what: "invalidation commands",
        })
    };
    if pages == 1 && (ril || page_limit >= 1) {
        // The usual UNMAP (one 4 KiB page): the one single-address
        // command both forms below produce for it, without their loops.
        reserve(out, 1)?;
        out.push(Cmd::tlbi_s2_ipa(vmid, first << 12, leaf));
    } else if ril {
        let cmds = range_tlbis(vmid, first, pages, leaf);
        // Each command covers at least one page: `pages` is a bound that
        // needs no count when the room is there.
        let room = out.capacity() - out.len();
        reserve(
            out,
            if room as u64 >= pages {
                0
            } else {
                cmds.clone().count()
            },
        )?;
        out.extend(cmds);
    } else if pages > page_limit {
        reserve(out, 1)?;
        out.push(Cmd::tlbi_s12_vmall(vmid));
    } else {
        reserve(out, pages as usize)?;
        out.extend((first..first + pages).map(|p| Cmd::tlbi_s2_ipa(vmid, p << 12, leaf)));
    }
    Ok(())
}
