//! The virtual GIC redistributors (one RD_base + SGI_base frame pair per
//! vCPU) as one emulated device over the shared [`crate::vgic`] model.

use super::{AccessCtx, Effect, MmioDevice};
use crate::vgic::dist::VGic;
use alloc::sync::Arc;
use spin::Mutex;

/// The guest's redistributor frames.
pub struct Gicr {
    vgic: Arc<Mutex<VGic>>,
}

impl Gicr {
    /// The redistributors of `vgic`.
    pub fn new(vgic: Arc<Mutex<VGic>>) -> Self {
        Gicr { vgic }
    }
}

impl MmioDevice for Gicr {
    fn name(&self) -> &'static str {
        "GIC redistributors"
    }
    fn read(&self, ctx: &AccessCtx<'_>, offset: u64, width: usize) -> Option<u64> {
        let vgic = self.vgic.lock();
        let (vcpu, off) = vgic.redist_frame(offset)?;
        Some(vgic.redist_read(&ctx.gic_regs(), vcpu, off, width))
    }
    fn write(&self, ctx: &AccessCtx<'_>, offset: u64, width: usize, value: u64) -> Option<Effect> {
        let mut vgic = self.vgic.lock();
        let (vcpu, off) = vgic.redist_frame(offset)?;
        vgic.redist_write(&ctx.gic_regs(), vcpu, off, width, value);
        Some(Effect::None)
    }
}
