//! The virtio-iommu as a virtio device: the request queue's chains of one
//! notify are handled one after the other by the model, each completed
//! (response and used element written) right after it, with one backend
//! sync for the batch before any of them is published; fault reports go to
//! the event queue whenever the driver has given it buffers.
//!
//! This is the fast path of a MAP or UNMAP: nothing here allocates in the
//! steady state. Each request is copied once into a buffer the device
//! keeps (the model parses and validates that copy, never guest memory
//! again) and a status-only response is written without being built in
//! memory. The common chain (one readable buffer, one writable) reaches
//! the loop as a [`Pair`] of plain values, without a [`Chain`] in memory.
//!
//! Ordering (virtio 1.2, 2.7.8 and 2.7.13): a driver learns of a used
//! buffer from `used.idx` only, which the request queue's session writes
//! once, after a release barrier, when it ends (after the batch's sync:
//! `QueueSession::publish_at_end`), the used-buffer notification decided
//! there too, so the context's end has no queue left to visit. So writing each
//! response and used element as soon as its request is handled, before the
//! batch's sync, publishes nothing early: the sync still comes before the
//! `used.idx` that makes any of them visible. If the sync fails, the
//! responses it turns into IOERR (ATTACH, DETACH and UNMAP successes:
//! [`RequestType::revocable`]) are rewritten before that `used.idx`: the
//! device records where each such success wrote its status (a
//! [`Revoked`]: an address and a kind, no
//! [`Completion`](crate::viommu::model::Completion) kept).

use super::profile::Profile;
use crate::perf;
use crate::viommu::backend::IommuBackend;
#[cfg(test)]
use crate::viommu::model::Completion;
use crate::viommu::model::{Response, Viommu};
use crate::viommu::wire::{EVENT_QUEUE, REQUEST_QUEUE, RequestType, Status, TAIL_LEN};
use crate::virtio::chain::{Chain, Segments};
use crate::virtio::device::{NotifyResult, QueueContext, QueueSession, Taken, VirtioDevice};
use crate::virtio::memory::{GuestMemory, MemError};
use crate::virtio::queue::Pair;
#[cfg(test)]
use alloc::vec::Vec;

pub use crate::viommu::wire::DEVICE_ID;
/// Request queue index and size.
const REQUESTQ: usize = REQUEST_QUEUE as usize;
const REQUESTQ_SIZE: u16 = 256;
/// Event queue index and size.
const EVENTQ: usize = EVENT_QUEUE as usize;
const EVENTQ_SIZE: u16 = 64;
/// Largest request the device reads (a PROBE head is 72 bytes); a longer
/// readable part fails the request (used length 0).
const MAX_REQUEST: usize = 256;
// `WINDOW`: bytes copied for a request no longer (a MAP's 36 rounded up
// to whole doublewords), when they lie in RAM: one copy of constant
// length; the bytes MAP and UNMAP are read from.
use crate::viommu::wire::request::{WINDOW, Words};
/// A status address meaning "no status written".
const NO_STATUS: u64 = u64::MAX;
/// Zeros written ahead of a status tail, a slice at a time.
const ZEROS: [u8; 64] = [0; 64];

/// The buffer a request is copied into.
#[repr(align(8))]
struct RequestBuf([u8; MAX_REQUEST]);

impl RequestBuf {
    /// Stores a request read as words ([`PairRequest::Window`]) as its
    /// bytes, for the general entry: the buffer's first [`WINDOW`] bytes.
    #[inline(always)]
    fn set_words(&mut self, words: &Words) {
        for (bytes, w) in self.0.chunks_exact_mut(8).zip(words) {
            bytes.copy_from_slice(&w.to_le_bytes());
        }
    }
}

/// How [`copy_pair_request`] read a pair's request.
enum PairRequest {
    /// The request (at most [`WINDOW`] bytes) and the guest RAM after it
    /// up to [`WINDOW`] bytes, as words in registers; the buffer untouched.
    Window(Words),
    /// The request copied into the buffer.
    Copied,
    /// Longer than [`MAX_REQUEST`]: nothing read.
    Oversized,
}

/// One success of a notify that the batch's sync may revoke
/// ([`RequestType::revocable`]): where its status byte was written
/// ([`NO_STATUS`]: nowhere) and its kind (for the counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Revoked {
    at: u64,
    kind: RequestType,
}

/// The revocable successes of one notify, in order: at most one per chain
/// the request queue's session took, so at most a queue's worth (the
/// session's budget is the queue's size, at most [`REQUESTQ_SIZE`]).
struct RevocableLog {
    len: usize,
    items: [Revoked; REQUESTQ_SIZE as usize],
}

impl RevocableLog {
    /// Records one revocable success: one bounds test and two stores.
    #[inline(always)]
    fn record(&mut self, kind: RequestType, at: u64) {
        // Always room: one per chain the session took (see above).
        debug_assert!(self.len < self.items.len());
        if let Some(r) = self.items.get_mut(self.len) {
            *r = Revoked { at, kind };
            self.len += 1;
        }
    }

    /// The successes recorded since the notify began.
    fn recorded(&self) -> &[Revoked] {
        self.items.get(..self.len).unwrap_or(&[])
    }
}

/// A virtio-iommu: the model plus the queue plumbing.
pub struct ViommuDevice<B: IommuBackend> {
    /// The device model (domains, endpoints, mappings, counters).
    pub model: Viommu<B>,
    /// A chain of any shape but the common one, walked in place (its
    /// buffer lists kept from one notify to the next).
    chain: Chain,
    /// The successes of this notify the batch's sync may still revoke
    /// (ATTACH, DETACH and UNMAP: turned into IOERR if the sync fails),
    /// to rewrite their status then.
    revoked: RevocableLog,
    /// The general path's record, what the tests compare `revoked` with:
    /// each revocable request's completion and status address, handed
    /// to [`Viommu::finish_batch`] (the record kept before `revoked`).
    #[cfg(test)]
    general: Vec<(Completion, u64)>,
    /// The request being handled, copied out of guest memory (kept here so
    /// that it is not zeroed again on every notify; aligned so that the
    /// copy goes a doubleword at a time).
    req: RequestBuf,
    /// Where the EL2 time goes (all zero without the `profile` feature).
    profile: Profile,
}

impl<B: IommuBackend> ViommuDevice<B> {
    /// Wraps a model.
    pub fn new(model: Viommu<B>) -> Self {
        ViommuDevice {
            model,
            chain: Chain::default(),
            revoked: RevocableLog {
                len: 0,
                items: [Revoked {
                    at: NO_STATUS,
                    kind: RequestType::Unmap,
                }; REQUESTQ_SIZE as usize],
            },
            #[cfg(test)]
            general: Vec::new(),
            req: RequestBuf([0; MAX_REQUEST]),
            profile: Profile::default(),
        }
    }

    /// The request-path profile.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The request-path profile, to add the transport's share.
    pub fn profile_mut(&mut self) -> &mut Profile {
        &mut self.profile
    }

    /// The request counters, followed by the request profile in an image
    /// built with it (what either transport prints at the guest's end).
    pub fn report(&self) -> alloc::string::String {
        let text = alloc::format!("virtio-iommu requests:\n{}", self.model.counters());
        if perf::ENABLED {
            let table = self.model.backend().table_ticks();
            alloc::format!("{text}\n{}", self.profile.lines(table))
        } else {
            text
        }
    }

    /// [`VirtioDevice::notify`] of the request queue through the general
    /// walk and the general chain handling only (never a [`Pair`]): what
    /// the tests compare the device with.
    #[cfg(test)]
    pub(crate) fn notify_general<M: GuestMemory + ?Sized>(
        &mut self,
        ctx: &mut QueueContext<'_, M>,
    ) -> NotifyResult {
        self.handle_requests::<false, M>(ctx);
        if self.model.pending_events() > 0 {
            self.post_events(ctx);
        }
        NotifyResult::Done
    }

    /// Handles the request queue's chains: each request copied, handled
    /// and completed in turn, then the batch's sync. `FAST` (true but in
    /// the tests comparing both) lets the common chain take the pair path.
    #[inline]
    fn handle_requests<const FAST: bool, M: GuestMemory + ?Sized>(
        &mut self,
        ctx: &mut QueueContext<'_, M>,
    ) {
        let mem = ctx.memory();
        // The request queue found once for the whole batch.
        let Some(mut queue) = ctx.session(REQUESTQ) else {
            return;
        };
        queue.publish_at_end();
        self.revoked.len = 0;
        #[cfg(test)]
        self.general.clear();
        let mut handled = false;
        let mut complete = 0;
        loop {
            let t0 = perf::now();
            let Some(taken) = queue.take_with::<FAST>(&mut self.chain) else {
                break;
            };
            let t1 = perf::now();
            // What follows a request's response in either arm: its used
            // element, the profile, its record if the sync may revoke its
            // status (a success of a revocable kind: where its status was
            // written). Written out in each arm (a macro, not a call), so
            // that each arm's completion stays where the model returned
            // it, not moved into a slot both arms share.
            macro_rules! complete {
                ($head:expr, $kind:expr, $written:expr, $t2:expr, $t3:expr, $record:block) => {
                    handled = true;
                    let _ = queue.push_used($head, $written);
                    if perf::ENABLED {
                        self.profile.request($kind, t1 - t0, $t2 - t1, $t3 - $t2);
                        complete += perf::now() - $t3;
                    }
                    $record
                };
            }
            // The record of a general-path completion `c` whose status (if
            // any) was written at `status_at`.
            macro_rules! record {
                ($c:ident, $status_at:expr) => {
                    if let Some(kind) = $c.kind
                        && kind.revocable()
                    {
                        debug_assert!(!matches!($c.response, Response::Written(_)));
                        if FAST {
                            if $c.response.status() == Some(Status::Ok) {
                                self.revoked.record(kind, $status_at.unwrap_or(NO_STATUS));
                            }
                        } else {
                            #[cfg(test)]
                            self.general.push(($c, $status_at.unwrap_or(NO_STATUS)));
                        }
                    }
                };
            }
            match taken {
                Taken::Pair(pair) => {
                    let head = pair.head;
                    let (gpa, len) = pair.readable;
                    let len = len as usize;
                    let words = match copy_pair_request(mem, gpa, len, &mut self.req) {
                        PairRequest::Window(words) => Some(words),
                        PairRequest::Copied => None,
                        PairRequest::Oversized => {
                            // The request fails, nothing written.
                            fail_request(&mut queue, head);
                            continue;
                        }
                    };
                    let t2 = perf::now();
                    // The common shape: a MAP or UNMAP answered in the tail
                    // alone. Its fields taken from the words read, its
                    // status in a register, stored as the tail (the pair
                    // walk checked the buffer to lie in RAM): what the
                    // general entry and `write_pair_response` do with it.
                    if let Some(words) = words {
                        if pair.writable.1 as usize == TAIL_LEN
                            && let Some((kind, status)) = self.model.respond_tail(words, len)
                        {
                            let t3 = perf::now();
                            let at = pair.writable.0;
                            // SAFETY: the writable buffer's four bytes, which
                            // the pair walk checked to lie in `mem`'s RAM.
                            unsafe { mem.write_u32_direct(mem.direct(at), status as u32) };
                            // Of MAP and UNMAP (what `respond_tail` answers)
                            // UNMAP alone is revocable.
                            complete!(head, Some(kind), TAIL_LEN as u32, t2, t3, {
                                if kind == RequestType::Unmap && status == Status::Ok {
                                    self.revoked.record(kind, at);
                                }
                            });
                            continue;
                        }
                        // Anything else: the general entry parses the
                        // request's bytes from the buffer.
                        self.req.set_words(&words);
                    }
                    let c = self
                        .model
                        .handle_request(&self.req.0[..len], pair.writable.1 as usize);
                    let t3 = perf::now();
                    let (written, status_at) = write_pair_response(&pair, mem, &c.response);
                    complete!(head, c.kind, written, t2, t3, { record!(c, status_at) });
                }
                Taken::Chain => {
                    let head = self.chain.head;
                    let Some(len) = read_request_slow(&self.chain, mem, &mut self.req.0) else {
                        // Unreadable or oversized: the request fails,
                        // nothing written.
                        fail_request(&mut queue, head);
                        continue;
                    };
                    let t2 = perf::now();
                    let resp_len = usize::try_from(self.chain.writable_len()).unwrap_or(usize::MAX);
                    let c = self.model.handle_request(&self.req.0[..len], resp_len);
                    let t3 = perf::now();
                    let (written, status_at) = write_response(&self.chain, mem, &c.response);
                    complete!(head, c.kind, written, t2, t3, { record!(c, status_at) });
                }
            }
        }
        if !handled {
            return;
        }
        // One sync (TLB invalidation) for the whole notify, before any of
        // its requests is published (`used.idx`, when the context ends).
        let t0 = perf::now();
        if FAST {
            if self.model.sync_batch().is_err() {
                revoke(&self.revoked, &mut self.model, mem);
            }
        } else {
            #[cfg(test)]
            self.finish_general(mem);
        }
        if perf::ENABLED {
            self.profile.batch(perf::now() - t0, complete);
        }
        // Only now, the sync done (and any status rewritten), the batch's
        // `used.idx` (the session publishes when it ends; in the profile,
        // the transport's share, as the context's finish was).
        drop(queue);
    }

    /// The general path's end of a batch, the record kept before
    /// [`RevocableLog`]: [`Viommu::finish_batch`] over the completions,
    /// then each revocable request's status written again.
    #[cfg(test)]
    fn finish_general<M: GuestMemory + ?Sized>(&mut self, mem: &M) {
        let mut batch: Vec<Completion> = self.general.iter().map(|(c, _)| c.clone()).collect();
        if self.model.finish_batch(&mut batch).is_err() {
            for (c, &(_, at)) in batch.iter().zip(&self.general) {
                if let Some(status) = c.response.status()
                    && at != NO_STATUS
                {
                    let _ = mem.write(at, &[status as u8]);
                }
            }
        }
    }

    fn post_events<M: GuestMemory + ?Sized>(&mut self, ctx: &mut QueueContext<'_, M>) {
        let mem = ctx.memory();
        while self.model.pending_events() > 0 {
            let Some(chain) = ctx.pop(EVENTQ) else { break };
            let Some(event) = self.model.next_event() else {
                let _ = ctx.push_used(EVENTQ, chain.head, 0);
                break;
            };
            let written = chain.write_writable(mem, &event).unwrap_or(0);
            let _ = ctx.push_used(EVENTQ, chain.head, written);
        }
    }
}

/// Reads the request in a pair's readable buffer (`gpa`, `len`: checked
/// by the pair walk to lie in `mem`'s RAM), each byte once.
///
/// A request of at most [`WINDOW`] bytes (every one but a PROBE) is read
/// as `WINDOW` bytes when those lie in RAM: five doublewords straight into
/// registers ([`GuestMemory::read_window_direct`]), no length dispatch, no
/// store into `buf` and load again; MAP and UNMAP take their fields from
/// them. The bytes past the request are guest RAM (checked) that no field
/// read takes: the model sees the request's `len`. Any other request up to
/// [`MAX_REQUEST`] bytes is copied into `buf`, the request's `len` bytes
/// exactly, for the general entry, which parses the kept (aligned) buffer.
#[inline(always)]
fn copy_pair_request<M: GuestMemory + ?Sized>(
    mem: &M,
    gpa: u64,
    len: usize,
    buf: &mut RequestBuf,
) -> PairRequest {
    if len <= WINDOW && mem.check(gpa, WINDOW as u64).is_ok() {
        // SAFETY: `gpa..gpa + WINDOW` lies in `mem`'s RAM (checked just
        // above).
        PairRequest::Window(unsafe { mem.read_window_direct(mem.direct(gpa)) })
    } else if len <= MAX_REQUEST {
        // SAFETY: the pair walk checked `gpa..gpa + len` to lie in `mem`'s
        // RAM; `len` is within the buffer.
        unsafe { mem.read_direct(mem.direct(gpa), &mut buf.0[..len]) };
        PairRequest::Copied
    } else {
        PairRequest::Oversized
    }
}

/// Returns chain `head`, whose request could not be read, with nothing
/// written. (Inlined: an out-of-line call taking the session's address
/// would keep the session in memory rather than in registers.)
#[inline(always)]
fn fail_request<M: GuestMemory + ?Sized>(queue: &mut QueueSession<'_, '_, M>, head: u16) {
    let _ = queue.push_used(head, 0);
}

/// After a failed sync: each revocable success of the notify becomes
/// IOERR, its status byte written over (where one was written) and its
/// count restated ([`Viommu::revoke`]): what [`Viommu::finish_batch`]
/// does to a batch's completions.
#[cold]
#[inline(never)]
fn revoke<B: IommuBackend, M: GuestMemory + ?Sized>(
    log: &RevocableLog,
    model: &mut Viommu<B>,
    mem: &M,
) {
    for r in log.recorded() {
        if r.at != NO_STATUS {
            let _ = mem.write(r.at, &[Status::Ioerr as u8]);
        }
        model.revoke(r.kind);
    }
}

/// Copies `chain`'s readable part (the request) into `buf` and returns its
/// length; `None` when it is longer than `buf` or cannot be read.
#[inline(never)]
fn read_request_slow<M: GuestMemory + ?Sized>(
    chain: &Chain,
    mem: &M,
    buf: &mut [u8],
) -> Option<usize> {
    let len = chain.read_readable_into(mem, buf).ok()?;
    (len <= buf.len()).then_some(len)
}

/// Writes `response` into `pair`'s writable buffer: the bytes written (0
/// if guest memory refused a write) and the address of the status byte
/// when one was written. A status-only response as long as the tail (the
/// response to a request whose writable buffer is the tail: the model
/// answers with the writable length) is one 32-bit store into that
/// buffer, which the pair walk checked to lie in RAM.
#[inline(always)]
fn write_pair_response<M: GuestMemory + ?Sized>(
    pair: &Pair,
    mem: &M,
    response: &Response,
) -> (u32, Option<u64>) {
    let (gpa, len) = pair.writable;
    if let Response::Status { len: n, status } = *response
        && n == TAIL_LEN
        && len as usize >= TAIL_LEN
    {
        // The tail: status, then three reserved zero bytes (little-endian).
        // SAFETY: the first four bytes of the writable buffer, which the
        // pair walk checked to lie in `mem`'s RAM.
        unsafe { mem.write_u32_direct(mem.direct(gpa), status as u32) };
        return (TAIL_LEN as u32, Some(gpa));
    }
    write_pair_response_slow(pair.head, pair.readable, pair.writable, mem, response)
}

/// [`write_pair_response`] of anything but a status tail: through the
/// [`Chain`] the general walk would have given.
#[cold]
#[inline(never)]
fn write_pair_response_slow<M: GuestMemory + ?Sized>(
    head: u16,
    readable: (u64, u32),
    writable: (u64, u32),
    mem: &M,
    response: &Response,
) -> (u32, Option<u64>) {
    // The pair's fields as values (not its address: that would keep the
    // pair in memory on the fast path too).
    let pair = Pair {
        head,
        readable,
        writable,
    };
    let mut chain = Chain::default();
    pair.fill(&mut chain);
    write_response(&chain, mem, response)
}

/// Writes `response` into `chain`'s writable part: the bytes written (0 if
/// guest memory refused a write: the buffers were checked at pop time, so
/// only a changed memory map could) and, for a status response, the
/// address of its status byte. A status-only response is zeros then the
/// tail, written in place.
#[inline(never)]
fn write_response<M: GuestMemory + ?Sized>(
    chain: &Chain,
    mem: &M,
    response: &Response,
) -> (u32, Option<u64>) {
    match write_response_parts(chain, mem, response) {
        Ok(written) => {
            let at = match *response {
                Response::Status { len, .. } => {
                    byte_at(&chain.writable, len.saturating_sub(TAIL_LEN))
                }
                _ => None,
            };
            (written, at)
        }
        Err(_) => (0, None),
    }
}

/// The guest-physical address of byte `offset` of `segs`, if it has one.
fn byte_at(segs: &Segments, offset: usize) -> Option<u64> {
    let mut skip = offset as u64;
    for (gpa, len) in segs.iter() {
        if skip < u64::from(len) {
            return Some(gpa.wrapping_add(skip));
        }
        skip -= u64::from(len);
    }
    None
}

/// [`write_response`]'s writes.
fn write_response_parts<M: GuestMemory + ?Sized>(
    chain: &Chain,
    mem: &M,
    response: &Response,
) -> Result<u32, MemError> {
    match response {
        Response::Status { len, status } => {
            let tail_at = len.saturating_sub(TAIL_LEN);
            let mut written = 0;
            let mut at = 0;
            while at < tail_at {
                let n = (tail_at - at).min(ZEROS.len());
                written += chain.write_writable_at(mem, at as u64, &ZEROS[..n])?;
                at += n;
            }
            let tail = [*status as u8, 0, 0, 0];
            written += chain.write_writable_at(mem, tail_at as u64, &tail)?;
            Ok(written)
        }
        Response::Written(bytes) => chain.write_writable(mem, bytes),
        Response::Nothing => Ok(0),
    }
}

impl<B: IommuBackend> VirtioDevice for ViommuDevice<B> {
    fn device_id(&self) -> u32 {
        DEVICE_ID
    }
    fn device_features(&self) -> u64 {
        self.model.device_features()
    }
    fn num_queues(&self) -> usize {
        2
    }
    fn queue_max_size(&self, q: usize) -> u16 {
        if q == REQUESTQ {
            REQUESTQ_SIZE
        } else {
            EVENTQ_SIZE
        }
    }
    fn config_read(&self, offset: u64, width: usize) -> u64 {
        self.model.read_config(offset as usize, width)
    }
    fn config_write(&mut self, offset: u64, width: usize, value: u64) {
        let _ = self.model.set_config(offset as usize, width, value);
    }
    fn activate(&mut self, _features: u64) {}
    fn reset(&mut self) {
        let _ = self.model.reset();
    }
    fn notify<M: GuestMemory + ?Sized>(
        &mut self,
        q: usize,
        ctx: &mut QueueContext<'_, M>,
    ) -> NotifyResult {
        let t0 = perf::now();
        if q == REQUESTQ {
            self.handle_requests::<true, M>(ctx);
        }
        if self.model.pending_events() > 0 {
            self.post_events(ctx);
        }
        if perf::ENABLED {
            self.profile.notify(perf::now() - t0);
        }
        NotifyResult::Done
    }
    fn poll<M: GuestMemory + ?Sized>(&mut self, ctx: &mut QueueContext<'_, M>) -> NotifyResult {
        self.post_events(ctx);
        NotifyResult::Done
    }
    fn queue_reset(&mut self, _q: usize) {}
}

#[cfg(test)]
#[path = "tests/device.rs"]
mod tests;
