//! PROBE: the endpoint's reserved regions as RESV_MEM properties, the rest
//! of the `probe_size` buffer zero, the tail at the end of the writable
//! part.

use super::{Response, Viommu};
use crate::viommu::backend::IommuBackend;
use crate::viommu::wire::Status;
use crate::viommu::wire::probe::{RESV_MEM_LEN, ResvMem};
use crate::viommu::wire::request::Probe;
use crate::viommu::wire::{TAIL_LEN, put};

impl<B: IommuBackend> Viommu<B> {
    /// PROBE (reserved bytes ignored): not offered -> nothing written;
    /// writable part shorter than `probe_size` + tail -> INVAL with no
    /// property (spec); unknown endpoint -> NOENT; properties larger than
    /// `probe_size` -> DEVERR with no property (the device was configured
    /// too small for this endpoint).
    pub(super) fn probe(&mut self, req: &Probe, resp_len: usize) -> Response {
        let size = self.config.probe_size as usize;
        if size == 0 {
            return Response::Nothing;
        }
        if resp_len < size + TAIL_LEN {
            return Response::with_status(resp_len, Status::Inval);
        }
        if !self.backend.endpoint_known(req.endpoint) {
            return Response::with_status(resp_len, Status::Noent);
        }
        let regions = self.backend.resv_regions(req.endpoint);
        if regions.len().saturating_mul(RESV_MEM_LEN) > size {
            return Response::with_status(resp_len, Status::Deverr);
        }
        if regions.is_empty() {
            return Response::with_status(resp_len, Status::Ok);
        }
        let mut bytes = alloc::vec![0u8; resp_len];
        for (i, r) in regions.iter().enumerate() {
            let prop = ResvMem {
                subtype: r.kind,
                start: r.start,
                end: r.end,
            };
            put(&mut bytes, i * RESV_MEM_LEN, &prop.encode());
        }
        bytes[resp_len - TAIL_LEN] = Status::Ok as u8;
        Response::Written(bytes)
    }
}
