//! The fault reports waiting for eventq buffers: a bounded FIFO that drops
//! new reports when full (the spec lets a device drop events when the
//! driver supplies no buffer).

use super::wire::probe::{FAULT_LEN, Fault};
use alloc::collections::VecDeque;

/// How many fault reports wait at most.
pub const EVENT_QUEUE_DEPTH: usize = 64;

/// Encoded fault reports, oldest first.
#[derive(Debug, Default)]
pub struct EventQueue {
    queue: VecDeque<[u8; FAULT_LEN]>,
}

impl EventQueue {
    /// An empty queue with its room allocated up front.
    pub fn new() -> Self {
        Self {
            queue: VecDeque::with_capacity(EVENT_QUEUE_DEPTH),
        }
    }

    /// Queues a report; `false` (dropped) when the queue is full.
    pub fn push(&mut self, fault: Fault) -> bool {
        if self.queue.len() >= EVENT_QUEUE_DEPTH {
            return false;
        }
        self.queue.push_back(fault.encode());
        true
    }

    /// The oldest report.
    pub fn pop(&mut self) -> Option<[u8; FAULT_LEN]> {
        self.queue.pop_front()
    }

    /// Reports waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no report waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Drops every waiting report.
    pub fn clear(&mut self) {
        self.queue.clear();
    }
}
