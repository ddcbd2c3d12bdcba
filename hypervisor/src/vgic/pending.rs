//! Virtual interrupts of one vCPU waiting for a list register, and the
//! list-register encoding. The queue is per physical CPU (the vCPU it
//! runs), touched only by that CPU at EL2.

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
    /// Hardware-linked and level-triggered: withdrawn rather than
    /// delivered once its line has dropped (see [`super::hw`]).
    pub level: bool,
    /// Made pending by the guest (ISPENDR): kept whatever the line.
    pub latched: bool,
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

/// Interrupts waiting for a free list register, most urgent first out, and
/// two marks about the hardware-linked level-triggered ones among them and
/// in the list registers (see [`super::hw`]).
#[derive(Debug, Default)]
pub struct PendingQueue {
    queue: Vec<VirqRequest, QUEUE_LEN>,
    /// A level-triggered hardware-linked request was deferred for lack of
    /// a list register: its line is sampled again before it is placed.
    recheck: bool,
    /// A level-triggered hardware-linked interrupt was put pending in a
    /// list register while the guest had IRQs masked: ICH_HCR_EL2.TALL1
    /// traps its next access to its CPU interface, where the line is
    /// sampled again.
    watch: bool,
    /// Bit n: list register n was filled from a latched request.
    latched_lrs: u16,
}

/// What [`fill_list_registers`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Filled {
    /// Requests remain queued for lack of free list registers.
    pub more: bool,
    /// A level-triggered hardware-linked request went into a list register.
    pub level_hw: bool,
}

impl PendingQueue {
    /// An empty queue.
    pub const fn new() -> Self {
        PendingQueue {
            queue: Vec::new(),
            recheck: false,
            watch: false,
            latched_lrs: 0,
        }
    }

    /// Whether a request for `intid` waits.
    pub fn contains(&self, intid: u32) -> bool {
        self.queue.iter().any(|r| r.intid == intid)
    }

    /// Takes the request for `intid` out of the queue, if one waits.
    pub fn remove(&mut self, intid: u32) -> Option<VirqRequest> {
        let i = self.queue.iter().position(|r| r.intid == intid)?;
        Some(self.queue.remove(i))
    }

    /// Whether the request for `intid` waits latched (see
    /// [`VirqRequest::latched`]).
    pub fn latched(&self, intid: u32) -> bool {
        self.queue.iter().any(|r| r.intid == intid && r.latched)
    }

    /// Bit n: list register n was filled from a latched request.
    pub fn latched_lrs(&self) -> u16 {
        self.latched_lrs
    }

    /// Latches the waiting copy of `intid`: queued, or in list register
    /// `lr`.
    pub fn latch(&mut self, intid: u32, lr: Option<usize>) {
        match lr {
            Some(n) => self.latched_lrs |= 1 << n,
            None => self
                .queue
                .iter_mut()
                .filter(|r| r.intid == intid)
                .for_each(|r| r.latched = true),
        }
    }

    /// Keeps only the requests for which `keep` is true.
    pub fn retain(&mut self, keep: impl FnMut(&VirqRequest) -> bool) {
        self.queue.retain(keep);
    }

    /// Whether a deferred level-triggered hardware request must have its
    /// line sampled again before it is placed; clears the mark.
    pub fn take_recheck(&mut self) -> bool {
        core::mem::take(&mut self.recheck)
    }

    /// Whether the guest's next access to its CPU interface must be
    /// trapped (ICH_HCR_EL2.TALL1).
    pub fn watching(&self) -> bool {
        self.watch
    }

    /// Sets or clears the mark of [`PendingQueue::watching`].
    pub fn set_watch(&mut self, watch: bool) {
        self.watch = watch;
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

    /// Empties the queue (the vCPU stops or starts), returning the
    /// hardware-linked requests it held: the hypervisor acknowledged them,
    /// so the caller deactivates them.
    pub fn clear(&mut self) -> impl Iterator<Item = u32> + use<> {
        self.recheck = false;
        self.watch = false;
        self.latched_lrs = 0;
        core::mem::take(&mut self.queue)
            .into_iter()
            .filter(|r| r.hw)
            .map(|r| r.intid)
    }
}

/// List-register state bits: pending (62) and active (63).
const LR_PENDING: u64 = 1 << 62;
const LR_ACTIVE: u64 = 1 << 63;

/// [`fill_list_registers`] when all `n` implemented list registers are
/// empty (`empty`: ICH_ELRSR_EL2) and exactly one request waits, the
/// common case of an interrupt's delivery: what the general path does
/// then, without reading the list registers (an empty one holds nothing
/// to merge with): the request goes into list register 0. None, with
/// nothing changed, in any other case (the caller takes the general path).
#[inline]
pub fn fill_one_into_empty(
    queue: &mut PendingQueue,
    n: usize,
    empty: u64,
    write: impl FnOnce(usize, u64),
) -> Option<Filled> {
    let implemented = (1u64 << n.min(16)) - 1;
    if n == 0 || empty & implemented != implemented || queue.queue.len() != 1 {
        return None;
    }
    let req = queue.queue.pop()?;
    write(0, req.list_register());
    queue.latched_lrs = queue.latched_lrs & !1 | u16::from(req.latched);
    Some(Filled {
        more: false,
        level_hw: req.level,
    })
}

/// Fills free list registers from `queue`. `lrs` are the current values;
/// `write(n, v)` programs one. A request whose INTID already sits in a list
/// register is merged there: a software interrupt that is active only
/// becomes active and pending (an SGI raised again while the guest handles
/// the previous one); one already pending is not raised twice. Says whether
/// requests remain queued for lack of free list registers, and whether a
/// level-triggered hardware-linked one was placed.
pub fn fill_list_registers(
    queue: &mut PendingQueue,
    lrs: &[u64],
    mut write: impl FnMut(usize, u64),
) -> Filled {
    let mut current: Vec<u64, 16> = lrs.iter().copied().take(16).collect();
    let mut deferred: Vec<VirqRequest, QUEUE_LEN> = Vec::new();
    let mut level_hw = false;
    while let Some(req) = queue.pop() {
        if let Some(n) = current
            .iter()
            .position(|&lr| lr_intid(lr) == Some(req.intid))
        {
            let lr = current[n];
            let hw = lr & (1 << 61) != 0;
            if req.latched {
                queue.latched_lrs |= 1 << n;
            }
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
                level_hw |= req.level;
                queue.latched_lrs = queue.latched_lrs & !(1 << n) | u16::from(req.latched) << n;
            }
            None => {
                queue.recheck |= req.level;
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
    Filled {
        more: !queue.is_empty(),
        level_hw,
    }
}
