//! A recording GICv3 register file for host tests: sparse registers that
//! read back what was written (or what the test preset), a log of every
//! access in order, and the two busy bits the driver waits on:
//! GICD_CTLR.RWP stays set for [`FakeRegs::rwp_reads`] reads after each
//! write of GICD_CTLR, and GICR_WAKER.ChildrenAsleep follows
//! ProcessorSleep, clearing only [`FakeRegs::wake_reads`] reads after it
//! was cleared.

extern crate std;

use super::regs::GicRegs;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::vec::Vec;

/// One register access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A 32-bit read and the value it returned.
    Read32(usize, u32),
    /// A 32-bit write.
    Write32(usize, u32),
    /// A 64-bit read and the value it returned.
    Read64(usize, u64),
    /// A 64-bit write.
    Write64(usize, u64),
}

impl Access {
    /// The address accessed.
    pub fn addr(&self) -> usize {
        match *self {
            Access::Read32(a, _) | Access::Write32(a, _) => a,
            Access::Read64(a, _) | Access::Write64(a, _) => a,
        }
    }

    /// The address and value of a write.
    pub fn write(&self) -> Option<(usize, u64)> {
        match *self {
            Access::Write32(a, v) => Some((a, v.into())),
            Access::Write64(a, v) => Some((a, v)),
            _ => None,
        }
    }
}

/// GICD_CTLR.RWP.
pub const RWP: u32 = 1 << 31;
/// GICR_WAKER.ProcessorSleep.
pub const SLEEP: u32 = 1 << 1;
/// GICR_WAKER.ChildrenAsleep.
pub const ASLEEP: u32 = 1 << 2;

#[derive(Debug, Default)]
struct Inner {
    values: BTreeMap<usize, u64>,
    log: Vec<Access>,
    /// Reads left with RWP set.
    rwp_left: u32,
    /// Per WAKER: reads left with ChildrenAsleep still set.
    waking: BTreeMap<usize, u32>,
}

/// The register file of a GIC whose distributor is at `dist`.
#[derive(Debug)]
pub struct FakeRegs {
    dist: usize,
    /// Reads of GICD_CTLR that see RWP after each write of it.
    pub rwp_reads: u32,
    /// Reads of GICR_WAKER that still see ChildrenAsleep after a wake-up.
    pub wake_reads: u32,
    inner: RefCell<Inner>,
}

impl FakeRegs {
    /// Every register zero, busy bits clearing after two reads.
    pub fn new(dist: usize) -> FakeRegs {
        FakeRegs {
            dist,
            rwp_reads: 2,
            wake_reads: 2,
            inner: RefCell::default(),
        }
    }

    /// Presets the register at `addr` (not logged).
    pub fn set(&self, addr: usize, value: u64) {
        self.inner.borrow_mut().values.insert(addr, value);
    }

    /// The register at `addr` now.
    pub fn get(&self, addr: usize) -> u64 {
        self.inner.borrow().values.get(&addr).copied().unwrap_or(0)
    }

    /// Takes the accesses logged so far.
    pub fn take_log(&self) -> Vec<Access> {
        core::mem::take(&mut self.inner.borrow_mut().log)
    }

    /// The writes logged so far, as `(address, value)`, without taking them.
    pub fn writes(&self) -> Vec<(usize, u64)> {
        self.inner
            .borrow()
            .log
            .iter()
            .filter_map(Access::write)
            .collect()
    }

    fn is_waker(&self, addr: usize) -> bool {
        addr % 0x1_0000 == 0x14 && addr != self.dist + 0x14
    }
}

impl GicRegs for FakeRegs {
    fn read32(&self, addr: usize) -> u32 {
        let mut s = self.inner.borrow_mut();
        let mut v = s.values.get(&addr).copied().unwrap_or(0) as u32;
        if addr == self.dist && s.rwp_left > 0 {
            s.rwp_left -= 1;
            v |= RWP;
        }
        if let Some(left) = s.waking.get_mut(&addr)
            && *left > 0
        {
            *left -= 1;
            v |= ASLEEP;
        }
        s.log.push(Access::Read32(addr, v));
        v
    }

    fn write32(&self, addr: usize, value: u32) {
        let mut s = self.inner.borrow_mut();
        s.log.push(Access::Write32(addr, value));
        let mut stored = value;
        if addr == self.dist {
            s.rwp_left = self.rwp_reads;
            stored &= !RWP;
        }
        if self.is_waker(addr) {
            // ChildrenAsleep is read-only: it follows ProcessorSleep, late.
            let was_asleep = s.values.get(&addr).is_some_and(|v| *v as u32 & ASLEEP != 0);
            stored &= !ASLEEP;
            if value & SLEEP != 0 {
                stored |= ASLEEP;
            } else if was_asleep {
                s.waking.insert(addr, self.wake_reads);
            }
        }
        s.values.insert(addr, stored.into());
    }

    fn read64(&self, addr: usize) -> u64 {
        let mut s = self.inner.borrow_mut();
        let v = s.values.get(&addr).copied().unwrap_or(0);
        s.log.push(Access::Read64(addr, v));
        v
    }

    fn write64(&self, addr: usize, value: u64) {
        let mut s = self.inner.borrow_mut();
        s.log.push(Access::Write64(addr, value));
        s.values.insert(addr, value);
    }
}
