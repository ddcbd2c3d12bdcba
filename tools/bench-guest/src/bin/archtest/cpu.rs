//! The CPU side of the architecture test guest: its own exception vectors
//! (every register saved, so that an exception a check provokes can return),
//! the per-CPU records the handlers leave for the checks, and the system
//! registers the checks use (timers, GIC CPU interface).
//!
//! The MMU stays off, so all data accesses are Device-nGnRnE: no exclusive
//! monitors, no atomics. What the two CPUs share are single-writer words
//! ([`Shared`]), read and written with barriers.

use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;
use core::ptr::{read_volatile, write_volatile};

/// CPUs the guest uses (vCPU 0 runs the checks, vCPU 1 answers).
pub const CPUS: usize = 2;
/// INTIDs whose deliveries are counted per CPU (SGIs, PPIs, the low SPIs).
pub const COUNTED: usize = 64;

/// A word shared between the CPUs and the handlers: one writer at a time,
/// volatile accesses with full barriers around them.
pub struct Shared<T: Copy>(UnsafeCell<T>);

// SAFETY: every access is a volatile load or store of a `Copy` value with a
// barrier; the checks keep one writer per word at a time.
unsafe impl<T: Copy> Sync for Shared<T> {}

impl<T: Copy> Shared<T> {
    /// A word holding `v`.
    pub const fn new(v: T) -> Self {
        Self(UnsafeCell::new(v))
    }

    /// Reads the word.
    pub fn get(&self) -> T {
        dmb();
        // SAFETY: see the Sync impl.
        let v = unsafe { read_volatile(self.0.get()) };
        dmb();
        v
    }

    /// Writes the word.
    pub fn set(&self, v: T) {
        dmb();
        // SAFETY: see the Sync impl.
        unsafe { write_volatile(self.0.get(), v) };
        dmb();
    }
}

impl Shared<u32> {
    /// Adds one (single writer: the CPU that owns the word).
    pub fn bump(&self) {
        self.set(self.get().wrapping_add(1));
    }
}

/// Full system barrier.
#[inline(always)]
pub fn dmb() {
    // SAFETY: a barrier.
    unsafe { asm!("dmb sy", options(nostack, preserves_flags)) };
}

/// Instruction synchronization barrier.
#[inline(always)]
pub fn isb() {
    // SAFETY: a barrier.
    unsafe { asm!("isb", options(nostack, preserves_flags)) };
}

/// Reads a system register by name.
macro_rules! mrs {
    ($reg:literal) => {{
        let v: u64;
        // SAFETY: a read of an EL1/EL0 system register the guest may read.
        unsafe { core::arch::asm!(concat!("mrs {}, ", $reg), out(reg) v, options(nostack)) };
        v
    }};
}

/// Writes a system register by name.
macro_rules! msr {
    ($reg:literal, $v:expr) => {{
        let v: u64 = $v;
        // SAFETY: a write of an EL1/EL0 system register the guest owns.
        unsafe { core::arch::asm!(concat!("msr ", $reg, ", {}"), in(reg) v, options(nostack)) };
    }};
}

pub(crate) use {mrs, msr};

/// This CPU's index (MPIDR_EL1.Aff0; vCPU 1 on both sides is Aff0 = 1).
pub fn cpu() -> usize {
    (mrs!("mpidr_el1") & 0xff) as usize % CPUS
}

/// Masks IRQs.
#[inline(always)]
pub fn irq_mask() {
    // SAFETY: PSTATE.I only.
    unsafe { asm!("msr daifset, #2", options(nostack)) };
}

/// Unmasks IRQs.
#[inline(always)]
pub fn irq_unmask() {
    // SAFETY: PSTATE.I only.
    unsafe { asm!("msr daifclr, #2", "isb", options(nostack)) };
}

/// Takes any IRQ that is pending now (unmask, barrier, mask).
#[inline(always)]
pub fn irq_window() {
    // SAFETY: PSTATE.I only; the handler saves every register.
    unsafe {
        asm!(
            "msr daifclr, #2",
            "isb",
            "msr daifset, #2",
            options(nostack)
        )
    };
}

/// YIELD: a hint on hardware; under QEMU's round-robin TCG (`-icount`)
/// it hands the host thread to the next vCPU, without which a vCPU
/// spinning on another's progress would starve it.
#[inline(always)]
pub fn yield_cpu() {
    // SAFETY: a hint; nothing else.
    unsafe { asm!("yield", options(nostack, nomem, preserves_flags)) };
}

/// Waits for an interrupt (or event); with IRQs masked it still wakes.
#[inline(always)]
pub fn wfi() {
    // SAFETY: waits; nothing else.
    unsafe { asm!("dsb sy", "wfi", options(nostack)) };
}

/// The virtual counter.
#[inline(always)]
pub fn vcount() -> u64 {
    isb();
    mrs!("cntvct_el0")
}

/// The physical counter.
#[inline(always)]
pub fn pcount() -> u64 {
    isb();
    mrs!("cntpct_el0")
}

/// The counter frequency.
pub fn freq() -> u64 {
    mrs!("cntfrq_el0")
}

/// Counter ticks in nanoseconds.
pub fn ns(ticks: u64) -> u64 {
    ((ticks as u128) * 1_000_000_000 / (freq().max(1) as u128)) as u64
}

/// Nanoseconds in counter ticks (at least one).
pub fn ticks(ns: u64) -> u64 {
    (((ns as u128) * (freq() as u128) / 1_000_000_000) as u64).max(1)
}

/// Spins for `ns` nanoseconds of counter time with IRQs unmasked, so that
/// whatever is pending is taken. Returns when `done` holds or time is up;
/// returns `done()`.
pub fn spin_unmasked(ns_total: u64, mut done: impl FnMut() -> bool) -> bool {
    let end = vcount() + ticks(ns_total);
    irq_unmask();
    while !done() && vcount() < end {
        yield_cpu();
    }
    irq_mask();
    done()
}

// ------------------------------------------------------------- timers

/// One of the EL1 generic timers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// The virtual timer (CNTV_*, PPI 27).
    Virt,
    /// The EL1 physical timer (CNTP_*, PPI 30).
    Phys,
}

/// CNTx_CTL: ENABLE, IMASK, ISTATUS.
pub const CTL_ENABLE: u64 = 1;
/// CNTx_CTL.IMASK.
pub const CTL_IMASK: u64 = 2;
/// CNTx_CTL.ISTATUS.
pub const CTL_ISTATUS: u64 = 4;

impl Timer {
    /// Its PPI on QEMU virt (the DT's timer node says the same).
    pub fn intid(self) -> u32 {
        match self {
            Timer::Virt => 27,
            Timer::Phys => 30,
        }
    }
    /// The counter it compares against.
    pub fn count(self) -> u64 {
        match self {
            Timer::Virt => vcount(),
            Timer::Phys => pcount(),
        }
    }
    /// CNTx_CTL.
    pub fn ctl(self) -> u64 {
        match self {
            Timer::Virt => mrs!("cntv_ctl_el0"),
            Timer::Phys => mrs!("cntp_ctl_el0"),
        }
    }
    /// Writes CNTx_CTL.
    pub fn set_ctl(self, v: u64) {
        match self {
            Timer::Virt => msr!("cntv_ctl_el0", v),
            Timer::Phys => msr!("cntp_ctl_el0", v),
        }
        isb();
    }
    /// CNTx_CVAL.
    pub fn cval(self) -> u64 {
        match self {
            Timer::Virt => mrs!("cntv_cval_el0"),
            Timer::Phys => mrs!("cntp_cval_el0"),
        }
    }
    /// Writes CNTx_CVAL.
    pub fn set_cval(self, v: u64) {
        match self {
            Timer::Virt => msr!("cntv_cval_el0", v),
            Timer::Phys => msr!("cntp_cval_el0", v),
        }
        isb();
    }
    /// CNTx_TVAL (signed 32 bits).
    pub fn tval(self) -> i32 {
        (match self {
            Timer::Virt => mrs!("cntv_tval_el0"),
            Timer::Phys => mrs!("cntp_tval_el0"),
        }) as u32 as i32
    }
    /// Writes CNTx_TVAL.
    pub fn set_tval(self, v: i32) {
        match self {
            Timer::Virt => msr!("cntv_tval_el0", v as u32 as u64),
            Timer::Phys => msr!("cntp_tval_el0", v as u32 as u64),
        }
        isb();
    }
}

// ------------------------------------------------------------- vectors

/// The registers an exception saved; the handler may change them (ELR
/// above all) before they are restored.
#[repr(C)]
pub struct Frame {
    /// x0..x30.
    pub x: [u64; 31],
    /// ELR_EL1.
    pub elr: u64,
    /// SPSR_EL1.
    pub spsr: u64,
    _pad: u64,
}

global_asm!(
    r#"
    .section .text.arch_vectors, "ax"
    .balign 2048
    .global arch_vectors
arch_vectors:
    .irp kind, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
    .balign 128
    sub     sp, sp, #272
    stp     x0, x1, [sp, #0]
    mov     x0, #\kind
    b       arch_vector_common
    .endr

arch_vector_common:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    str     x30, [sp, #240]
    mrs     x1, elr_el1
    mrs     x2, spsr_el1
    stp     x1, x2, [sp, #248]
    mov     x1, x0
    mov     x0, sp
    bl      arch_exception
    ldp     x1, x2, [sp, #248]
    msr     elr_el1, x1
    msr     spsr_el1, x2
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x19, [sp, #144]
    ldp     x20, x21, [sp, #160]
    ldp     x22, x23, [sp, #176]
    ldp     x24, x25, [sp, #192]
    ldp     x26, x27, [sp, #208]
    ldp     x28, x29, [sp, #224]
    ldr     x30, [sp, #240]
    ldp     x0, x1, [sp, #0]
    add     sp, sp, #272
    eret

    // vCPU 1's entry (PSCI CPU_ON): x0 = context = its stack top.
    .section .text.arch_secondary, "ax"
    .global arch_secondary_entry
arch_secondary_entry:
    msr     daifset, #0xf
    mov     sp, x0
    adrp    x1, arch_vectors
    add     x1, x1, :lo12:arch_vectors
    msr     vbar_el1, x1
    isb
    bl      arch_secondary_main
1:  wfe
    b       1b
    "#
);

unsafe extern "C" {
    static arch_vectors: u8;
    static arch_secondary_entry: u8;
}

/// Installs this guest's vectors on the calling CPU.
pub fn install_vectors() {
    let v = (&raw const arch_vectors) as u64;
    msr!("vbar_el1", v);
    isb();
}

/// Where vCPU 1 starts (PSCI CPU_ON entry point).
pub fn secondary_entry() -> u64 {
    (&raw const arch_secondary_entry) as u64
}

// ------------------------------------------------------- synchronous

/// How a handled synchronous exception returns.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Resume {
    /// Not expected: report and power off.
    Fatal = 0,
    /// Skip the instruction at ELR (UDF, BRK, a faulting load).
    Skip = 1,
    /// Return to x30 (a BLR into nowhere).
    Link = 2,
    /// Return to ELR as it is (SVC: ELR is already past it).
    Stay = 3,
}

/// The last synchronous exception of a CPU.
#[derive(Clone, Copy, Default)]
pub struct Taken {
    /// How many were taken since [`expect`].
    pub count: u32,
    /// ESR_EL1.
    pub esr: u64,
    /// FAR_EL1.
    pub far: u64,
    /// ELR_EL1.
    pub elr: u64,
}

impl Taken {
    /// ESR.EC.
    pub fn ec(&self) -> u64 {
        self.esr >> 26 & 0x3f
    }
    /// ESR.ISS.
    pub fn iss(&self) -> u64 {
        self.esr & 0x1ff_ffff
    }
    /// The fault status code of an abort (ISS[5:0]).
    pub fn fsc(&self) -> u64 {
        self.esr & 0x3f
    }
}

static EXPECT: [Shared<u32>; CPUS] = [const { Shared::new(0) }; CPUS];
static TAKEN: [Shared<Taken>; CPUS] = [const {
    Shared::new(Taken {
        count: 0,
        esr: 0,
        far: 0,
        elr: 0,
    })
}; CPUS];

/// Runs `f`, which is to raise a synchronous exception, with the handler
/// resuming as `resume` says; returns what was taken (count 0: nothing)
/// and what `f` returned.
pub fn trap<R>(resume: Resume, f: impl FnOnce() -> R) -> (Taken, R) {
    let c = cpu();
    TAKEN[c].set(Taken::default());
    EXPECT[c].set(resume as u32);
    let r = f();
    EXPECT[c].set(Resume::Fatal as u32);
    (TAKEN[c].get(), r)
}

fn sync_exception(f: &mut Frame) {
    let c = cpu();
    let esr = mrs!("esr_el1");
    let far = mrs!("far_el1");
    let mut t = TAKEN[c].get();
    t.count += 1;
    t.esr = esr;
    t.far = far;
    t.elr = f.elr;
    TAKEN[c].set(t);
    match EXPECT[c].get() {
        1 => f.elr += 4,
        2 => f.elr = f.x[30],
        3 => {}
        _ => crate::fatal("unexpected synchronous exception", esr, far, f.elr),
    }
}

// ---------------------------------------------------------------- IRQs

/// What the IRQ handler does after acknowledging (per CPU).
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum IrqMode {
    /// Stop the timer if it is one, then EOI (and DIR when EOImode = 1).
    Normal = 0,
    /// Leave it active: no EOI (the check ends it).
    Hold = 1,
    /// EOIR only: with EOImode = 1 it stays active until DIR.
    DropOnly = 2,
    /// EOI first, then clear the RTC's interrupt.
    EoiThenClearRtc = 3,
    /// Clear the RTC's interrupt, then EOI.
    ClearRtcThenEoi = 4,
}

static MODE: [Shared<u32>; CPUS] = [const { Shared::new(0) }; CPUS];
static COUNTS: [[Shared<u32>; COUNTED]; CPUS] =
    [const { [const { Shared::new(0) }; COUNTED] }; CPUS];
static SPURIOUS: [Shared<u32>; CPUS] = [const { Shared::new(0) }; CPUS];
static LAST: [Shared<u32>; CPUS] = [const { Shared::new(1023) }; CPUS];

/// What the handler saw of the last timer interrupt of a CPU.
#[derive(Clone, Copy, Default)]
pub struct TimerIrq {
    /// The timer's counter at handler entry.
    pub entry: u64,
    /// Its CVAL (the expiry).
    pub cval: u64,
    /// Its CTL as the handler found it.
    pub ctl: u64,
}

static TIMER_IRQ: [Shared<TimerIrq>; CPUS] = [const {
    Shared::new(TimerIrq {
        entry: 0,
        cval: 0,
        ctl: 0,
    })
}; CPUS];

/// Sets this CPU's IRQ handling mode.
pub fn set_mode(m: IrqMode) {
    MODE[cpu()].set(m as u32);
}

/// Deliveries of `intid` on CPU `c` so far.
pub fn count(c: usize, intid: u32) -> u32 {
    COUNTS[c % CPUS].get(intid as usize).map_or(0, |s| s.get())
}

/// Spurious acknowledgements (1020..1023) on CPU `c`.
pub fn spurious(c: usize) -> u32 {
    SPURIOUS[c % CPUS].get()
}

/// The last INTID acknowledged on CPU `c`.
pub fn last(c: usize) -> u32 {
    LAST[c % CPUS].get()
}

/// The last timer interrupt of this CPU.
pub fn timer_irq() -> TimerIrq {
    TIMER_IRQ[cpu()].get()
}

fn irq(_f: &mut Frame) {
    // The counters first: the timer latency is measured to here.
    let (v, p) = (vcount(), pcount());
    let c = cpu();
    let intid = crate::gic::ack();
    if intid >= 1020 {
        SPURIOUS[c].bump();
        return;
    }
    LAST[c].set(intid);
    if let Some(n) = COUNTS[c].get(intid as usize) {
        n.bump();
    }
    let mode = MODE[c].get();
    for t in [Timer::Virt, Timer::Phys] {
        if intid == t.intid() && mode == IrqMode::Normal as u32 {
            TIMER_IRQ[c].set(TimerIrq {
                entry: if t == Timer::Virt { v } else { p },
                cval: t.cval(),
                ctl: t.ctl(),
            });
            t.set_ctl(0);
        }
    }
    match mode {
        0 => crate::gic::eoi(intid),
        1 => {}
        2 => crate::gic::eoir(intid),
        3 => {
            crate::gic::eoi(intid);
            isb();
            crate::rtc::clear();
        }
        _ => {
            crate::rtc::clear();
            crate::gic::eoi(intid);
        }
    }
}

/// Every exception of this guest's vectors. `kind`: the vector (4 =
/// synchronous, 5 = IRQ at EL1 with SP_EL1; others are fatal).
#[unsafe(no_mangle)]
extern "C" fn arch_exception(f: &mut Frame, kind: u64) {
    match kind {
        4 => sync_exception(f),
        5 => irq(f),
        _ => crate::fatal("unexpected exception vector", kind, mrs!("esr_el1"), f.elr),
    }
}
