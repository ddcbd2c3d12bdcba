//! The PL031 real-time clock as an interrupt source: its alarm interrupt
//! is a level-sensitive SPI (`RTCINTR = RTCRIS & RTCIMSC`), raised at once
//! by writing the current count into the match register and lowered by
//! writing RTCICR.

use crate::cpu::Shared;
use core::ptr::{read_volatile, write_volatile};

const DR: usize = 0x00;
const MR: usize = 0x04;
const IMSC: usize = 0x10;
const RIS: usize = 0x14;
const ICR: usize = 0x1c;

static BASE: Shared<usize> = Shared::new(0);

fn rd(off: usize) -> u32 {
    // SAFETY: a PL031 register at the address the DT names.
    unsafe { read_volatile((BASE.get() + off) as *const u32) }
}

fn wr(off: usize, v: u32) {
    // SAFETY: a PL031 register at the address the DT names.
    unsafe { write_volatile((BASE.get() + off) as *mut u32, v) }
}

/// Uses the PL031 at `base`: its interrupt unmasked, lowered.
pub fn init(base: usize) {
    BASE.set(base);
    wr(IMSC, 1);
    wr(ICR, 1);
}

/// Raises the alarm interrupt: the match register set to the current
/// count (retried if the count moved on in between). True when the raw
/// interrupt status shows it.
pub fn raise() -> bool {
    if BASE.get() == 0 {
        return false;
    }
    for _ in 0..4 {
        let now = rd(DR);
        wr(MR, now);
        if rd(RIS) & 1 != 0 {
            return true;
        }
    }
    false
}

/// Lowers the alarm interrupt.
pub fn clear() {
    if BASE.get() != 0 {
        wr(ICR, 1);
    }
}
