//! The virtual GIC distributor as an emulated device: the register model
//! lives in [`crate::vgic`], shared with the redistributors.

use super::{AccessCtx, Effect, MmioDevice};
use crate::vgic::dist::VGic;
use alloc::sync::Arc;
use spin::Mutex;

/// The guest's GICD frame.
pub struct Gicd {
    vgic: Arc<Mutex<VGic>>,
}

impl Gicd {
    /// The distributor of `vgic`.
    pub fn new(vgic: Arc<Mutex<VGic>>) -> Self {
        Gicd { vgic }
    }
}

impl MmioDevice for Gicd {
    fn name(&self) -> &'static str {
        "GIC distributor"
    }
    fn read(&self, ctx: &AccessCtx<'_>, offset: u64, width: usize) -> Option<u64> {
        Some(self.vgic.lock().dist_read(&ctx.gic_regs(), offset, width))
    }
    fn write(&self, ctx: &AccessCtx<'_>, offset: u64, width: usize, value: u64) -> Option<Effect> {
        self.vgic
            .lock()
            .dist_write(&ctx.gic_regs(), offset, width, value);
        Some(Effect::None)
    }
}
