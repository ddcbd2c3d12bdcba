//! A fake SMMUv3 for host tests: the registers the driver uses, memory with
//! fake physical addresses, command consumption when CMDQ_PROD moves (or
//! lazily, or never), optional error injection, event production, and a
//! log of register writes, consumed commands and cache maintenance.
//!
//! Like QEMU's model it stops on a bad command (CMDQ_CONS.ERR, toggling
//! GERROR.CMDQ_ERR) and resumes from CONS once GERRORN is toggled back.

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;
use std::alloc::{Layout, alloc_zeroed, dealloc};

use crate::smmu::cmd::{Cmd, op};
use crate::smmu::dma::{CacheOps, DmaMemory};
use crate::smmu::event::EVT_DWORDS;
use crate::smmu::idregs::Features;
use crate::smmu::regs::*;
use crate::smmu::ste::Ste;

/// Fake physical address of the first byte of memory.
pub const PHYS_BASE: u64 = 0x4000_0000;
/// Bytes of fake memory.
pub const MEM_BYTES: usize = 16 << 20;

/// QEMU 10's SMMUv3 with stage 2 only (`arm-smmuv3.stage=2`): IDR0 with
/// S2P, TTF AArch64, COHACC, VMID16, 2-level; IDR1 SIDSIZE 16, queues
/// 2^19; IDR3 RIL; IDR5 OAS 44, 4K/16K/64K.
pub const QEMU_S2: [u32; 6] = [0x0d44_1019, 0x0273_0010, 0, 0x0000_1414, 0, 0x0000_0074];

/// When the fake consumes commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consume {
    /// All of them, as soon as CMDQ_PROD is written (like QEMU).
    OnProd,
    /// Up to `n` per read of CMDQ_CONS (a slow SMMU).
    PerConsRead(u32),
    /// Never (a hung SMMU).
    Never,
}

/// One command the fake consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consumed {
    /// The command.
    pub cmd: Cmd,
    /// For CFGI_STE: the STE the SMMU would fetch right then (by walking
    /// the stream table as programmed); `None` if no STE is reachable.
    pub ste: Option<Ste>,
}

/// The fake's state.
pub struct State {
    mem: *mut u8,
    next: u64,
    /// IDR0..IDR5.
    pub idr: [u32; 6],
    pub cr0: u32,
    pub cr0ack: u32,
    pub cr1: u32,
    pub cr2: u32,
    pub gbpa: u32,
    pub irq_ctrl: u32,
    pub irq_ctrlack: u32,
    pub gerror: u32,
    pub gerrorn: u32,
    pub gerror_irq_cfg0: u64,
    pub evtq_irq_cfg0: u64,
    pub strtab_base: u64,
    pub strtab_base_cfg: u32,
    pub cmdq_base: u64,
    pub cmdq_prod: u32,
    pub cmdq_cons: u32,
    pub evtq_base: u64,
    pub evtq_prod: u32,
    pub evtq_cons: u32,
    /// Consumption policy.
    pub consume: Consume,
    /// CR0ACK / IRQ_CTRLACK never follow (a dead SMMU).
    pub ack_stuck: bool,
    /// Fail the command that would be consumed `n`-th (0-based) with
    /// CMDQ_CONS.ERR = `code`.
    pub inject: Option<(usize, u8)>,
    /// Register writes in order: (offset, value).
    pub writes: Vec<(usize, u64)>,
    /// Commands consumed, in order.
    pub consumed: Vec<Consumed>,
    /// Cache cleans: (phys, len).
    pub cleans: Vec<(u64, usize)>,
    /// Cache clean+invalidates: (phys, len).
    pub invalidates: Vec<(u64, usize)>,
    /// Commands the fake stopped on (before the driver skipped them).
    pub faulted: Vec<Cmd>,
}

impl Drop for State {
    fn drop(&mut self) {
        // SAFETY: allocated in FakeSmmu::new with this layout.
        unsafe { dealloc(self.mem, layout()) }
    }
}

fn layout() -> Layout {
    Layout::from_size_align(MEM_BYTES, 1 << 20).expect("layout")
}

impl State {
    fn offset(&self, phys: u64, len: usize) -> Option<usize> {
        let off = usize::try_from(phys.checked_sub(PHYS_BASE)?).ok()?;
        (off.checked_add(len)? <= MEM_BYTES).then_some(off)
    }

    /// Reads the 64-bit word at `phys` (None outside memory).
    pub fn read64(&self, phys: u64) -> Option<u64> {
        let off = self.offset(phys, 8)?;
        // SAFETY: in bounds of the allocation (checked above).
        Some(u64::from_le(unsafe {
            self.mem.add(off).cast::<u64>().read_unaligned()
        }))
    }

    /// Writes the 64-bit word at `phys` (ignored outside memory).
    pub fn write64(&mut self, phys: u64, v: u64) {
        if let Some(off) = self.offset(phys, 8) {
            // SAFETY: in bounds of the allocation (checked above).
            unsafe { self.mem.add(off).cast::<u64>().write_unaligned(v.to_le()) }
        }
    }

    /// The STE the SMMU would use for `sid`, walking STRTAB_BASE(_CFG).
    pub fn walk_ste(&self, sid: u32) -> Option<Ste> {
        let base = self.strtab_base & STRTAB_BASE_ADDR_MASK;
        let log2size = self.strtab_base_cfg & STRTAB_BASE_CFG_LOG2SIZE_MASK;
        if u64::from(sid) >= 1u64 << log2size {
            return None;
        }
        let addr = if (self.strtab_base_cfg >> STRTAB_BASE_CFG_FMT_SHIFT) & 3 == STRTAB_FMT_2LVL {
            let split = (self.strtab_base_cfg >> STRTAB_BASE_CFG_SPLIT_SHIFT) & 0x1f;
            let desc = self.read64(base + u64::from(sid >> split) * 8)?;
            let span = desc & 0x1f;
            let idx = u64::from(sid & ((1 << split) - 1));
            if span == 0 || idx >= 1 << (span - 1) {
                return None;
            }
            (desc & genmask(51, 6)) + idx * 64
        } else {
            base + u64::from(sid) * 64
        };
        let mut ste = Ste::INVALID;
        for (i, w) in ste.0.iter_mut().enumerate() {
            *w = self.read64(addr + i as u64 * 8)?;
        }
        Some(ste)
    }

    fn q_log2(base: u64) -> u32 {
        (base & Q_BASE_LOG2SIZE_MASK) as u32
    }

    fn cmdq_error_pending(&self) -> bool {
        (self.gerror ^ self.gerrorn) & GERROR_CMDQ_ERR != 0
    }

    /// Consumes up to `max` commands.
    fn consume(&mut self, max: u32) {
        if self.cr0 & CR0_CMDQEN == 0 {
            return;
        }
        let log2 = Self::q_log2(self.cmdq_base);
        let mask = (2u32 << log2) - 1;
        let base = self.cmdq_base & Q_BASE_ADDR_MASK;
        for _ in 0..max {
            let (prod, cons) = (self.cmdq_prod & mask, self.cmdq_cons & mask);
            if prod == cons || self.cmdq_error_pending() {
                return;
            }
            let addr = base + u64::from(cons & ((1 << log2) - 1)) * 16;
            let cmd = Cmd([
                self.read64(addr).unwrap_or(0),
                self.read64(addr + 8).unwrap_or(0),
            ]);
            let known = matches!(
                cmd.opcode(),
                op::CFGI_STE
                    | op::CFGI_ALL
                    | op::TLBI_EL2_ALL
                    | op::TLBI_S12_VMALL
                    | op::TLBI_S2_IPA
                    | op::TLBI_NSNH_ALL
                    | op::CMD_SYNC
            );
            let code = match self.inject {
                Some((n, code)) if n == self.consumed.len() => {
                    self.inject = None;
                    Some(code)
                }
                _ if !known => Some(1),
                _ => None,
            };
            if let Some(code) = code {
                self.faulted.push(cmd);
                self.cmdq_cons = (self.cmdq_cons & mask) | u32::from(code) << 24;
                self.gerror ^= GERROR_CMDQ_ERR;
                return;
            }
            let ste = (cmd.opcode() == op::CFGI_STE)
                .then(|| self.walk_ste(cmd.sid()))
                .flatten();
            self.consumed.push(Consumed { cmd, ste });
            // Like QEMU, CONS keeps the last ERR value.
            self.cmdq_cons = (self.cmdq_cons & !mask) | ((cons + 1) & mask);
        }
    }

    /// Produces one event record; false if the queue is off or full (then
    /// EVTQ_PROD.OVFLG toggles).
    pub fn push_event(&mut self, rec: [u64; EVT_DWORDS]) -> bool {
        if self.cr0 & CR0_EVTQEN == 0 {
            return false;
        }
        let log2 = Self::q_log2(self.evtq_base);
        let mask = (2u32 << log2) - 1;
        let (prod, cons) = (self.evtq_prod & mask, self.evtq_cons & mask);
        if prod.wrapping_sub(cons) & mask == 1 << log2 {
            self.evtq_prod ^= Q_OVF;
            return false;
        }
        let addr = (self.evtq_base & Q_BASE_ADDR_MASK) + u64::from(prod & ((1 << log2) - 1)) * 32;
        for (i, w) in rec.iter().enumerate() {
            self.write64(addr + i as u64 * 8, *w);
        }
        self.evtq_prod = (self.evtq_prod & Q_OVF) | ((prod + 1) & mask);
        true
    }

    /// The commands consumed, without STE snapshots.
    pub fn cmds(&self) -> Vec<Cmd> {
        self.consumed.iter().map(|c| c.cmd).collect()
    }

    /// Offsets of the register writes, in order.
    pub fn write_offsets(&self) -> Vec<usize> {
        self.writes.iter().map(|w| w.0).collect()
    }

    /// Bytes of DMA memory handed out so far (stream table, level-2
    /// tables, queues).
    pub fn dma_used(&self) -> u64 {
        self.next - PHYS_BASE
    }

    /// Cache cleans outside the command queue: those of stream table
    /// writes (and of the event queue at probe).
    pub fn table_cleans(&self) -> Vec<(u64, usize)> {
        let base = self.cmdq_base & Q_BASE_ADDR_MASK;
        let end = base + (16u64 << Self::q_log2(self.cmdq_base));
        self.cleans
            .iter()
            .copied()
            .filter(|&(p, _)| !(base..end).contains(&p))
            .collect()
    }

    /// Active global errors.
    pub fn gerror_active(&self) -> u32 {
        self.gerror ^ self.gerrorn
    }
}

/// A fake SMMU; clones share the same state.
#[derive(Clone)]
pub struct FakeSmmu(pub Rc<RefCell<State>>);

// SAFETY: the fake is not thread-safe (Rc<RefCell>); each test keeps it,
// and every clone of it, on its own thread (as `FakePort`'s Sync already
// assumes). Send only lets a manager over fakes hand out its instances'
// queues ([`crate::smmu::manager::SmmuManager::queue`]) in those tests.
unsafe impl Send for FakeSmmu {}

impl FakeSmmu {
    /// An SMMU reset to the architectural state with ID registers `idr`.
    pub fn new(idr: [u32; 6]) -> Self {
        // SAFETY: the layout has a non-zero size.
        let mem = unsafe { alloc_zeroed(layout()) };
        assert!(!mem.is_null());
        FakeSmmu(Rc::new(RefCell::new(State {
            mem,
            next: PHYS_BASE,
            idr,
            cr0: 0,
            cr0ack: 0,
            cr1: 0,
            cr2: 0,
            gbpa: 0x1000,
            irq_ctrl: 0,
            irq_ctrlack: 0,
            gerror: 0,
            gerrorn: 0,
            gerror_irq_cfg0: 0,
            evtq_irq_cfg0: 0,
            strtab_base: 0,
            strtab_base_cfg: 0,
            cmdq_base: 0,
            cmdq_prod: 0,
            cmdq_cons: 0,
            evtq_base: 0,
            evtq_prod: 0,
            evtq_cons: 0,
            consume: Consume::OnProd,
            ack_stuck: false,
            inject: None,
            writes: Vec::new(),
            consumed: Vec::new(),
            cleans: Vec::new(),
            invalidates: Vec::new(),
            faulted: Vec::new(),
        })))
    }

    /// The decoded features of the ID registers.
    pub fn features(&self) -> Features {
        Features::decode(self.0.borrow().idr)
    }

    /// Borrow of the state.
    pub fn state(&self) -> core::cell::RefMut<'_, State> {
        self.0.borrow_mut()
    }
}

impl crate::smmu::regs::SmmuRegs for FakeSmmu {
    fn read32(&self, off: usize) -> u32 {
        let mut s = self.0.borrow_mut();
        match off {
            0x00..=0x14 => s.idr[off / 4],
            CR0 => s.cr0,
            CR0ACK => s.cr0ack,
            CR1 => s.cr1,
            CR2 => s.cr2,
            GBPA => s.gbpa,
            IRQ_CTRL => s.irq_ctrl,
            IRQ_CTRLACK => s.irq_ctrlack,
            GERROR => s.gerror,
            GERRORN => s.gerrorn,
            STRTAB_BASE_CFG => s.strtab_base_cfg,
            CMDQ_PROD => s.cmdq_prod,
            CMDQ_CONS => {
                if let Consume::PerConsRead(n) = s.consume {
                    s.consume(n);
                }
                s.cmdq_cons
            }
            EVTQ_PROD => s.evtq_prod,
            EVTQ_CONS => s.evtq_cons,
            _ => 0,
        }
    }

    fn write32(&mut self, off: usize, v: u32) {
        let mut s = self.0.borrow_mut();
        s.writes.push((off, u64::from(v)));
        match off {
            CR0 => {
                s.cr0 = v;
                if !s.ack_stuck {
                    s.cr0ack = v;
                }
                if s.consume == Consume::OnProd {
                    s.consume(u32::MAX);
                }
            }
            CR1 => s.cr1 = v,
            CR2 => s.cr2 = v,
            GBPA if v & GBPA_UPDATE != 0 => s.gbpa = v & !GBPA_UPDATE,
            IRQ_CTRL => {
                s.irq_ctrl = v;
                if !s.ack_stuck {
                    s.irq_ctrlack = v;
                }
            }
            GERRORN => {
                s.gerrorn = v;
                if s.consume == Consume::OnProd {
                    s.consume(u32::MAX);
                }
            }
            STRTAB_BASE_CFG => s.strtab_base_cfg = v,
            CMDQ_PROD => {
                s.cmdq_prod = v;
                if s.consume == Consume::OnProd {
                    s.consume(u32::MAX);
                }
            }
            CMDQ_CONS => s.cmdq_cons = v,
            EVTQ_PROD => s.evtq_prod = v,
            EVTQ_CONS => s.evtq_cons = v,
            _ => {}
        }
    }

    fn read64(&self, off: usize) -> u64 {
        let s = self.0.borrow();
        match off {
            STRTAB_BASE => s.strtab_base,
            CMDQ_BASE => s.cmdq_base,
            EVTQ_BASE => s.evtq_base,
            GERROR_IRQ_CFG0 => s.gerror_irq_cfg0,
            EVTQ_IRQ_CFG0 => s.evtq_irq_cfg0,
            _ => 0,
        }
    }

    fn write64(&mut self, off: usize, v: u64) {
        let mut s = self.0.borrow_mut();
        s.writes.push((off, v));
        match off {
            STRTAB_BASE => s.strtab_base = v,
            CMDQ_BASE => s.cmdq_base = v,
            EVTQ_BASE => s.evtq_base = v,
            GERROR_IRQ_CFG0 => s.gerror_irq_cfg0 = v,
            EVTQ_IRQ_CFG0 => s.evtq_irq_cfg0 = v,
            _ => {}
        }
    }
}

// SAFETY: blocks come from a bump allocator over one MEM_BYTES
// allocation that lives as long as the shared state (every FakeSmmu clone
// keeps it alive); they are aligned as asked, never overlap, start zeroed
// (the allocation is zeroed and never reused), and ptr(p) = base + (p -
// PHYS_BASE) with a 1 MiB aligned base.
unsafe impl DmaMemory for FakeSmmu {
    fn alloc_zeroed(&mut self, bytes: usize, align: usize) -> Option<u64> {
        let mut s = self.0.borrow_mut();
        let start = s.next.checked_next_multiple_of(align as u64)?;
        let end = start.checked_add(bytes as u64)?;
        if end > PHYS_BASE + MEM_BYTES as u64 {
            return None;
        }
        s.next = end;
        Some(start)
    }

    fn ptr(&self, phys: u64) -> *mut u8 {
        let s = self.0.borrow();
        match s.offset(phys, 0) {
            // SAFETY: within the allocation.
            Some(off) => unsafe { s.mem.add(off) },
            None => core::ptr::null_mut(),
        }
    }
}

impl CacheOps for FakeSmmu {
    fn clean(&self, phys: u64, len: usize) {
        self.0.borrow_mut().cleans.push((phys, len));
    }

    fn clean_invalidate(&self, phys: u64, len: usize) {
        self.0.borrow_mut().invalidates.push((phys, len));
    }
}
