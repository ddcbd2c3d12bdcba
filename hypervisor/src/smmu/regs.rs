//! The SMMUv3 register map (offsets and fields, as in the Linux driver's
//! `arm-smmu-v3.h` and QEMU's `smmuv3-internal.h`) and [`SmmuRegs`], the
//! trait through which the driver reaches it.
//!
//! Offsets are from the start of register page 0; page 1 (event queue
//! indices) sits at [`PAGE1`].

/// Offset of register page 1.
pub const PAGE1: usize = 0x1_0000;

/// IDR0 (features); see [`crate::smmu::idregs`].
pub const IDR0: usize = 0x00;
/// IDR0.HYP: the SMMU supports the EL2 translation regime (`TLBI_EL2_*`).
pub const IDR0_HYP: u32 = 1 << 9;
/// IDR1 (sizes).
pub const IDR1: usize = 0x04;
/// IDR1.ATTR_TYPES_OVR: STE attribute overrides (`SHCFG`) are honoured.
pub const IDR1_ATTR_TYPES_OVR: u32 = 1 << 27;

/// CR0: enables.
pub const CR0: usize = 0x20;
/// CR0.SMMUEN: translation on (off: every stream follows GBPA).
pub const CR0_SMMUEN: u32 = 1 << 0;
/// CR0.EVTQEN: event queue on.
pub const CR0_EVTQEN: u32 = 1 << 2;
/// CR0.CMDQEN: command queue on.
pub const CR0_CMDQEN: u32 = 1 << 3;
/// CR0ACK: mirrors CR0 once a change took effect.
pub const CR0ACK: usize = 0x24;

/// CR1: cacheability and shareability of table and queue accesses.
pub const CR1: usize = 0x28;
/// CR1.QUEUE_IC shift (`QUEUE_OC` at +2, `QUEUE_SH` at +4).
pub const CR1_QUEUE_IC_SHIFT: u32 = 0;
/// CR1.TABLE_IC shift (`TABLE_OC` at +2, `TABLE_SH` at +4).
pub const CR1_TABLE_IC_SHIFT: u32 = 6;
/// CR1 cacheability: non-cacheable.
pub const CR1_CACHE_NC: u32 = 0;
/// CR1 cacheability: write-back.
pub const CR1_CACHE_WB: u32 = 1;
/// Shareability: non-shareable.
pub const SH_NSH: u32 = 0;
/// Shareability: outer shareable.
pub const SH_OSH: u32 = 2;
/// Shareability: inner shareable.
pub const SH_ISH: u32 = 3;

/// CR2.
pub const CR2: usize = 0x2c;
/// CR2.E2H: EL2-with-E2H regime for `StreamWorld` (off here).
pub const CR2_E2H: u32 = 1 << 0;
/// CR2.RECINVSID: record `C_BAD_STREAMID` events for out-of-range SIDs.
pub const CR2_RECINVSID: u32 = 1 << 1;
/// CR2.PTM: private TLB maintenance (ignore broadcast TLBI from CPUs).
pub const CR2_PTM: u32 = 1 << 2;

/// GBPA: what happens to traffic while SMMUEN is 0.
pub const GBPA: usize = 0x44;
/// GBPA.ABORT: abort every transaction.
pub const GBPA_ABORT: u32 = 1 << 20;
/// GBPA.UPDATE: set with a write, cleared by the SMMU when it took effect.
pub const GBPA_UPDATE: u32 = 1 << 31;

/// IRQ_CTRL: wired/MSI interrupt enables.
pub const IRQ_CTRL: usize = 0x50;
/// IRQ_CTRL.GERROR_IRQEN.
pub const IRQ_CTRL_GERROR_IRQEN: u32 = 1 << 0;
/// IRQ_CTRL.EVTQ_IRQEN.
pub const IRQ_CTRL_EVTQ_IRQEN: u32 = 1 << 2;
/// IRQ_CTRLACK: mirrors IRQ_CTRL.
pub const IRQ_CTRLACK: usize = 0x54;

/// GERROR: global errors, active while a bit differs from GERRORN.
pub const GERROR: usize = 0x60;
/// GERROR.CMDQ_ERR: the command queue stopped (`CMDQ_CONS.ERR`).
pub const GERROR_CMDQ_ERR: u32 = 1 << 0;
/// GERROR.EVTQ_ABT_ERR: an event queue write aborted.
pub const GERROR_EVTQ_ABT_ERR: u32 = 1 << 2;
/// GERROR.PRIQ_ABT_ERR: a PRI queue write aborted.
pub const GERROR_PRIQ_ABT_ERR: u32 = 1 << 3;
/// GERROR.MSI_CMDQ_ABT_ERR.
pub const GERROR_MSI_CMDQ_ABT_ERR: u32 = 1 << 4;
/// GERROR.MSI_EVTQ_ABT_ERR.
pub const GERROR_MSI_EVTQ_ABT_ERR: u32 = 1 << 5;
/// GERROR.MSI_PRIQ_ABT_ERR.
pub const GERROR_MSI_PRIQ_ABT_ERR: u32 = 1 << 6;
/// GERROR.MSI_GERROR_ABT_ERR.
pub const GERROR_MSI_GERROR_ABT_ERR: u32 = 1 << 7;
/// GERROR.SFM_ERR: the SMMU entered service failure mode.
pub const GERROR_SFM_ERR: u32 = 1 << 8;
/// Every defined GERROR bit.
pub const GERROR_ERR_MASK: u32 = 0x1fd;
/// GERRORN: software acknowledges an error by toggling its bit to match.
pub const GERRORN: usize = 0x64;
/// GERROR_IRQ_CFG0 (64-bit): MSI address (0: wired interrupt).
pub const GERROR_IRQ_CFG0: usize = 0x68;
/// GERROR_IRQ_CFG1: MSI data.
pub const GERROR_IRQ_CFG1: usize = 0x70;
/// GERROR_IRQ_CFG2: MSI attributes.
pub const GERROR_IRQ_CFG2: usize = 0x74;

/// STRTAB_BASE (64-bit).
pub const STRTAB_BASE: usize = 0x80;
/// STRTAB_BASE.RA: read-allocate hint.
pub const STRTAB_BASE_RA: u64 = 1 << 62;
/// STRTAB_BASE.ADDR bits 51:6.
pub const STRTAB_BASE_ADDR_MASK: u64 = genmask(51, 6);
/// STRTAB_BASE_CFG.
pub const STRTAB_BASE_CFG: usize = 0x88;
/// STRTAB_BASE_CFG.FMT shift (0 linear, 1 two-level).
pub const STRTAB_BASE_CFG_FMT_SHIFT: u32 = 16;
/// STRTAB_BASE_CFG.FMT value: linear.
pub const STRTAB_FMT_LINEAR: u32 = 0;
/// STRTAB_BASE_CFG.FMT value: two-level.
pub const STRTAB_FMT_2LVL: u32 = 1;
/// STRTAB_BASE_CFG.SPLIT shift (5 bits).
pub const STRTAB_BASE_CFG_SPLIT_SHIFT: u32 = 6;
/// STRTAB_BASE_CFG.LOG2SIZE mask (bits 5:0).
pub const STRTAB_BASE_CFG_LOG2SIZE_MASK: u32 = 0x3f;

/// CMDQ_BASE (64-bit).
pub const CMDQ_BASE: usize = 0x90;
/// CMDQ_PROD: written by software.
pub const CMDQ_PROD: usize = 0x98;
/// CMDQ_CONS: advanced by the SMMU; ERR in bits 30:24.
pub const CMDQ_CONS: usize = 0x9c;
/// CMDQ_CONS.ERR shift.
pub const CMDQ_CONS_ERR_SHIFT: u32 = 24;
/// CMDQ_CONS.ERR mask (after shifting).
pub const CMDQ_CONS_ERR_MASK: u32 = 0x7f;

/// EVTQ_BASE (64-bit).
pub const EVTQ_BASE: usize = 0xa0;
/// EVTQ_PROD (page 1): advanced by the SMMU; OVFLG in bit 31.
pub const EVTQ_PROD: usize = PAGE1 + 0xa8;
/// EVTQ_CONS (page 1): written by software; OVACKFLG in bit 31.
pub const EVTQ_CONS: usize = PAGE1 + 0xac;
/// EVTQ_IRQ_CFG0 (64-bit): MSI address (0: wired interrupt).
pub const EVTQ_IRQ_CFG0: usize = 0xb0;
/// EVTQ_IRQ_CFG1: MSI data.
pub const EVTQ_IRQ_CFG1: usize = 0xb8;
/// EVTQ_IRQ_CFG2: MSI attributes.
pub const EVTQ_IRQ_CFG2: usize = 0xbc;

/// Queue base registers: read/write-allocate hint (bit 62).
pub const Q_BASE_RWA: u64 = 1 << 62;
/// Queue base registers: ADDR bits 51:5.
pub const Q_BASE_ADDR_MASK: u64 = genmask(51, 5);
/// Queue base registers: LOG2SIZE bits 4:0.
pub const Q_BASE_LOG2SIZE_MASK: u64 = 0x1f;
/// Queue PROD/CONS: overflow flag (EVTQ_PROD.OVFLG, EVTQ_CONS.OVACKFLG).
pub const Q_OVF: u32 = 1 << 31;

/// Bits `hi..=lo` set.
pub const fn genmask(hi: u32, lo: u32) -> u64 {
    (u64::MAX >> (63 - hi)) & (u64::MAX << lo)
}

/// CR1 for table and queue accesses: write-back inner shareable when the
/// SMMU is coherent, non-cacheable outer shareable otherwise.
pub const fn cr1(coherent: bool) -> u32 {
    let (cache, sh) = if coherent {
        (CR1_CACHE_WB, SH_ISH)
    } else {
        (CR1_CACHE_NC, SH_OSH)
    };
    let one = cache | cache << 2 | sh << 4;
    one << CR1_QUEUE_IC_SHIFT | one << CR1_TABLE_IC_SHIFT
}

/// The SMMU's register page, as the driver sees it.
///
/// On the target this is MMIO (Device-nGnRE). The implementation must give
/// the ordering Linux's `readl`/`writel` give: every write is ordered
/// after the CPU's earlier writes to normal memory (queue entries, stream
/// table entries: a `dsb st` before the store), and every read is ordered
/// before the CPU's later reads of normal memory (event records: a
/// `dsb ld`/`dmb` after the load). 64-bit registers are accessed with one
/// 64-bit access.
pub trait SmmuRegs {
    /// Reads the 32-bit register at byte offset `off`.
    fn read32(&self, off: usize) -> u32;
    /// Writes the 32-bit register at byte offset `off`.
    fn write32(&mut self, off: usize, value: u32);
    /// Reads the 64-bit register at byte offset `off`.
    fn read64(&self, off: usize) -> u64;
    /// Writes the 64-bit register at byte offset `off`.
    fn write64(&mut self, off: usize, value: u64);
    /// Called between two reads of a register being polled; a real
    /// implementation may wait a little (e.g. 1 µs) so that a poll limit
    /// becomes a time limit.
    fn relax(&mut self) {}
}

/// Reads `off` until `done` holds for its value, at most `limit` times
/// (at least once). Returns the last value read, or `None` on timeout.
pub fn poll32(
    regs: &mut impl SmmuRegs,
    off: usize,
    limit: u32,
    done: impl Fn(u32) -> bool,
) -> Option<u32> {
    for i in 0..limit.max(1) {
        if i > 0 {
            regs.relax();
        }
        let v = regs.read32(off);
        if done(v) {
            return Some(v);
        }
    }
    None
}
