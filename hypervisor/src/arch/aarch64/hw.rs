//! [`Arch`] on the real CPU: each operation forwards to the module of this
//! directory that owns its registers.

use super::{cache, cpu, gicv3, mmu, virt as guest};
use crate::arch::frame::TrapFrame;
use crate::arch::{Arch, El2Access};

/// The CPU the code runs on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hw;

impl Arch for Hw {
    #[inline(always)]
    fn cpu_index() -> usize {
        cpu::cpu_index()
    }
    fn mpidr() -> u64 {
        cpu::mpidr()
    }
    fn uptime_us() -> u64 {
        cpu::uptime_us()
    }
    #[inline(always)]
    fn counter_ticks() -> u64 {
        cpu::counter_ticks()
    }
    fn counter_frequency() -> u64 {
        cpu::counter_frequency()
    }
    fn wait_for_interrupt() {
        cpu::wait_for_interrupt()
    }
    fn pa_bits_field() -> u64 {
        cpu::pa_bits_field()
    }
    fn has_vmid16() -> bool {
        guest::has_vmid16()
    }

    fn gic_init_cpu_interface() {
        gicv3::init_cpu_interface()
    }
    #[inline(always)]
    fn gic_ack() -> u32 {
        gicv3::ack()
    }
    #[inline(always)]
    fn gic_priority_drop(intid: u32) {
        gicv3::priority_drop(intid)
    }
    #[inline(always)]
    fn gic_deactivate(intid: u32) {
        gicv3::deactivate(intid)
    }
    fn gic_send_sgi(sgi: u32, mpidr: u64) {
        gicv3::send_sgi(sgi, mpidr)
    }

    #[inline(always)]
    fn lr_count() -> usize {
        gicv3::list_register_count()
    }
    #[inline(always)]
    fn read_lr(n: usize) -> u64 {
        gicv3::read_lr(n)
    }
    #[inline(always)]
    fn write_lr(n: usize, value: u64) {
        gicv3::write_lr(n, value)
    }
    #[inline(always)]
    fn empty_lrs() -> u64 {
        gicv3::empty_lrs()
    }
    #[inline(always)]
    fn set_ich_hcr(value: u64) {
        gicv3::set_hcr(value)
    }
    fn ich_hcr() -> u64 {
        gicv3::hcr()
    }
    fn set_virtual_irq_line(pending: bool) {
        guest::set_virtual_irq_line(pending)
    }
    fn virq_via_hcr() -> bool {
        guest::VIRQ_VIA_HCR.load(core::sync::atomic::Ordering::Relaxed)
    }
    fn set_virq_via_hcr(on: bool) {
        guest::VIRQ_VIA_HCR.store(on, core::sync::atomic::Ordering::Relaxed)
    }
    fn enable_virtual_interface(ich_hcr: u64) {
        gicv3::enable_virtual_interface(ich_hcr)
    }

    fn vtcr(ipa_bits: u32, start_level: usize) -> u64 {
        guest::vtcr(ipa_bits, start_level)
    }
    fn configure_guest(vttbr: u64, vtcr: u64, vcpu: usize) {
        guest::configure(vttbr, vtcr, vcpu)
    }
    fn inject_sync_exception(frame: &mut TrapFrame, esr: u64, far: u64) {
        guest::inject_sync_exception(frame, esr, far)
    }
    fn inject_virtual_serror() {
        guest::inject_virtual_serror()
    }
    fn publish_guest_image(pa: u64, len: usize) {
        guest::publish_guest_image(pa as usize, len)
    }

    fn clean_to_poc(addr: u64, len: usize) {
        cache::clean_to_poc(addr as usize, len)
    }
    fn clean_invalidate_to_poc(addr: u64, len: usize) {
        cache::clean_invalidate_to_poc(addr as usize, len)
    }
    #[inline(always)]
    fn write_barrier() {
        cache::write_barrier()
    }
    #[inline(always)]
    fn read_barrier() {
        cache::read_barrier()
    }
    #[inline(always)]
    fn dmb_ish() {
        cache::dmb_ish()
    }
    #[inline(always)]
    fn dmb_ishld() {
        cache::dmb_ishld()
    }

    fn el2_publish_new_entries() {
        mmu::publish_new_entries()
    }
    fn el2_access(va: u64) -> El2Access {
        mmu::probe(va)
    }
    fn el2_wxn() -> bool {
        mmu::wxn_enabled()
    }
}
