//! Where a virtio-iommu's EL2 time goes: counter ticks summed per request
//! type and phase (descriptor walk, request copy, model) and per notify
//! (the whole MMIO access, the device's share, the backend sync and the
//! completions), plus the backend's page-table time. Filled only by an
//! image built with the `profile` feature (see [`crate::perf`]); printed
//! with the request counters when the guest stops, in lines the benchmark
//! parses:
//!
//! ```text
//! virtio-iommu profile: notifies N mmio T device T sync T complete T
//! virtio-iommu profile: map N pop T read T model T table T
//! ```
//!
//! (`N` a count, every `T` a total in counter ticks; under QEMU's
//! `-icount shift=0` one tick is one instruction.)

use crate::viommu::counters::{ROWS, row};
use crate::viommu::wire::RequestType;
use core::fmt;

/// Ticks of one request type, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TypeTicks {
    /// Requests.
    pub count: u64,
    /// Popping the chain: ring indices, descriptor walk and checks.
    pub pop: u64,
    /// Copying the readable part out of guest memory.
    pub read: u64,
    /// The model: parse, checks, translation, page tables, bookkeeping.
    pub model: u64,
}

/// The profile of one device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// Notifies of any queue.
    pub notifies: u64,
    /// Ticks of whole MMIO accesses that were notifies (lock, transport
    /// decode, device, used-buffer decision).
    pub mmio: u64,
    /// Ticks inside the device's notify handler.
    pub device: u64,
    /// Ticks of the batch syncs (backend invalidations and CMD_SYNC).
    pub sync: u64,
    /// Ticks writing responses and used elements.
    pub complete: u64,
    /// Per request type ([`RequestType::ALL`] order, then "other").
    pub by_type: [TypeTicks; ROWS],
}

impl Profile {
    /// One request of `kind`: ticks to pop it, copy it and handle it.
    pub fn request(&mut self, kind: Option<RequestType>, pop: u64, read: u64, model: u64) {
        if let Some(t) = self.by_type.get_mut(row(kind)) {
            t.count += 1;
            t.pop = t.pop.wrapping_add(pop);
            t.read = t.read.wrapping_add(read);
            t.model = t.model.wrapping_add(model);
        }
    }

    /// One batch's sync and completion ticks.
    pub fn batch(&mut self, sync: u64, complete: u64) {
        self.sync = self.sync.wrapping_add(sync);
        self.complete = self.complete.wrapping_add(complete);
    }

    /// One notify handled by the device in `ticks`.
    pub fn notify(&mut self, ticks: u64) {
        self.notifies += 1;
        self.device = self.device.wrapping_add(ticks);
    }

    /// The whole MMIO access of a notify took `ticks`.
    pub fn mmio(&mut self, ticks: u64) {
        self.mmio = self.mmio.wrapping_add(ticks);
    }

    /// The profile's lines, with the backend's page-table ticks for MAP and
    /// UNMAP (`table`).
    pub fn lines(&self, table: [u64; 2]) -> Lines<'_> {
        Lines {
            profile: self,
            table,
        }
    }
}

/// [`Profile::lines`]: displays as the lines the module documents.
pub struct Lines<'a> {
    profile: &'a Profile,
    table: [u64; 2],
}

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.profile;
        write!(
            f,
            "virtio-iommu profile: notifies {} mmio {} device {} sync {} complete {}",
            p.notifies, p.mmio, p.device, p.sync, p.complete
        )?;
        let kinds = RequestType::ALL.map(Some);
        for kind in kinds.iter().chain(core::iter::once(&None)) {
            let t = p.by_type[row(*kind)];
            if t.count == 0 {
                continue;
            }
            let table = match kind {
                Some(RequestType::Map) => self.table[0],
                Some(RequestType::Unmap) => self.table[1],
                _ => 0,
            };
            write!(
                f,
                "\nvirtio-iommu profile: {} {} pop {} read {} model {} table {}",
                kind.map_or("other", RequestType::name),
                t.count,
                t.pop,
                t.read,
                t.model,
                table
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn sums_by_type_and_prints_the_documented_lines() {
        let mut p = Profile::default();
        p.request(Some(RequestType::Map), 10, 20, 300);
        p.request(Some(RequestType::Map), 11, 21, 301);
        p.request(Some(RequestType::Unmap), 12, 22, 400);
        p.request(None, 1, 2, 3);
        p.batch(50, 60);
        p.notify(900);
        p.mmio(1000);
        assert_eq!(p.by_type[row(Some(RequestType::Map))].count, 2);
        let text = format!("{}", p.lines([111, 222]));
        assert_eq!(
            text,
            "virtio-iommu profile: notifies 1 mmio 1000 device 900 sync 50 complete 60\n\
             virtio-iommu profile: map 2 pop 21 read 41 model 601 table 111\n\
             virtio-iommu profile: unmap 1 pop 12 read 22 model 400 table 222\n\
             virtio-iommu profile: other 1 pop 1 read 2 model 3 table 0"
        );
    }

    #[test]
    fn an_empty_profile_is_one_line() {
        let text = format!("{}", Profile::default().lines([0, 0]));
        assert_eq!(
            text,
            "virtio-iommu profile: notifies 0 mmio 0 device 0 sync 0 complete 0"
        );
    }
}
