//! Interrupts the hypervisor itself handles (the SMMU's event and error
//! interrupts): a small table of INTID -> handler, consulted before guest
//! ownership when a physical interrupt arrives.
//!
//! [`HypIrqs`] is the table (tested on the host); [`register`] and
//! [`dispatch`] work on the hypervisor's one table.

use crate::gic::PhysGic;
use spin::Mutex;

/// A handler, called with the INTID at EL2 with interrupts masked.
pub type Handler = fn(u32);

/// Most interrupts the hypervisor handles itself.
pub const MAX_HYP_IRQS: usize = 16;

/// A table of the interrupts the hypervisor handles and their handlers.
pub struct HypIrqs {
    handlers: Mutex<heapless::Vec<(u32, Handler), MAX_HYP_IRQS>>,
}

impl Default for HypIrqs {
    fn default() -> Self {
        Self::new()
    }
}

impl HypIrqs {
    /// An empty table.
    pub const fn new() -> HypIrqs {
        HypIrqs {
            handlers: Mutex::new(heapless::Vec::new()),
        }
    }

    /// Registers `handler` for SPI `intid`, then sets its trigger mode,
    /// routes it to CPU `pcpu` and enables it on `gic`. Returns false (and
    /// touches nothing) when the table is full.
    pub fn register(
        &self,
        gic: &dyn PhysGic,
        intid: u32,
        edge: bool,
        pcpu: usize,
        handler: Handler,
    ) -> bool {
        if self.handlers.lock().push((intid, handler)).is_err() {
            return false;
        }
        gic.set_edge(intid, pcpu, edge);
        gic.route_spi(intid, pcpu);
        gic.set_enabled(intid, pcpu, true);
        true
    }

    /// Runs the handler of `intid`, if it has one; returns whether it had.
    pub fn dispatch(&self, intid: u32) -> bool {
        // The lock is not held while the handler runs.
        let handler = self
            .handlers
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
}

/// The hypervisor's table.
static HYP_IRQS: HypIrqs = HypIrqs::new();

/// Registers `handler` for SPI `intid` in the hypervisor's table and
/// programs it on `gic` ([`HypIrqs::register`]). Returns false when the
/// table is full.
pub fn register(gic: &dyn PhysGic, intid: u32, edge: bool, pcpu: usize, handler: Handler) -> bool {
    HYP_IRQS.register(gic, intid, edge, pcpu, handler)
}

/// Runs the handler of `intid`, if the hypervisor owns it.
pub fn dispatch(intid: u32) -> bool {
    HYP_IRQS.dispatch(intid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use core::cell::RefCell;

    use crate::gic::recorder::RecordingGic as Recorder;

    std::thread_local! {
        static CALLS: RefCell<Vec<(&'static str, u32)>> = const { RefCell::new(Vec::new()) };
    }

    fn on_event(intid: u32) {
        CALLS.with(|c| c.borrow_mut().push(("event", intid)));
    }

    fn on_error(intid: u32) {
        CALLS.with(|c| c.borrow_mut().push(("error", intid)));
    }

    #[test]
    fn register_programs_the_interrupt_and_dispatch_runs_its_handler() {
        let table = HypIrqs::new();
        let gic = Recorder::default();
        assert!(table.register(&gic, 40, true, 0, on_event));
        assert!(table.register(&gic, 41, false, 2, on_error));
        assert_eq!(
            gic.take(),
            [
                ("edge", 40, 0, true),
                ("route", 40, 0, true),
                ("enable", 40, 0, true),
                ("edge", 41, 2, false),
                ("route", 41, 2, true),
                ("enable", 41, 2, true),
            ]
        );
        assert!(table.dispatch(41));
        assert!(table.dispatch(40));
        assert!(!table.dispatch(42), "not the hypervisor's");
        CALLS.with(|c| assert_eq!(*c.borrow(), [("error", 41), ("event", 40)]));
    }

    #[test]
    fn a_full_table_refuses_and_leaves_the_gic_alone() {
        let table = HypIrqs::new();
        let gic = Recorder::default();
        for i in 0..MAX_HYP_IRQS as u32 {
            assert!(table.register(&gic, 32 + i, true, 0, on_event));
        }
        gic.take();
        assert!(!table.register(&gic, 100, true, 0, on_error));
        assert!(gic.take().is_empty());
        assert!(!table.dispatch(100));
        assert!(table.dispatch(32 + MAX_HYP_IRQS as u32 - 1));
    }
}
