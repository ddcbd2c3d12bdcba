//! Command encodings against `CMDQ_*` of Linux's `arm-smmu-v3.h`, and the
//! splitting of invalidation ranges.

use alloc::format;
use alloc::vec::Vec;

use crate::smmu::SmmuError;
use crate::smmu::cmd::{Cmd, RangeTlbis, TlbiRange, op, plan_s2_invalidation, range_tlbis};

#[test]
fn opcodes_and_fields() {
    // CFGI_STE 0x3: SID[63:32], Leaf d1[0].
    assert_eq!(Cmd::cfgi_ste(0x1234, true).0, [0x03 | 0x1234 << 32, 1]);
    assert_eq!(
        Cmd::cfgi_ste(u32::MAX, false).0,
        [0x03 | 0xffff_ffff << 32, 0]
    );
    // CFGI_ALL 0x4 with Range 31 (d1[4:0]).
    assert_eq!(Cmd::cfgi_all().0, [0x04, 31]);
    // TLBI_S12_VMALL 0x28: VMID[47:32].
    assert_eq!(Cmd::tlbi_s12_vmall(0xbeef).0, [0x28 | 0xbeef << 32, 0]);
    // TLBI_S2_IPA 0x2a: VMID[47:32]; d1 Leaf[0], IPA[51:12].
    assert_eq!(
        Cmd::tlbi_s2_ipa(7, 0x1234_5000, true).0,
        [0x2a | 7 << 32, 0x1234_5000 | 1]
    );
    // Only IPA[51:12] is kept.
    assert_eq!(
        Cmd::tlbi_s2_ipa(7, u64::MAX, false).0[1],
        0x000f_ffff_ffff_f000
    );
    assert_eq!(Cmd::tlbi_nsnh_all().0, [0x30, 0]);
    assert_eq!(Cmd::tlbi_el2_all().0, [0x20, 0]);
    // CMD_SYNC 0x46 with CS[13:12] = 0 (none).
    assert_eq!(Cmd::sync().0, [0x46, 0]);
    assert_eq!(Cmd::sync().sync_cs(), 0);
}

#[test]
fn range_form_fields() {
    // NUM[16:12], SCALE[24:20]; d1 TTL[9:8], TG[11:10].
    let r = TlbiRange {
        num: 3,
        scale: 2,
        tg: 1,
        ttl: 2,
    };
    let c = Cmd::tlbi_s2_ipa_range(9, 0x4000_0000, true, r);
    assert_eq!(c.0[0], 0x2a | 3 << 12 | 2 << 20 | 9 << 32);
    assert_eq!(c.0[1], 0x4000_0000 | 1 | 2 << 8 | 1 << 10);
    assert_eq!(c.range(), r);
    assert_eq!(c.tlbi_pages(), 16);
    assert_eq!((c.vmid(), c.ipa(), c.leaf()), (9, 0x4000_0000, true));
    // Out-of-range field values do not spill into neighbours.
    let wild = TlbiRange {
        num: 0xff,
        scale: 0xff,
        tg: 0xff,
        ttl: 0xff,
    };
    let c = Cmd::tlbi_s2_ipa_range(0, 0, false, wild);
    assert_eq!(c.0[0], 0x2a | 0x1f << 12 | 0x1f << 20);
    assert_eq!(c.0[1], 3 << 8 | 3 << 10);
}

#[test]
fn display_names_commands() {
    assert_eq!(
        format!("{}", Cmd::cfgi_ste(8, true)),
        "CFGI_STE sid 0x8 leaf true"
    );
    assert_eq!(format!("{}", Cmd::sync()), "CMD_SYNC");
    assert_eq!(
        format!("{}", Cmd::tlbi_s2_ipa(1, 0x2000, true)),
        "TLBI_S2_IPA vmid 1 ipa 0x2000 pages 1 leaf true"
    );
    assert!(format!("{}", Cmd([0x7f, 0])).starts_with("opcode 0x7f"));
}

/// Checks that `cmds` cover pages `[first, first + count)` once each, in
/// order, with valid range encodings.
fn check_cover(cmds: &[Cmd], first: u64, count: u64) {
    let mut next = first;
    for c in cmds {
        assert_eq!(c.opcode(), op::TLBI_S2_IPA);
        assert_eq!(c.ipa() >> 12, next, "gap or overlap in {cmds:?}");
        let r = c.range();
        assert!(
            !(r.tg != 0 && r.num == 0 && r.scale == 0 && r.ttl == 0),
            "invalid range command {c:?}"
        );
        next += c.tlbi_pages();
    }
    assert_eq!(next, first + count, "not exactly the range");
}

/// The fewest commands of `(n + 1) << s` pages (n < 32, s < 32) summing
/// to each count up to `max`.
fn optimum(max: usize) -> Vec<u32> {
    let mut best = alloc::vec![u32::MAX; max + 1];
    best[0] = 0;
    for total in 1..=max {
        for s in 0..12 {
            for n in 1..=32usize {
                let t = n << s;
                if t <= total && best[total - t] != u32::MAX {
                    best[total] = best[total].min(best[total - t] + 1);
                }
            }
        }
    }
    best
}

#[test]
fn range_split_is_exact_and_minimal() {
    let best = optimum(2048);
    for count in 1..=2048u64 {
        for first in [0u64, 1, 3, 0x1_0001] {
            let cmds: Vec<Cmd> = range_tlbis(4, first, count, true).collect();
            check_cover(&cmds, first, count);
            assert_eq!(cmds.len() as u32, best[count as usize], "count {count}");
            assert!(cmds.iter().all(|c| c.vmid() == 4 && c.leaf()));
        }
    }
}

#[test]
fn range_split_examples() {
    // One page: the single-address form.
    let one: Vec<Cmd> = range_tlbis(1, 5, 1, true).collect();
    assert_eq!(one, [Cmd::tlbi_s2_ipa(1, 5 << 12, true)]);
    // 31 pages: NUM 30, SCALE 0.
    let c: Vec<Cmd> = range_tlbis(1, 0, 31, false).collect();
    assert_eq!(c.len(), 1);
    assert_eq!(
        (c[0].range().num, c[0].range().scale, c[0].range().tg),
        (30, 0, 1)
    );
    // 33 pages: 1 + 32.
    let c: Vec<Cmd> = range_tlbis(1, 0, 33, false).collect();
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].tlbi_pages(), 1);
    assert_eq!(c[1].range().scale, 5);
}

#[test]
fn huge_ranges_respect_the_scale_limit() {
    for count in [1u64 << 36, 1 << 40, (1 << 40) - 1, (1 << 40) + 12345] {
        let cmds: Vec<Cmd> = RangeTlbis::clone(&range_tlbis(2, 0, count, true)).collect();
        check_cover(&cmds, 0, count);
        assert!(cmds.len() <= 64, "{count}: {} commands", cmds.len());
    }
}

#[test]
fn range_count_is_the_number_of_commands() {
    // `count` and `size_hint` follow the split rule without building
    // commands; `fold` (not overridden) steps through `next`.
    let mut rng = crate::test_rng::Rng(0x5eed_c0de);
    let mut counts: Vec<u64> = (1..=4096).collect();
    counts.extend([
        1 << 31,
        1 << 32,
        (1 << 32) + 1,
        1 << 36,
        1 << 40,
        (1 << 40) - 1,
    ]);
    counts.extend((0..4096).map(|_| 1 + rng.next() % (1 << 40)));
    counts.extend((0..1024).map(|_| (1 + rng.next() % 64) << (rng.next() % 40)));
    for count in counts {
        let it = range_tlbis(7, 3, count, true);
        let stepped = it.clone().fold(0usize, |n, _| n + 1);
        assert_eq!(it.clone().count(), stepped, "count {count}");
        assert_eq!(it.size_hint(), (stepped, Some(stepped)), "count {count}");
    }
    assert_eq!(range_tlbis(7, 3, 0, true).count(), 0);
}

#[test]
fn the_inlined_one_page_plan_is_the_general_plan() {
    // The same inputs through `plan_s2_invalidation_into` (inlined case
    // first) and the general plan alone: the same result and the same
    // commands, with and without room, for ranges at page edges, across
    // them, empty, overflowing and past 2^52.
    use crate::smmu::cmd::{plan_s2_invalidation_general, plan_s2_invalidation_into};
    let mut rng = crate::test_rng::Rng(0x0e_9a9e);
    let edges = [
        0u64,
        1,
        0xfff,
        0x1000,
        0x1001,
        (1 << 52) - 0x1000,
        (1 << 52) - 1,
        1 << 52,
    ];
    for i in 0..40_000 {
        let ipa = match i % 4 {
            0 => rng.pick(&edges),
            1 => u64::MAX - rng.below(0x2000),
            _ => rng.next() >> rng.below(64),
        }
        .wrapping_add(rng.below(3).wrapping_sub(1));
        let len = match i % 3 {
            0 => rng.below(0x2002),
            1 => rng.pick(&[0, 1, 0x1000, 0x1001, 0x20_0000, u64::MAX]),
            _ => rng.next() >> rng.below(64),
        };
        let (leaf, ril) = (rng.chance(50), rng.chance(50));
        let limit = rng.pick(&[0, 1, 64]);
        let room = rng.chance(50);
        let start: Vec<Cmd> = (0..rng.below(3))
            .map(|v| Cmd::tlbi_s12_vmall(v as u16))
            .collect();
        let fresh = |room: bool| {
            let mut v = Vec::with_capacity(if room { start.len() + 4 } else { start.len() });
            v.extend(start.iter().copied());
            v
        };
        let (mut a, mut b) = (fresh(room), fresh(room));
        let ra = plan_s2_invalidation_into(&mut a, 9, ipa, len.min(1 << 40), leaf, ril, limit);
        let rb = plan_s2_invalidation_general(&mut b, 9, ipa, len.min(1 << 40), leaf, ril, limit);
        assert_eq!(ra, rb, "{ipa:#x} + {len:#x}");
        assert_eq!(a, b, "{ipa:#x} + {len:#x}");
    }
}

#[test]
fn plan_with_range_invalidation() {
    let cmds = plan_s2_invalidation(3, 0x10_0000, 0x8_0000, true, true, 64).expect("plan");
    assert_eq!(cmds.len(), 1);
    check_cover(&cmds, 0x100, 0x80);
    // Unaligned bytes widen to whole pages: [0x1800, 0x2800) is pages 1-2.
    let cmds = plan_s2_invalidation(3, 0x1800, 0x1000, true, true, 64).expect("plan");
    check_cover(&cmds, 1, 2);
}

#[test]
fn plan_without_range_invalidation() {
    let cmds = plan_s2_invalidation(3, 0x5000, 0x3000, true, false, 64).expect("plan");
    assert_eq!(
        cmds,
        [
            Cmd::tlbi_s2_ipa(3, 0x5000, true),
            Cmd::tlbi_s2_ipa(3, 0x6000, true),
            Cmd::tlbi_s2_ipa(3, 0x7000, true)
        ]
    );
    let at_limit = plan_s2_invalidation(3, 0, 64 << 12, true, false, 64).expect("plan");
    assert_eq!(at_limit.len(), 64);
    let above = plan_s2_invalidation(3, 0, 65 << 12, true, false, 64).expect("plan");
    assert_eq!(above, [Cmd::tlbi_s12_vmall(3)]);
}

#[test]
fn plan_refuses_bad_ranges() {
    assert_eq!(
        plan_s2_invalidation(1, 0, 0, true, true, 64),
        Ok(Vec::new())
    );
    assert_eq!(
        plan_s2_invalidation(1, u64::MAX - 10, 100, true, true, 64),
        Err(SmmuError::BadRange)
    );
    assert_eq!(
        plan_s2_invalidation(1, (1 << 52) - 4096, 8192, true, true, 64),
        Err(SmmuError::BadRange)
    );
    assert!(plan_s2_invalidation(1, (1 << 52) - 4096, 4096, true, false, 64).is_ok());
}

#[test]
fn one_page_plan_is_the_single_address_command_of_either_form() {
    // The one-page fast path: the command the general range and per-page
    // forms give for one page, whatever the bytes within the page; with a
    // page limit of 0 the per-page form still falls back to the VMID.
    for (ipa, len) in [(0x5000, 0x1000), (0x5000, 1), (0x5fff, 1), (0x5800, 0x800)] {
        for leaf in [true, false] {
            let one = [Cmd::tlbi_s2_ipa(3, 0x5000, leaf)];
            let ranged: Vec<Cmd> = range_tlbis(3, 5, 1, leaf).collect();
            assert_eq!(ranged, one);
            assert_eq!(
                plan_s2_invalidation(3, ipa, len, leaf, true, 64),
                Ok(one.to_vec())
            );
            assert_eq!(
                plan_s2_invalidation(3, ipa, len, leaf, false, 64),
                Ok(one.to_vec())
            );
            assert_eq!(
                plan_s2_invalidation(3, ipa, len, leaf, true, 0),
                Ok(one.to_vec())
            );
            assert_eq!(
                plan_s2_invalidation(3, ipa, len, leaf, false, 0),
                Ok(alloc::vec![Cmd::tlbi_s12_vmall(3)])
            );
        }
    }
    // Two bytes across a page boundary are two pages.
    let cmds = plan_s2_invalidation(3, 0x5fff, 2, true, false, 64).expect("plan");
    assert_eq!(
        cmds,
        [
            Cmd::tlbi_s2_ipa(3, 0x5000, true),
            Cmd::tlbi_s2_ipa(3, 0x6000, true)
        ]
    );
}
