//! Virtual interrupts of one vCPU waiting for a list register, and the
//! list-register encoding.

use heapless::Vec;

/// Most interrupts a vCPU can have waiting at once beyond its list registers.
pub const QUEUE_LEN: usize = 64;

/// A virtual interrupt to deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirqRequest {
    /// Virtual INTID.
    pub intid: u32,
    /// Guest priority (lower is more urgent).
    pub priority: u8,
    /// Backed by the physical INTID of the same number: the guest's
    /// deactivation deactivates it.
    pub hw: bool,
}

impl VirqRequest {
    /// The ICH_LR<n>_EL2 value that makes it pending in group 1.
    pub fn list_register(&self) -> u64 {
        let mut lr =
            (self.intid as u64) | (1 << 60) | (0b01 << 62) | ((self.priority as u64) << 48);
        if self.hw {
            lr |= (1 << 61) | ((self.intid as u64) << 32);
        }
        lr
    }
}

/// INTID held by a list register value, if it is in use.
pub fn lr_intid(lr: u64) -> Option<u32> {
    (lr >> 62 != 0).then_some(lr as u32)
}

/// Interrupts waiting for a free list register, most urgent first out.
#[derive(Debug, Default)]
pub struct PendingQueue {
    queue: Vec<VirqRequest, QUEUE_LEN>,
}

impl PendingQueue {
    /// An empty queue.
    pub const fn new() -> Self {
        PendingQueue { queue: Vec::new() }
    }

    /// Adds a request unless the same INTID already waits. Returns false if
    /// the queue is full (the interrupt is dropped and the caller logs it).
    pub fn push(&mut self, req: VirqRequest) -> bool {
        if self.queue.iter().any(|r| r.intid == req.intid) {
            return true;
        }
        self.queue.push(req).is_ok()
    }

    /// Takes the most urgent request (lowest priority value, then oldest).
    pub fn pop(&mut self) -> Option<VirqRequest> {
        let (i, _) = self
            .queue
            .iter()
            .enumerate()
            .min_by_key(|(i, r)| (r.priority, *i))?;
        Some(self.queue.remove(i))
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Drops everything (vCPU reset).
    pub fn clear(&mut self) {
        self.queue.clear();
    }
}

/// Fills free list registers from `queue`. `lrs` are the current values;
/// `write(n, v)` programs one. An INTID already present in a list register
/// is not injected twice. Returns true if requests remain queued.
pub fn fill_list_registers(
    queue: &mut PendingQueue,
    lrs: &[u64],
    mut write: impl FnMut(usize, u64),
) -> bool {
    let mut held: Vec<u32, 16> = lrs.iter().filter_map(|&lr| lr_intid(lr)).collect();
    let mut free = lrs
        .iter()
        .enumerate()
        .filter(|(_, lr)| lr_intid(**lr).is_none())
        .map(|(i, _)| i);
    let mut deferred: Vec<VirqRequest, QUEUE_LEN> = Vec::new();
    while let Some(req) = queue.pop() {
        if held.contains(&req.intid) {
            // Still pending or active in a list register: keep it for later
            // (an SGI raised again while the guest handles the last one).
            let _ = deferred.push(req);
            continue;
        }
        match free.next() {
            Some(n) => {
                write(n, req.list_register());
                let _ = held.push(req.intid);
            }
            None => {
                let _ = deferred.push(req);
                break;
            }
        }
    }
    for r in deferred {
        let _ = queue.push(r);
    }
    !queue.is_empty()
}
