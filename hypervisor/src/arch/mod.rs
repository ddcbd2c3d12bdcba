//! Architecture support: the one home of assembly and system registers.
//!
//! Everything above this module reaches the CPU through the [`Arch`] trait,
//! implemented by [`Cpu`]: on the bare-metal target that is
//! `aarch64::Hw`, the real registers; on the host it is
//! [`fake::Fake`], a recording fake with per-thread state, so the vCPU
//! logic, the GIC and SMMU drivers and the boot planning run in
//! `cargo test`. (The same split as google/arm-gic's `sysreg` and
//! `sysreg/fake`, and Hafnium's `arch/fake`.)
//!
//! Only the operations the layers above need are here; what only the boot
//! and the trap entry use (MMU enable, the world switch, parking) stays in
//! `aarch64` and is called from the image's entry glue.

pub mod exit;
pub mod frame;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod aarch64;
#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
pub mod fake;

/// The CPU the code runs on: the real one on the target.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub type Cpu = aarch64::hw::Hw;
/// The CPU the code runs on: the recording fake on the host.
#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
pub type Cpu = fake::Fake;

use frame::TrapFrame;

/// How PSCI calls reach the firmware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    /// `SMC` to EL3.
    Smc,
    /// `HVC` to EL2 (only meaningful when something runs above us).
    Hvc,
}

/// MAIR_EL2 of the hypervisor's own map: Attr0 = Device-nGnRE (0x04),
/// Attr1 = Normal write-back read/write-allocate (0xff). The EL2 page-table
/// format (`mm::pagetable::Stage1El2`) encodes its attribute indices for it.
pub const EL2_MAIR: u64 = 0xff << 8 | 0x04;

/// The operations of the CPU (and its GIC CPU interface) that the layers
/// above `arch` use. All are associated functions: there is one CPU, the
/// one running the code.
pub trait Arch {
    // --- identity and time -------------------------------------------------

    /// This CPU's logical index (0 for the boot CPU).
    fn cpu_index() -> usize;
    /// This CPU's affinity (MPIDR_EL1 Aff3..Aff0).
    fn mpidr() -> u64;
    /// Microseconds since the system counter started.
    fn uptime_us() -> u64;
    /// The raw system counter (for profiling).
    fn counter_ticks() -> u64;
    /// The system counter frequency in Hz.
    fn counter_frequency() -> u64;
    /// Waits for an interrupt or event.
    fn wait_for_interrupt();
    /// The CPU's physical address size field (ID_AA64MMFR0_EL1.PARange).
    fn pa_bits_field() -> u64;
    /// Whether the CPU has 16-bit VMIDs.
    fn has_vmid16() -> bool;

    // --- physical GIC CPU interface ---------------------------------------

    /// Sets up this CPU's physical GIC CPU interface (system registers,
    /// split priority drop and deactivation).
    fn gic_init_cpu_interface();
    /// Acknowledges the highest-priority pending interrupt (1020..=1023: none).
    fn gic_ack() -> u32;
    /// Drops the running priority of `intid` (it stays active).
    fn gic_priority_drop(intid: u32);
    /// Deactivates `intid`.
    fn gic_deactivate(intid: u32);
    /// Sends physical SGI `sgi` to the CPU with affinity `mpidr`.
    fn gic_send_sgi(sgi: u32, mpidr: u64);

    // --- virtual GIC CPU interface (ICH_*) ---------------------------------

    /// Number of list registers.
    fn lr_count() -> usize;
    /// Reads list register `n`.
    fn read_lr(n: usize) -> u64;
    /// Writes list register `n`.
    fn write_lr(n: usize, value: u64);
    /// Bitmap of empty list registers (ICH_ELRSR_EL2).
    fn empty_lrs() -> u64;
    /// Writes ICH_HCR_EL2.
    fn set_ich_hcr(value: u64);
    /// Reads ICH_HCR_EL2.
    fn ich_hcr() -> u64;
    /// Raises (or withdraws) a virtual IRQ through HCR_EL2.VI: for a
    /// machine whose GIC does not wire its virtual IRQ output to the CPUs
    /// (see `vm::irq::set_virq_via_hcr`).
    fn set_virtual_irq_line(pending: bool);
    /// Whether virtual IRQs are also signalled through HCR_EL2.VI (one
    /// setting for every CPU, made at boot: `partita.virq=hcr`).
    fn virq_via_hcr() -> bool;
    /// Sets [`Arch::virq_via_hcr`].
    fn set_virq_via_hcr(on: bool);
    /// Resets the virtual CPU interface (VMCR, active priorities, list
    /// registers) and enables it with `ich_hcr`.
    fn enable_virtual_interface(ich_hcr: u64);

    // --- running a guest ---------------------------------------------------

    /// VTCR_EL2 for a 4 KiB-granule stage 2 of `ipa_bits` starting at
    /// `start_level`.
    fn vtcr(ipa_bits: u32, start_level: usize) -> u64;
    /// Makes this CPU run guest code with the given stage 2 and vCPU
    /// identity, and drops the VMID's stale TLB entries.
    fn configure_guest(vttbr: u64, vtcr: u64, vcpu: usize);
    /// Makes the guest take a synchronous exception to EL1 with `esr` and
    /// `far` at the instruction in `frame` (frame moved to the vector).
    fn inject_sync_exception(frame: &mut TrapFrame, esr: u64, far: u64);
    /// Makes a virtual SError pending for the guest.
    fn inject_virtual_serror();
    /// Makes `[pa, pa + len)` (just written by the hypervisor) visible to a
    /// guest that starts with its caches and MMU off.
    fn publish_guest_image(pa: u64, len: usize);

    // --- caches and barriers -----------------------------------------------

    /// Cleans `[addr, addr + len)` to the point of coherency.
    fn clean_to_poc(addr: u64, len: usize);
    /// Cleans and invalidates `[addr, addr + len)` to the point of coherency.
    fn clean_invalidate_to_poc(addr: u64, len: usize);
    /// Orders earlier stores before later device writes (DSB ST).
    fn write_barrier();
    /// Orders a device read before later reads (DSB LD).
    fn read_barrier();
    /// Full barrier in the inner-shareable domain (DMB ISH).
    fn dmb_ish();
    /// Load barrier in the inner-shareable domain (DMB ISHLD).
    fn dmb_ishld();

    // --- the hypervisor's own (EL2 stage-1) map ---------------------------

    /// Makes new entries of the EL2 page table visible to the table walker
    /// (entries that were invalid before need no TLB invalidation).
    fn el2_publish_new_entries();
    /// What this CPU's EL2 translation allows at `va`, as the MMU reports
    /// it (AT S1E2R, AT S1E2W).
    fn el2_access(va: u64) -> El2Access;
    /// Whether SCTLR_EL2.WXN is set: no writable mapping is executable.
    fn el2_wxn() -> bool;
}

/// Input address bits of the hypervisor's EL2 map (T0SZ = 16, walk from
/// level 0).
pub const EL2_VA_BITS: u32 = 48;

/// What the EL2 stage-1 translation allows at an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct El2Access {
    /// A read translates (AT S1E2R succeeds).
    pub read: bool,
    /// A write translates (AT S1E2W succeeds).
    pub write: bool,
}

/// The physical address size in bits of a PARange / OAS encoding.
pub fn pa_range_bits(field: u64) -> u32 {
    match field {
        0 => 32,
        1 => 36,
        2 => 40,
        3 => 42,
        4 => 44,
        5 => 48,
        _ => 52,
    }
}
