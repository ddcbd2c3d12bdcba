//! [`Pending`]: the invalidation commands a guest's virtio-iommu backend
//! queues for its batch's sync, one list per SMMU instance, with whether
//! each instance has range invalidation. The usual machine has one SMMU:
//! its list, flag and command queue are held in place (one tag test and
//! direct loads, no vector of lists to go through, the sync one call to
//! the instance's queue), the general layout kept for none or several
//! (or a port that offers no queue to keep).

use crate::smmu::cmd::Cmd;
use crate::smmu::manager::KeptQueue;
use alloc::vec::Vec;

/// The commands queued per SMMU instance (emptied, not freed, by each
/// sync), and each instance's range invalidation (IDR3.RIL).
#[repr(u8)]
pub(super) enum Pending {
    /// Exactly one instance.
    One {
        /// Its queued commands.
        cmds: Vec<Cmd>,
        /// Whether it has range invalidation.
        ril: bool,
        /// Its command queue (the sync's one call).
        queue: KeptQueue,
    },
    /// No instance, or several: one list and one flag each.
    Each {
        /// The queued commands of each instance.
        cmds: Vec<Vec<Cmd>>,
        /// Whether each has range invalidation.
        ril: Vec<bool>,
    },
}

impl Pending {
    /// Empty lists for `count` instances, instance `i` with range
    /// invalidation when `ril(i)` and command queue `queue(i)`; one
    /// instance is held in place when it has a queue.
    pub(super) fn new(
        count: usize,
        ril: impl Fn(usize) -> bool,
        queue: impl Fn(usize) -> Option<KeptQueue>,
    ) -> Self {
        if count == 1
            && let Some(queue) = queue(0)
        {
            return Pending::One {
                cmds: Vec::new(),
                ril: ril(0),
                queue,
            };
        }
        Pending::Each {
            cmds: (0..count).map(|_| Vec::new()).collect(),
            ril: (0..count).map(ril).collect(),
        }
    }

    /// The one instance's list, if there is exactly one instance.
    #[inline(always)]
    pub(super) fn one(&self) -> Option<&Vec<Cmd>> {
        match self {
            Pending::One { cmds, .. } => Some(cmds),
            Pending::Each { .. } => None,
        }
    }

    /// The one instance's list and range invalidation, if there is
    /// exactly one instance.
    #[inline(always)]
    pub(super) fn one_mut(&mut self) -> Option<(&mut Vec<Cmd>, bool)> {
        match self {
            Pending::One { cmds, ril, .. } => Some((cmds, *ril)),
            Pending::Each { .. } => None,
        }
    }

    /// The one instance's list and command queue, if there is exactly one
    /// instance held in place.
    #[inline(always)]
    pub(super) fn one_queue(&mut self) -> Option<(&mut Vec<Cmd>, KeptQueue)> {
        match self {
            Pending::One { cmds, queue, .. } => Some((cmds, *queue)),
            Pending::Each { .. } => None,
        }
    }

    /// Every instance's list, by instance.
    pub(super) fn lists(&self) -> &[Vec<Cmd>] {
        match self {
            Pending::One { cmds, .. } => core::slice::from_ref(cmds),
            Pending::Each { cmds, .. } => cmds,
        }
    }

    /// Every instance's list, by instance.
    pub(super) fn lists_mut(&mut self) -> &mut [Vec<Cmd>] {
        match self {
            Pending::One { cmds, .. } => core::slice::from_mut(cmds),
            Pending::Each { cmds, .. } => cmds,
        }
    }

    /// Whether instance `inst` has range invalidation (false for an
    /// instance there is not).
    pub(super) fn ril(&self, inst: usize) -> bool {
        match self {
            Pending::One { ril, .. } => inst == 0 && *ril,
            Pending::Each { ril, .. } => ril.get(inst).copied().unwrap_or(false),
        }
    }
}
