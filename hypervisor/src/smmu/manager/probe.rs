//! Probing the SMMUs ([`SmmuManager::probe`]) and wiring their interrupts
//! ([`SmmuManager::enable_irqs`]).

use super::{Instance, SmmuManager};
use crate::arch::{Arch, Cpu};
use crate::fdt::Smmu as SmmuNode;
use crate::smmu::dma::{CacheOps, DmaMemory};
use crate::smmu::driver::{ProbeOptions, Smmu};
use crate::smmu::error::SmmuError;
use crate::smmu::idregs::{Features, IDR_COUNT, IDR0_OFFSET};
use crate::smmu::regs::SmmuRegs;
use alloc::vec::Vec;
use log::{debug, error, info, warn};

/// One SMMUv3 handed to [`SmmuManager::probe`]: its device-tree node and
/// what the driver runs on. The caller has made `regs` usable (mapped the
/// register block).
pub struct SmmuParts<'a, R, D, C> {
    /// The SMMU's node in the host device tree (base, phandle,
    /// interrupts, `dma-coherent`).
    pub node: &'a SmmuNode,
    /// Its registers.
    pub regs: R,
    /// Memory for its stream table and queues.
    pub dma: D,
    /// Cache maintenance, used when it is not coherent.
    pub cache: C,
}

/// What the probe found at one SMMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probed {
    /// Register base.
    pub base: u64,
    /// What its ID registers advertise.
    pub features: Features,
    /// Its instance index when in use; why not otherwise.
    pub result: Result<usize, SmmuError>,
}

/// One of the wired interrupts of an SMMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmmuInterrupt {
    /// Event queue: records pending ([`SmmuManager::handle_event_irq`]).
    EventQueue,
    /// Global errors ([`SmmuManager::handle_gerror_irq`]).
    GlobalError,
}

/// An interrupt an SMMU instance uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmmuIrq {
    /// The instance.
    pub smmu: usize,
    /// Which of its interrupts.
    pub kind: SmmuInterrupt,
    /// Its GIC INTID (from the device tree's `interrupt-names`).
    pub intid: u32,
}

impl<R: SmmuRegs, D: DmaMemory, C: CacheOps + Clone> SmmuManager<R, D, C> {
    /// Probes every SMMU of `smmus`: reads its ID registers, then resets and
    /// enables it with global bypass off and every stream aborting (see
    /// [`Smmu::probe_with`]; coherency as the device tree says). After this
    /// no unconfigured stream can reach memory through an SMMU in use. One
    /// that cannot be used is logged and left out (its features are still
    /// in [`SmmuManager::probed`]).
    pub fn probe<'a>(smmus: impl IntoIterator<Item = SmmuParts<'a, R, D, C>>) -> Self {
        let mut m = Self::empty();
        for parts in smmus {
            let node = parts.node;
            let mut idr = [0u32; IDR_COUNT];
            for (i, v) in idr.iter_mut().enumerate() {
                *v = parts.regs.read32(IDR0_OFFSET + 4 * i);
            }
            debug!("smmuv3 {:#x}: IDR0-5 {:x?}", node.base, idr);
            let features = Features::decode(idr);
            let opts = ProbeOptions {
                coherent: Some(node.dma_coherent),
                ..ProbeOptions::DEFAULT
            };
            let probed = Smmu::probe_with(parts.regs, parts.dma, parts.cache, &features, opts);
            let result = match probed {
                Ok(driver) => {
                    info!(
                        "smmuv3 {:#x}: enabled, all streams abort until a guest owns them (stream table {:?})",
                        node.base,
                        driver.stream_table().format()
                    );
                    let named = |name: &str| {
                        node.interrupts
                            .iter()
                            .find(|(n, _)| n == name)
                            .map(|(_, i)| i.intid())
                    };
                    m.instances.push(Instance {
                        base: node.base,
                        phandle: node.phandle,
                        ps: (features.oas_field as u8).min(Cpu::pa_bits_field() as u8),
                        features,
                        eventq: named("eventq"),
                        gerror: named("gerror"),
                        driver: spin::Mutex::new(driver),
                    });
                    m.phandles.push(node.phandle);
                    Ok(m.instances.len() - 1)
                }
                Err(e) => {
                    error!(
                        "smmuv3 {:#x}: not used: {e}; DMA through it is not isolated",
                        node.base
                    );
                    Err(e)
                }
            };
            m.probed.push(Probed {
                base: node.base,
                features,
                result,
            });
        }
        m
    }

    /// The wired interrupts of every instance (event queue and global
    /// error, as the device tree names them), for the caller to register.
    pub fn irqs(&self) -> Vec<SmmuIrq> {
        let mut out = Vec::new();
        for (smmu, inst) in self.instances.iter().enumerate() {
            let kinds = [
                (SmmuInterrupt::EventQueue, inst.eventq),
                (SmmuInterrupt::GlobalError, inst.gerror),
            ];
            for (kind, intid) in kinds {
                if let Some(intid) = intid {
                    out.push(SmmuIrq { smmu, kind, intid });
                }
            }
        }
        out
    }

    /// Calls `register` for every interrupt of [`SmmuManager::irqs`] (it
    /// returns whether the interrupt now reaches the matching handler), then
    /// turns on at each instance the interrupts that were registered. An
    /// instance whose interrupts cannot be enabled is logged: its events
    /// are then only seen by [`SmmuManager::poll_events`].
    pub fn enable_irqs(&self, mut register: impl FnMut(SmmuIrq) -> bool) {
        let mut on = alloc::vec![(false, false); self.instances.len()];
        for irq in self.irqs() {
            let registered = register(irq);
            let slot = &mut on[irq.smmu];
            match irq.kind {
                SmmuInterrupt::EventQueue => slot.0 = registered,
                SmmuInterrupt::GlobalError => slot.1 = registered,
            }
        }
        for (inst, (evtq, gerror)) in self.instances.iter().zip(on) {
            if let Err(e) = inst.driver.lock().enable_irqs(evtq, gerror) {
                warn!(
                    "smmuv3 {:#x}: interrupts not enabled ({e}); events are polled",
                    inst.base
                );
            }
        }
    }
}
