//! partita architecture test guest: a bare-metal arm64 `Image` that checks
//! what a guest sees of the CPU, the GIC, the timers and PSCI, one check at
//! a time, and prints one line per check. The same binary runs under
//! partita (2 vCPUs, the PL011 and the PL031 passed through,
//! `tools/bench-guest/archtest.toml`) and directly on QEMU `virt` at EL1
//! (`-M virt,gic-version=3,virtualization=off -smp 2`), the reference: the
//! QEMU test `tests/tests/arch.rs` runs both and requires every check that
//! passes on QEMU to pass under partita. The checks are listed in
//! docs/testing.md.
//!
//! Output on the PL011 (vCPU 0 prints, vCPU 1 answers through memory):
//!
//! ```text
//! archtest start el=1 cpus=2 freq=<Hz> gicd=0x.. gicr=0x.. rtc=0x.. rtc_intid=34 unmapped=0x..
//! check <name> pass|fail|skip <detail>
//! measure <name> min=<ns> median=<ns> max=<ns> n=<n>
//! archtest summary pass=<n> fail=<n> skip=<n> spurious_irqs=<n>
//! archtest reset            (then PSCI SYSTEM_RESET; the guest boots again)
//! check psci.system_reset pass ...
//! archtest done             (then PSCI SYSTEM_OFF)
//! ```
//!
//! The command line (`/chosen/bootargs`) selects checks:
//! `archtest.checks=exc,gic.sgi_self,timer` runs the groups and single
//! checks named (all of them without the option).
//!
//! Any exception a check did not provoke ends the run with
//! `archtest error ...` and SYSTEM_OFF.

#![no_std]
#![no_main]

mod cpu;
mod exc;
mod gic;
mod gicchk;
mod psci;
mod rtc;
mod timer;

use bench_guest::fdt::{self, Fdt};
use bench_guest::{rt, uart};
use core::fmt::{self, Write};
use cpu::Shared;

/// Before the vectors of this guest are installed (none are expected).
#[unsafe(no_mangle)]
extern "C" fn exception_entry() -> ! {
    rt::fatal_exception("archtest")
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    rt::fatal_panic("archtest")
}

/// The console, for `write!`.
pub struct Out;

impl Write for Out {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        uart::puts(s);
        Ok(())
    }
}

/// Prints `archtest error <what> a b c` and powers off.
pub fn fatal(what: &str, a: u64, b: u64, c: u64) -> ! {
    let _ = writeln!(Out, "archtest error {what} {a:#x} {b:#x} {c:#x}");
    rt::power_off()
}

/// What the guest found in its device tree.
#[derive(Clone, Copy)]
pub struct Ctx {
    /// The distributor.
    pub gicd: usize,
    /// The first redistributor.
    pub gicr: usize,
    /// The PL031 and its SPI, when the guest has one.
    pub rtc: Option<(usize, u32)>,
    /// An address nothing answers at: past the end of RAM.
    pub unmapped: u64,
}

// ------------------------------------------------------------ reporting

/// A check's verdict.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It held.
    Pass,
    /// It did not.
    Fail,
    /// It could not be run here (the detail says why).
    Skip,
}

impl From<bool> for Verdict {
    fn from(ok: bool) -> Self {
        if ok { Verdict::Pass } else { Verdict::Fail }
    }
}

static COUNTS: [Shared<u32>; 3] = [const { Shared::new(0) }; 3];

/// Prints `check <name> <verdict> <detail>` and counts it.
pub fn report(name: &str, verdict: Verdict, detail: fmt::Arguments<'_>) {
    let (word, i) = match verdict {
        Verdict::Pass => ("pass", 0),
        Verdict::Fail => ("fail", 1),
        Verdict::Skip => ("skip", 2),
    };
    COUNTS[i].bump();
    let _ = writeln!(Out, "check {name} {word} {detail}");
}

/// `check!(name, ok, "detail {}", args)`: one check's line.
macro_rules! check {
    ($name:expr, $ok:expr, $($arg:tt)*) => {
        $crate::report($name, $crate::Verdict::from($ok), format_args!($($arg)*))
    };
}
pub(crate) use check;

/// Prints `measure <name> min= median= max= n=` for samples in ns.
pub fn measure(name: &str, samples: &mut [u64]) {
    samples.sort_unstable();
    let n = samples.len();
    if n == 0 {
        return;
    }
    let _ = writeln!(
        Out,
        "measure {name} min={} median={} max={} n={n}",
        samples[0],
        samples[n / 2],
        samples[n - 1]
    );
}

/// The `archtest.checks=` list (address and length), if given.
static SELECT: Shared<(usize, usize)> = Shared::new((0, 0));

/// Whether check `name` runs: no list, or the list names it or its group
/// (the part before the first dot).
pub fn selected(name: &str) -> bool {
    let (addr, len) = SELECT.get();
    if addr == 0 {
        return true;
    }
    let at = |i: usize| {
        // SAFETY: inside the DT's bootargs, which stay where the loader put them.
        unsafe { core::ptr::read_volatile((addr + i) as *const u8) }
    };
    let name = name.as_bytes();
    let group = name.split(|&c| c == b'.').next().unwrap_or(name);
    let mut start = 0;
    while start <= len {
        let mut end = start;
        while end < len && at(end) != b',' {
            end += 1;
        }
        let item_is = |s: &[u8]| {
            end - start == s.len() && s.iter().enumerate().all(|(i, &c)| at(start + i) == c)
        };
        if item_is(name) || item_is(group) {
            return true;
        }
        start = end + 1;
    }
    false
}

// ------------------------------------------------------------- DT

fn dt_ctx(dt: Fdt) -> Result<Ctx, &'static str> {
    let gic = dt.compatible(b"arm,gic-v3").ok_or("no arm,gic-v3 node")?;
    let (gicd, _) = dt
        .reg(gic, 0)
        .ok_or("the GIC node has no distributor reg")?;
    let (gicr, _) = dt
        .reg(gic, 1)
        .ok_or("the GIC node has no redistributor reg")?;
    let rtc = dt.compatible(b"arm,pl031").and_then(|n| {
        let (base, _) = dt.reg(n, 0)?;
        let irq = dt.prop(n, b"interrupts").filter(|i| i.cells() >= 3)?;
        // <0 = SPI, number, flags>
        (irq.cell(0) == 0).then_some((base as usize, irq.cell(1) + 32))
    });
    let mem = dt
        .nodes(|n| {
            dt.prop(n, b"device_type")
                .filter(|t| t.has_string(b"memory"))
                .map(|_| n)
        })
        .ok_or("no memory node")?;
    let (ram, size) = dt.reg(mem, 0).ok_or("the memory node has no reg")?;
    let end = (ram + size).next_multiple_of(0x20_0000);
    Ok(Ctx {
        gicd: gicd as usize,
        gicr: gicr as usize,
        rtc,
        unmapped: end + 0x100_0000,
    })
}

// ------------------------------------------------------------- reset

/// The reset marker: in `.noinit`, neither loaded nor zeroed, so it
/// survives PSCI SYSTEM_RESET (QEMU and partita reload the image but keep
/// the rest of RAM; both clear it before the first boot).
#[unsafe(link_section = ".noinit")]
static RESET_MARK: Shared<u64> = Shared::new(0);
/// "archtest" in ASCII: the value of [`RESET_MARK`] across the reset.
const RESET_MAGIC: u64 = 0x6172_6368_7465_7374;

// ------------------------------------------------------------- main

#[unsafe(no_mangle)]
extern "C" fn guest_main(dtb: usize) -> ! {
    cpu::install_vectors();
    let Some(dt) = Fdt::new(dtb) else {
        fatal("no device tree", dtb as u64, 0, 0)
    };
    if let Some(smc) = dt.psci_method_is_smc() {
        rt::set_psci_smc(smc);
    }
    if let Some(list) = dt.bootargs().and_then(|b| fdt::arg(b, b"archtest.checks")) {
        SELECT.set((list.addr, list.len));
    }
    let ctx = match dt_ctx(dt) {
        Ok(c) => c,
        Err(why) => {
            let _ = writeln!(Out, "archtest error device tree: {why}");
            rt::power_off()
        }
    };
    GICR_BASE.set(ctx.gicr);
    let el = cpu::mrs!("currentel") >> 2 & 3;
    let (rtc, rtc_intid) = ctx.rtc.unwrap_or((0, 0));
    let _ = writeln!(
        Out,
        "archtest start el={el} cpus={} freq={} gicd={:#x} gicr={:#x} rtc={rtc:#x} rtc_intid={rtc_intid} unmapped={:#x}",
        cpu::CPUS,
        cpu::freq(),
        ctx.gicd,
        ctx.gicr,
        ctx.unmapped
    );
    if RESET_MARK.get() == RESET_MAGIC {
        // The second boot: PSCI SYSTEM_RESET brought the guest back.
        RESET_MARK.set(0);
        check!("psci.system_reset", true, "booted again after SYSTEM_RESET");
        finish(false);
    }
    gic::init_dist(ctx.gicd);
    if !gic::init_cpu(ctx.gicr) {
        fatal("no redistributor for vCPU 0", ctx.gicr as u64, 0, 0);
    }
    if let Some((base, _)) = ctx.rtc {
        rtc::init(base);
    }
    psci::run_before(&ctx);
    gicchk::run(&ctx);
    exc::run(&ctx);
    timer::run(&ctx);
    psci::run_after(&ctx);
    finish(selected("psci.system_reset"));
}

/// Prints the summary, then resets (first boot, when the reset check is
/// selected) or powers off.
fn finish(reset: bool) -> ! {
    let _ = writeln!(
        Out,
        "archtest summary pass={} fail={} skip={} spurious_irqs={}",
        COUNTS[0].get(),
        COUNTS[1].get(),
        COUNTS[2].get(),
        cpu::spurious(0) + cpu::spurious(1)
    );
    if reset {
        RESET_MARK.set(RESET_MAGIC);
        let _ = writeln!(Out, "archtest reset");
        rt::reset();
    }
    let _ = writeln!(Out, "archtest done");
    rt::power_off()
}

// ------------------------------------------------------------- vCPU 1

/// The redistributor region (for vCPU 1's set-up).
static GICR_BASE: Shared<usize> = Shared::new(0);

/// What vCPU 1 is asked to do.
pub mod cmd {
    /// Nothing (vCPU 1 writes this when done).
    pub const NONE: u32 = 0;
    /// Send SGI `arg & 0xf` to the targets `arg >> 16`.
    pub const SGI: u32 = 1;
    /// Send SGI `arg & 0xf` to every other vCPU.
    pub const BROADCAST: u32 = 2;
    /// PSCI CPU_OFF.
    pub const OFF: u32 = 3;
}

/// vCPU 1's context id once it runs (0: not running).
pub static ONLINE: Shared<u64> = Shared::new(0);
static CMD: Shared<u32> = Shared::new(cmd::NONE);
static CMD_ARG: Shared<u64> = Shared::new(0);
/// The SGI that wakes vCPU 1 for a command.
pub const DOORBELL: u32 = 0;

/// Asks vCPU 1 to do `c` and waits (bounded) until it has.
pub fn ask_secondary(c: u32, arg: u64) -> bool {
    CMD_ARG.set(arg);
    CMD.set(c);
    gic::send_sgi(DOORBELL, 1 << 1);
    cpu::spin_unmasked(50_000_000, || CMD.get() == cmd::NONE)
}

#[unsafe(no_mangle)]
extern "C" fn arch_secondary_main(context: u64) -> ! {
    if !gic::init_cpu(GICR_BASE.get()) {
        fatal("no redistributor for vCPU 1", GICR_BASE.get() as u64, 0, 0);
    }
    cpu::set_mode(cpu::IrqMode::Normal);
    for sgi in 0..16 {
        gic::enable(sgi, true);
    }
    ONLINE.set(context);
    loop {
        // IRQs masked: a command posted between the check and the WFI
        // comes with its doorbell pending, which ends the WFI.
        let c = CMD.get();
        let arg = CMD_ARG.get();
        match c {
            cmd::SGI => gic::send_sgi(arg as u32 & 0xf, (arg >> 16) as u16),
            cmd::BROADCAST => gic::broadcast_sgi(arg as u32 & 0xf),
            cmd::OFF => {
                ONLINE.set(0);
                CMD.set(cmd::NONE);
                rt::psci_call(psci::CPU_OFF);
                fatal("CPU_OFF returned", 0, 0, 0);
            }
            _ => {}
        }
        if c != cmd::NONE {
            CMD.set(cmd::NONE);
            continue;
        }
        cpu::wfi();
        cpu::irq_window();
    }
}

/// vCPU 1's stack.
#[repr(C, align(16))]
struct Stack([u8; 16384]);
static mut STACK1: Stack = Stack([0; 16384]);

/// The top of vCPU 1's stack: its context id for CPU_ON.
pub fn secondary_stack_top() -> u64 {
    (&raw const STACK1) as u64 + core::mem::size_of::<Stack>() as u64
}
