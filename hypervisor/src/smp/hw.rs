//! Starting CPUs on the hardware: a stack and a boot block for each, and
//! PSCI `CPU_ON` at the secondary entry.

use super::{CpuStarter, ONLINE, boot_index, start_secondaries};
use crate::arch::aarch64::entry::{self, SecondaryBoot};
use crate::arch::aarch64::mmu::MmuConfig;
use crate::arch::aarch64::{cpu, psci};
use crate::arch::{Arch, Cpu};
use crate::fdt::{Conduit, HostDt};
use crate::mm::el2map;
use alloc::boxed::Box;
use alloc::vec;

/// Stack size of each secondary CPU.
const STACK_SIZE: usize = 64 * 1024;

/// Records this CPU's index (its place in the DT), reports it online and
/// starts every other CPU of the DT ([`start_secondaries`]) with PSCI
/// through `conduit` (none: they stay off).
pub fn bring_up(hw: &HostDt, conduit: Option<Conduit>) {
    let me = Cpu::mpidr();
    let index = boot_index(&hw.cpus, me);
    cpu::set_cpu_index(index);
    ONLINE.report(index, me);
    let (Some(conduit), Some(mmu)) = (conduit, el2map::mmu_config()) else {
        return;
    };
    start_secondaries(&hw.cpus, me, &mut PsciStarter { conduit, mmu }, &ONLINE);
}

/// Starts CPUs with PSCI `CPU_ON`, on the boot CPU's EL2 map.
struct PsciStarter {
    conduit: Conduit,
    mmu: MmuConfig,
}

impl CpuStarter for PsciStarter {
    type Error = psci::Error;

    fn start(&mut self, index: usize, mpidr: u64) -> Result<(), psci::Error> {
        let stack = Box::leak(vec![0u8; STACK_SIZE].into_boxed_slice());
        let boot = Box::leak(Box::new(SecondaryBoot {
            stack_top: stack.as_ptr() as u64 + STACK_SIZE as u64,
            ttbr0: self.mmu.ttbr0,
            tcr: self.mmu.tcr,
            mair: self.mmu.mair,
            sctlr: self.mmu.sctlr,
            cpu_index: index as u64,
            mpidr,
        }));
        let boot = boot as *const SecondaryBoot as u64;
        // The CPU reads this with its caches off.
        Cpu::clean_to_poc(boot, core::mem::size_of::<SecondaryBoot>());
        psci::cpu_on(self.conduit, mpidr, entry::secondary_entry_address(), boot)
    }
}
