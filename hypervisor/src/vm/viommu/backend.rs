//! The hardware side of a guest's virtio-iommu: each translating domain is
//! a stage-2 IO page table (IOVA -> host physical, the format the CPU's
//! stage 2 uses) with its own VMID, bound to the SMMU stream table entries
//! of the endpoints attached to it. Unattached endpoints abort, or with
//! `bypass` go through the guest's own stage 2; a bypass domain is the
//! guest's stage 2 too. Unmaps are invalidated in one batch per notify.
//!
//! A domain's table and VMID ([`SmmuDomain`], the backend's
//! [`IommuBackend::Domain`]) are held by the model's domain, so a MAP or
//! UNMAP reaches them through the model's one lookup; the backend keeps
//! by ID only what a stream bound to a domain reaches and its table's
//! root, so that it can fail closed on a bind and name every table not
//! freed ([`SmmuBackend::live_roots`]).
//!
//! Fail closed: a stream whose bind fails is made to abort at once, and
//! the abort confirmed (CFGI of the stream and TLBI of the VMIDs it may
//! have used, each waited for with CMD_SYNC). If even that fails, the
//! endpoint is remembered as unconfirmed with the domains its stream may
//! still reach; a destroyed domain's tables (and VMID) are kept, and
//! counted against the guest's domain budget, until no unconfirmed stream
//! may reach them and a TLBI of their VMID has completed. So no STE ever
//! points at freed tables.
//!
//! Budget: a guest holds at most `max_domains` domains (kept ones
//! included) and its share of the machine's VMIDs ([`GuestVmids`]).
//!
//! Bounds (docs/viommu.md, "Budgets and bounds"): every domain's tables
//! come from one [`BudgetTables`] charged to the guest, at most its
//! `io_table_pages`; a MAP writes at most [`MAX_MAP_PTES`] descriptors;
//! checking a MAP's MMIO target walks the guest's stage 2 once per page or
//! block, at most [`MAX_TRANSLATE_WALKS`] times; one notify's MAPs together
//! do at most [`MAX_NOTIFY_WORK`] descriptors and walks (more: NOMEM,
//! nothing mapped). Tables emptied by
//! an UNMAP are retired, invalidated with the batch (their VMID's walk
//! caches too) and freed after its CMD_SYNC has completed.

use super::super::dma::GuestDma;
use super::super::ram::GuestRam;
use super::pending::Pending;
use super::vmids::GuestVmids;
use crate::arch::{Arch, Cpu};
use crate::mm::budget_tables::BudgetTables;
use crate::mm::layout::Region;
use crate::mm::pagetable::{Attrs, Leaf, MapError, MemType, PAGE_SIZE, PageTable, Stage2};
use crate::perf;
use crate::smmu::SmmuError;
use crate::smmu::cmd::{Cmd, one_page_plan, plan_s2_invalidation_into};
use crate::smmu::driver::ProbeOptions;
use crate::viommu::backend::{BackendError, GpaRange, IommuBackend, MapAttrs, Refusal, ResvRegion};
use crate::viommu::idmap::IdMap;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use log::error;
use smallvec::SmallVec;

/// MAPs up to this size are costed by their 4 KiB pages, without a walk.
const SMALL_MAP: u64 = 2 << 20;

/// Input-address size of domain page tables (and so the device's input range).
pub const IOVA_BITS: u32 = 40;

/// Default budget of IO page-table pages of one guest (8 MiB of tables:
/// 4 GiB of scattered 4 KiB mappings).
pub const DEFAULT_IO_TABLE_PAGES: usize = 2048;

/// Most page-table descriptors one MAP may write (256 MiB of 4 KiB pages,
/// or 128 GiB of 2 MiB blocks); a larger MAP gets NOMEM.
pub const MAX_MAP_PTES: u64 = 1 << 16;

/// Most work the MAPs of one notify may do together, in units of one
/// page-table descriptor written or one stage-2 walk checking an MMIO
/// target; a MAP that would go beyond gets NOMEM (the driver may send it
/// again, in another notify).
pub const MAX_NOTIFY_WORK: u64 = 1 << 17;

/// Most stage-2 walks checking one MAP's MMIO target may take (one per
/// stage-2 page or block); a target needing more gets NOMEM.
pub const MAX_TRANSLATE_WALKS: u64 = 4096;

/// The stage-2 leaf encoding of each [`MapAttrs`], by
/// [`MapAttrs::index`]: Normal or Device-nGnRE memory, the read and write
/// permissions asked, never executable. Decided at compile time, so a MAP
/// encodes its leaf with one load.
const LEAVES: [Leaf<Stage2>; MapAttrs::COUNT] = {
    let mut t = [Stage2::leaf(Attrs::RW); MapAttrs::COUNT];
    let mut i = 0;
    while i < MapAttrs::COUNT {
        let m = MapAttrs::from_index(i);
        t[i] = Stage2::leaf(Attrs {
            mem: if m.mmio() {
                MemType::Device
            } else {
                MemType::Normal
            },
            read: m.read(),
            write: m.write(),
            exec: false,
        });
        i += 1;
    }
    t
};

/// The backend's state of one domain ([`IommuBackend::Domain`]), held by
/// the model with its own state of the domain: a MAP or UNMAP reaches
/// the domain's table through the model's one lookup. The backend keeps
/// a [`Live`] record of it by ID, so that it can still tell what a
/// stream bound to the domain reaches and enumerate every table not
/// freed ([`SmmuBackend::live_roots`]).
pub struct SmmuDomain {
    /// The domain's ID (the key of its [`Live`] record).
    id: u32,
    /// Identity through the guest's stage 2 (ATTACH_F_BYPASS).
    bypass: bool,
    vmid: u16,
    table: Option<PageTable<Stage2>>,
    /// Unique among this backend's domains, live or kept.
    serial: u64,
}

impl SmmuDomain {
    /// What a stream bound to this domain may reach that dies with it:
    /// its serial and VMID (None for a bypass domain: the guest's own
    /// stage 2 lives as long as the guest).
    fn reach(&self) -> Option<(u64, u16)> {
        self.table.as_ref().map(|_| (self.serial, self.vmid))
    }

    /// The domain's IO page table (None: a bypass domain).
    pub fn table(&self) -> Option<&PageTable<Stage2>> {
        self.table.as_ref()
    }
}

/// The backend's record of a live domain (its state is held by the
/// model): what a stream bound to it reaches, and its table's root.
struct Live {
    /// [`SmmuDomain::reach`] of the domain.
    reach: Option<(u64, u16)>,
    /// Root of its table (None: bypass).
    root: Option<u64>,
}

/// A destroyed domain's table, kept while a stream may still reach it or
/// until its VMID's invalidation completes.
struct Kept {
    serial: u64,
    vmid: u16,
    table: PageTable<Stage2>,
}

/// The domains (serial, VMID) a stream may still reach.
type Reach = SmallVec<[(u64, u16); 2]>;

/// The SMMU backend of one guest's virtio-iommu.
pub struct SmmuBackend {
    /// The guest's RAM (what MAPs may point at).
    ram: GuestRam,
    /// Host-physical address of the guest's RAM (`ram.to_pa` of its base).
    ram_pa: u64,
    /// The guest's SMMU view: its streams, stage 2 and VMID.
    guest: Arc<GuestDma>,
    /// The guest's share of the VMIDs, for translating domains.
    vmids: GuestVmids,
    /// Most domains (live and kept) the guest may hold.
    max_domains: usize,
    next_serial: u64,
    /// The guest's IO page-table pages, within its budget.
    tables: BudgetTables,
    /// Work of this batch's MAPs (until the sync): descriptors written
    /// and stage-2 walks, against [`MAX_NOTIFY_WORK`].
    batch_work: u64,
    /// Table pages retired, whose walk-cache invalidation is queued.
    retire_queued: usize,
    /// The live domains by ID (their state is held by the model).
    domains: IdMap<Live>,
    /// Attached endpoints and their domain.
    attached: BTreeMap<u32, u32>,
    /// Endpoints whose stream change was not confirmed, and the domains
    /// their stream may still reach.
    unconfirmed: BTreeMap<u32, Reach>,
    /// Destroyed domains' tables not yet safe to free.
    kept: Vec<Kept>,
    global_bypass: bool,
    /// Invalidation commands waiting for the batch's sync, by SMMU
    /// instance (emptied, not freed, by each sync), and whether each
    /// instance has range invalidation.
    pending: Pending,
    /// The lengths of `pending` before an unmap planned its commands.
    marks: Vec<usize>,
    /// Ticks spent in map and unmap (with the `profile` feature).
    ticks: [u64; 2],
}

/// `gpa`'s offset in `ram` when all of `[gpa, last]` (`last >= gpa`) is
/// in it: `ram.contains(gpa) && ram.contains(last)`, with one subtraction
/// and two comparisons after the lower bound.
#[inline(always)]
pub(crate) fn ram_offset(ram: Region, gpa: u64, last: u64) -> Option<u64> {
    let off = gpa.checked_sub(ram.base)?;
    (off < ram.size && last - gpa < ram.size - off).then_some(off)
}

#[cold]
#[inline(never)]
fn hw(e: impl core::fmt::Display) -> BackendError {
    error!("virtio-iommu backend: {e}");
    BackendError::Hardware
}

/// A failed page-table map as the backend reports it.
fn map_error(e: MapError) -> BackendError {
    match e {
        MapError::NoMemory => BackendError::NoMemory,
        other => hw(other),
    }
}

/// A failed invalidation plan as the backend reports it.
fn plan_error(e: SmmuError) -> BackendError {
    match e {
        SmmuError::NoMemory { .. } => BackendError::NoMemory,
        other => hw(other),
    }
}

impl SmmuBackend {
    /// The backend of a guest's virtio-iommu: every endpoint starts
    /// unattached, aborting (bypass off). The guest may hold `max_domains`
    /// domains, translating ones with a VMID of `vmids`; its tables are
    /// limited to [`DEFAULT_IO_TABLE_PAGES`].
    pub fn new(ram: GuestRam, guest: Arc<GuestDma>, vmids: GuestVmids, max_domains: usize) -> Self {
        Self::with_table_limit(ram, guest, vmids, max_domains, DEFAULT_IO_TABLE_PAGES)
    }

    /// As [`SmmuBackend::new`], with at most `table_pages` IO page-table
    /// pages (every domain's tables, roots included).
    pub fn with_table_limit(
        ram: GuestRam,
        guest: Arc<GuestDma>,
        vmids: GuestVmids,
        max_domains: usize,
        table_pages: usize,
    ) -> Self {
        let n = guest.smmus.count();
        SmmuBackend {
            ram_pa: ram.to_pa(ram.region().base).unwrap_or(0),
            ram,
            pending: Pending::new(n, |i| guest.smmus.has_ril(i), |i| guest.smmus.queue(i)),
            marks: Vec::with_capacity(n),
            guest,
            vmids,
            max_domains,
            next_serial: 0,
            tables: BudgetTables::new(table_pages),
            batch_work: 0,
            retire_queued: 0,
            domains: IdMap::new(),
            attached: BTreeMap::new(),
            unconfirmed: BTreeMap::new(),
            kept: Vec::new(),
            global_bypass: false,
            ticks: [0, 0],
        }
    }

    /// Root of domain `domain`'s table (None: no such translating domain).
    pub fn domain_root(&self, domain: u32) -> Option<u64> {
        self.domains.get(domain)?.root
    }

    /// Roots of every table the backend has not freed: live translating
    /// domains and kept ones. A stream table entry of the guest may point
    /// at these (or at the guest's stage 2) and nothing else.
    pub fn live_roots(&self) -> Vec<u64> {
        let live = self.domains.values().filter_map(|d| d.root);
        let kept = self.kept.iter().map(|k| k.table.root());
        live.chain(kept).collect()
    }

    /// Destroyed domains whose tables are still kept.
    pub fn kept_domains(&self) -> usize {
        self.kept.len()
    }

    /// Endpoints whose last stream change the SMMU did not confirm.
    pub fn unconfirmed_endpoints(&self) -> usize {
        self.unconfirmed.len()
    }

    /// The guest's VMID share.
    pub fn vmids(&self) -> &GuestVmids {
        &self.vmids
    }

    /// What `ep`'s stream may reach through the domain it is attached to.
    fn reach_of(&self, domain: Option<u32>) -> Reach {
        domain
            .and_then(|d| self.domains.get(d))
            .and_then(|d| d.reach)
            .into_iter()
            .collect()
    }

    /// After a failed bind of `ep` (no longer attached): makes its stream
    /// abort and confirms it (abort, CFGI of the stream, TLBI of every
    /// VMID of `reach`, each waited for). If that fails too, remembers
    /// that the stream may still reach `reach`.
    fn fail_closed(&mut self, ep: u32, reach: Reach) {
        let Some((inst, sid)) = self.guest.endpoint_stream(ep) else {
            return;
        };
        let smmus = self.guest.smmus;
        let tlbi: SmallVec<[Cmd; 2]> = reach.iter().map(|&(_, v)| Cmd::tlbi_s12_vmall(v)).collect();
        let confirmed = smmus.abort_stream(inst, sid).is_ok()
            && smmus.issue(inst, &[Cmd::cfgi_ste(sid, false)]).is_ok()
            && (tlbi.is_empty() || smmus.issue(inst, &tlbi).is_ok());
        if confirmed {
            error!("virtio-iommu: endpoint {ep:#x}: bind failed; its stream aborts");
            self.confirmed(ep);
        } else {
            error!(
                "virtio-iommu: endpoint {ep:#x}: bind failed and its abort is not confirmed; the tables it may reach are kept"
            );
            let pins = self.unconfirmed.entry(ep).or_default();
            for r in reach {
                if !pins.contains(&r) {
                    pins.push(r);
                }
            }
        }
    }

    /// `ep`'s stream was changed and the change confirmed: it reaches
    /// nothing it reached before. Frees the kept tables nothing pins.
    fn confirmed(&mut self, ep: u32) {
        if self.unconfirmed.remove(&ep).is_some() || !self.kept.is_empty() {
            self.release_kept();
        }
    }

    /// Frees every kept table no unconfirmed stream may reach, once a
    /// TLBI of its VMID has completed on every SMMU.
    fn release_kept(&mut self) {
        let mut i = 0;
        while let Some(k) = self.kept.get(i) {
            let pinned = self
                .unconfirmed
                .values()
                .any(|pins| pins.iter().any(|&(serial, _)| serial == k.serial));
            let vmid = k.vmid;
            let smmus = self.guest.smmus;
            if pinned
                || !(0..smmus.count())
                    .all(|inst| smmus.issue(inst, &[Cmd::tlbi_s12_vmall(vmid)]).is_ok())
            {
                i += 1;
                continue;
            }
            let k = self.kept.swap_remove(i);
            k.table.destroy(&mut self.tables);
            self.vmids.free(k.vmid);
        }
    }

    /// Points `ep`'s stream at `domain`'s table (or the guest's stage 2).
    fn bind(&self, ep: u32, domain: Option<&SmmuDomain>) -> Result<(), BackendError> {
        let Some((inst, sid)) = self.guest.endpoint_stream(ep) else {
            return Ok(()); // not behind an SMMU we run: nothing to program
        };
        let smmus = self.guest.smmus;
        match domain {
            Some(SmmuDomain {
                bypass: false,
                vmid,
                table: Some(t),
                ..
            }) => smmus.bind_stream(inst, sid, t, *vmid).map_err(hw),
            Some(_) => self.guest.bind_to_stage2(inst, sid).map_err(hw),
            None => self.guest.bind_unattached(inst, sid).map_err(hw),
        }
    }

    /// The guest's IO page-table memory (pages held, retired, pooled).
    pub fn tables(&self) -> &BudgetTables {
        &self.tables
    }

    /// After a table operation on `vmid`'s domain: when it retired tables,
    /// queue the invalidation of that VMID's walk caches (the leaf TLBIs
    /// of an unmap do not reach them) for the batch's sync, after which
    /// they are freed. Room was reserved by [`Self::reserve_retire`].
    #[inline(always)]
    fn queue_retire(&mut self, vmid: u16) {
        if self.tables.retired() > self.retire_queued {
            self.queue_retire_tlbi(vmid);
        }
    }

    /// [`Self::queue_retire`] when tables were retired (out of line).
    #[inline(never)]
    fn queue_retire_tlbi(&mut self, vmid: u16) {
        self.retire_queued = self.tables.retired();
        for cmds in self.pending.lists_mut() {
            // Room reserved before the tables changed: no allocation here.
            debug_assert!(cmds.len() < cmds.capacity(), "retire room reserved");
            cmds.push(Cmd::tlbi_s12_vmall(vmid));
        }
    }

    /// Reserves room for [`Self::queue_retire`]'s command, so that it
    /// cannot fail once the tables have changed.
    #[inline(always)]
    fn reserve_retire(&mut self) -> Result<(), BackendError> {
        // One SMMU instance (the usual machine) with room already: the
        // capacity check `try_reserve(1)` makes, without the loop.
        if let Some(cmds) = self.pending.one()
            && cmds.len() < cmds.capacity()
        {
            return Ok(());
        }
        self.reserve_retire_each()
    }

    /// [`Self::reserve_retire`] past its inlined case: every instance.
    #[inline(never)]
    fn reserve_retire_each(&mut self) -> Result<(), BackendError> {
        for cmds in self.pending.lists_mut() {
            cmds.try_reserve(1).map_err(|_| BackendError::NoMemory)?;
        }
        Ok(())
    }

    /// Unmaps `[iova, iova + len)` of `domain` and queues its invalidation
    /// for the next sync. The commands are planned first, so an error
    /// leaves both the table and the queued commands as they were.
    fn unmap_planned(
        &mut self,
        d: &mut SmmuDomain,
        iova: u64,
        len: u64,
    ) -> Result<(), BackendError> {
        let vmid = d.vmid;
        let t = d.table.as_mut().ok_or(BackendError::Hardware)?;
        let limit = ProbeOptions::DEFAULT.tlbi_page_limit;
        // One block (a 2 MiB unmap, say) is one leaf: one TLBI by address
        // invalidates it, as Linux's SMMUv3 driver does per block, instead
        // of the range's plan (a range command, or a TLBI per page).
        // A block's leaf is found once, before the plan, and removed after
        // it (a page's is found by `unmap`, after the plan: the UNMAP of a
        // page keeps fewer values live across the plan).
        let leaf = match len > PAGE_SIZE {
            true => t.one_leaf(&self.tables, iova, len),
            false => None,
        };
        let planned = if leaf.is_some() { PAGE_SIZE } else { len };
        let Some((cmds, ril)) = self.pending.one_mut() else {
            return self.unmap_planned_each(t, vmid, (iova, len), planned);
        };
        // One SMMU instance (the usual machine): its queued length is the
        // mark, no list of marks and no loop over instances. The plan
        // reserves its own commands' room; the room for `queue_retire`'s
        // command is tested after it (the plan may have used the list's
        // spare slot), so that nothing is pushed without a fallible
        // reservation once the table changes.
        let mark = cmds.len();
        // A one-page plan with room for its command and `queue_retire`'s
        // (the usual case: the list is emptied, not freed, by each sync):
        // written into the first spare slot, one room test for both.
        let one = one_page_plan(vmid, iova, planned, true, ril, limit);
        if let Some(cmd) = one
            && let [slot, _, ..] = cmds.spare_capacity_mut()
        {
            slot.write(cmd);
            // SAFETY: the slot at `mark` (the first spare one) is written
            // just above, and `mark + 1` is within the capacity (a second
            // spare slot remains, for `queue_retire`).
            unsafe { cmds.set_len(mark + 1) };
        } else {
            plan_s2_invalidation_into(cmds, vmid, iova, planned, true, ril, limit)
                .map_err(plan_error)?;
            if cmds.len() == cmds.capacity() && cmds.try_reserve(1).is_err() {
                cmds.truncate(mark);
                return Err(BackendError::NoMemory);
            }
        }
        match leaf {
            // SAFETY: `one_leaf` of this table for `iova`, with the same
            // memory; only the command list changed since.
            Some(leaf) => unsafe { t.unmap_leaf(&mut self.tables, iova, leaf) },
            None => {
                if let Err(e) = t.unmap(&mut self.tables, iova, len) {
                    // Take back what this call queued: nothing was unmapped.
                    cmds.truncate(mark);
                    return Err(hw(e));
                }
            }
        }
        self.queue_retire(vmid);
        Ok(())
    }

    /// [`Self::unmap_planned`] with several SMMU instances (out of line:
    /// the usual machine has one): `planned` bytes from `iova` planned
    /// on each, with room for `queue_retire`'s command after them, then
    /// `[iova, iova + len)` unmapped, or nothing changed.
    #[inline(never)]
    fn unmap_planned_each(
        &mut self,
        t: &mut PageTable<Stage2>,
        vmid: u16,
        (iova, len): (u64, u64),
        planned: u64,
    ) -> Result<(), BackendError> {
        let limit = ProbeOptions::DEFAULT.tlbi_page_limit;
        // The queued lengths to roll back to (a kept list: no allocation,
        // no copy of a small vector, per request).
        self.marks.clear();
        self.marks.extend(self.pending.lists().iter().map(Vec::len));
        let mut result = Ok(());
        for inst in 0..self.pending.lists().len() {
            let ril = self.pending.ril(inst);
            let Some(cmds) = self.pending.lists_mut().get_mut(inst) else {
                break;
            };
            if let Err(e) = plan_s2_invalidation_into(cmds, vmid, iova, planned, true, ril, limit) {
                result = Err(plan_error(e));
                break;
            }
            // Room for `queue_retire`'s command, after the plan (as the
            // one instance's path).
            if cmds.len() == cmds.capacity() && cmds.try_reserve(1).is_err() {
                result = Err(BackendError::NoMemory);
                break;
            }
        }
        if result.is_ok() {
            // The general path (the same answers), not inlined twice.
            result = t.unmap_general(&mut self.tables, iova, len).map_err(hw);
        }
        if result.is_err() {
            // Take back what this call queued: nothing was unmapped.
            for (cmds, &n) in self.pending.lists_mut().iter_mut().zip(&self.marks) {
                cmds.truncate(n);
            }
        } else {
            self.queue_retire(vmid);
        }
        result
    }

    /// [`IommuBackend::map`] out of table pages while a domain's table
    /// `t` (VMID `vmid`) keeps an emptied table linked: retires it, completes its
    /// invalidation now (one CMD_SYNC, the batch's allowance kept) so
    /// that its pages are free, and tries once more.
    #[inline(never)]
    fn map_after_spare(
        &mut self,
        t: &mut PageTable<Stage2>,
        vmid: u16,
        (iova, pa, len): (u64, u64, u64),
        a: Leaf<Stage2>,
    ) -> Result<(), BackendError> {
        t.release_spare(&mut self.tables);
        self.queue_retire(vmid);
        let ptes = self.batch_work;
        let synced = self.sync();
        self.batch_work = ptes;
        synced?;
        self.reserve_retire()?;
        // The general path (what `map` comes to after a spare's release:
        // no table is remembered), not inlined a second time.
        t.map_general(&mut self.tables, iova, pa, len, a)
            .map_err(map_error)
    }

    /// [`IommuBackend::sync`] past its inline test: issues each SMMU's
    /// queued commands with a CMD_SYNC and waits; then frees the retired
    /// tables (their invalidation completed), or on an error keeps them
    /// charged and never reused. Out of line: a notify of MAPs does not
    /// pay for its frame.
    #[inline(never)]
    fn sync_issue(&mut self) -> Result<(), BackendError> {
        let result = if let Some((cmds, queue)) = self.pending.one_queue() {
            // One SMMU instance (the usual machine): the loop's one turn.
            if cmds.is_empty() {
                Ok(())
            } else {
                let issued = queue.sync_cmds(cmds);
                cmds.clear();
                // The failure was logged where it happened.
                issued.map_err(|_| BackendError::Hardware)
            }
        } else {
            self.issue_each()
        };
        self.batch_work = 0;
        if result.is_ok() {
            // Every retired table's invalidation has completed.
            self.tables.reclaim();
        } else {
            // The SMMU may still walk them: charged to the guest, never
            // reused.
            self.tables.quarantine_retired();
        }
        self.retire_queued = self.tables.retired();
        result
    }

    /// The queued commands of each SMMU instance (several: not the usual
    /// machine) issued with a CMD_SYNC each and emptied; every error
    /// logged, the last one returned.
    #[inline(never)]
    fn issue_each(&mut self) -> Result<(), BackendError> {
        let mut result = Ok(());
        for (inst, cmds) in self.pending.lists_mut().iter_mut().enumerate() {
            if cmds.is_empty() {
                continue;
            }
            if self.guest.smmus.sync_cmds(inst, cmds).is_err() {
                // Logged where it happened.
                result = Err(BackendError::Hardware);
            }
            cmds.clear();
        }
        result
    }

    /// [`IommuBackend::translate`] of `[gpa, last]` not wholly in the
    /// guest's RAM: its own device MMIO, or a refusal.
    #[inline(never)]
    fn translate_outside_ram(&mut self, gpa: u64, last: u64, mmio: bool) -> Result<u64, Refusal> {
        let ram = self.ram.region();
        // The guest's own device MMIO, identity-mapped in its stage 2:
        // one walk per stage-2 page or block, at most MAX_TRANSLATE_WALKS.
        let st2 = self.guest.stage2.lock();
        if ram.contains(gpa) {
            // Starts in RAM and runs past its end: what follows RAM
            // decides. Not the guest's: RANGE; its own MMIO: a mix of
            // memory types, INVAL.
            let after = ram.end();
            return match st2.0.translate_block(&st2.1, after) {
                Some((pa, a, _)) if a.mem == MemType::Device && pa == after => {
                    Err(Refusal::MemoryType)
                }
                _ => Err(Refusal::NotOwned),
            };
        }
        let mut at = gpa & !0xfff;
        for _ in 0..MAX_TRANSLATE_WALKS {
            if self.batch_work >= MAX_NOTIFY_WORK {
                return Err(Refusal::TooLarge);
            }
            self.batch_work += 1;
            let size = match st2.0.translate_block(&st2.1, at) {
                Some((pa, a, size)) if a.mem == MemType::Device && pa == at => size,
                Some(_) if ram.contains(at) => return Err(Refusal::MemoryType),
                _ => return Err(Refusal::NotOwned),
            };
            // The leaf maps `at` to the end of its page or block.
            match (at | (size - 1)).checked_add(1) {
                Some(next) if next <= last => at = next,
                _ => {
                    return if mmio {
                        Ok(gpa)
                    } else {
                        Err(Refusal::MemoryType)
                    };
                }
            }
        }
        Err(Refusal::TooLarge)
    }
}

impl IommuBackend for SmmuBackend {
    fn endpoint_known(&self, ep: u32) -> bool {
        self.guest.endpoint_stream(ep).is_some()
    }

    /// A range in the guest's RAM is answered inline (always: a call
    /// returns its `Result` through memory), by
    /// [`IommuBackend::translate_range`] once its end is known not to wrap.
    #[inline(always)]
    fn translate(&mut self, gpa: u64, len: u64, mmio: bool) -> Result<u64, Refusal> {
        let range = GpaRange::new(gpa, len.max(1)).ok_or(Refusal::NotOwned)?;
        self.translate_range(range, mmio)
    }

    /// [`IommuBackend::translate`] past its overflow test, which the
    /// range's type carries: the RAM case inline, anything else by
    /// [`SmmuBackend::translate_outside_ram`].
    #[inline(always)]
    fn translate_range(&mut self, range: GpaRange, mmio: bool) -> Result<u64, Refusal> {
        let (gpa, last) = (range.start(), range.last());
        if let Some(off) = ram_offset(self.ram.region(), gpa, last) {
            return if mmio {
                Err(Refusal::MemoryType)
            } else {
                Ok(self.ram_pa + off)
            };
        }
        self.translate_outside_ram(gpa, last, mmio)
    }

    /// The domain's table and VMID, held by the model.
    type Domain = SmmuDomain;

    fn domain_create(&mut self, domain: u32, bypass: bool) -> Result<SmmuDomain, BackendError> {
        if self.domains.len() + self.kept.len() >= self.max_domains {
            return Err(BackendError::NoResources);
        }
        let serial = self.next_serial;
        let d = if bypass {
            SmmuDomain {
                id: domain,
                bypass,
                vmid: self.guest.vmid,
                table: None,
                serial,
            }
        } else {
            let vmid = self.vmids.alloc().ok_or(BackendError::NoResources)?;
            match PageTable::new(&mut self.tables, IOVA_BITS, 1) {
                Ok(t) => SmmuDomain {
                    id: domain,
                    bypass,
                    vmid,
                    table: Some(t),
                    serial,
                },
                Err(_) => {
                    self.vmids.free(vmid);
                    return Err(BackendError::NoMemory);
                }
            }
        };
        self.next_serial += 1;
        let live = Live {
            reach: d.reach(),
            root: d.table.as_ref().map(PageTable::root),
        };
        self.domains.insert(domain, live);
        Ok(d)
    }

    fn domain_destroy(&mut self, d: SmmuDomain) {
        let domain = d.id;
        if self
            .domains
            .get(domain)
            .is_some_and(|live| live.root == d.table.as_ref().map(PageTable::root))
        {
            self.domains.remove(domain);
        }
        // The model detaches every endpoint first; one still bound here
        // would reach the tables: treat it as unconfirmed.
        let bound: SmallVec<[u32; 4]> = self
            .attached
            .iter()
            .filter(|&(_, &dom)| dom == domain)
            .map(|(&ep, _)| ep)
            .collect();
        for ep in bound {
            self.attached.remove(&ep);
            if let Some(r) = d.reach() {
                self.unconfirmed.entry(ep).or_default().push(r);
            }
        }
        let Some(table) = d.table else {
            return; // bypass: the guest's stage 2 lives on
        };
        // Freed only once no stream may reach it and its TLB entries are
        // gone (release_kept). Without room to keep it, it is leaked: a
        // table dropped without `destroy` never gives its pages back (nor
        // its VMID), so nothing a stream may reach is ever reused.
        if self.kept.try_reserve(1).is_err() {
            return;
        }
        self.kept.push(Kept {
            serial: d.serial,
            vmid: d.vmid,
            table,
        });
        self.release_kept();
    }

    fn attach(&mut self, ep: u32, d: &SmmuDomain) -> Result<(), BackendError> {
        match self.bind(ep, Some(d)) {
            Ok(()) => {
                self.attached.insert(ep, d.id);
                self.confirmed(ep);
                Ok(())
            }
            Err(e) => {
                let old = self.attached.remove(&ep);
                let mut reach = self.reach_of(old);
                reach.extend(d.reach());
                self.fail_closed(ep, reach);
                Err(e)
            }
        }
    }

    fn detach(&mut self, ep: u32) -> Result<(), BackendError> {
        let old = self.attached.remove(&ep);
        match self.bind(ep, None) {
            Ok(()) => {
                self.confirmed(ep);
                Ok(())
            }
            Err(e) => {
                let reach = self.reach_of(old);
                self.fail_closed(ep, reach);
                Err(e)
            }
        }
    }

    fn set_global_bypass(&mut self, on: bool) -> Result<(), BackendError> {
        if self.global_bypass == on {
            return Ok(());
        }
        // Unattached endpoints are bound to the guest's table for them,
        // which now repeats its stage 2 or translates nothing: no stream
        // table entry changes, attached endpoints stay in their domains.
        let result = self.guest.set_unattached_bypass(on).map_err(hw);
        self.global_bypass = on && result.is_ok();
        if result.is_err() && on {
            // Fail closed: back to translating nothing.
            let _ = self.guest.set_unattached_bypass(false);
        }
        result
    }

    #[inline(always)]
    fn map(
        &mut self,
        d: &mut SmmuDomain,
        iova: u64,
        pa: u64,
        len: u64,
        attrs: MapAttrs,
    ) -> Result<(), BackendError> {
        let t0 = perf::now();
        self.reserve_retire()?;
        // The VMID read where it is used (a retire, the spare's release):
        // not kept in a register or on the stack across the map.
        let t = d.table.as_mut().ok_or(BackendError::Hardware)?;
        // The work is known before it is done: refuse what one request, or
        // the rest of this notify's allowance, cannot pay for.
        // Up to one 2 MiB block, the number of 4 KiB pages is a bound no
        // walk is needed for (it never undercounts; 256 requests of that
        // size fit the notify's allowance); beyond, the exact count.
        let ptes = if len <= SMALL_MAP {
            // At most 512 (no overflow: `len` is at most 2 MiB), under
            // MAX_MAP_PTES: no test of it.
            (len + 0xfff) >> 12
        } else {
            match t.leaf_count(iova, pa, len) {
                n if n > MAX_MAP_PTES => return Err(BackendError::NoResources),
                n => n,
            }
        };
        // No overflow: `batch_work` is at most MAX_NOTIFY_WORK (it grows
        // only up to it, here and in `translate_outside_ram`) and `ptes`
        // at most MAX_MAP_PTES.
        let work = self.batch_work + ptes;
        if work > MAX_NOTIFY_WORK {
            return Err(BackendError::NoResources);
        }
        self.batch_work = work;
        let a = LEAVES[attrs.index()];
        // The one-descriptor map into the remembered table retires
        // nothing, so `queue_retire` would find nothing to queue (every
        // backend call ends with as many retired tables queued as there
        // are: checked here in debug builds) and the result is Ok: the
        // caller sees it without a test of a `Result`.
        if t.map_remembered(&mut self.tables, iova, pa, len, a) {
            debug_assert_eq!(self.tables.retired(), self.retire_queued);
            self.ticks[0] = self.ticks[0].wrapping_add(perf::now() - t0);
            return Ok(());
        }
        let result = match t.map_general(&mut self.tables, iova, pa, len, a) {
            Err(MapError::NoMemory) if t.has_spare() => {
                self.map_after_spare(t, d.vmid, (iova, pa, len), a)
            }
            r => r.map_err(map_error),
        };
        // A failed map retires the tables it added.
        self.queue_retire(d.vmid);
        self.ticks[0] = self.ticks[0].wrapping_add(perf::now() - t0);
        result
    }

    fn unmap(&mut self, d: &mut SmmuDomain, iova: u64, len: u64) -> Result<(), BackendError> {
        let t0 = perf::now();
        let result = self.unmap_planned(d, iova, len);
        self.ticks[1] = self.ticks[1].wrapping_add(perf::now() - t0);
        result
    }

    /// Nothing queued and nothing retired (a notify of MAPs: new entries
    /// need no invalidation) is answered inline, with the barrier that
    /// makes the new entries visible; anything else by
    /// [`SmmuBackend::sync_issue`].
    #[inline(always)]
    fn sync(&mut self) -> Result<(), BackendError> {
        // New entries: visible to the (coherent) table walker after a DSB,
        // which each register write of the command queue issues anyway.
        Cpu::write_barrier();
        if let Some((cmds, queue)) = self.pending.one_queue()
            && self.tables.retired() == 0
        {
            // One SMMU instance (the usual machine) and nothing retired:
            // what `sync_issue` comes to then (nothing to reclaim or to
            // quarantine, the retired count 0), without its frame; its
            // queue called directly (no port, no instance lookup).
            let mut result = Ok(());
            if !cmds.is_empty() {
                let issued = queue.sync_cmds(cmds);
                cmds.clear();
                if issued.is_err() {
                    // Logged where it happened (the SMMU and its error).
                    result = Err(BackendError::Hardware);
                }
            }
            self.batch_work = 0;
            self.retire_queued = 0;
            return result;
        }
        self.sync_issue()
    }

    fn resv_regions(&self, _ep: u32) -> Vec<ResvRegion> {
        // Guests have no MSI controller (no ITS): no doorbell to keep.
        Vec::new()
    }

    fn table_ticks(&self) -> [u64; 2] {
        self.ticks
    }
}

#[cfg(test)]
mod leaf_tests {
    use super::*;
    use crate::mm::pagetable::Format;
    use crate::viommu::wire::request::MapFlags;

    /// The compile-time table gives every MAP the leaf the per-call
    /// encoding gave (Normal or Device from MMIO, the permissions asked,
    /// never executable), and a request's flags give the attributes their
    /// booleans name.
    #[test]
    fn leaves_are_the_per_call_encoding() {
        for flags in 0..8u32 {
            let f = MapFlags(flags);
            let attrs = MapAttrs::from_flags(f);
            assert_eq!(attrs, MapAttrs::new(f.read(), f.write(), f.mmio()));
            let a = Attrs {
                mem: if f.mmio() {
                    MemType::Device
                } else {
                    MemType::Normal
                },
                read: f.read(),
                write: f.write(),
                exec: false,
            };
            assert_eq!(LEAVES[attrs.index()], Leaf::from(a));
            assert_eq!(Stage2::decode(Stage2::encode(a)), a);
        }
    }
}
