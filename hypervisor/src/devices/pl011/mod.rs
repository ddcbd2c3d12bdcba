//! A guest's console: an emulated PL011 ([`model`]) whose output goes to
//! the hypervisor's serial line, whole lines at a time and tagged with the
//! guest's name when several guests share the line
//! ([`crate::console::write_guest`]), and whose input comes from the
//! hypervisor's console when the guest has the focus
//! ([`EmulatedPl011::queue_input`], delivered by a vCPU of the guest with
//! [`EmulatedPl011::deliver_input`]).
//!
//! Bounds: the guest's partial line is at most [`LINE_MAX`] bytes (a
//! longer line is written out in pieces); input waiting for the guest's
//! receive FIFO is at most [`INPUT_MAX`] bytes, more is dropped and
//! counted. Output is never dropped: a store to the data register writes a
//! completed line to the serial line before it returns, so a guest that
//! prints faster than the UART is slowed to its pace, as by a real UART.

pub mod model;
#[cfg(test)]
mod tests;

use super::{AccessCtx, Effect, MmioDevice};
use crate::console;
use alloc::string::String;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use heapless::{Deque, Vec};
use model::{Pl011Model, reg};
use spin::Mutex;

/// Size of the register window.
pub const WINDOW: u64 = 0x1000;
/// Longest partial line kept per guest before it is written out.
pub const LINE_MAX: usize = 256;
/// Received bytes waiting for the guest's receive FIFO.
pub const INPUT_MAX: usize = 4096;

struct State {
    model: Pl011Model,
    /// Output since the last line written out.
    line: Vec<u8, LINE_MAX>,
}

/// Counters of one console.
#[derive(Debug, Default)]
pub struct ConsoleCounters {
    /// Bytes the guest transmitted.
    pub tx_bytes: AtomicU64,
    /// Bytes given to the guest's receive FIFO.
    pub rx_bytes: AtomicU64,
    /// Input bytes dropped because [`INPUT_MAX`] were already waiting.
    pub rx_dropped: AtomicU64,
}

/// A guest's emulated PL011.
pub struct EmulatedPl011 {
    /// GIC INTID of its (level, virtual) interrupt.
    intid: u32,
    /// Its source number on the hypervisor console (the guest's index).
    source: u16,
    /// The guest's name, the tag of its lines.
    tag: String,
    state: Mutex<State>,
    input: Mutex<Deque<u8, INPUT_MAX>>,
    input_pending: AtomicBool,
    counters: ConsoleCounters,
}

impl EmulatedPl011 {
    /// The console of guest `source` named `tag`, raising INTID `intid`.
    pub fn new(source: u16, tag: &str, intid: u32) -> Self {
        EmulatedPl011 {
            intid,
            source,
            tag: tag.into(),
            state: Mutex::new(State {
                model: Pl011Model::new(),
                line: Vec::new(),
            }),
            input: Mutex::new(Deque::new()),
            input_pending: AtomicBool::new(false),
            counters: ConsoleCounters::default(),
        }
    }

    /// The device's interrupt.
    pub fn intid(&self) -> u32 {
        self.intid
    }

    /// Its counters.
    pub fn counters(&self) -> &ConsoleCounters {
        &self.counters
    }

    /// Queues `bytes` typed for the guest (any CPU, interrupt context: no
    /// lock but the input queue's). Returns how many were queued; the rest
    /// are dropped and counted.
    pub fn queue_input(&self, bytes: &[u8]) -> usize {
        let mut q = self.input.lock();
        let mut n = 0;
        for &b in bytes {
            if q.push_back(b).is_err() {
                break;
            }
            n += 1;
        }
        drop(q);
        if n < bytes.len() {
            self.counters
                .rx_dropped
                .fetch_add((bytes.len() - n) as u64, Ordering::Relaxed);
        }
        if n > 0 {
            self.input_pending.store(true, Ordering::Release);
        }
        n
    }

    /// Whether input waits for [`Self::deliver_input`] (one load).
    #[inline]
    pub fn input_pending(&self) -> bool {
        self.input_pending.load(Ordering::Acquire)
    }

    /// Moves waiting input into the receive FIFO (by a vCPU of the guest):
    /// the interrupt to raise if the line is asserted.
    pub fn deliver_input(&self) -> Effect {
        let mut s = self.state.lock();
        let moved = self.refill(&mut s.model);
        if moved > 0 && s.model.line() {
            Effect::RaiseSpi(self.intid)
        } else {
            Effect::None
        }
    }

    /// Fills the receive FIFO from the input queue (state lock held);
    /// returns how many bytes moved.
    fn refill(&self, model: &mut Pl011Model) -> usize {
        if !self.input_pending() || !model.rx_enabled() {
            return 0;
        }
        let mut q = self.input.lock();
        let mut moved = 0;
        while model.rx_room() > 0 {
            let Some(b) = q.pop_front() else { break };
            model.push_rx(b);
            moved += 1;
        }
        if q.is_empty() {
            self.input_pending.store(false, Ordering::Release);
        }
        drop(q);
        self.counters
            .rx_bytes
            .fetch_add(moved as u64, Ordering::Relaxed);
        moved
    }

    /// One transmitted byte: kept in the line, which is written out when it
    /// ends, when it is full, or at once when this guest has the focus (so
    /// that a prompt and the echo of typed keys appear).
    fn transmit(&self, s: &mut State, byte: u8) {
        self.counters.tx_bytes.fetch_add(1, Ordering::Relaxed);
        let _ = s.line.push(byte);
        let complete = byte == b'\n';
        if complete || s.line.is_full() || console::has_focus(self.source) {
            console::write_guest(self.source, &self.tag, &s.line, complete);
            s.line.clear();
        }
    }
}

impl MmioDevice for EmulatedPl011 {
    fn name(&self) -> &'static str {
        "PL011 console"
    }

    fn read(&self, _ctx: &AccessCtx<'_>, offset: u64, width: usize) -> Option<u64> {
        if !matches!(width, 1 | 2 | 4) || offset >= WINDOW {
            return None;
        }
        let mut s = self.state.lock();
        let value = if offset.is_multiple_of(4) {
            let v = s.model.read(offset);
            // A byte taken from the FIFO makes room for waiting input
            // (the driver reads until the FIFO is empty).
            if offset == reg::DR || offset == reg::FR {
                self.refill(&mut s.model);
            }
            v
        } else {
            0
        };
        let mask = if width == 4 {
            u32::MAX
        } else {
            (1u32 << (width * 8)) - 1
        };
        Some(u64::from(value & mask))
    }

    fn write(&self, _ctx: &AccessCtx<'_>, offset: u64, width: usize, value: u64) -> Option<Effect> {
        if !matches!(width, 1 | 2 | 4) || offset >= WINDOW {
            return None;
        }
        if !offset.is_multiple_of(4) {
            return Some(Effect::None);
        }
        let mut s = self.state.lock();
        let before = s.model.line();
        let out = s.model.write(offset, value as u32);
        if let Some(b) = out.tx {
            self.transmit(&mut s, b);
        }
        // Enabling the receiver may let waiting input in.
        if offset == reg::CR || offset == reg::LCR_H {
            self.refill(&mut s.model);
        }
        let after = s.model.line();
        Some(if after && (!before || offset == reg::IMSC) {
            Effect::RaiseSpi(self.intid)
        } else {
            Effect::None
        })
    }

    fn reset(&self, _ctx: &AccessCtx<'_>) {
        let mut s = self.state.lock();
        if !s.line.is_empty() {
            console::write_guest(self.source, &self.tag, &s.line, false);
        }
        s.line.clear();
        s.model.reset();
    }

    fn report(&self) -> Option<String> {
        let c = &self.counters;
        Some(alloc::format!(
            "console: {} bytes out, {} bytes in, {} input bytes dropped",
            c.tx_bytes.load(Ordering::Relaxed),
            c.rx_bytes.load(Ordering::Relaxed),
            c.rx_dropped.load(Ordering::Relaxed)
        ))
    }
}
