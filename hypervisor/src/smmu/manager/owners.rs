//! Streams and their owners: [`SmmuManager::attach`] records an owner's
//! streams (and binds them to its stage-2 table), [`SmmuManager::detach`]
//! returns them to abort; single streams are bound and aborted for a
//! virtio-iommu's endpoints.

use super::devices::OwnerStreams;
use super::{Instance, ManagerError, Owned, OwnerId, SmmuManager, Stage2Table, SyncFailed};
use crate::smmu::cmd::Cmd;
use crate::smmu::dma::{CacheOps, DmaMemory};
use crate::smmu::driver::Smmu;
use crate::smmu::error::SmmuError;
use crate::smmu::hw::{ArchCache, HeapDma, MmioRegs};
use crate::smmu::queue::SyncStart;
use crate::smmu::regs::SmmuRegs;
use crate::smmu::ste::S2Config;
use crate::smmu::streams::SidRange;
use alloc::string::ToString;
use alloc::vec::Vec;
use core::any::Any;
use log::{error, info, warn};
use spin::MutexGuard;

impl<R: SmmuRegs, D: DmaMemory, C: CacheOps + Clone> SmmuManager<R, D, C> {
    /// Records `owner` (called `name` in log lines) as the owner of the
    /// streams of its devices and, with `stage2`, binds them to that table
    /// and VMID. Without it (an owner with a virtio-iommu) they keep
    /// aborting until single streams are bound ([`SmmuManager::bind_stream`]).
    /// The problems `streams` found (devices not isolated) are logged.
    ///
    /// Stops at the first device that cannot be bound; the streams bound
    /// and recorded so far stay so: [`SmmuManager::detach`] the owner to
    /// undo them.
    pub fn attach(
        &self,
        owner: OwnerId,
        name: &str,
        streams: &OwnerStreams,
        stage2: Option<Stage2Table<'_>>,
    ) -> Result<(), ManagerError> {
        self.set_name(owner, name);
        for p in &streams.problems {
            warn!("guest '{name}': {p}");
        }
        for dev in &streams.devices {
            let inst = self.instance(dev.smmu)?;
            let path = dev.path.as_str();
            let ranges = &dev.streams.ranges;
            let record = |ranges: &[SidRange]| {
                self.owners
                    .lock()
                    .ranges
                    .extend(ranges.iter().map(|&range| Owned {
                        smmu: dev.smmu,
                        range,
                        owner,
                    }));
            };
            let Some(st2) = stage2 else {
                record(ranges);
                info!(
                    "guest '{name}': {path}: {} stream(s) on smmuv3 {:#x} abort until its virtio-iommu attaches them",
                    dev.streams.count(),
                    inst.base
                );
                continue;
            };
            let failed = |error| ManagerError::Device {
                path: path.to_string(),
                base: inst.base,
                error,
            };
            let cfg = S2Config::for_table(st2.table, st2.vmid, inst.ps).map_err(failed)?;
            inst.driver
                .lock()
                .attach_stage2(ranges.iter().copied(), &cfg)
                .map_err(failed)?;
            record(ranges);
            info!(
                "guest '{name}': {path}: {} stream(s) on smmuv3 {:#x} translate through {} (vmid {})",
                dev.streams.count(),
                inst.base,
                st2.label,
                st2.vmid
            );
        }
        Ok(())
    }

    /// Returns every stream `owner` holds to abort, invalidates `vmid` on
    /// the instances where it held streams, and forgets them: call before
    /// the owner's memory is reused (reset, power-off). Goes on past a
    /// failing instance (logged); returns the first error.
    pub fn detach(&self, owner: OwnerId, vmid: u16) -> Result<(), ManagerError> {
        let mut owners = self.owners.lock();
        let name = owners.name(owner).unwrap_or("?").to_string();
        let mut first = Ok(());
        for (smmu, inst) in self.instances.iter().enumerate() {
            let mine: Vec<SidRange> = owners
                .ranges
                .iter()
                .filter(|o| o.owner == owner && o.smmu == smmu)
                .map(|o| o.range)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let mut drv = inst.driver.lock();
            let results = [
                drv.detach(mine.iter().copied()).inspect_err(|e| {
                    error!("smmuv3 {:#x}: detaching guest '{name}': {e}", inst.base);
                }),
                drv.invalidate_vmid(vmid).inspect_err(|e| {
                    error!("smmuv3 {:#x}: invalidating vmid {vmid}: {e}", inst.base);
                }),
            ];
            drop(drv);
            for r in results {
                if let (Ok(()), Err(error)) = (&first, r) {
                    first = Err(ManagerError::Smmu {
                        base: inst.base,
                        error,
                    });
                }
            }
            owners
                .ranges
                .retain(|o| !(o.owner == owner && o.smmu == smmu));
        }
        first
    }

    /// Points stream `sid` of instance `smmu` at `stage2`.
    pub fn bind_stream(
        &self,
        smmu: usize,
        sid: u32,
        stage2: Stage2Table<'_>,
    ) -> Result<(), ManagerError> {
        let inst = self.instance(smmu)?;
        let cfg =
            S2Config::for_table(stage2.table, stage2.vmid, inst.ps).map_err(ManagerError::Table)?;
        inst.driver
            .lock()
            .attach_stage2([SidRange::one(sid)], &cfg)
            .map_err(|error| ManagerError::Smmu {
                base: inst.base,
                error,
            })
    }

    /// Returns stream `sid` of instance `smmu` to abort (with invalidation).
    pub fn abort_stream(&self, smmu: usize, sid: u32) -> Result<(), ManagerError> {
        let inst = self.instance(smmu)?;
        inst.driver
            .lock()
            .detach([SidRange::one(sid)])
            .map_err(|error| ManagerError::Smmu {
                base: inst.base,
                error,
            })
    }

    /// Issues `cmds` on instance `smmu` followed by one CMD_SYNC, and waits.
    #[inline]
    pub fn issue(&self, smmu: usize, cmds: &[Cmd]) -> Result<(), ManagerError> {
        let inst = self.instance(smmu)?;
        let issued = inst.driver.lock().issue(cmds);
        // The lock released; the usual answer tested first, the error's
        // wrapping out of line.
        match issued {
            Ok(()) => Ok(()),
            Err(error) => Err(smmu_failed(inst.base, error)),
        }
    }

    /// [`SmmuManager::issue`] for a hot path (a guest's invalidations): a
    /// failure is logged here, with the instance and the driver's error,
    /// and answered as [`SyncFailed`], which the caller gets in a register.
    #[inline]
    pub fn sync_cmds(&self, smmu: usize, cmds: &[Cmd]) -> Result<(), SyncFailed> {
        let Some(inst) = self.instances.get(smmu) else {
            return Err(log_failed(&ManagerError::NoSuchSmmu(smmu)));
        };
        inst.sync(cmds)
    }

    /// Instance `smmu`'s command queue as a hot path keeps it
    /// ([`SyncQueue`]): its [`SyncQueue::sync_cmds`] is
    /// [`SmmuManager::sync_cmds`] on that instance, without the instance
    /// lookup. None for an instance there is not.
    pub fn queue(&self, smmu: usize) -> Option<&dyn SyncQueue>
    where
        R: Send,
        D: Send,
        C: Send,
    {
        self.instances.get(smmu).map(|i| i as &dyn SyncQueue)
    }

    /// Instance `smmu` if its type is `Q` (the machine's concrete instance
    /// type, [`HwQueue`], for a hot path to keep with a direct call); None
    /// for another type or an instance there is not.
    pub fn instance_as<Q: 'static>(&self, smmu: usize) -> Option<&Q>
    where
        R: 'static,
        D: 'static,
        C: 'static,
    {
        let inst: &dyn Any = self.instances.get(smmu)?;
        inst.downcast_ref()
    }

    /// Instance `smmu`'s command queue as a hot path keeps it
    /// ([`KeptQueue`]): on the target the instance itself when it is the
    /// machine's type ([`HwQueue`]), its sync a direct call; on a host
    /// build [`SmmuManager::queue`]. None when there is no such instance
    /// or (target) it is of another type: the caller then syncs through
    /// [`SmmuManager::sync_cmds`].
    pub fn kept(&'static self, smmu: usize) -> Option<KeptQueue>
    where
        R: Send + 'static,
        D: Send + 'static,
        C: Send + 'static,
    {
        #[cfg(all(target_arch = "aarch64", target_os = "none"))]
        return self.instance_as::<HwQueue>(smmu);
        #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
        return self.queue(smmu);
    }

    /// Remembers `name` as `owner`'s name for log lines.
    fn set_name(&self, owner: OwnerId, name: &str) {
        let mut owners = self.owners.lock();
        match owners.names.iter_mut().find(|(o, _)| *o == owner) {
            Some((_, n)) if n == name => {}
            Some((_, n)) => *n = name.to_string(),
            None => owners.names.push((owner, name.to_string())),
        }
    }
}

/// One SMMU instance's command queue, as a hot path (a guest's
/// invalidations) keeps it from [`SmmuManager::queue`]: one call to the
/// instance's queue, no instance lookup or port between.
pub trait SyncQueue: Sync {
    /// Issues `cmds` and a CMD_SYNC on this instance (under its driver's
    /// lock) and waits: the driver's checks (room, wrap, CMDQ_CONS polled
    /// with its limit, the command error kept by the queue) as
    /// [`SmmuManager::issue`]. A failure is logged here, with the instance
    /// and the driver's error, and answered as [`SyncFailed`].
    fn sync_cmds(&self, cmds: &[Cmd]) -> Result<(), SyncFailed>;
}

/// The machine's SMMU instance type (registers through the EL2 identity
/// map, heap memory, cache maintenance through the arch module).
pub type HwQueue = Instance<MmioRegs, HeapDma, ArchCache>;

/// An SMMU instance's command queue as a hot path (a guest's virtio-iommu
/// backend) keeps it, from [`SmmuManager::kept`]. On the target, the
/// machine's concrete instance type: its [`SyncQueue::sync_cmds`] is a
/// direct call the compiler may inline (no indirect call, no frame of its
/// own). On host builds (unit tests over fake SMMUs and recording ports)
/// any [`SyncQueue`]. Either way the same driver code answers.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub type KeptQueue = &'static HwQueue;
/// See the target's definition: on host builds any [`SyncQueue`].
#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
pub type KeptQueue = &'static dyn SyncQueue;

impl<R: SmmuRegs, D: DmaMemory, C: CacheOps + Clone> Instance<R, D, C> {
    /// [`SyncQueue::sync_cmds`] as the instance's own method: what the
    /// target's kept queue ([`KeptQueue`], the concrete type) calls, a
    /// direct call with no trait in scope. Out of line: inlined into the
    /// notify's request loop it moved that loop's register allocation
    /// (+2 per request in the 64-request batches, -5 per pair).
    #[inline(never)]
    pub fn sync_cmds(&self, cmds: &[Cmd]) -> Result<(), SyncFailed> {
        self.sync(cmds)
    }

    /// [`SyncQueue::sync_cmds`] (the manager's and the kept queue's one
    /// body).
    ///
    /// The usual sync (room in the queue, the `CMD_SYNC` consumed at the
    /// first read of CMDQ_CONS, no command error kept) makes no call: the
    /// driver's [`Smmu::issue_start`] inline, the lock released, `Ok`; the
    /// rest a tail call to [`Instance::sync_rest`]. So the kept queue's
    /// function needs no register saved across a call.
    #[inline(always)]
    fn sync(&self, cmds: &[Cmd]) -> Result<(), SyncFailed> {
        let mut driver = self.driver.lock();
        match driver.issue_start(cmds) {
            SyncStart::Done => Ok(()),
            started => self.sync_rest(driver, cmds, started),
        }
    }

    /// [`Instance::sync`] past its usual case: the driver's
    /// [`Smmu::issue_rest`] under the lock still held, then the lock
    /// released and a failure logged.
    #[inline(never)]
    fn sync_rest(
        &self,
        mut driver: MutexGuard<'_, Smmu<R, D, C>>,
        cmds: &[Cmd],
        started: SyncStart,
    ) -> Result<(), SyncFailed> {
        let issued = driver.issue_rest(cmds, started);
        drop(driver);
        match issued {
            Ok(()) => Ok(()),
            Err(error) => Err(log_failed(&smmu_failed(self.base, error))),
        }
    }
}

impl<R: SmmuRegs, D: DmaMemory, C: CacheOps + Clone> SyncQueue for Instance<R, D, C>
where
    Self: Sync,
{
    fn sync_cmds(&self, cmds: &[Cmd]) -> Result<(), SyncFailed> {
        self.sync(cmds)
    }
}

/// A failure of the driver of the SMMU at `base`, as the manager reports it.
#[cold]
#[inline(never)]
fn smmu_failed(base: u64, error: SmmuError) -> ManagerError {
    ManagerError::Smmu { base, error }
}

/// A hot path's failed sync: logged, answered as [`SyncFailed`].
#[cold]
#[inline(never)]
fn log_failed(e: &ManagerError) -> SyncFailed {
    error!("{e}");
    SyncFailed
}
