//! PSCI through the conduit the DT names: the version, PSCI_FEATURES,
//! CPU_ON (vCPU 1 starts at the guest's entry with its context id),
//! AFFINITY_INFO, CPU_OFF, and the error codes of bad arguments.
//! SYSTEM_RESET and SYSTEM_OFF end the run (see `finish` in main.rs).

use crate::cpu::spin_unmasked;
use crate::{Ctx, ONLINE, Verdict, ask_secondary, check, cmd, report, selected};
use bench_guest::rt::{PSCI_VERSION, psci_call, psci_call3};

/// Function IDs (SMC64 where there are two).
pub const CPU_OFF: u64 = 0x8400_0002;
const CPU_ON: u64 = 0xc400_0003;
const AFFINITY_INFO: u64 = 0xc400_0004;
const PSCI_FEATURES: u64 = 0x8400_000a;
/// A function ID PSCI does not define (PSCI_FEATURES must refuse it).
const UNDEFINED_FN: u64 = 0x8400_001f;

/// Return codes.
const SUCCESS: i32 = 0;
const NOT_SUPPORTED: i32 = -1;
const INVALID_PARAMETERS: i32 = -2;
const ALREADY_ON: i32 = -4;
/// AFFINITY_INFO states.
const AFF_ON: i32 = 0;
const AFF_OFF: i32 = 1;

/// An MPIDR no vCPU has.
const NO_SUCH_CPU: u64 = 0xff;
/// How long vCPU 1 may take to start or stop (ns).
const POWER_NS: u64 = 50_000_000;

fn call(id: u64, a: u64, b: u64, c: u64) -> i32 {
    psci_call3(id, [a, b, c]) as i32
}

/// Starts vCPU 1 with context `ctx`; returns CPU_ON's result and whether
/// it then ran with that context.
fn cpu_on(ctx: u64) -> (i32, bool) {
    ONLINE.set(0);
    let r = call(CPU_ON, 1, crate::cpu::secondary_entry(), ctx);
    let up = r == SUCCESS && spin_unmasked(POWER_NS, || ONLINE.get() == ctx);
    (r, up)
}

/// The checks before the GIC checks (which need vCPU 1 running).
pub fn run_before(_ctx: &Ctx) {
    if selected("psci.version") {
        let v = psci_call(PSCI_VERSION) as u32;
        check!(
            "psci.version",
            v >> 16 >= 1 && v >> 31 == 0,
            "version={}.{}",
            v >> 16,
            v & 0xffff
        );
    }
    if selected("psci.features") {
        let on = call(PSCI_FEATURES, CPU_ON, 0, 0);
        let off = call(PSCI_FEATURES, CPU_OFF, 0, 0);
        let bad = call(PSCI_FEATURES, UNDEFINED_FN, 0, 0);
        check!(
            "psci.features",
            on >= 0 && off >= 0 && bad == NOT_SUPPORTED,
            "CPU_ON={on} CPU_OFF={off} undefined_function={bad} (expected >= 0, >= 0, {NOT_SUPPORTED})"
        );
    }
    if selected("psci.cpu_on_bad_target") {
        let r = call(CPU_ON, NO_SUCH_CPU, crate::cpu::secondary_entry(), 0);
        check!(
            "psci.cpu_on_bad_target",
            r == INVALID_PARAMETERS,
            "ret={r} (expected {INVALID_PARAMETERS})"
        );
    }
    if selected("psci.affinity_info_bad_target") {
        let r = call(AFFINITY_INFO, NO_SUCH_CPU, 0, 0);
        check!(
            "psci.affinity_info_bad_target",
            r == INVALID_PARAMETERS,
            "ret={r} (expected {INVALID_PARAMETERS})"
        );
    }
    if selected("psci.affinity_info_off") {
        let r = call(AFFINITY_INFO, 1, 0, 0);
        check!(
            "psci.affinity_info_off",
            r == AFF_OFF,
            "vcpu1={r} before CPU_ON (expected {AFF_OFF})"
        );
    }
    // vCPU 1 runs from here on whether its check is selected or not: the
    // GIC checks need it.
    let ctx = crate::secondary_stack_top();
    let (r, up) = cpu_on(ctx);
    if selected("psci.cpu_on") {
        check!(
            "psci.cpu_on",
            r == SUCCESS && up,
            "ret={r} running_with_context={}",
            up as u8
        );
    }
    if selected("psci.affinity_info_on") {
        let r = call(AFFINITY_INFO, 1, 0, 0);
        check!(
            "psci.affinity_info_on",
            r == AFF_ON,
            "vcpu1={r} (expected {AFF_ON})"
        );
    }
    if selected("psci.cpu_on_already_on") {
        let other = call(CPU_ON, 1, crate::cpu::secondary_entry(), ctx);
        let me = call(CPU_ON, 0, crate::cpu::secondary_entry(), ctx);
        check!(
            "psci.cpu_on_already_on",
            other == ALREADY_ON && me == ALREADY_ON,
            "vcpu1={other} self={me} (expected {ALREADY_ON})"
        );
    }
}

/// The checks after the others: vCPU 1 off, then on again.
pub fn run_after(_ctx: &Ctx) {
    let name = "psci.cpu_off";
    if !selected(name) && !selected("psci.cpu_on_again") {
        return;
    }
    if ONLINE.get() == 0 {
        report(name, Verdict::Skip, format_args!("vCPU 1 is not running"));
        return;
    }
    let asked = ask_secondary(cmd::OFF, 0);
    let mut state = -100;
    let off = spin_unmasked(POWER_NS, || {
        state = call(AFFINITY_INFO, 1, 0, 0);
        state == AFF_OFF
    });
    if selected(name) {
        check!(
            name,
            asked && off,
            "asked={} affinity_info={state} (expected {AFF_OFF})",
            asked as u8
        );
    }
    if selected("psci.cpu_on_again") {
        // A different context id, so that the start is this one's.
        let ctx = crate::secondary_stack_top() - 0x100;
        let (r, up) = cpu_on(ctx);
        check!(
            "psci.cpu_on_again",
            r == SUCCESS && up,
            "ret={r} running_with_context={}",
            up as u8
        );
    }
}
