//! The virtio-iommu as a virtio device: the request queue's chains of one
//! notify are handled together by the model, with one backend sync for the
//! batch, and completed (used ring) only after it; fault reports go to the
//! event queue whenever the driver has given it buffers.

use crate::viommu::backend::IommuBackend;
use crate::viommu::model::{Completion, Viommu};
use crate::virtio::chain::Chain;
use crate::virtio::device::{NotifyResult, QueueContext, VirtioDevice};
use alloc::vec::Vec;

/// Virtio device ID of an IOMMU.
pub const DEVICE_ID: u32 = 23;
/// Request queue index and size.
const REQUESTQ: usize = 0;
const REQUESTQ_SIZE: u16 = 256;
/// Event queue index and size.
const EVENTQ: usize = 1;
const EVENTQ_SIZE: u16 = 64;
/// Largest request the device reads (a PROBE head is 72 bytes).
const MAX_REQUEST: usize = 256;

/// A virtio-iommu: the model plus the queue plumbing.
pub struct ViommuDevice<B: IommuBackend> {
    /// The device model (domains, endpoints, mappings, counters).
    pub model: Viommu<B>,
}

impl<B: IommuBackend> ViommuDevice<B> {
    /// Wraps a model.
    pub fn new(model: Viommu<B>) -> Self {
        ViommuDevice { model }
    }

    fn handle_requests(&mut self, ctx: &mut QueueContext<'_>) {
        let mem = ctx.memory();
        let mut chains: Vec<Chain> = Vec::with_capacity(REQUESTQ_SIZE as usize);
        let mut completions: Vec<Completion> = Vec::with_capacity(REQUESTQ_SIZE as usize);
        while let Some(chain) = ctx.pop(REQUESTQ) {
            match chain.read_readable(mem, MAX_REQUEST) {
                Ok(req) => {
                    let resp_len = usize::try_from(chain.writable_len()).unwrap_or(usize::MAX);
                    completions.push(self.model.handle_request(&req, resp_len));
                    chains.push(chain);
                }
                // Unreadable or oversized: the request fails, nothing written.
                Err(_) => {
                    let _ = ctx.push_used(REQUESTQ, chain.head, 0);
                }
            }
        }
        if chains.is_empty() {
            return;
        }
        // One sync (TLB invalidation) for the whole notify, before any of
        // its requests is completed.
        let _ = self.model.finish_batch(&mut completions);
        for (chain, c) in chains.iter().zip(completions.iter()) {
            let written = chain.write_writable(mem, c.response.bytes()).unwrap_or(0);
            let _ = ctx.push_used(REQUESTQ, chain.head, written);
        }
    }

    fn post_events(&mut self, ctx: &mut QueueContext<'_>) {
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
    fn notify(&mut self, q: usize, ctx: &mut QueueContext<'_>) -> NotifyResult {
        if q == REQUESTQ {
            self.handle_requests(ctx);
        }
        self.post_events(ctx);
        NotifyResult::Done
    }
    fn poll(&mut self, ctx: &mut QueueContext<'_>) -> NotifyResult {
        self.post_events(ctx);
        NotifyResult::Done
    }
    fn queue_reset(&mut self, _q: usize) {}
}
