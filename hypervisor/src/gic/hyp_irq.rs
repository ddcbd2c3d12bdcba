//! Interrupts the hypervisor itself handles (the SMMU's event and error
//! interrupts): a small table of INTID -> handler, consulted before guest
//! ownership when a physical interrupt arrives.

use super::phys::PhysGicDriver;
use crate::vgic::PhysGic;
use spin::Mutex;

/// A handler, called with the INTID at EL2 with interrupts masked.
pub type Handler = fn(u32);

static HANDLERS: Mutex<heapless::Vec<(u32, Handler), 16>> = Mutex::new(heapless::Vec::new());

/// Registers `handler` for SPI `intid`, routes it to CPU `pcpu` and enables
/// it. Returns false when the table is full.
pub fn register(
    gic: &'static PhysGicDriver,
    intid: u32,
    edge: bool,
    pcpu: usize,
    handler: Handler,
) -> bool {
    if HANDLERS.lock().push((intid, handler)).is_err() {
        return false;
    }
    let g = gic;
    g.set_edge(intid, pcpu, edge);
    g.route_spi(intid, pcpu);
    g.set_enabled(intid, pcpu, true);
    true
}

/// Runs the handler of `intid`, if the hypervisor owns it.
pub fn dispatch(intid: u32) -> bool {
    let handler = HANDLERS
        .lock()
        .iter()
        .find(|(i, _)| *i == intid)
        .map(|(_, h)| *h);
    match handler {
        Some(h) => {
            h(intid);
            true
        }
        None => false,
    }
}
