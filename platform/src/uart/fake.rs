//! A register fake for the drivers' host tests: a device model behind
//! [`Regs`], and a log of every access (offset, width, direction, value).

use super::Regs;
use std::cell::{Ref, RefCell, RefMut};
use std::vec::Vec;

/// A UART's register behaviour. Accesses a model does not expect panic,
/// so a driver touching a register its device lacks fails its test.
pub(crate) trait Model {
    /// An 8-bit read.
    fn read8(&mut self, offset: usize) -> u8 {
        panic!("unexpected 8-bit read of {offset:#x}")
    }
    /// An 8-bit write.
    fn write8(&mut self, offset: usize, value: u8) {
        panic!("unexpected 8-bit write of {value:#x} to {offset:#x}")
    }
    /// A 32-bit read.
    fn read32(&mut self, offset: usize) -> u32 {
        panic!("unexpected 32-bit read of {offset:#x}")
    }
    /// A 32-bit write.
    fn write32(&mut self, offset: usize, value: u32) {
        panic!("unexpected 32-bit write of {value:#x} to {offset:#x}")
    }
    /// Whether the device's interrupt line is asserted.
    fn irq(&self) -> bool;
}

/// One register access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Access {
    pub offset: usize,
    /// 1 or 4 bytes.
    pub width: u8,
    pub write: bool,
    pub value: u32,
}

/// A model and the log of accesses to it.
pub(crate) struct Fake<M> {
    model: RefCell<M>,
    log: RefCell<Vec<Access>>,
}

impl<M: Model> Fake<M> {
    pub fn new(model: M) -> Self {
        Fake {
            model: RefCell::new(model),
            log: RefCell::new(Vec::new()),
        }
    }

    pub fn model(&self) -> Ref<'_, M> {
        self.model.borrow()
    }

    pub fn model_mut(&self) -> RefMut<'_, M> {
        self.model.borrow_mut()
    }

    pub fn log(&self) -> Vec<Access> {
        self.log.borrow().clone()
    }

    pub fn count_reads(&self, offset: usize) -> usize {
        self.log
            .borrow()
            .iter()
            .filter(|a| a.offset == offset && !a.write)
            .count()
    }

    pub fn count_accesses(&self, offset: usize) -> usize {
        self.log
            .borrow()
            .iter()
            .filter(|a| a.offset == offset)
            .count()
    }

    pub fn writes(&self) -> Vec<Access> {
        self.log
            .borrow()
            .iter()
            .filter(|a| a.write)
            .copied()
            .collect()
    }

    pub fn only_32bit(&self) -> bool {
        self.log.borrow().iter().all(|a| a.width == 4)
    }

    fn record(&self, offset: usize, width: u8, write: bool, value: u32) {
        self.log.borrow_mut().push(Access {
            offset,
            width,
            write,
            value,
        });
    }
}

impl<M: Model> Regs for Fake<M> {
    fn read8(&self, offset: usize) -> u8 {
        let v = self.model.borrow_mut().read8(offset);
        self.record(offset, 1, false, v.into());
        v
    }
    fn write8(&self, offset: usize, value: u8) {
        self.record(offset, 1, true, value.into());
        self.model.borrow_mut().write8(offset, value);
    }
    fn read32(&self, offset: usize) -> u32 {
        let v = self.model.borrow_mut().read32(offset);
        self.record(offset, 4, false, v);
        v
    }
    fn write32(&self, offset: usize, value: u32) {
        self.record(offset, 4, true, value);
        self.model.borrow_mut().write32(offset, value);
    }
}
