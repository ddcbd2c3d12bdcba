//! The physical GIC driver against the recording register file and the
//! fake CPU.

use super::*;
use crate::arch::fake::{self, Op};
use crate::gic::fake_regs::{ASLEEP, Access, FakeRegs, SLEEP};
use crate::mm::layout::Region;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

const DIST: usize = 0x0800_0000;
const PRIO: u64 = 0xa0a0_a0a0;

fn gic(redists: &[Region]) -> Gic {
    Gic {
        path: String::from("/intc@8000000"),
        phandle: Some(1),
        version: 3,
        dist: Region::new(DIST as u64, 0x1_0000),
        redists: redists.to_vec(),
        cpu_if: Vec::new(),
        maintenance: None,
        its: Vec::new(),
    }
}

/// GICR_TYPER of a redistributor with affinity `mpidr` and `flags`.
fn typer(mpidr: u64, flags: u64) -> u64 {
    let aff = (mpidr & 0xff_ffff) | ((mpidr >> 32) & 0xff) << 24;
    aff << 32 | flags
}

/// A register file with `itlines` (GICD_TYPER.ITLinesNumber) and a
/// redistributor per `(frame, mpidr, flags)`, asleep.
fn regs(itlines: u32, frames: &[(usize, u64, u64)]) -> FakeRegs {
    let r = FakeRegs::new(DIST);
    r.set(DIST + GICD_TYPER, itlines.into());
    for &(frame, mpidr, flags) in frames {
        r.set(frame + GICR_TYPER, typer(mpidr, flags));
        r.set(frame + GICR_WAKER, (SLEEP | ASLEEP).into());
    }
    r
}

/// Two CPUs (affinities 0 and 1) with one redistributor each, in one
/// region; a distributor with 64 SPIs.
const RD0: usize = 0x080a_0000;
const RD1: usize = RD0 + REDIST_SIZE;

fn two_cpus() -> PhysGicDriver<FakeRegs> {
    fake::reset();
    fake::with(|s| s.mpidrs = vec![0, 1]);
    let frames = [(RD0, 0, 0), (RD1, 1, TYPER_LAST)];
    let g = gic(&[Region::new(RD0 as u64, 0xf6_0000)]);
    PhysGicDriver::new(regs(2, &frames), &g)
}

/// Index in `log` of the first access matching `f`.
fn position(log: &[Access], f: impl Fn(&Access) -> bool) -> usize {
    log.iter().position(f).expect("access in the log")
}

#[test]
fn the_distributor_reset_disables_clears_and_routes_every_spi() {
    fake::reset();
    fake::with(|s| s.mpidrs = vec![0x1_0000_0203]);
    let drv = PhysGicDriver::new(regs(2, &[]), &gic(&[]));
    assert_eq!(drv.nr_spis(), 64);
    let log = drv.regs.take_log();
    assert_eq!(log[0], Access::Read32(DIST + GICD_TYPER, 2));
    assert_eq!(log[1], Access::Write32(DIST + GICD_CTLR, 0));
    // Nothing is written until RWP has cleared.
    let ready = position(&log, |a| *a == Access::Read32(DIST + GICD_CTLR, 0));
    assert_eq!(ready, 4, "two reads see RWP, the third not");
    assert!(log[2..ready].iter().all(|a| a.write().is_none()));

    let writes: Vec<(usize, u64)> = log[ready..].iter().filter_map(Access::write).collect();
    let at = |off: usize| {
        writes
            .iter()
            .filter(|(a, _)| *a == DIST + off)
            .map(|(_, v)| *v)
            .collect::<Vec<_>>()
    };
    // The SPI banks (1 and 2), not bank 0 (the redistributors' SGIs/PPIs).
    for reg in [GICD_ICENABLER, GICD_ICPENDR, GICD_IGROUPR] {
        assert!(at(reg).is_empty());
        assert_eq!(at(reg + 4), [u32::MAX as u64]);
        assert_eq!(at(reg + 8), [u32::MAX as u64]);
        assert!(at(reg + 12).is_empty());
    }
    // Priorities of INTIDs 32..96, four per word.
    for word in 0..24 {
        let expect: &[u64] = if word >= 8 { &[PRIO] } else { &[] };
        assert_eq!(at(GICD_IPRIORITYR + 4 * word), expect, "word {word}");
    }
    // Every SPI routed to this CPU, nothing else.
    let routes: Vec<(usize, u64)> = writes
        .iter()
        .copied()
        .filter(|(a, _)| (DIST + GICD_IROUTER..DIST + GICD_IROUTER + 8 * 1024).contains(a))
        .collect();
    let expect: Vec<(usize, u64)> = (32..96)
        .map(|i| (DIST + GICD_IROUTER + 8 * i, 0x1_0000_0203))
        .collect();
    assert_eq!(routes, expect);
    // Enabled last, then RWP waited for again.
    let enable = position(&log, |a| {
        *a == Access::Write32(DIST + GICD_CTLR, CTLR_ENABLE)
    });
    assert_eq!(writes.last(), Some(&(DIST + GICD_CTLR, CTLR_ENABLE.into())));
    assert_eq!(
        log[enable + 1..enable + 4],
        [
            Access::Read32(DIST + GICD_CTLR, CTLR_ENABLE | CTLR_RWP),
            Access::Read32(DIST + GICD_CTLR, CTLR_ENABLE | CTLR_RWP),
            Access::Read32(DIST + GICD_CTLR, CTLR_ENABLE),
        ]
    );
}

#[test]
fn at_most_1020_interrupts_are_handled() {
    fake::reset();
    let drv = PhysGicDriver::new(regs(31, &[]), &gic(&[]));
    assert_eq!(drv.nr_spis(), 1020 - 32);
    let writes = drv.regs.writes();
    let last_route = DIST + GICD_IROUTER + 8 * 1019;
    assert!(writes.contains(&(last_route, 0)));
    assert!(
        !writes
            .iter()
            .any(|(a, _)| *a > last_route && *a < DIST + 0x1_0000)
    );
}

#[test]
fn redistributors_are_found_by_stride_and_the_last_bit() {
    fake::reset();
    // Region A: two redistributors with VLPI frames (stride 256 KiB), the
    // second marked Last although the region has room for two more.
    let a = 0x1000_0000;
    // Region B: three without (stride 128 KiB) and no Last: the region's
    // end stops the walk.
    let b = 0x2000_0000;
    let frames = [
        (a, 0x0, TYPER_VLPIS),
        (a + 0x4_0000, 0x1, TYPER_VLPIS | TYPER_LAST),
        (b, 0x100, 0),
        (b + 0x2_0000, 0x101, 0),
        (b + 0x4_0000, 0x1_0000_0000, 0),
    ];
    let regions = [
        Region::new(a as u64, 0x10_0000),
        Region::new(b as u64, 0x6_0000),
    ];
    let drv = PhysGicDriver::new(regs(1, &frames), &gic(&regions));
    let typer_reads: Vec<usize> = drv
        .regs
        .take_log()
        .iter()
        .filter_map(|x| match x {
            Access::Read64(addr, _) => Some(*addr),
            _ => None,
        })
        .collect();
    let expect: Vec<usize> = frames.iter().map(|f| f.0 + GICR_TYPER).collect();
    assert_eq!(typer_reads, expect);
    for (frame, mpidr, _) in frames {
        assert_eq!(drv.redist_of(mpidr), Some(frame), "mpidr {mpidr:#x}");
    }
    assert_eq!(drv.redist_of(0x2), None);
    // Only the affinity bits of an MPIDR count.
    assert_eq!(drv.redist_of(0x8000_0101), Some(b + 0x2_0000));
}

#[test]
fn init_cpu_wakes_its_redistributor_and_enables_kick_and_maintenance() {
    let drv = two_cpus();
    drv.regs.take_log();
    fake::with(|s| s.cpu = 1);
    drv.init_cpu().unwrap();
    assert_eq!(drv.cpu_mpidr(1), 1);
    assert_eq!(fake::take_ops(), [Op::GicInitCpu]);
    let log = drv.regs.take_log();
    assert!(
        log.iter()
            .all(|a| (RD1..RD1 + REDIST_SIZE).contains(&a.addr()))
    );
    let waker = RD1 + GICR_WAKER;
    assert_eq!(
        log[..5],
        [
            Access::Read32(waker, SLEEP | ASLEEP),
            Access::Write32(waker, ASLEEP),
            Access::Read32(waker, ASLEEP),
            Access::Read32(waker, ASLEEP),
            Access::Read32(waker, 0),
        ]
    );
    let writes: Vec<(usize, u64)> = log[5..].iter().filter_map(Access::write).collect();
    let mut expect = vec![
        (RD1 + GICR_ICENABLER0, u32::MAX.into()),
        (RD1 + GICR_ICPENDR0, u32::MAX.into()),
        (RD1 + GICR_IGROUPR0, u32::MAX.into()),
    ];
    expect.extend((0..8).map(|i| (RD1 + GICR_IPRIORITYR + 4 * i, PRIO)));
    expect.push((RD1 + GICR_ISENABLER0, 1 << 7 | 1 << 25));
    assert_eq!(writes, expect);
}

#[test]
fn a_cpu_without_a_redistributor_is_refused() {
    let drv = two_cpus();
    drv.regs.take_log();
    fake::with(|s| {
        s.cpu = 2;
        s.mpidrs.push(0x200);
    });
    assert_eq!(drv.init_cpu(), Err(GicError::NoRedistributor(0x200)));
    assert!(drv.regs.writes().is_empty());
    assert!(fake::take_ops().is_empty());
    assert_eq!(
        alloc::format!("{}", GicError::NoRedistributor(0x200)),
        "no redistributor for mpidr 0x200"
    );
}

/// The driver with both CPUs initialised and the log cleared.
fn ready() -> PhysGicDriver<FakeRegs> {
    let drv = two_cpus();
    for cpu in 0..2 {
        fake::with(|s| s.cpu = cpu);
        drv.init_cpu().unwrap();
    }
    drv.regs.take_log();
    drv
}

#[test]
fn enables_hit_the_distributor_for_spis_and_the_redistributor_for_ppis() {
    let drv = ready();
    let g = &drv;
    g.set_enabled(40, 0, true);
    g.set_enabled(40, 1, false);
    g.set_enabled(27, 1, true);
    g.set_enabled(27, 1, false);
    g.set_enabled(3, 0, true);
    g.set_enabled(96, 0, true); // beyond the 64 SPIs
    assert_eq!(
        drv.regs.writes(),
        [
            (DIST + GICD_ISENABLER + 4, 1 << 8),
            (DIST + GICD_ICENABLER + 4, 1 << 8),
            (RD1 + GICR_ISENABLER0, 1 << 27),
            (RD1 + GICR_ICENABLER0, 1 << 27),
            (RD0 + GICR_ISENABLER0, 1 << 3),
        ]
    );
}

#[test]
fn trigger_modes_are_read_modified_written() {
    let drv = ready();
    let spi_cfg = DIST + GICD_ICFGR + 8; // INTIDs 32..48
    drv.regs.set(spi_cfg, 0x5);
    let g = &drv;
    g.set_edge(40, 0, true);
    assert_eq!(drv.regs.get(spi_cfg), 0x5 | 2 << 16);
    g.set_edge(40, 0, false);
    assert_eq!(drv.regs.get(spi_cfg), 0x5);
    g.set_edge(27, 1, true);
    assert_eq!(drv.regs.get(RD1 + GICR_ICFGR1), 2 << 22);
    assert_eq!(drv.regs.get(RD0 + GICR_ICFGR1), 0);
    drv.regs.take_log();
    // SGIs are always edge; INTIDs beyond the SPIs do not exist.
    g.set_edge(7, 0, true);
    g.set_edge(96, 0, true);
    assert!(drv.regs.take_log().is_empty());
}

#[test]
fn spis_are_routed_to_the_affinity_of_a_cpu() {
    let drv = ready();
    let g = &drv;
    g.route_spi(40, 1);
    g.route_spi(95, 0);
    g.route_spi(27, 1); // a PPI: not routable
    g.route_spi(96, 1);
    assert_eq!(
        drv.regs.writes(),
        [
            (DIST + GICD_IROUTER + 8 * 40, 1),
            (DIST + GICD_IROUTER + 8 * 95, 0)
        ]
    );
}

#[test]
fn pending_states_are_cleared_where_the_interrupt_lives() {
    let drv = ready();
    let g = &drv;
    g.set_pending(40, 0, false);
    g.set_pending(63, 0, false);
    g.set_pending(64, 0, false);
    g.set_pending(30, 1, false);
    g.set_pending(1000, 0, false);
    assert_eq!(
        drv.regs.writes(),
        [
            (DIST + GICD_ICPENDR + 4, 1 << 8),
            (DIST + GICD_ICPENDR + 4, 1 << 31),
            (DIST + GICD_ICPENDR + 8, 1),
            (RD1 + GICR_ICPENDR0, 1 << 30),
        ]
    );
}

#[test]
fn pending_and_active_states_are_set_and_read_where_the_interrupt_lives() {
    let drv = ready();
    let g = &drv;
    g.set_pending(40, 0, true);
    g.set_pending(27, 1, true);
    g.set_active(40, 0, true);
    g.set_active(40, 0, false);
    g.set_active(27, 0, true);
    g.set_active(27, 1, false);
    g.set_active(1000, 0, true);
    assert_eq!(
        drv.regs.writes(),
        [
            (DIST + GICD_ISPENDR + 4, 1 << 8),
            (RD1 + GICR_ISPENDR0, 1 << 27),
            (DIST + GICD_ISACTIVER + 4, 1 << 8),
            (DIST + GICD_ICACTIVER + 4, 1 << 8),
            (RD0 + GICR_ISACTIVER0, 1 << 27),
            (RD1 + GICR_ICACTIVER0, 1 << 27),
        ]
    );
    // Reads test the INTID's bit of the set register (the fake register
    // file keeps what was written: preset each one).
    drv.regs.set(DIST + GICD_ISPENDR + 4, 1 << 8);
    drv.regs.set(DIST + GICD_ISACTIVER + 4, 0);
    drv.regs.set(RD1 + GICR_ISPENDR0, 0);
    drv.regs.set(RD0 + GICR_ISACTIVER0, 0);
    drv.regs.set(RD1 + GICR_ISACTIVER0, 1 << 27);
    assert!(g.pending(40, 0) && !g.pending(41, 0));
    assert!(!g.pending(27, 1) && !g.active(40, 0));
    assert!(g.active(27, 1) && !g.active(27, 0));
    assert!(!g.pending(1000, 0), "an INTID the GIC does not have");
}

#[test]
fn the_frames_to_map_are_the_distributor_and_the_redistributor_regions() {
    let mut g = gic(&[
        Region::new(0x080a_0000, 0xf6_0000),
        Region::new(0x1000_0000, 0x4_0000),
    ]);
    g.dist.size = 0x1000; // a DT that names less than the 64 KiB used
    let f: Vec<(u64, u64)> = frames(&g).collect();
    assert_eq!(
        f,
        [
            (DIST as u64, 0x1_0000),
            (0x080a_0000, 0xf6_0000),
            (0x1000_0000, 0x4_0000)
        ]
    );
}

#[test]
fn the_global_driver_is_absent_until_initialised() {
    // The host never initialises it (that needs the mapped MMIO frames).
    assert!(get().is_none());
}
