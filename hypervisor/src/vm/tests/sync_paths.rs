//! The backend's sync on one SMMU (its inline path: the queued commands
//! issued with one call, nothing retired) against its general path (the
//! loop over several SMMU instances, `sync_issue`), on the same random
//! MAP / UNMAP / sync sequences with failing issues: the same results,
//! the same commands on instance 0, the same table memory afterwards; with
//! and without range invalidation (the one instance's flag is held beside
//! its list, the general path's in a list of flags). The one SMMU's syncs
//! go through the queue the backend keeps ([`SyncQueue`]), the general
//! path's through the port.

use super::*;
use crate::viommu::backend::{BackendError, IommuBackend, MapAttrs};
use crate::vm::viommu::backend::SmmuBackend;
use core::sync::atomic::{AtomicUsize, Ordering};

const EP: u32 = 0x08; // 00:01.0

/// A recording SMMU side of `count` instances whose `issue` calls fail
/// from the `fail_at`-th on (0-based, counted over every instance), one in
/// `fail_every`.
struct Issues {
    base: &'static FakeDma,
    count: usize,
    ril: bool,
    calls: AtomicUsize,
    /// Syncs through the kept queue ([`SyncQueue`]), not the port.
    direct: AtomicUsize,
    fail: Mutex<(usize, usize)>,
    issued: Mutex<Vec<(usize, Vec<Cmd>)>>,
}

impl DmaControl for Issues {
    fn attach(&self, owner: &DmaOwner<'_>, table: Option<TableRef<'_>>) -> Result<(), DmaError> {
        self.base.attach(owner, table)
    }
    fn detach(&self, owner: &DmaOwner<'_>) -> Result<(), DmaError> {
        self.base.detach(owner)
    }
    fn endpoint_stream(&self, devices: &[String], ep: u32) -> Option<(usize, u32)> {
        self.base.endpoint_stream(devices, ep)
    }
    fn bind_stream(
        &self,
        smmu: usize,
        sid: u32,
        table: &PageTable<Stage2>,
        vmid: u16,
    ) -> Result<(), DmaError> {
        self.base.bind_stream(smmu, sid, table, vmid)
    }
    fn abort_stream(&self, smmu: usize, sid: u32) -> Result<(), DmaError> {
        self.base.abort_stream(smmu, sid)
    }
    fn issue(&self, smmu: usize, cmds: &[Cmd]) -> Result<(), DmaError> {
        self.issued.lock().push((smmu, cmds.to_vec()));
        // Instance 0 decides for every instance: a failure of the sync is
        // the same sync's failure on both sides.
        if smmu == 0 {
            self.calls.fetch_add(1, Ordering::Relaxed);
        }
        let n = self.calls.load(Ordering::Relaxed) - 1;
        let (at, every) = *self.fail.lock();
        if n >= at && (n - at).is_multiple_of(every) {
            return Err(DmaError::NoSuchSmmu(smmu));
        }
        Ok(())
    }
    fn queue(&'static self, smmu: usize) -> Option<&'static dyn SyncQueue> {
        (smmu == 0).then_some(self as &dyn SyncQueue)
    }
    fn has_ril(&self, smmu: usize) -> bool {
        self.ril && smmu < self.count
    }
    fn count(&self) -> usize {
        self.count
    }
    fn poll_events(&self) {}
}

/// Instance 0's queue as the one-SMMU backend keeps it: the same issue
/// on instance 0 (recorded, failing as the port's).
impl SyncQueue for Issues {
    fn sync_cmds(&self, cmds: &[Cmd]) -> Result<(), SyncFailed> {
        self.direct.fetch_add(1, Ordering::Relaxed);
        DmaControl::sync_cmds(self, 0, cmds)
    }
}

/// A backend on `count` SMMU instances, in a world of its own (so that
/// both sides' domains get the same VMID).
fn side(count: usize, ril: bool, fail: (usize, usize)) -> (&'static Issues, Guest, ById) {
    let w = World::new();
    let smmus: &'static Issues = Box::leak(Box::new(Issues {
        base: w.dma,
        count,
        ril,
        calls: AtomicUsize::new(0),
        direct: AtomicUsize::new(0),
        fail: Mutex::new(fail),
        issued: Mutex::new(Vec::new()),
    }));
    let g = w.guest_on(smmus, 0, config("a", &[0], true));
    let mut b = ById::new(SmmuBackend::with_table_limit(
        g.ram,
        g.dma.clone(),
        w.vmids.reserve(8),
        8,
        256,
    ));
    b.domain_create(1, false).unwrap();
    b.attach(EP, 1).unwrap();
    smmus.issued.lock().clear();
    (smmus, g, b)
}

#[test]
fn one_smmu_sync_matches_the_general_path() {
    const RW: MapAttrs = MapAttrs::new(true, true, false);
    let mut rng = crate::test_rng::Rng(0x9e37_79b9_7f4a_7c15u64);
    let mut rand = move |n: u64| rng.below(n);
    let mut outcomes = [0usize; 2];
    let mut ranges = 0;
    let mut direct = 0;
    for round in 0..12 {
        // Issues fail from a random sync on, every few syncs (or never).
        let fail = match round % 3 {
            0 => (usize::MAX, 1),
            _ => (rand(8) as usize, 1 + rand(3) as usize),
        };
        let ril = round % 2 == 1;
        let (one_smmus, g1, mut one) = side(1, ril, fail);
        let (two_smmus, g2, mut two) = side(2, ril, fail);
        for step in 0..200 {
            let iova = rand(64) << 21 | rand(4) << 12;
            let (r1, r2) = match rand(5) {
                0 | 1 => {
                    let len = if rand(3) == 0 { 2 << 20 } else { 0x1000 };
                    let iova = iova & !(len - 1);
                    let off = rand(RAM_SIZE / len) * len;
                    let pa1 = g1.ram.to_pa(RAM_BASE + off).unwrap();
                    let pa2 = g2.ram.to_pa(RAM_BASE + off).unwrap();
                    (
                        one.map(1, iova, pa1, len, RW),
                        two.map(1, iova, pa2, len, RW),
                    )
                }
                2 | 3 => {
                    let len = if rand(2) == 0 { 2 << 20 } else { 0x1000 };
                    let iova = iova & !(len - 1);
                    (one.unmap(1, iova, len), two.unmap(1, iova, len))
                }
                _ => (one.sync(), two.sync()),
            };
            let at = format!("round {round} step {step}");
            assert_eq!(r1, r2, "{at}: result");
            if r1 == Err(BackendError::Hardware) {
                outcomes[1] += 1;
            } else if r1.is_ok() {
                outcomes[0] += 1;
            }
            // Instance 0 was asked the same; instance 1 the same again.
            let i1 = core::mem::take(&mut *one_smmus.issued.lock());
            let i2 = core::mem::take(&mut *two_smmus.issued.lock());
            let on = |v: &[(usize, Vec<Cmd>)], inst: usize| -> Vec<Vec<Cmd>> {
                v.iter()
                    .filter(|(i, _)| *i == inst)
                    .map(|(_, c)| c.clone())
                    .collect()
            };
            assert_eq!(on(&i1, 0), on(&i2, 0), "{at}: commands issued");
            ranges += on(&i1, 0)
                .iter()
                .flatten()
                .filter(|c| c.range().tg != 0)
                .count();
            assert_eq!(on(&i2, 0), on(&i2, 1), "{at}: the second instance");
            let (t1, t2) = (one.tables(), two.tables());
            assert_eq!(
                (t1.held(), t1.linked(), t1.retired(), t1.pooled()),
                (t2.held(), t2.linked(), t2.retired(), t2.pooled()),
                "{at}: table memory"
            );
        }
        direct += one_smmus.direct.load(Ordering::Relaxed);
        assert_eq!(two_smmus.direct.load(Ordering::Relaxed), 0, "two: the port");
    }
    assert!(outcomes[0] > 500 && outcomes[1] > 5, "{outcomes:?}");
    assert!(
        direct > 0,
        "the one SMMU's syncs went through its kept queue"
    );
    assert!(ranges > 0, "range commands met");
}

/// UNMAPs that each empty a table (one page per 2 MiB region), queued
/// without a sync, so that the one SMMU's list meets every length against
/// its capacity (1, 3, 5, ...: a `TLBI_S2_IPA` and, from the second, the
/// retire's `TLBI_S12_VMALL`): the one-page plan written into a spare slot
/// only with a second one left for the retire's command (else the
/// `debug_assert` at the retire's push fires), and the same results,
/// commands and table memory as the several-SMMU path.
#[test]
fn retiring_unmaps_at_every_list_length_match_the_general_path() {
    const RW: MapAttrs = MapAttrs::new(true, true, false);
    for n in 1..24u64 {
        let (one_smmus, g1, mut one) = side(1, false, (usize::MAX, 1));
        let (two_smmus, g2, mut two) = side(2, false, (usize::MAX, 1));
        for i in 0..n {
            let iova = i << 21 | (i % 4) << 12;
            let pa1 = g1.ram.to_pa(RAM_BASE + (i << 12)).unwrap();
            let pa2 = g2.ram.to_pa(RAM_BASE + (i << 12)).unwrap();
            assert_eq!(one.map(1, iova, pa1, 0x1000, RW), Ok(()));
            assert_eq!(two.map(1, iova, pa2, 0x1000, RW), Ok(()));
        }
        assert_eq!((one.sync(), two.sync()), (Ok(()), Ok(())));
        one_smmus.issued.lock().clear();
        two_smmus.issued.lock().clear();
        for i in 0..n {
            let iova = i << 21 | (i % 4) << 12;
            let (r1, r2) = (one.unmap(1, iova, 0x1000), two.unmap(1, iova, 0x1000));
            assert_eq!((r1, r2), (Ok(()), Ok(())), "{n} unmaps, the {i}th");
        }
        assert_eq!(one.tables().retired(), two.tables().retired());
        assert!(n < 3 || one.tables().retired() > 0, "tables retired");
        assert_eq!((one.sync(), two.sync()), (Ok(()), Ok(())));
        let i1 = core::mem::take(&mut *one_smmus.issued.lock());
        let i2 = core::mem::take(&mut *two_smmus.issued.lock());
        assert_eq!(i1.len(), 1, "one sync on the one SMMU");
        assert_eq!(i1[0].1, i2[0].1, "{n} unmaps: the commands");
        let (t1, t2) = (one.tables(), two.tables());
        assert_eq!(
            (t1.held(), t1.linked(), t1.retired(), t1.pooled()),
            (t2.held(), t2.linked(), t2.retired(), t2.pooled()),
            "{n} unmaps: table memory"
        );
    }
}
