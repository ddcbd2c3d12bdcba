//! [`MirrorTable`]: a stage-2 table of its own (its own root, so its own
//! VMID in the TLBs) that either translates nothing or translates exactly
//! as another table does, switched by rewriting only its root.
//!
//! A guest's virtio-iommu binds every endpoint no domain holds to its
//! guest's mirror table: with the configuration's `bypass` off the table is
//! empty, so a DMA by such an endpoint is a translation fault that the SMMU
//! reports (and the guest hears of as a DOMAIN fault) instead of an abort
//! nobody sees; with `bypass` on the root repeats the guest's stage 2. A
//! `bypass` write therefore costs one root's descriptors and one TLB
//! invalidation by VMID, however many streams the guest owns; no stream
//! table entry changes.

use super::pagetable::{MapError, PageTable, Stage2, TableMemory};

/// A stage-2 table that is empty or mirrors another table's root.
pub struct MirrorTable {
    table: PageTable<Stage2>,
    mirroring: bool,
}

impl MirrorTable {
    /// An empty table with `like`'s geometry (input size, start level),
    /// its root taken from `mem`.
    pub fn new(mem: &mut impl TableMemory, like: &PageTable<Stage2>) -> Result<Self, MapError> {
        Ok(MirrorTable {
            table: PageTable::new(mem, like.ia_bits(), like.start_level())?,
            mirroring: false,
        })
    }

    /// The table (what a stream table entry points at).
    pub fn table(&self) -> &PageTable<Stage2> {
        &self.table
    }

    /// Whether the table translates as its source does.
    pub fn is_mirroring(&self) -> bool {
        self.mirroring
    }

    /// Makes the table translate as `source` (of the same geometry) does,
    /// through `source`'s own tables below the root, which must outlive
    /// the mirroring. The caller invalidates the table's VMID afterwards.
    pub fn mirror(
        &mut self,
        mem: &impl TableMemory,
        source: &PageTable<Stage2>,
        source_mem: &impl TableMemory,
    ) -> Result<(), MapError> {
        self.table.copy_root_from(mem, source, source_mem)?;
        self.mirroring = true;
        Ok(())
    }

    /// Makes the table translate nothing. The caller invalidates the
    /// table's VMID afterwards (until then the TLBs may still translate).
    pub fn clear(&mut self, mem: &impl TableMemory) {
        self.table.clear_root(mem);
        self.mirroring = false;
    }

    /// Frees the table's root (never what a mirrored root pointed at).
    /// No stream may use it any more and its VMID must be invalidated.
    pub fn destroy(mut self, mem: &mut impl TableMemory) {
        self.clear(mem);
        self.table.destroy(mem);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::heap_tables::HeapTables;
    use crate::mm::pagetable::Attrs;

    const RAM: u64 = 0x4000_0000;

    fn source() -> PageTable<Stage2> {
        let mut t = PageTable::<Stage2>::new(&mut HeapTables, 40, 1).unwrap();
        t.map(&mut HeapTables, RAM, 0x8000_0000, 0x20_0000, Attrs::RWX)
            .unwrap();
        t.map(
            &mut HeapTables,
            0x900_0000,
            0x900_0000,
            0x1000,
            Attrs::DEVICE,
        )
        .unwrap();
        t
    }

    #[test]
    fn empty_until_mirrored_and_empty_again_when_cleared() {
        let src = source();
        let mut m = MirrorTable::new(&mut HeapTables, &src).unwrap();
        assert_eq!(m.table().ia_bits(), 40);
        assert_eq!(m.table().start_level(), 1);
        assert_ne!(m.table().root(), src.root());
        assert_eq!(m.table().translate(&HeapTables, RAM), None);

        m.mirror(&HeapTables, &src, &HeapTables).unwrap();
        assert!(m.is_mirroring());
        for ipa in [RAM, RAM + 0x1f_f000, 0x900_0000] {
            assert_eq!(
                m.table().translate(&HeapTables, ipa),
                src.translate(&HeapTables, ipa),
                "{ipa:#x}"
            );
        }
        assert_eq!(m.table().translate(&HeapTables, RAM + 0x20_0000), None);

        m.clear(&HeapTables);
        assert!(!m.is_mirroring());
        assert_eq!(m.table().translate(&HeapTables, RAM), None);
        // The source is untouched.
        assert!(src.translate(&HeapTables, RAM).is_some());
        m.destroy(&mut HeapTables);
        src.destroy(&mut HeapTables);
    }

    #[test]
    fn destroying_a_mirroring_table_leaves_the_source_whole() {
        let src = source();
        let mut m = MirrorTable::new(&mut HeapTables, &src).unwrap();
        m.mirror(&HeapTables, &src, &HeapTables).unwrap();
        m.destroy(&mut HeapTables);
        assert_eq!(
            src.translate(&HeapTables, RAM).map(|(pa, _)| pa),
            Some(0x8000_0000)
        );
        src.destroy(&mut HeapTables);
    }

    #[test]
    fn a_source_of_another_geometry_is_refused() {
        let src = source();
        let other = PageTable::<Stage2>::new(&mut HeapTables, 36, 1).unwrap();
        let mut m = MirrorTable::new(&mut HeapTables, &other).unwrap();
        assert_eq!(
            m.mirror(&HeapTables, &src, &HeapTables),
            Err(MapError::OutOfRange)
        );
        assert!(!m.is_mirroring());
        m.destroy(&mut HeapTables);
        other.destroy(&mut HeapTables);
        src.destroy(&mut HeapTables);
    }
}
