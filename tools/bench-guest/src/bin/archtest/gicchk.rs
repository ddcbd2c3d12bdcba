//! The GIC as a guest sees it: SGIs to itself, to and from the other vCPU
//! and to all others; priority masking; both EOI modes; the pending and
//! active registers (for an SGI, an SPI and the timer PPIs); a level- and
//! an edge-triggered SPI from a passed-through device (the PL031's alarm).

use crate::cpu::{self, IrqMode, Timer, count, set_mode, spin_unmasked};
use crate::gic::{self, DEFAULT_PRIORITY};
use crate::{Ctx, ONLINE, Verdict, ask_secondary, check, cmd, report, rtc, selected};

/// How long a check waits for an interrupt that must come (ns of counter
/// time; generous for TCG).
const DELIVERY_NS: u64 = 20_000_000;
/// How long a check watches for an interrupt that must not come.
const QUIET_NS: u64 = 200_000;

/// Sends SGI `intid` to this vCPU (vCPU 0) and waits until one more
/// delivery than `before` is counted.
fn self_sgi(intid: u32, before: u32) -> bool {
    gic::send_sgi(intid, 1 << 0);
    spin_unmasked(DELIVERY_NS, || count(0, intid) > before)
}

/// Runs the group (vCPU 0).
pub fn run(ctx: &Ctx) {
    set_mode(IrqMode::Normal);
    for sgi in 0..16 {
        gic::enable(sgi, true);
    }
    if selected("gic.sgi_self") {
        let before = count(0, 1);
        let ok = self_sgi(1, before);
        let extra = spin_unmasked(QUIET_NS, || count(0, 1) > before + 1);
        check!(
            "gic.sgi_self",
            ok && !extra && cpu::last(0) == 1,
            "deliveries={} last_intid={}",
            count(0, 1) - before,
            cpu::last(0)
        );
    }
    if selected("gic.sgi_coalesce") {
        // Two sends while IRQs are masked: one pending state, one delivery.
        let before = count(0, 2);
        gic::send_sgi(2, 1);
        gic::send_sgi(2, 1);
        let ok = spin_unmasked(DELIVERY_NS, || count(0, 2) > before);
        spin_unmasked(QUIET_NS, || false);
        let n = count(0, 2) - before;
        check!(
            "gic.sgi_coalesce",
            ok && n == 1,
            "deliveries={n} (expected 1)"
        );
    }
    let secondary = ONLINE.get() != 0;
    if selected("gic.sgi_to_other") {
        if secondary {
            let before = count(1, 8);
            gic::send_sgi(8, 1 << 1);
            let ok = spin_unmasked(DELIVERY_NS, || count(1, 8) > before);
            check!(
                "gic.sgi_to_other",
                ok && count(0, 8) == 0,
                "vcpu1_deliveries={} vcpu0_deliveries={}",
                count(1, 8) - before,
                count(0, 8)
            );
        } else {
            report(
                "gic.sgi_to_other",
                Verdict::Skip,
                format_args!("vCPU 1 is not running"),
            );
        }
    }
    if selected("gic.sgi_from_other") {
        if secondary {
            let before = count(0, 7);
            let asked = ask_secondary(cmd::SGI, 7 | (1 << 16));
            let ok = spin_unmasked(DELIVERY_NS, || count(0, 7) > before);
            check!(
                "gic.sgi_from_other",
                asked && ok,
                "asked={} vcpu0_deliveries={}",
                asked as u8,
                count(0, 7) - before
            );
        } else {
            report(
                "gic.sgi_from_other",
                Verdict::Skip,
                format_args!("vCPU 1 is not running"),
            );
        }
    }
    if selected("gic.sgi_broadcast") {
        if secondary {
            let (b0, b1) = (count(0, 9), count(1, 9));
            gic::broadcast_sgi(9);
            let ok = spin_unmasked(DELIVERY_NS, || count(1, 9) > b1);
            spin_unmasked(QUIET_NS, || false);
            check!(
                "gic.sgi_broadcast",
                ok && count(0, 9) == b0,
                "vcpu1_deliveries={} vcpu0_deliveries={} (expected 1 and 0: IRM excludes the sender)",
                count(1, 9) - b1,
                count(0, 9) - b0
            );
        } else {
            report(
                "gic.sgi_broadcast",
                Verdict::Skip,
                format_args!("vCPU 1 is not running"),
            );
        }
    }
    if selected("gic.priority_mask") {
        // PMR 0x80: an SGI at 0xa0 waits, one at 0x40 is taken; PMR 0xff
        // lets the first through.
        gic::set_priority(3, 0xa0);
        gic::set_priority(4, 0x40);
        let (b3, b4) = (count(0, 3), count(0, 4));
        gic::set_pmr(0x80);
        gic::send_sgi(3, 1);
        let masked = !spin_unmasked(QUIET_NS, || count(0, 3) > b3);
        let high = self_sgi(4, b4);
        gic::set_pmr(0xff);
        let later = spin_unmasked(DELIVERY_NS, || count(0, 3) > b3);
        gic::set_priority(3, DEFAULT_PRIORITY);
        gic::set_priority(4, DEFAULT_PRIORITY);
        check!(
            "gic.priority_mask",
            masked && high && later,
            "masked_at_pmr_0x80={} higher_priority_taken={} taken_after_pmr_0xff={}",
            masked as u8,
            high as u8,
            later as u8
        );
    }
    if selected("gic.eoimode0") {
        // EOImode 0: EOIR deactivates; the same SGI comes again at once.
        let before = count(0, 5);
        let first = self_sgi(5, before);
        let second = self_sgi(5, before + 1);
        check!(
            "gic.eoimode0",
            first && second,
            "deliveries={} (expected 2)",
            count(0, 5) - before
        );
    }
    if selected("gic.eoimode1") {
        // EOImode 1: EOIR only drops the priority; the SGI stays active and
        // a new one waits until DIR.
        gic::set_eoimode1(true);
        set_mode(IrqMode::DropOnly);
        let before = count(0, 6);
        let first = self_sgi(6, before);
        gic::send_sgi(6, 1);
        let held = !spin_unmasked(QUIET_NS, || count(0, 6) > before + 1);
        gic::dir(6);
        let after_dir = spin_unmasked(DELIVERY_NS, || count(0, 6) > before + 1);
        gic::dir(6);
        set_mode(IrqMode::Normal);
        gic::set_eoimode1(false);
        check!(
            "gic.eoimode1",
            first && held && after_dir,
            "first={} held_while_active={} delivered_after_dir={}",
            first as u8,
            held as u8,
            after_dir as u8
        );
    }
    if selected("gic.active_sgi") {
        // Acknowledged and not ended: active (and not pending).
        set_mode(IrqMode::Hold);
        let before = count(0, 10);
        let taken = self_sgi(10, before);
        set_mode(IrqMode::Normal);
        let active = gic::is_active(10);
        let pending = gic::is_pending(10);
        gic::eoi(10);
        let after = gic::is_active(10);
        check!(
            "gic.active_sgi",
            taken && active && !pending && !after,
            "taken={} ISACTIVER0={} ISPENDR0={} ISACTIVER0_after_eoi={}",
            taken as u8,
            active as u8,
            pending as u8,
            after as u8
        );
    }
    if selected("gic.pending_sgi") {
        // A disabled SGI stays pending and is taken once enabled.
        gic::enable(11, false);
        let before = count(0, 11);
        gic::send_sgi(11, 1);
        let waited = !spin_unmasked(QUIET_NS, || count(0, 11) > before);
        let pending = gic::is_pending(11);
        gic::enable(11, true);
        let taken = spin_unmasked(DELIVERY_NS, || count(0, 11) > before);
        check!(
            "gic.pending_sgi",
            waited && pending && taken,
            "not_taken_while_disabled={} ISPENDR0={} taken_once_enabled={}",
            waited as u8,
            pending as u8,
            taken as u8
        );
    }
    for t in [Timer::Virt, Timer::Phys] {
        let name = match t {
            Timer::Virt => "gic.pending_vtimer_ppi",
            Timer::Phys => "gic.pending_ptimer_ppi",
        };
        if selected(name) {
            // The timer's output is a level: with the PPI disabled, the
            // expired timer shows as pending, and no longer once stopped.
            let i = t.intid();
            gic::enable(i, false);
            t.set_ctl(0);
            t.set_cval(0);
            t.set_ctl(cpu::CTL_ENABLE);
            let fired = t.ctl() & cpu::CTL_ISTATUS != 0;
            let mut pending = false;
            for _ in 0..1000 {
                pending = gic::is_pending(i);
                if pending {
                    break;
                }
            }
            t.set_ctl(0);
            let mut cleared = false;
            for _ in 0..1000 {
                cleared = !gic::is_pending(i);
                if cleared {
                    break;
                }
            }
            check!(
                name,
                fired && pending && cleared,
                "ISTATUS={} ISPENDR0_while_expired={} ISPENDR0_clear_once_stopped={}",
                fired as u8,
                pending as u8,
                cleared as u8
            );
        }
    }
    rtc_checks(ctx);
}

/// The SPI checks on the PL031's alarm interrupt.
fn rtc_checks(ctx: &Ctx) {
    let names = [
        "gic.spi_pending_regs",
        "gic.spi_level",
        "gic.spi_level_eoi_before_clear",
        "gic.spi_active",
        "gic.spi_edge",
    ];
    let Some((_, spi)) = ctx.rtc else {
        for n in names.iter().filter(|n| selected(n)) {
            report(
                n,
                Verdict::Skip,
                format_args!("no arm,pl031 in the device tree"),
            );
        }
        return;
    };
    gic::route(spi, 0);
    gic::set_priority(spi, DEFAULT_PRIORITY);
    gic::set_edge(spi, false);
    rtc::clear();
    if selected(names[0]) {
        // ISPENDR/ICPENDR on a disabled SPI whose line is low.
        gic::enable(spi, false);
        gic::set_pending(spi, true);
        let set = gic::is_pending(spi);
        gic::set_pending(spi, false);
        let cleared = !gic::is_pending(spi);
        check!(
            names[0],
            set && cleared,
            "ISPENDR_after_set={} ISPENDR_clear_after_ICPENDR={}",
            set as u8,
            cleared as u8
        );
    }
    // A level interrupt, the device cleared in the handler before (mode
    // `ClearRtcThenEoi`) or after (`EoiThenClearRtc`) the EOI: one
    // delivery either way (the GIC drops the pending state with the line).
    for (name, mode) in [
        (names[1], IrqMode::ClearRtcThenEoi),
        (names[2], IrqMode::EoiThenClearRtc),
    ] {
        if !selected(name) {
            continue;
        }
        set_mode(mode);
        gic::enable(spi, true);
        let before = count(0, spi);
        let raised = rtc::raise();
        let taken = spin_unmasked(DELIVERY_NS, || count(0, spi) > before);
        spin_unmasked(QUIET_NS, || false);
        let n = count(0, spi) - before;
        gic::enable(spi, false);
        set_mode(IrqMode::Normal);
        rtc::clear();
        check!(
            name,
            raised && taken && n == 1,
            "device_raised={} deliveries={n} (expected 1)",
            raised as u8
        );
    }
    if selected(names[3]) {
        // Held active in the handler: ISACTIVER shows it until the EOI.
        set_mode(IrqMode::Hold);
        gic::enable(spi, true);
        let before = count(0, spi);
        let raised = rtc::raise();
        let taken = spin_unmasked(DELIVERY_NS, || count(0, spi) > before);
        set_mode(IrqMode::Normal);
        let active = gic::is_active(spi);
        rtc::clear();
        gic::eoi(spi);
        let after = gic::is_active(spi);
        gic::enable(spi, false);
        check!(
            names[3],
            raised && taken && active && !after,
            "device_raised={} taken={} ISACTIVER={} ISACTIVER_after_eoi={}",
            raised as u8,
            taken as u8,
            active as u8,
            after as u8
        );
    }
    if selected(names[4]) {
        // Edge-triggered: the rising edge is latched while the SPI is
        // disabled, though the device is cleared before it is enabled.
        set_mode(IrqMode::Normal);
        gic::enable(spi, false);
        gic::set_edge(spi, true);
        let before = count(0, spi);
        let raised = rtc::raise();
        rtc::clear();
        gic::enable(spi, true);
        let taken = spin_unmasked(DELIVERY_NS, || count(0, spi) > before);
        spin_unmasked(QUIET_NS, || false);
        let n = count(0, spi) - before;
        gic::enable(spi, false);
        gic::set_edge(spi, false);
        check!(
            names[4],
            raised && taken && n == 1,
            "device_raised={} deliveries={n} (expected 1: the edge latched while disabled)",
            raised as u8
        );
    }
}
