//! The contract between a transport and a device model: [`VirtioDevice`],
//! which a model (the virtio-iommu first) implements, and [`QueueContext`],
//! through which the model reaches its queues and guest memory while the
//! transport holds on to the queue state and the error policy.
//!
//! The context applies the policy of [`queue`](super::queue): a malformed
//! chain is returned to the driver with length 0 and skipped, so
//! [`QueueContext::pop`] yields only valid chains; a fatal queue error makes
//! every later `pop` return `None`, and the transport then sets
//! DEVICE_NEEDS_RESET. It also bounds the work per call (at most one queue's
//! worth of chains per queue), so a guest refilling its rings from another
//! CPU cannot keep the trapping CPU at EL2 forever.

use super::chain::Chain;
use super::memory::GuestMemory;
use super::queue::{Pair, Popped, Queue, QueueError, Ring};

/// Most queues a device may have.
pub const MAX_QUEUES: usize = 64;

/// What a device reports after handling a notification or a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyResult {
    /// Done; used buffers (if any) are signalled by the transport.
    Done,
    /// Done, and the device configuration changed: the transport bumps
    /// ConfigGeneration and sends a configuration change notification.
    ConfigChanged,
    /// The device hit an error it cannot recover from: the transport sets
    /// DEVICE_NEEDS_RESET.
    NeedsReset,
}

/// A virtio device model, independent of the transport.
///
/// All inputs from the guest (config offsets and values, chain contents)
/// are hostile; implementations must not panic on any of them.
pub trait VirtioDevice {
    /// Virtio device ID (23 for the IOMMU).
    fn device_id(&self) -> u32;
    /// Device-type feature bits the model implements (see
    /// [`features::offered`](super::features::offered) for what reaches
    /// the driver).
    fn device_features(&self) -> u64;
    /// Number of queues (capped at [`MAX_QUEUES`] by the transport).
    fn num_queues(&self) -> usize;
    /// Largest size of queue `q` (capped at 32768).
    fn queue_max_size(&self, q: usize) -> u16;
    /// Reads `width` (1, 2 or 4) bytes at `offset` in the device
    /// configuration space, little-endian; 0 beyond its end.
    fn config_read(&self, offset: u64, width: usize) -> u64;
    /// Writes `width` bytes at `offset` in the configuration space;
    /// read-only or absent fields ignore it.
    fn config_write(&mut self, offset: u64, width: usize, value: u64);
    /// The driver set DRIVER_OK with the negotiated `features`.
    fn activate(&mut self, features: u64);
    /// Device reset: back to the state before the driver found it.
    fn reset(&mut self);
    /// The driver notified queue `q` (ready, device running).
    /// Generic over the memory so that the queue work is monomorphised
    /// for the hypervisor's guest RAM (no dynamic call per access).
    fn notify<M: GuestMemory + ?Sized>(
        &mut self,
        q: usize,
        ctx: &mut QueueContext<'_, M>,
    ) -> NotifyResult;
    /// The hypervisor has something to report (an event queue entry):
    /// called through the transport's `poll`, while the device runs.
    fn poll<M: GuestMemory + ?Sized>(&mut self, _ctx: &mut QueueContext<'_, M>) -> NotifyResult {
        NotifyResult::Done
    }
    /// Queue `q` was reset on its own (QueueReset): forget anything held
    /// from it. Its state in the transport is already back to default.
    fn queue_reset(&mut self, _q: usize) {}
}

/// A device's access to its queues and to guest memory during one
/// notification or poll.
pub struct QueueContext<'a, M: GuestMemory + ?Sized = dyn GuestMemory> {
    mem: &'a M,
    queues: &'a mut [Queue],
    /// What the sessions leave for the context's end (one place, so that a
    /// session holds one pointer to it).
    state: ContextState,
    /// Queues whose count of chains taken this context has been reset
    /// (at their first session: a notify touches one or two queues, so
    /// the context does not reset every queue up front).
    begun: u64,
}

/// What a context's sessions leave for its end.
#[derive(Debug, Default)]
struct ContextState {
    /// Queues with used elements not yet published (their sessions ended
    /// without [`QueueSession::publish_at_end`]).
    used: u64,
    /// A session's [`QueueSession::publish_at_end`] found a used-buffer
    /// notification due.
    notify: bool,
    /// Malformed chains returned with length 0.
    bad_chains: usize,
    /// The fatal queue error met, if any.
    fatal: Option<QueueError>,
}

/// What a finished context leaves for the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextOutcome {
    /// A used-buffer notification is due (some queue got used buffers and
    /// its driver did not set `VIRTQ_AVAIL_F_NO_INTERRUPT`).
    pub notify: bool,
    /// The fatal queue error met, if any.
    pub fatal: Option<QueueError>,
    /// Malformed chains returned with length 0.
    pub bad_chains: usize,
}

impl<'a, M: GuestMemory + ?Sized> QueueContext<'a, M> {
    /// A context over `queues` (index = queue number; those beyond
    /// [`MAX_QUEUES`] are out of reach) in guest memory `mem`.
    pub fn new(mem: &'a M, queues: &'a mut [Queue]) -> Self {
        let n = queues.len().min(MAX_QUEUES);
        let queues = &mut queues[..n];
        Self {
            mem,
            queues,
            state: ContextState::default(),
            begun: 0,
        }
    }

    /// Guest memory, to read requests and write responses.
    pub fn memory(&self) -> &'a M {
        self.mem
    }

    /// Number of queues.
    pub fn num_queues(&self) -> usize {
        self.queues.len()
    }

    /// Whether queue `q` exists and is enabled.
    pub fn is_ready(&self, q: usize) -> bool {
        self.queues.get(q).is_some_and(Queue::ready)
    }

    /// The fatal error met so far, if any.
    pub fn fatal_error(&self) -> Option<QueueError> {
        self.state.fatal
    }

    /// Takes the next valid chain of queue `q`. Returns `None` when the
    /// queue is empty, absent or disabled, when this call's budget for it
    /// is spent, or after a fatal error. Malformed chains met on the way
    /// are returned to the driver with length 0.
    pub fn pop(&mut self, q: usize) -> Option<Chain> {
        let mut chain = Chain::default();
        self.pop_into(q, &mut chain).then_some(chain)
    }

    /// [`pop`](Self::pop) into a chain the caller keeps (nothing moved,
    /// buffer lists reused): true when `chain` holds the next valid chain.
    #[inline]
    pub fn pop_into(&mut self, q: usize, chain: &mut Chain) -> bool {
        self.session(q).is_some_and(|mut s| s.pop_into(chain))
    }

    /// Returns chain `head` of queue `q` to the driver with `len` bytes
    /// written into its writable part (published to the driver, one
    /// `used.idx` write per queue, when the context finishes). A ring that
    /// cannot be written is fatal; pushing to a disabled queue or an id
    /// beyond it is refused.
    #[inline]
    pub fn push_used(&mut self, q: usize, head: u16, len: u32) -> Result<(), QueueError> {
        if let Some(e) = self.state.fatal {
            return Err(e);
        }
        match self.session(q) {
            Some(mut s) => s.push_used(head, len),
            None => Err(QueueError::NotReady),
        }
    }

    /// Queue `q`, resolved once (present, enabled, its size) for a run of
    /// pops and pushes: what a device handling a batch uses, rather than
    /// finding the queue again for every chain. `None` when the queue is
    /// absent or disabled, or after a fatal error. The same budget (a
    /// queue's worth of chains per context) and error policy apply.
    ///
    /// The queue's three areas are checked to lie in guest RAM once here
    /// (as at enable), so that its ring accesses are not checked one by
    /// one; areas no longer in RAM are a fatal ring error (`None`).
    #[inline]
    pub fn session(&mut self, q: usize) -> Option<QueueSession<'_, 'a, M>> {
        if self.state.fatal.is_some() {
            return None;
        }
        let queue = self.queues.get_mut(q)?;
        let size = queue.live_size()?;
        if let Err(e) = queue.check_rings(self.mem) {
            self.state.fatal = Some(e);
            return None;
        }
        let bit = 1 << q;
        if self.begun & bit == 0 {
            self.begun |= bit;
            queue.begin_context();
        }
        let ring = queue.ring(self.mem, size);
        Some(QueueSession {
            mem: self.mem,
            ring,
            used: false,
            publish: false,
            bad_chains: 0,
            fatal: None,
            queue,
            bit,
            ctx: &mut self.state,
        })
    }

    /// Ends the context: publishes the used elements of each touched queue
    /// (one `used.idx` write each, after a release barrier), then decides
    /// on the used-buffer notification (after a full barrier, from each
    /// touched queue's `avail.flags`). A queue whose session published
    /// itself ([`QueueSession::publish_at_end`]: the request path) is not
    /// visited: its part of the decision is in already.
    pub fn finish(self) -> ContextOutcome {
        let mut notify = self.state.notify;
        // Only the queues that got used elements (usually one).
        let mut touched = self.state.used;
        while touched != 0 {
            let q = touched.trailing_zeros() as usize;
            touched &= touched - 1;
            let Some(queue) = self.queues.get_mut(q).filter(|q| q.ready()) else {
                continue;
            };
            // SAFETY: a queue's bit in `used` is set only by a session of
            // this context, made after `check_rings(self.mem)` passed; the
            // context has held the queues since, so their configuration
            // (enabled: its areas) is unchanged.
            if unsafe { queue.publish_and_ask(self.mem) } {
                notify = true;
            }
        }
        ContextOutcome {
            notify,
            fatal: self.state.fatal,
            bad_chains: self.state.bad_chains,
        }
    }
}

/// One enabled queue of a [`QueueContext`], resolved once (see
/// [`QueueContext::session`]), its areas checked to lie in guest RAM. The
/// queue's configuration cannot change while it lives: the transport's
/// registers are written under the lock the notify holds, and the session
/// holds the queue.
///
/// What a run of pops and pushes changes lives in the session as plain
/// values (the queue's [`Ring`], whether a used element was added, the
/// malformed chains, a fatal error), not behind references into the queue
/// and the context: the loop holding the session keeps them in registers.
/// They are stored back when the session is dropped.
pub struct QueueSession<'s, 'a, M: GuestMemory + ?Sized> {
    mem: &'a M,
    ring: Ring,
    /// A used element was added.
    used: bool,
    /// The session publishes its used elements itself when it ends
    /// ([`publish_at_end`](QueueSession::publish_at_end)).
    publish: bool,
    /// Malformed chains returned with length 0.
    bad_chains: usize,
    /// The fatal error met, if any (the context had none at the start).
    fatal: Option<QueueError>,
    queue: &'s mut Queue,
    /// The queue's bit in the context's `used` mask.
    bit: u64,
    /// The context's state, where the session's changes go when it ends.
    ctx: &'s mut ContextState,
}

/// What [`QueueSession::take`] took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// A chain of the common shape (one readable buffer, one writable).
    Pair(Pair),
    /// Any other valid chain, in the caller's chain.
    Chain,
}

impl<M: GuestMemory + ?Sized> QueueSession<'_, '_, M> {
    /// Takes the next valid chain into `chain` (see
    /// [`QueueContext::pop_into`]): false when the queue is empty, when
    /// the context's budget for it is spent, or after a fatal error.
    /// Malformed chains met on the way are returned with length 0.
    #[inline(always)]
    pub fn pop_into(&mut self, chain: &mut Chain) -> bool {
        match self.take(chain) {
            Some(Taken::Pair(pair)) => {
                pair.fill(chain);
                true
            }
            Some(Taken::Chain) => true,
            None => false,
        }
    }

    /// [`pop_into`](Self::pop_into) that gives a chain of the common shape
    /// as a [`Pair`] of plain values, leaving `chain` untouched: any other
    /// valid chain is in `chain` ([`Taken::Chain`]). `None` when the
    /// queue is empty, when the context's budget for it is spent, or after
    /// a fatal error; malformed chains met on the way are returned with
    /// length 0.
    #[inline(always)]
    pub fn take(&mut self, chain: &mut Chain) -> Option<Taken> {
        self.take_with::<true>(chain)
    }

    /// [`take`](Self::take) with the pair walk (`FAST`) or through the
    /// general walk only (never a [`Taken::Pair`]: what the tests compare
    /// the pair path with).
    #[inline(always)]
    pub(crate) fn take_with<const FAST: bool>(&mut self, chain: &mut Chain) -> Option<Taken> {
        loop {
            if self.fatal.is_some() || !self.ring.take_one() {
                return None;
            }
            // SAFETY: the ring is the queue's, made after
            // `check_rings(mem)` passed; the session holds the queue's
            // configuration frozen.
            match unsafe { self.ring.pop::<FAST, M>(self.mem, chain) } {
                Ok(Popped::Pair(pair)) => return Some(Taken::Pair(pair)),
                Ok(Popped::Chain) => return Some(Taken::Chain),
                Ok(Popped::Empty) => return None,
                Err(e) => {
                    if !self.bad_chain(e) {
                        return None;
                    }
                }
            }
        }
    }

    /// A chain refused by the walk: a malformed one is returned with
    /// length 0 (true: go on), anything else is fatal (false). Inlined
    /// (it is small): an out-of-line call taking the session's address
    /// would keep the session in memory rather than in registers.
    #[inline(always)]
    fn bad_chain(&mut self, e: QueueError) -> bool {
        let QueueError::BadChain { head, .. } = e else {
            self.fatal = Some(e);
            return false;
        };
        self.bad_chains += 1;
        // SAFETY: as in `take`.
        match unsafe { self.ring.add_used(self.mem, head, 0) } {
            Ok(()) => {
                self.used = true;
                true
            }
            Err(e) => {
                self.fatal = Some(e);
                false
            }
        }
    }

    /// Returns chain `head` with `len` bytes written (see
    /// [`QueueContext::push_used`]).
    #[inline(always)]
    pub fn push_used(&mut self, head: u16, len: u32) -> Result<(), QueueError> {
        if let Some(e) = self.fatal {
            return Err(e);
        }
        // SAFETY: as in `take`.
        match unsafe { self.ring.add_used(self.mem, head, len) } {
            Ok(()) => {
                self.used = true;
                Ok(())
            }
            Err(e @ QueueError::Memory(_)) => {
                self.fatal = Some(e);
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Makes the session publish what it added when it ends (is
    /// dropped), rather than leaving it to [`QueueContext::finish`]: the
    /// same release barrier and one `used.idx` write, then the full
    /// barrier and `avail.flags` read that decide on the used-buffer
    /// notification (the context's outcome). For a device that ends the
    /// session only once everything the used elements wait for is done
    /// (the virtio-iommu: its batch's sync), so that the context's end
    /// has no queue left to visit. Nothing when the session added nothing.
    #[inline(always)]
    pub fn publish_at_end(&mut self) {
        self.publish = true;
    }

    /// Guest memory.
    pub fn memory(&self) -> &M {
        self.mem
    }
}

impl<M: GuestMemory + ?Sized> Drop for QueueSession<'_, '_, M> {
    /// Stores what the session changed back into the queue and the
    /// context.
    #[inline(always)]
    fn drop(&mut self) {
        self.queue.store_ring(&self.ring);
        if self.used {
            if self.publish {
                // SAFETY: as in `take`.
                if unsafe { self.ring.publish_and_ask(self.mem) } {
                    self.ctx.notify = true;
                }
                self.queue.set_published(self.ring.used_idx());
            } else {
                self.ctx.used |= self.bit;
            }
        }
        self.ctx.bad_chains += self.bad_chains;
        if self.fatal.is_some() {
            self.ctx.fatal = self.fatal;
        }
    }
}
