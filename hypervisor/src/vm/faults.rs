//! DMA faults on a guest's endpoints on their way to its virtio-iommu. The
//! SMMU reports them in interrupt context, on whatever CPU takes the SMMU's
//! interrupt; the guest's virtio-iommu lock may be held there for a whole
//! notify by the guest's own vCPU. So the report is only queued (a short
//! critical section on this queue, never the device's lock) and the
//! guest's CPU is kicked; a vCPU of the guest hands the queue to its
//! virtio-iommu at its next interrupt exit.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use heapless::Deque;
use spin::Mutex;

/// Reports a guest may have waiting; more are counted and dropped (the
/// virtio-iommu's own event queue is bounded too).
pub const QUEUE_LEN: usize = 32;

/// A DMA fault of one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultReport {
    /// Endpoint (requester ID).
    pub endpoint: u32,
    /// Faulting IOVA.
    pub iova: u64,
    /// A read (else a write).
    pub read: bool,
}

/// One guest's queue of fault reports.
#[derive(Debug, Default)]
pub struct FaultQueue {
    queue: Mutex<Deque<FaultReport, QUEUE_LEN>>,
    /// Set when the queue may be non-empty (checked without the lock).
    pending: AtomicBool,
    /// Reports dropped because the queue was full.
    dropped: AtomicU64,
}

impl FaultQueue {
    /// Queues `report`; false (and counted) when the queue is full.
    pub fn push(&self, report: FaultReport) -> bool {
        let ok = self.queue.lock().push_back(report).is_ok();
        if ok {
            self.pending.store(true, Ordering::Release);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Whether reports may be waiting (one load).
    #[inline]
    pub fn pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Takes the oldest report.
    pub fn pop(&self) -> Option<FaultReport> {
        let mut q = self.queue.lock();
        let r = q.pop_front();
        if q.is_empty() {
            self.pending.store(false, Ordering::Release);
        }
        r
    }

    /// Forgets every waiting report (the guest stops or resets).
    pub fn clear(&self) {
        self.queue.lock().clear();
        self.pending.store(false, Ordering::Release);
    }

    /// Reports dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_order_and_counted() {
        let q = FaultQueue::default();
        assert!(!q.pending());
        for i in 0..QUEUE_LEN as u32 + 3 {
            let ok = q.push(FaultReport {
                endpoint: i,
                iova: 0,
                read: true,
            });
            assert_eq!(ok, (i as usize) < QUEUE_LEN);
        }
        assert!(q.pending());
        assert_eq!(q.dropped(), 3);
        assert_eq!(q.pop().map(|r| r.endpoint), Some(0));
        while q.pop().is_some() {}
        assert!(!q.pending());
    }
}
