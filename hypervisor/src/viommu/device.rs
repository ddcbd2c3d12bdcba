//! The virtio-iommu as a virtio device: the request queue's chains of one
//! notify are handled together by the model, with one backend sync for the
//! batch, and completed (used ring) only after it; fault reports go to the
//! event queue whenever the driver has given it buffers.
//!
//! This is the fast path of a MAP or UNMAP: nothing here allocates in the
//! steady state. Each request is copied once into a stack buffer (the model
//! parses and validates that copy, never guest memory again), the batch's
//! chains and completions live in buffers kept from one notify to the next,
//! and a status-only response is written without being built in memory.

use super::profile::Profile;
use crate::perf;
use crate::viommu::backend::IommuBackend;
use crate::viommu::model::{Completion, Response, Viommu};
use crate::viommu::wire::{EVENT_QUEUE, REQUEST_QUEUE, TAIL_LEN};
use crate::virtio::chain::Chain;
use crate::virtio::device::{NotifyResult, QueueContext, QueueSession, VirtioDevice};
use crate::virtio::memory::{GuestMemory, MemError};
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
/// Zeros written ahead of a status tail, a slice at a time.
const ZEROS: [u8; 64] = [0; 64];

/// The buffer a request is copied into.
#[repr(align(8))]
struct RequestBuf([u8; MAX_REQUEST]);

/// A virtio-iommu: the model plus the queue plumbing.
pub struct ViommuDevice<B: IommuBackend> {
    /// The device model (domains, endpoints, mappings, counters).
    pub model: Viommu<B>,
    /// The chains of the notify being handled, popped in place into slots
    /// kept from one notify to the next (only the first `batch` are this
    /// notify's).
    chains: Vec<Chain>,
    /// Their completions, in the same order.
    completions: Vec<Completion>,
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
            // Grown to the largest batch seen (at most the queue size), not
            // reserved up front: a driver sending a few requests at a time
            // holds a few chains.
            chains: Vec::new(),
            completions: Vec::new(),
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

    #[inline]
    fn handle_requests<M: GuestMemory + ?Sized>(&mut self, ctx: &mut QueueContext<'_, M>) {
        let mem = ctx.memory();
        // The request queue found once for the whole batch.
        let Some(mut queue) = ctx.session(REQUESTQ) else {
            return;
        };
        self.completions.clear();
        let mut batch = 0;
        loop {
            if batch == self.chains.len() {
                grow(&mut self.chains);
            }
            let Some(chain) = self.chains.get_mut(batch) else {
                break;
            };
            let t0 = perf::now();
            if !queue.pop_into(chain) {
                break;
            }
            let t1 = perf::now();
            // The length only: the model parses the kept (aligned) buffer
            // itself, so its field loads need no alignment tests.
            match read_request(chain, mem, &mut self.req.0).and_then(|len| self.req.0.get(..len)) {
                Some(req) => {
                    let t2 = perf::now();
                    let resp_len = usize::try_from(chain.writable_len()).unwrap_or(usize::MAX);
                    let c = self.model.handle_request(req, resp_len);
                    let t3 = perf::now();
                    self.profile.request(c.kind, t1 - t0, t2 - t1, t3 - t2);
                    self.completions.push(c);
                    batch += 1;
                }
                // Unreadable or oversized: the request fails, nothing written.
                None => fail_request(&mut queue, chain.head),
            }
        }
        if batch == 0 {
            return;
        }
        // One sync (TLB invalidation) for the whole notify, before any of
        // its requests is completed.
        let t0 = perf::now();
        let _ = self.model.finish_batch(&mut self.completions);
        let t1 = perf::now();
        // The first `batch` chains: one completion each.
        for (chain, c) in self.chains.iter().zip(self.completions.iter()) {
            let written = write_response(chain, mem, &c.response);
            let _ = queue.push_used(chain.head, written);
        }
        self.profile.batch(t1 - t0, perf::now() - t1);
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

/// One more chain slot (a batch larger than any before it: rare, and out
/// of the request loop so that the loop's code stays small).
#[cold]
#[inline(never)]
fn grow(chains: &mut Vec<Chain>) {
    chains.push(Chain::default());
}

/// Returns chain `head`, whose request could not be read, with nothing
/// written (rare: out of the request loop).
#[cold]
#[inline(never)]
fn fail_request<M: GuestMemory + ?Sized>(queue: &mut QueueSession<'_, '_, M>, head: u16) {
    let _ = queue.push_used(head, 0);
}

/// Copies `chain`'s readable part (the request) into `buf` and returns its
/// length; `None` when it is longer than `buf` or cannot be read. The usual
/// request, one readable buffer, is one copy of a range the walk has
/// checked (the copy checks it again: one subtraction and two comparisons).
#[inline(always)]
fn read_request<M: GuestMemory + ?Sized>(chain: &Chain, mem: &M, buf: &mut [u8]) -> Option<usize> {
    if let Some((gpa, len)) = chain.readable.single() {
        let dst = buf.get_mut(..len as usize)?;
        mem.read_request(gpa, dst).ok()?;
        return Some(dst.len());
    }
    read_request_slow(chain, mem, buf)
}

/// [`read_request`] of a request in zero or several buffers.
#[inline(never)]
fn read_request_slow<M: GuestMemory + ?Sized>(
    chain: &Chain,
    mem: &M,
    buf: &mut [u8],
) -> Option<usize> {
    let len = chain.read_readable_into(mem, buf).ok()?;
    (len <= buf.len()).then_some(len)
}

/// Writes `response` into `chain`'s writable part; returns the bytes
/// written (0 if guest memory refused a write: the buffers were checked
/// at pop time, so only a changed memory map could). A status-only
/// response is zeros then the tail, written in place: usually just the
/// four tail bytes, one 32-bit store into the first writable buffer.
#[inline(always)]
fn write_response<M: GuestMemory + ?Sized>(chain: &Chain, mem: &M, response: &Response) -> u32 {
    if let Response::Status { len, status } = *response
        && len == TAIL_LEN
        && let Some((gpa, seg_len)) = chain.writable.first()
        && seg_len as usize >= TAIL_LEN
    {
        // The tail: status, then three reserved zero bytes (little-endian).
        return match mem.write_u32(gpa, status as u32) {
            Ok(()) => TAIL_LEN as u32,
            Err(_) => 0,
        };
    }
    write_response_slow(chain, mem, response).unwrap_or(0)
}

/// [`write_response`] of anything but a status tail in the first buffer.
#[inline(never)]
fn write_response_slow<M: GuestMemory + ?Sized>(
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
            self.handle_requests(ctx);
        }
        if self.model.pending_events() > 0 {
            self.post_events(ctx);
        }
        self.profile.notify(perf::now() - t0);
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
