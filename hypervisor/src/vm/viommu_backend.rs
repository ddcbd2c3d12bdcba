//! The hardware side of a guest's virtio-iommu: each translating domain is
//! a stage-2 IO page table (IOVA -> host physical, the format the CPU's
//! stage 2 uses) with its own VMID, bound to the SMMU stream table entries
//! of the endpoints attached to it. Unattached endpoints abort, or with
//! `bypass` go through the guest's own stage 2; a bypass domain is the
//! guest's stage 2 too. Unmaps are invalidated in one batch per notify.

use crate::mm::heap_tables::HeapTables;
use crate::mm::pagetable::{Attrs, MapError, MemType, PageTable, Stage2};
use crate::perf;
use crate::smmu::cmd::{Cmd, plan_s2_invalidation_into};
use crate::smmu::driver::ProbeOptions;
use crate::smmu::manager::Stage2Table;
use crate::viommu::backend::{BackendError, IommuBackend, MapAttrs, Refusal, ResvRegion};
use crate::vm::dma;
use crate::vm::guest::Guest;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use log::error;
use smallvec::SmallVec;
use spin::Mutex;

/// Input-address size of domain page tables (and so the device's input range).
pub const IOVA_BITS: u32 = 40;
/// First VMID handed to virtio-iommu domains (guests use 1..=8).
const FIRST_DOMAIN_VMID: u16 = 64;

/// VMIDs in use by domains, across guests.
static VMIDS: Mutex<Vec<u16>> = Mutex::new(Vec::new());

fn alloc_vmid(max: u16) -> Option<u16> {
    let mut used = VMIDS.lock();
    let v = (FIRST_DOMAIN_VMID..=max).find(|v| !used.contains(v))?;
    used.push(v);
    Some(v)
}

fn free_vmid(v: u16) {
    VMIDS.lock().retain(|&x| x != v);
}

struct Domain {
    /// Identity through the guest's stage 2 (ATTACH_F_BYPASS).
    bypass: bool,
    vmid: u16,
    table: Option<PageTable<Stage2>>,
}

/// The SMMU backend of one guest's virtio-iommu.
pub struct SmmuBackend {
    guest: &'static Guest,
    tables: HeapTables,
    domains: BTreeMap<u32, Domain>,
    /// Attached endpoints and their domain.
    attached: BTreeMap<u32, u32>,
    global_bypass: bool,
    /// Invalidation commands waiting for the batch's sync, by SMMU
    /// instance (emptied, not freed, by each sync).
    pending: Vec<Vec<Cmd>>,
    /// Whether each SMMU instance has range invalidation.
    ril: Vec<bool>,
    max_vmid: u16,
    /// Ticks spent in map and unmap (with the `profile` feature).
    ticks: [u64; 2],
}

fn hw(e: impl core::fmt::Display) -> BackendError {
    error!("virtio-iommu backend: {e}");
    BackendError::Hardware
}

impl SmmuBackend {
    /// The backend of `guest`'s virtio-iommu: every endpoint starts
    /// unattached, aborting (bypass off).
    pub fn new(guest: &'static Guest, vmid16: bool) -> Self {
        SmmuBackend {
            guest,
            tables: HeapTables,
            domains: BTreeMap::new(),
            attached: BTreeMap::new(),
            global_bypass: false,
            pending: (0..dma::smmus().count()).map(|_| Vec::new()).collect(),
            ril: (0..dma::smmus().count())
                .map(|i| dma::smmus().has_ril(i))
                .collect(),
            max_vmid: if vmid16 { u16::MAX } else { 0xff },
            ticks: [0, 0],
        }
    }

    /// Points `ep`'s stream at `domain`'s table (or the guest's stage 2).
    fn bind(&self, ep: u32, domain: Option<&Domain>) -> Result<(), BackendError> {
        let Some((inst, sid)) = dma::endpoint_sid(self.guest, ep) else {
            return Ok(()); // not behind an SMMU we run: nothing to program
        };
        match domain {
            Some(Domain {
                bypass: false,
                vmid,
                table: Some(t),
            }) => dma::smmus()
                .bind_stream(
                    inst,
                    sid,
                    Stage2Table {
                        table: t,
                        vmid: *vmid,
                    },
                )
                .map_err(hw),
            Some(_) => {
                let st2 = self.guest.stage2.lock();
                let table = Stage2Table {
                    table: &st2.0,
                    vmid: self.guest.vmid,
                };
                dma::smmus().bind_stream(inst, sid, table).map_err(hw)
            }
            None if self.global_bypass => {
                let st2 = self.guest.stage2.lock();
                let table = Stage2Table {
                    table: &st2.0,
                    vmid: self.guest.vmid,
                };
                dma::smmus().bind_stream(inst, sid, table).map_err(hw)
            }
            None => dma::smmus().abort_stream(inst, sid).map_err(hw),
        }
    }

    /// Unmaps `[iova, iova + len)` of `domain` and queues its invalidation
    /// for the next sync. The commands are planned first, so an error
    /// leaves both the table and the queued commands as they were.
    fn unmap_planned(&mut self, domain: u32, iova: u64, len: u64) -> Result<(), BackendError> {
        let d = self
            .domains
            .get_mut(&domain)
            .ok_or(BackendError::Hardware)?;
        let vmid = d.vmid;
        let t = d.table.as_mut().ok_or(BackendError::Hardware)?;
        let limit = ProbeOptions::DEFAULT.tlbi_page_limit;
        let before: SmallVec<[usize; 4]> = self.pending.iter().map(Vec::len).collect();
        let mut result = Ok(());
        for (inst, cmds) in self.pending.iter_mut().enumerate() {
            let ril = self.ril.get(inst).copied().unwrap_or(false);
            if let Err(e) = plan_s2_invalidation_into(cmds, vmid, iova, len, true, ril, limit) {
                result = Err(hw(e));
                break;
            }
        }
        if result.is_ok() {
            result = t.unmap(&mut self.tables, iova, len).map_err(hw);
        }
        if result.is_err() {
            // Take back what this call queued: nothing was unmapped.
            for (cmds, &n) in self.pending.iter_mut().zip(before.iter()) {
                cmds.truncate(n);
            }
        }
        result
    }
}

impl IommuBackend for SmmuBackend {
    fn endpoint_known(&self, ep: u32) -> bool {
        dma::endpoint_sid(self.guest, ep).is_some()
    }

    fn translate(&self, gpa: u64, len: u64, mmio: bool) -> Result<u64, Refusal> {
        let last = gpa.checked_add(len.max(1) - 1).ok_or(Refusal::NotOwned)?;
        let ram = self.guest.ram;
        if ram.contains(gpa) && ram.contains(last) {
            return if mmio {
                Err(Refusal::MemoryType)
            } else {
                self.guest.ram_to_pa(gpa).ok_or(Refusal::NotOwned)
            };
        }
        // The guest's own device MMIO, identity-mapped in its stage 2.
        let st2 = self.guest.stage2.lock();
        let mut page = gpa & !0xfff;
        while page <= last {
            match st2.0.translate(&st2.1, page) {
                Some((pa, a)) if a.mem == MemType::Device && pa == page => {}
                Some(_) if ram.contains(page) => return Err(Refusal::MemoryType),
                _ => return Err(Refusal::NotOwned),
            }
            page = match page.checked_add(0x1000) {
                Some(p) => p,
                None => break,
            };
        }
        if mmio {
            Ok(gpa)
        } else {
            Err(Refusal::MemoryType)
        }
    }

    fn domain_create(&mut self, domain: u32, bypass: bool) -> Result<(), BackendError> {
        let d = if bypass {
            Domain {
                bypass,
                vmid: self.guest.vmid,
                table: None,
            }
        } else {
            let vmid = alloc_vmid(self.max_vmid).ok_or(BackendError::NoResources)?;
            match PageTable::new(&mut self.tables, IOVA_BITS, 1) {
                Ok(t) => Domain {
                    bypass,
                    vmid,
                    table: Some(t),
                },
                Err(_) => {
                    free_vmid(vmid);
                    return Err(BackendError::NoMemory);
                }
            }
        };
        self.domains.insert(domain, d);
        Ok(())
    }

    fn domain_destroy(&mut self, domain: u32) {
        if let Some(d) = self.domains.remove(&domain)
            && let Some(t) = d.table
        {
            // No endpoint uses it any more: drop its TLB entries before
            // the tables and the VMID are reused.
            for inst in 0..dma::smmus().count() {
                let _ = dma::smmus().issue(inst, &[Cmd::tlbi_s12_vmall(d.vmid)]);
            }
            t.destroy(&mut self.tables);
            free_vmid(d.vmid);
        }
    }

    fn attach(&mut self, ep: u32, domain: u32) {
        self.attached.insert(ep, domain);
        if let Err(e) = self.bind(ep, self.domains.get(&domain)) {
            error!("virtio-iommu: endpoint {ep:#x}: attach failed: {e:?}");
        }
    }

    fn detach(&mut self, ep: u32) {
        self.attached.remove(&ep);
        if let Err(e) = self.bind(ep, None) {
            error!("virtio-iommu: endpoint {ep:#x}: detach failed: {e:?}");
        }
    }

    fn set_global_bypass(&mut self, on: bool) {
        if self.global_bypass == on {
            return;
        }
        self.global_bypass = on;
        // Every unattached stream of the guest follows the new setting, then
        // attached endpoints are bound to their domains again.
        dma::detach_guest(self.guest);
        if let Err(e) = dma::attach_guest(self.guest, on) {
            error!("virtio-iommu: bypass {on}: {e}");
        }
        let attached: Vec<(u32, u32)> = self.attached.iter().map(|(e, d)| (*e, *d)).collect();
        for (ep, dom) in attached {
            let _ = self.bind(ep, self.domains.get(&dom));
        }
    }

    fn map(
        &mut self,
        domain: u32,
        iova: u64,
        pa: u64,
        len: u64,
        attrs: MapAttrs,
    ) -> Result<(), BackendError> {
        let t0 = perf::now();
        let d = self
            .domains
            .get_mut(&domain)
            .ok_or(BackendError::Hardware)?;
        let t = d.table.as_mut().ok_or(BackendError::Hardware)?;
        let a = Attrs {
            mem: if attrs.mmio {
                MemType::Device
            } else {
                MemType::Normal
            },
            read: attrs.read,
            write: attrs.write,
            exec: false,
        };
        let result = t
            .map(&mut self.tables, iova, pa, len, a)
            .map_err(|e| match e {
                MapError::NoMemory => BackendError::NoMemory,
                other => hw(other),
            });
        self.ticks[0] = self.ticks[0].wrapping_add(perf::now() - t0);
        result
    }

    fn unmap(&mut self, domain: u32, iova: u64, len: u64) -> Result<(), BackendError> {
        let t0 = perf::now();
        let result = self.unmap_planned(domain, iova, len);
        self.ticks[1] = self.ticks[1].wrapping_add(perf::now() - t0);
        result
    }

    fn sync(&mut self) -> Result<(), BackendError> {
        // New entries: visible to the (coherent) table walker after a DSB,
        // which each register write of the command queue issues anyway.
        crate::arch::aarch64::cache::write_barrier();
        let mut result = Ok(());
        for (inst, cmds) in self.pending.iter_mut().enumerate() {
            if cmds.is_empty() {
                continue;
            }
            if let Err(e) = dma::smmus().issue(inst, cmds) {
                result = Err(hw(e));
            }
            cmds.clear();
        }
        result
    }

    fn resv_regions(&self, _ep: u32) -> Vec<ResvRegion> {
        // Guests have no MSI controller (no ITS): no doorbell to keep.
        Vec::new()
    }

    fn table_ticks(&self) -> [u64; 2] {
        self.ticks
    }
}
