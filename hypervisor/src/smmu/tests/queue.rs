//! Ring arithmetic, and the command queue through the driver: wrap-around
//! when more commands are submitted than the queue holds.

use alloc::vec::Vec;

use super::fake::{Consume, FakeSmmu, QEMU_S2};
use super::probe;
use crate::smmu::cmd::{CMD_DWORDS, Cmd, op};
use crate::smmu::dma::{CacheOps, CacheSync};
use crate::smmu::queue::{CommandQueue, DmaQueue, QueueMemory, Ring};
use crate::smmu::regs::{CMDQ_BASE, CMDQ_PROD, CR0, CR0_CMDQEN, Q_BASE_ADDR_MASK, SmmuRegs};
use alloc::format;

#[test]
fn ring_full_empty_and_wrap() {
    let r = Ring::new(2);
    assert_eq!((r.size(), r.mask()), (4, 7));
    assert!(r.is_empty(0, 0));
    assert!(r.is_empty(5, 5));
    assert!(r.is_full(4, 0)); // same position, wrap differs
    assert!(r.is_full(1, 5));
    assert_eq!(r.space(3, 0), 1);
    // cons at position 1 of an odd lap, prod wrapped to position 0 of the
    // next even lap: 3 entries in flight.
    assert_eq!(r.used(0, 5), 3);
    assert_eq!(r.space(0, 5), 1);
    assert_eq!(r.add(7, 1), 0);
    assert_eq!(r.add(6, 3), 1);
    assert_eq!(r.index(6), 2);
    // Garbage above the wrap bit is ignored; inconsistent indices give no
    // space rather than a huge count.
    assert_eq!(r.used(0x8000_0003, 0x7f00_0001), 2);
    assert_eq!(r.space(6, 0), 0);
    // consumed: prod 6, entry 5 is done once cons reaches 6.
    assert!(!r.consumed(6, 5, 5));
    assert!(r.consumed(6, 6, 5));
    assert!(r.consumed(1, 0, 7)); // across the wrap
    assert!(!r.consumed(1, 7, 7));
    assert_eq!(Ring::new(40).log2(), 20);
}

/// A queue memory in a plain vector, for queue logic without the fake.
struct VecQueue(Vec<[u64; 2]>);

impl QueueMemory for VecQueue {
    fn read_entry(&self, index: u32, out: &mut [u64]) {
        out.copy_from_slice(&self.0[index as usize % self.0.len()]);
    }

    fn write_entry(&mut self, index: u32, words: &[u64]) {
        let n = self.0.len();
        self.0[index as usize % n].copy_from_slice(words);
    }
}

#[test]
fn submit_over_plain_memory() {
    // The fake as registers only: commands go to a VecQueue the fake does
    // not read, so nothing is consumed and the queue fills up.
    let fake = FakeSmmu::new(QEMU_S2);
    fake.state().consume = Consume::Never;
    let mut regs = fake.clone();
    let mut q = CommandQueue::new(VecQueue(alloc::vec![[0; 2]; 4]), 2);
    q.submit(&mut regs, &[Cmd::tlbi_nsnh_all(); 3], 10)
        .expect("fits");
    assert_eq!(q.prod(), 3);
    assert_eq!(q.memory().0[2], Cmd::tlbi_nsnh_all().0);
    assert_eq!(
        q.submit(&mut regs, &[Cmd::cfgi_all(); 2], 10),
        Err(crate::smmu::SmmuError::QueueFullTimeout)
    );
    // The first fitted before the wait.
    assert_eq!(q.prod(), 4);
    assert_eq!(fake.state().cmdq_prod, 4);
}

fn small_cmdq() -> FakeSmmu {
    let mut idr = QEMU_S2;
    idr[1] = (idr[1] & !(0x1f << 21)) | 2 << 21; // CMDQS = 2: 4 commands
    FakeSmmu::new(idr)
}

#[test]
fn more_commands_than_the_queue_holds() {
    let fake = small_cmdq();
    let mut smmu = probe(&fake);
    fake.state().consume = Consume::PerConsRead(1);
    fake.state().consumed.clear();
    let cmds: Vec<Cmd> = (0..11).map(Cmd::tlbi_s12_vmall).collect();
    smmu.issue(&cmds).expect("issue");
    let s = fake.state();
    let mut want = cmds.clone();
    want.push(Cmd::sync());
    assert_eq!(s.cmds(), want);
    // PROD was published in several steps, never more than 4 ahead.
    let prods: Vec<u64> = s
        .writes
        .iter()
        .filter(|w| w.0 == CMDQ_PROD)
        .map(|w| w.1)
        .collect();
    assert!(prods.len() > 3, "{prods:?}");
    // Probe used 3 slots (2 commands + sync), then 12 more: 15 entries,
    // almost two laps (the wrap bit is set again after 8).
    assert_eq!(s.cmdq_prod, 15 & 7);
    assert_eq!(s.cmdq_cons & 7, 15 & 7);
}

#[test]
fn fast_smmu_consumes_on_prod() {
    let fake = small_cmdq();
    let mut smmu = probe(&fake);
    fake.state().consumed.clear();
    let cmds = [Cmd::tlbi_s12_vmall(1); 9];
    smmu.issue(&cmds).expect("issue");
    let s = fake.state();
    assert_eq!(s.consumed.len(), 10);
    assert_eq!(s.consumed[9].cmd.opcode(), op::CMD_SYNC);
}

#[test]
fn commands_and_their_sync_are_published_with_one_prod_write() {
    let fake = small_cmdq();
    let mut smmu = probe(&fake);
    fake.state().consumed.clear();
    fake.state().writes.clear();
    let cmds = [Cmd::tlbi_s12_vmall(1), Cmd::tlbi_s12_vmall(2)];
    smmu.issue(&cmds).expect("issue");
    let s = fake.state();
    let prods = s.writes.iter().filter(|w| w.0 == CMDQ_PROD).count();
    assert_eq!(prods, 1);
    assert_eq!(s.cmds(), [cmds[0], cmds[1], Cmd::sync()]);
}

#[test]
fn a_sync_that_fits_is_one_prod_write_across_the_wrap() {
    // 4-entry queue: 3 commands and their sync fill it exactly, from any
    // position (the entries wrap past the ring's end); 4 commands do not
    // fit and go out in parts, in order.
    let fake = small_cmdq();
    let mut smmu = probe(&fake);
    for round in 0..6u16 {
        fake.state().consumed.clear();
        fake.state().writes.clear();
        let cmds = [
            Cmd::tlbi_s12_vmall(round),
            Cmd::tlbi_s2_ipa(round, 0x5000, true),
            Cmd::tlbi_s12_vmall(round + 1),
        ];
        smmu.issue(&cmds[..1 + usize::from(round % 3)])
            .expect("issue");
        let s = fake.state();
        let prods = s.writes.iter().filter(|w| w.0 == CMDQ_PROD).count();
        assert_eq!(prods, 1, "round {round}");
        let mut want = cmds[..1 + usize::from(round % 3)].to_vec();
        want.push(Cmd::sync());
        assert_eq!(s.cmds(), want, "round {round}");
        assert_eq!(s.cmdq_cons, s.cmdq_prod, "round {round}: all consumed");
    }
    fake.state().consumed.clear();
    fake.state().writes.clear();
    let cmds: Vec<Cmd> = (0..4).map(Cmd::tlbi_s12_vmall).collect();
    smmu.issue(&cmds).expect("issue");
    let s = fake.state();
    assert!(s.writes.iter().filter(|w| w.0 == CMDQ_PROD).count() > 1);
    let mut want = cmds.clone();
    want.push(Cmd::sync());
    assert_eq!(s.cmds(), want);
}

#[test]
fn an_entry_written_at_once_is_the_words_written_one_by_one() {
    // `DmaBlock::write_words` (one bounds check per entry) against
    // `write_u64` per word, on two blocks of the same memory: random runs
    // of words at every aligned offset that fits, then every word read.
    use crate::smmu::dma::DmaBlock;
    let mut mem = FakeSmmu::new(QEMU_S2);
    let len = 256;
    let one = DmaBlock::alloc(&mut mem, len, 64).expect("block");
    let each = DmaBlock::alloc(&mut mem, len, 64).expect("block");
    let mut rng = crate::test_rng::Rng(0xd0a_b10c);
    for _ in 0..2000 {
        let n = 1 + rng.index(4);
        let off = 8 * rng.index(len / 8 - n + 1);
        let words: Vec<u64> = (0..n).map(|_| rng.next()).collect();
        one.write_words(off, &words);
        for (i, w) in words.iter().enumerate() {
            each.write_u64(off + 8 * i, *w);
        }
    }
    for off in (0..len).step_by(8) {
        assert_eq!(one.read_u64(off), each.read_u64(off), "offset {off}");
    }
    one.write_words(len - 8, &[]);
    assert_eq!(one.read_u64(len - 8), each.read_u64(len - 8));
}

#[test]
fn a_command_written_whole_is_the_entry_written_word_by_word() {
    use crate::smmu::dma::{CacheSync, NoCacheOps};
    use crate::smmu::queue::DmaQueue;
    // Two command queues of 8 entries in the fake's DMA memory: one
    // written by `write_cmd`, one by `write_entry`, at indices wrapping
    // several times (wrap bit and garbage above it included).
    let mut mem = FakeSmmu::new(QEMU_S2);
    let sync = || CacheSync::new(NoCacheOps, true);
    let mut a = DmaQueue::alloc(&mut mem, 3, 2, sync()).unwrap();
    let mut b = DmaQueue::alloc(&mut mem, 3, 2, sync()).unwrap();
    for i in 0..40u32 {
        let index = i.wrapping_mul(0x9e37_79b9) ^ (i << 3);
        let cmd = [u64::from(i) * 0x0101_0101_0101_0101, !u64::from(i)];
        a.write_cmd(index, &cmd);
        b.write_entry(index, &cmd);
        for e in 0..8 {
            let (mut x, mut y) = ([0; 2], [0; 2]);
            a.read_entry(e, &mut x);
            b.read_entry(e, &mut y);
            assert_eq!(x, y, "entry {e} after write {i} at {index:#x}");
        }
    }
    // An event-sized queue (4 words an entry) takes the general path.
    let mut e = DmaQueue::alloc(&mut mem, 2, 4, sync()).unwrap();
    e.write_cmd(5, &[7, 9]);
    let mut out = [1; 4];
    e.read_entry(1, &mut out);
    assert_eq!(out, [7, 9, 0, 0]);
}

#[test]
fn command_runs_match_slot_by_slot_writes() {
    use crate::smmu::dma::{CacheSync, NoCacheOps};
    use crate::smmu::queue::DmaQueue;
    // Two command queues of 8 entries: one written by `write_cmds` (one
    // run of 16-byte stores when the commands and the last one fit before
    // the block's end, else slot by slot), one entry by entry. Random
    // indices (wrap bit and garbage above it), lengths from none to more
    // than the queue holds (the run reaching the end, wrapping, lapping).
    let mut mem = FakeSmmu::new(QEMU_S2);
    let sync = || CacheSync::new(NoCacheOps, true);
    let mut a = DmaQueue::alloc(&mut mem, 3, 2, sync()).unwrap();
    let mut b = DmaQueue::alloc(&mut mem, 3, 2, sync()).unwrap();
    assert!(a.has_slots(), "the run path is the one under test");
    let mut rng = crate::test_rng::Rng(0x5107_5eed);
    let mut lengths = [0usize; 20];
    for i in 0..3000u32 {
        let index = (rng.next() as u32) & if i % 2 == 0 { 0xf } else { !0 };
        let n = rng.index(lengths.len());
        lengths[n] += 1;
        let cmds: Vec<Cmd> = (0..n).map(|_| Cmd([rng.next(), rng.next()])).collect();
        let last = Cmd([rng.next(), rng.next()]);
        a.write_cmds(index, &cmds, last);
        for (k, cmd) in cmds.iter().chain([&last]).enumerate() {
            b.write_entry(index.wrapping_add(k as u32), &cmd.0);
        }
        for e in 0..8 {
            let (mut x, mut y) = ([0; 2], [0; 2]);
            a.read_entry(e, &mut x);
            b.read_entry(e, &mut y);
            assert_eq!(x, y, "entry {e} after {n} commands at {index:#x}");
        }
    }
    assert!(lengths.iter().all(|&c| c > 0), "every length met");
}

/// A command queue's DMA memory with only the general entry writes: the
/// default `write_cmd` and `write_cmds` of [`QueueMemory`] over
/// `write_entry` (the bounds-checked word writes), never the slots.
struct General<C>(DmaQueue<C>);

impl<C: CacheOps> QueueMemory for General<C> {
    fn read_entry(&self, index: u32, out: &mut [u64]) {
        self.0.read_entry(index, out);
    }
    fn write_entry(&mut self, index: u32, words: &[u64]) {
        self.0.write_entry(index, words);
    }
    fn to_device(&self, index: u32, count: u32) {
        self.0.to_device(index, count);
    }
    fn to_cpu(&self, index: u32, count: u32) {
        self.0.to_cpu(index, count);
    }
}

/// A command queue's DMA memory whose direct write declines
/// ([`QueueMemory::write_cmds_direct`] false, as a queue memory without
/// slots answers): every sync then takes `sync_rest`'s written-in-parts
/// path, which must come to the same.
struct NoDirect<C>(General<C>);

impl<C: CacheOps> QueueMemory for NoDirect<C> {
    fn read_entry(&self, index: u32, out: &mut [u64]) {
        self.0.read_entry(index, out);
    }
    fn write_entry(&mut self, index: u32, words: &[u64]) {
        self.0.write_entry(index, words);
    }
    fn write_cmds_direct(&mut self, _index: u32, _cmds: &[Cmd], _last: Cmd) -> bool {
        false
    }
    fn to_device(&self, index: u32, count: u32) {
        self.0.to_device(index, count);
    }
    fn to_cpu(&self, index: u32, count: u32) {
        self.0.to_cpu(index, count);
    }
}

/// One side of the differential test: a fake SMMU whose command queue
/// (`1 << log2` entries) is enabled over DMA memory from the fake.
fn cmdq_side(log2: u32, coherent: bool) -> (FakeSmmu, DmaQueue<FakeSmmu>) {
    let fake = FakeSmmu::new(QEMU_S2);
    let mut mem = fake.clone();
    let sync = CacheSync::new(fake.clone(), coherent);
    let q = DmaQueue::alloc(&mut mem, log2, CMD_DWORDS, sync).expect("queue memory");
    let mut regs = fake.clone();
    regs.write64(CMDQ_BASE, q.base_reg());
    regs.write32(CR0, CR0_CMDQEN);
    (fake, q)
}

/// The command queue's slot writes ([`crate::smmu::dma::Slots16`], the
/// block checked once at alloc, in `sync_start`) against the general
/// entry writes (`sync_start` too) and against a memory that declines the
/// direct write (every sync finished by `sync_rest`), on the same random
/// batches: small and large (wrapping, more than the queue
/// holds), with illegal commands, injected errors, a slow SMMU and a hung
/// one (timeouts). Every step: the same result, indices, commands the
/// SMMU consumed and stopped on, register writes and cache cleans.
#[test]
fn command_slots_match_general_entry_writes() {
    let mut rng = crate::test_rng::Rng(0x2545_f491_4f6c_dd1du64);
    let mut rand = move |n: u64| rng.below(n);
    let pool = [
        Cmd::tlbi_s2_ipa(3, 0x1000, true),
        Cmd::tlbi_s12_vmall(7),
        Cmd::cfgi_all(),
        Cmd::tlbi_nsnh_all(),
        Cmd([0xff, 0x1234]), // illegal opcode: the SMMU stops on it
    ];
    // Outcomes met: Ok, a command error, a sync timeout, a full queue.
    let mut met = [false; 4];
    for round in 0..24 {
        let log2 = 1 + (round % 4) as u32;
        let coherent = round % 2 == 0;
        let (fast_fake, fast_mem) = cmdq_side(log2, coherent);
        let (gen_fake, gen_mem) = cmdq_side(log2, coherent);
        let (rest_fake, rest_mem) = cmdq_side(log2, coherent);
        assert!(fast_mem.has_slots(), "the slot path is the one under test");
        let mut fast = CommandQueue::new(fast_mem, log2);
        let mut general = CommandQueue::new(General(gen_mem), log2);
        let mut rest = CommandQueue::new(NoDirect(General(rest_mem)), log2);
        let (mut fast_regs, mut gen_regs) = (fast_fake.clone(), gen_fake.clone());
        let mut rest_regs = rest_fake.clone();
        for step in 0..60 {
            let consume = match rand(8) {
                0 => Consume::Never,
                1 | 2 => Consume::PerConsRead(1 + rand(3) as u32),
                _ => Consume::OnProd,
            };
            let inject = (rand(6) == 0).then(|| (rand(6) as usize, 1 + rand(2) as u8));
            for fake in [&fast_fake, &gen_fake, &rest_fake] {
                let mut s = fake.state();
                s.consume = consume;
                s.inject = inject.map(|(n, code)| (s.consumed.len() + n, code));
            }
            let len = rand((2 << log2) + 2) as usize;
            let cmds: Vec<Cmd> = (0..len)
                .map(|_| {
                    let c = pool[rand(pool.len() as u64) as usize];
                    if c.opcode() == 0xff && rand(4) != 0 {
                        pool[0]
                    } else {
                        c
                    }
                })
                .collect();
            let limit = 1 + rand(4) as u32;
            let a = fast.sync_after(&mut fast_regs, &cmds, limit);
            let b = general.sync_after(&mut gen_regs, &cmds, limit);
            let c = rest.sync_after(&mut rest_regs, &cmds, limit);
            let at = format!("round {round} step {step} ({len} commands)");
            assert_eq!(a, b, "{at}: result");
            assert_eq!(a, c, "{at}: result, finished by sync_rest");
            assert_eq!((fast.prod(), fast.cons()), (rest.prod(), rest.cons()));
            let (f, r) = (fast_fake.state(), rest_fake.state());
            assert_eq!(f.cmds(), r.cmds(), "{at}: commands consumed (rest)");
            assert_eq!(f.faulted, r.faulted, "{at}: commands stopped on (rest)");
            assert_eq!(f.writes, r.writes, "{at}: register writes (rest)");
            drop((f, r));
            met[match a {
                Ok(()) => 0,
                Err(crate::smmu::SmmuError::CommandError { .. }) => 1,
                Err(crate::smmu::SmmuError::SyncTimeout) => 2,
                Err(_) => 3,
            }] = true;
            assert_eq!(
                (fast.prod(), fast.cons()),
                (general.prod(), general.cons()),
                "{at}"
            );
            let (f, g) = (fast_fake.state(), gen_fake.state());
            assert_eq!(f.cmds(), g.cmds(), "{at}: commands consumed");
            assert_eq!(f.faulted, g.faulted, "{at}: commands stopped on");
            assert_eq!(f.writes, g.writes, "{at}: register writes");
            assert_eq!(
                (f.cmdq_prod, f.cmdq_cons),
                (g.cmdq_prod, g.cmdq_cons),
                "{at}"
            );
            let offsets = |v: &[(u64, usize)], base: u64| -> Vec<(u64, usize)> {
                v.iter().map(|&(p, l)| (p - base, l)).collect()
            };
            let (fb, gb) = (
                f.cmdq_base & Q_BASE_ADDR_MASK,
                g.cmdq_base & Q_BASE_ADDR_MASK,
            );
            assert_eq!(
                offsets(&f.cleans, fb),
                offsets(&g.cleans, gb),
                "{at}: cache cleans"
            );
        }
        assert!(!fast_fake.state().consumed.is_empty());
    }
    assert_eq!(
        met, [true; 4],
        "Ok, command error, sync timeout, queue full"
    );
}
