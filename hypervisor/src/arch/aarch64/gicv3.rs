//! The GICv3 CPU interfaces as seen from EL2: the physical one (ICC_*) that
//! the hypervisor acknowledges interrupts on, and the virtual one's control
//! and list registers (ICH_*) through which it injects into the guest.

use super::sysreg::{isb, read_sysreg, write_sysreg};

/// Enables system-register access to the physical CPU interface and lets
/// EL1 use its (virtual) one; priority drop and deactivation are split
/// (EOImode = 1) so that guests deactivate hardware interrupts themselves.
pub fn init_cpu_interface() {
    // ICC_SRE_EL2: SRE | DFB | DIB | Enable (EL1 may set its own SRE).
    write_sysreg!("icc_sre_el2", 0b1111);
    isb();
    write_sysreg!("icc_pmr_el1", 0xff);
    write_sysreg!("icc_bpr1_el1", 0);
    write_sysreg!("icc_ctlr_el1", 1 << 1); // EOImode
    write_sysreg!("icc_igrpen1_el1", 1);
    isb();
}

/// Acknowledges the highest-priority pending group-1 interrupt; 1020-1023
/// mean none.
pub fn ack() -> u32 {
    read_sysreg!("icc_iar1_el1") as u32
}

/// Drops the running priority of `intid` (it stays active).
pub fn priority_drop(intid: u32) {
    write_sysreg!("icc_eoir1_el1", intid as u64);
}

/// Deactivates `intid`.
pub fn deactivate(intid: u32) {
    write_sysreg!("icc_dir_el1", intid as u64);
}

/// Sends physical SGI `sgi` to the CPU with affinity `mpidr`.
pub fn send_sgi(sgi: u32, mpidr: u64) {
    let aff0 = mpidr & 0xff;
    let aff1 = (mpidr >> 8) & 0xff;
    let aff2 = (mpidr >> 16) & 0xff;
    let aff3 = (mpidr >> 32) & 0xff;
    let rs = aff0 / 16;
    let target = 1u64 << (aff0 % 16);
    let v = target | aff1 << 16 | (sgi as u64 & 0xf) << 24 | aff2 << 32 | rs << 44 | aff3 << 48;
    aarch64_cpu::asm::barrier::dsb(aarch64_cpu::asm::barrier::ISHST);
    write_sysreg!("icc_sgi1r_el1", v);
    isb();
}

/// Number of list registers (ICH_VTR_EL2.ListRegs + 1).
pub fn list_register_count() -> usize {
    ((read_sysreg!("ich_vtr_el2") & 0x1f) + 1) as usize
}

/// Enables the virtual CPU interface with `ich_hcr` (En and trap bits) and
/// resets the guest's virtual interface state.
pub fn enable_virtual_interface(ich_hcr: u64) {
    write_sysreg!("ich_vmcr_el2", 0);
    write_sysreg!("ich_ap1r0_el2", 0);
    for i in 0..list_register_count() {
        write_lr(i, 0);
    }
    write_sysreg!("ich_hcr_el2", ich_hcr);
    isb();
}

/// Sets ICH_HCR_EL2.
pub fn set_hcr(v: u64) {
    write_sysreg!("ich_hcr_el2", v);
}

/// Reads ICH_HCR_EL2.
pub fn hcr() -> u64 {
    read_sysreg!("ich_hcr_el2")
}

/// Bitmap of empty list registers (ICH_ELRSR_EL2).
pub fn empty_lrs() -> u64 {
    read_sysreg!("ich_elrsr_el2")
}

/// ICH_MISR_EL2: why the maintenance interrupt fired.
pub fn maintenance_status() -> u64 {
    read_sysreg!("ich_misr_el2")
}

/// Reads list register `n`.
pub fn read_lr(n: usize) -> u64 {
    match n {
        0 => read_sysreg!("ich_lr0_el2"),
        1 => read_sysreg!("ich_lr1_el2"),
        2 => read_sysreg!("ich_lr2_el2"),
        3 => read_sysreg!("ich_lr3_el2"),
        4 => read_sysreg!("ich_lr4_el2"),
        5 => read_sysreg!("ich_lr5_el2"),
        6 => read_sysreg!("ich_lr6_el2"),
        7 => read_sysreg!("ich_lr7_el2"),
        8 => read_sysreg!("ich_lr8_el2"),
        9 => read_sysreg!("ich_lr9_el2"),
        10 => read_sysreg!("ich_lr10_el2"),
        11 => read_sysreg!("ich_lr11_el2"),
        12 => read_sysreg!("ich_lr12_el2"),
        13 => read_sysreg!("ich_lr13_el2"),
        14 => read_sysreg!("ich_lr14_el2"),
        _ => read_sysreg!("ich_lr15_el2"),
    }
}

/// Writes list register `n`.
pub fn write_lr(n: usize, v: u64) {
    match n {
        0 => write_sysreg!("ich_lr0_el2", v),
        1 => write_sysreg!("ich_lr1_el2", v),
        2 => write_sysreg!("ich_lr2_el2", v),
        3 => write_sysreg!("ich_lr3_el2", v),
        4 => write_sysreg!("ich_lr4_el2", v),
        5 => write_sysreg!("ich_lr5_el2", v),
        6 => write_sysreg!("ich_lr6_el2", v),
        7 => write_sysreg!("ich_lr7_el2", v),
        8 => write_sysreg!("ich_lr8_el2", v),
        9 => write_sysreg!("ich_lr9_el2", v),
        10 => write_sysreg!("ich_lr10_el2", v),
        11 => write_sysreg!("ich_lr11_el2", v),
        12 => write_sysreg!("ich_lr12_el2", v),
        13 => write_sysreg!("ich_lr13_el2", v),
        14 => write_sysreg!("ich_lr14_el2", v),
        _ => write_sysreg!("ich_lr15_el2", v),
    }
}
