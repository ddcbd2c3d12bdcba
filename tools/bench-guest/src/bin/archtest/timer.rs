//! The EL1 generic timers, virtual and physical: CVAL and TVAL agree, the
//! status bit follows the comparison, the interrupt (PPI 27 and 30)
//! arrives once and finds the timer expired, and the latency from the
//! expiry to the handler's first instruction is measured (in counter time:
//! under `-icount shift=0` one nanosecond is one instruction, so the
//! figure repeats and compares with the same guest on bare QEMU).

use crate::cpu::{
    self, CTL_ENABLE, CTL_IMASK, CTL_ISTATUS, IrqMode, Timer, count, ns, set_mode, spin_unmasked,
    ticks,
};
use crate::gic;
use crate::{Ctx, check, measure, selected};

/// How far ahead a timer is set for an interrupt check (ns).
const AHEAD_NS: u64 = 20_000;
/// Longest wait for a timer interrupt (ns).
const DELIVERY_NS: u64 = 20_000_000;
/// Samples per latency figure.
const SAMPLES: usize = 9;

/// Runs the group (vCPU 0).
pub fn run(_ctx: &Ctx) {
    set_mode(IrqMode::Normal);
    for t in [Timer::Virt, Timer::Phys] {
        let name = match t {
            Timer::Virt => "timer.virt_cval_tval",
            Timer::Phys => "timer.phys_cval_tval",
        };
        if selected(name) {
            cval_tval(name, t);
        }
        let name = match t {
            Timer::Virt => "timer.virt_irq",
            Timer::Phys => "timer.phys_irq",
        };
        if selected(name) {
            irq(name, t);
        }
    }
    if selected("timer.virt_latency") {
        latency("timer.virt_latency_wfi_ns", Timer::Virt, true);
        latency("timer.virt_latency_busy_ns", Timer::Virt, false);
        dist_read("timer.ref_dist_read_ns");
    }
    if selected("timer.phys_latency") {
        latency("timer.phys_latency_wfi_ns", Timer::Phys, true);
        latency("timer.phys_latency_busy_ns", Timer::Phys, false);
    }
}

/// The time of one read of GICD_TYPER, [`SAMPLES`] times: the yardstick of
/// the latency figures. On bare QEMU the read costs the guest one
/// instruction; under partita it is a trap to EL2 and back (the emulated
/// distributor), so the difference between the two runs is the cost of a
/// plain exit, against which the QEMU test weighs what the timer
/// interrupt's delivery adds.
fn dist_read(name: &str) {
    let mut samples = [0u64; SAMPLES];
    for s in samples.iter_mut() {
        let t0 = cpu::vcount();
        let v = gic::dist(gic::gicd::TYPER);
        let t1 = cpu::vcount();
        core::hint::black_box(v);
        *s = ns(t1 - t0);
    }
    measure(name, &mut samples);
}

/// CVAL and TVAL describe the same deadline; ISTATUS follows it.
fn cval_tval(name: &str, t: Timer) {
    let big = ticks(50_000_000) as i64; // 50 ms ahead
    t.set_ctl(CTL_ENABLE | CTL_IMASK);
    let now = t.count();
    t.set_cval(now + big as u64);
    let tval = t.tval() as i64;
    let tval_ok = tval <= big && tval > big - ticks(5_000_000) as i64;
    let not_yet = t.ctl() & CTL_ISTATUS == 0;
    t.set_tval(big as i32);
    let after = t.count();
    let cval = t.cval();
    let cval_ok = cval >= now + big as u64 && cval <= after + big as u64;
    t.set_cval(t.count().saturating_sub(1));
    let expired = t.ctl() & CTL_ISTATUS != 0;
    let negative = t.tval() < 0;
    t.set_ctl(0);
    check!(
        name,
        tval_ok && not_yet && cval_ok && expired && negative,
        "tval_after_cval={tval} (expected {big} or a little less) istatus_before={} cval_after_tval_ok={} istatus_after={} tval_after_expiry_negative={}",
        u8::from(!not_yet),
        cval_ok as u8,
        expired as u8,
        negative as u8
    );
}

/// One timer interrupt: taken once, with the timer expired in the handler.
fn irq(name: &str, t: Timer) {
    let i = t.intid();
    gic::enable(i, true);
    let before = count(0, i);
    t.set_ctl(0);
    t.set_tval(ticks(AHEAD_NS) as i32);
    t.set_ctl(CTL_ENABLE);
    let taken = spin_unmasked(DELIVERY_NS, || count(0, i) > before);
    spin_unmasked(200_000, || false);
    let n = count(0, i) - before;
    let seen = cpu::timer_irq();
    gic::enable(i, false);
    t.set_ctl(0);
    let expired = seen.ctl & CTL_ISTATUS != 0 && seen.entry >= seen.cval;
    check!(
        name,
        taken && n == 1 && expired,
        "deliveries={n} ctl_in_handler={:#x} latency_ns={}",
        seen.ctl,
        ns(seen.entry.saturating_sub(seen.cval))
    );
}

/// Latency from the expiry to the handler, [`SAMPLES`] times: waiting in
/// WFI (`wfi`) or spinning with IRQs unmasked. The other timer stands
/// watch (far later) so that a lost interrupt cannot hang WFI.
fn latency(name: &str, t: Timer, wfi: bool) {
    let i = t.intid();
    let watch = match t {
        Timer::Virt => Timer::Phys,
        Timer::Phys => Timer::Virt,
    };
    gic::enable(i, true);
    gic::enable(watch.intid(), true);
    let mut samples = [0u64; SAMPLES];
    let mut got = 0;
    for s in samples.iter_mut() {
        let before = count(0, i);
        t.set_ctl(0);
        watch.set_ctl(0);
        watch.set_tval(ticks(DELIVERY_NS) as i32);
        watch.set_ctl(CTL_ENABLE);
        t.set_cval(t.count() + ticks(AHEAD_NS));
        t.set_ctl(CTL_ENABLE);
        let taken = if wfi {
            let end = cpu::vcount() + ticks(DELIVERY_NS);
            while count(0, i) == before && cpu::vcount() < end {
                cpu::wfi();
                cpu::irq_window();
            }
            count(0, i) > before
        } else {
            spin_unmasked(DELIVERY_NS, || count(0, i) > before)
        };
        watch.set_ctl(0);
        if !taken {
            break;
        }
        let seen = cpu::timer_irq();
        *s = ns(seen.entry.saturating_sub(seen.cval));
        got += 1;
    }
    t.set_ctl(0);
    gic::enable(i, false);
    gic::enable(watch.intid(), false);
    measure(name, &mut samples[..got]);
    if got < SAMPLES {
        check!(
            name,
            false,
            "only {got} of {SAMPLES} timer interrupts arrived"
        );
    }
}
