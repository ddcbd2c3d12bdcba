//! The machine: every guest, the physical GIC and the SMMUs as the vCPUs
//! use them, and what each physical CPU runs. Built once at boot
//! ([`Machine::new`]); everything a CPU does for its guest goes through
//! it: the idle loop ([`Machine::idle`]), guest entry, and every exit
//! ([`Machine::handle_exit`], in `exits.rs`).
//!
//! # Locks
//! Taken in this order, never the other way round:
//! 1. a device's own lock (a virtio-iommu transport), or a guest's
//!    `vgic`;
//! 2. a vCPU slot's `spis`, or a guest's `stage2`, then its table for
//!    unattached endpoints (`GuestDma::unattached`);
//! 3. the SMMU driver's locks (inside [`DmaControl`]).
//!
//! The vGIC lock and a device lock are never held together: an emulated
//! device's interrupt is raised after its lock is released.

use super::dma::DmaControl;
use super::faults::FaultReport;
use super::guest::Guest;
use super::ram::GuestRam;
use super::vcpu::VcpuSlot;
use crate::arch::{Arch, Cpu};
use crate::devices::AccessCtx;
use crate::gic::KICK_SGI;
use crate::gic::PhysGic;
use crate::vgic::hw::{GicPort, LocalQueue, RegCtx};
use crate::vgic::pending::PendingQueue;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Most physical CPUs the hypervisor handles (a power of two).
pub const MAX_CPUS: usize = 64;
const _: () = assert!(MAX_CPUS.is_power_of_two());

/// Data only its own physical CPU touches, at EL2 with interrupts masked:
/// no lock needed on the exit path.
pub(super) struct CpuLocal<T>(UnsafeCell<T>);

// SAFETY: each element is accessed only by the CPU whose index it has
// (`Machine::local_queue` indexes by the running CPU), never concurrently.
unsafe impl<T> Sync for CpuLocal<T> {}

/// The vCPU a physical CPU runs: its guest (a pointer into the machine's
/// own guest list, so that the exit path finds it with one load), its
/// index there, its slot (a pointer into the guest's vCPU list: the
/// return path reads its mailboxes without indexing) and the context of
/// its device accesses, made once (the exit passes a pointer to it).
#[derive(Clone, Copy)]
pub(super) struct Assigned {
    guest: NonNull<Guest>,
    vcpu: usize,
    slot: NonNull<VcpuSlot>,
    /// Its guest's RAM and the machine's [`CpuPort`]: references into the
    /// machine's heap, valid as long as the machine (handed out only
    /// borrowed from it, by [`Machine::current_here`]).
    ctx: AccessCtx<'static>,
}

// SAFETY: `guest` points into `Machine::guests`, whose buffer is never
// resized or freed while the machine exists (the list is fixed at
// `Machine::new`), and `slot` into that guest's `vcpus`, fixed when it was
// built; `Guest` and `VcpuSlot` are `Sync`, so sharing the pointers across
// CPUs shares only `&Guest` and `&VcpuSlot`.
unsafe impl Send for Assigned {}
// SAFETY: as for `Send`.
unsafe impl Sync for Assigned {}

/// The GIC side of the machine as a device access sees it: the physical
/// GIC, and the queue of virtual interrupts of the CPU running the code
/// and the SGIs raised for its vCPU. What [`Machine`]'s own [`GicPort`]
/// answers (it is that answer), at an address that does not move with
/// the machine, so that each vCPU's [`AccessCtx`] is made once.
pub(super) struct CpuPort {
    /// The machine's CPU slots (its heap: they do not move).
    cpus: NonNull<[CpuSlot; MAX_CPUS]>,
    gic: &'static (dyn PhysGic + Sync),
}

// SAFETY: `cpus` points at the machine's slots, which are `Sync` (each
// slot's queue is only touched by its own CPU, see `CpuLocal`) and live as
// long as the machine that owns the port; the GIC is `Sync`.
unsafe impl Send for CpuPort {}
// SAFETY: as for `Send`.
unsafe impl Sync for CpuPort {}

impl CpuPort {
    /// This CPU's slot.
    #[inline(always)]
    fn here(&self) -> &CpuSlot {
        // SAFETY: the slots outlive the port (both belong to the machine,
        // the slots' box is never replaced); MAX_CPUS is a power of two.
        unsafe { &self.cpus.as_ref()[Cpu::cpu_index() & (MAX_CPUS - 1)] }
    }
}

impl LocalQueue for CpuPort {
    fn with_queue(&self, f: &mut dyn FnMut(&mut PendingQueue)) {
        // SAFETY: only this CPU uses its slot's queue; `f` gets the only
        // reference to it while it runs (no caller of `with_queue` holds
        // one from `Machine::local_queue` or `Here::queue`).
        f(unsafe { &mut *self.here().queue.0.get() })
    }

    fn raised_sgis(&self) -> u32 {
        self.here().assigned.map_or(0, |a| {
            // SAFETY: as in `Machine::current_here`.
            unsafe { a.slot.as_ref() }.sgis().load(Ordering::Acquire)
        })
    }
}

impl GicPort for CpuPort {
    fn phys(&self) -> &dyn PhysGic {
        self.gic
    }
}

/// The CPU slots and the [`CpuPort`] over them, in one heap block that
/// never moves, owned through a raw pointer (not a `Box`, which every move
/// of the machine would assert unique, invalidating the pointers into it
/// that `Assigned::ctx` and the port keep) and freed with the machine.
pub(super) struct CpuSlots(NonNull<SlotsBlock>);

struct SlotsBlock {
    cpus: [CpuSlot; MAX_CPUS],
    port: CpuPort,
}

// SAFETY: the block is owned by `CpuSlots` alone (freed in its `drop`);
// its slots and port are `Send` and `Sync` (see `CpuLocal`, `Assigned`,
// `CpuPort`).
unsafe impl Send for CpuSlots {}
// SAFETY: as for `Send`.
unsafe impl Sync for CpuSlots {}

impl CpuSlots {
    /// Every slot idle, and the port over them.
    fn new(gic: &'static (dyn PhysGic + Sync)) -> Self {
        let mut block = Box::<SlotsBlock>::new_uninit();
        let p = block.as_mut_ptr();
        // SAFETY: `p` is the block's (uninitialised, exclusively owned)
        // memory: each slot and the port are written once, in place, so
        // the tens of KiB never pass through the stack.
        unsafe {
            let cpus = &raw mut (*p).cpus;
            for i in 0..MAX_CPUS {
                (&raw mut (*cpus)[i]).write(CpuSlot {
                    assigned: None,
                    queue: CpuLocal(UnsafeCell::new(PendingQueue::new())),
                });
            }
            let port = CpuPort {
                // SAFETY: `cpus` is inside the block, not null.
                cpus: NonNull::new_unchecked(cpus),
                gic,
            };
            (&raw mut (*p).port).write(port);
        }
        // SAFETY: every field was initialised above.
        let block = unsafe { block.assume_init() };
        CpuSlots(NonNull::from(Box::leak(block)))
    }

    /// The port over the slots.
    fn port(&self) -> &CpuPort {
        // SAFETY: the block lives until `drop`; only shared references to
        // it are handed out after `new`.
        unsafe { &self.0.as_ref().port }
    }

    /// The block, before any shared reference to it was handed out.
    fn block_ptr(&mut self) -> *mut SlotsBlock {
        self.0.as_ptr()
    }
}

impl core::ops::Deref for CpuSlots {
    type Target = [CpuSlot; MAX_CPUS];
    fn deref(&self) -> &Self::Target {
        // SAFETY: as in `port`.
        unsafe { &self.0.as_ref().cpus }
    }
}

impl Drop for CpuSlots {
    fn drop(&mut self) {
        // SAFETY: the block came from `Box::leak` in `new` and is freed
        // once, here; the machine that owned it hands out no reference
        // into it any more.
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

/// What one physical CPU runs.
pub(super) struct CpuSlot {
    /// The vCPU it runs, if any.
    pub assigned: Option<Assigned>,
    /// Virtual interrupts waiting for a list register.
    pub queue: CpuLocal<PendingQueue>,
}

/// The slot of the CPU running the code and of the vCPU it runs, as
/// [`Machine::current_here`] found them: used within the exit that found
/// them, on that CPU.
#[derive(Clone, Copy)]
pub(super) struct Here<'a> {
    cpu: &'a CpuSlot,
    /// The vCPU's slot (`vcpus[v]` of its guest).
    pub vcpu: &'a VcpuSlot,
    /// The context of the vCPU's device accesses.
    pub ctx: &'a AccessCtx<'a>,
}

impl<'a> Here<'a> {
    /// This CPU's queue of virtual interrupts waiting for a list register
    /// ([`Machine::local_queue`] without reading the CPU index again).
    #[allow(clippy::mut_from_ref)]
    #[inline(always)]
    pub(super) fn queue(self) -> &'a mut PendingQueue {
        // SAFETY: only this CPU uses its slot's queue (a `Here` is this
        // CPU's slot); EL2 runs with interrupts masked and no caller keeps
        // the reference across another call to `queue` or `local_queue`.
        unsafe { &mut *self.cpu.queue.0.get() }
    }
}

/// The SMMU and hypervisor-interrupt services the machine is given.
pub type HypIrqHandler = fn(u32) -> bool;

/// Every guest and what they run on.
pub struct Machine {
    pub(super) guests: Vec<Guest>,
    /// Indexed by logical CPU index modulo [`MAX_CPUS`], with the GIC side
    /// of device accesses that their `AccessCtx`s point at. On the heap:
    /// with their interrupt queues the slots are tens of KiB, too much for
    /// a CPU's stack.
    pub(super) cpus: CpuSlots,
    pub(super) gic: &'static (dyn PhysGic + Sync),
    pub(super) smmus: &'static dyn DmaControl,
    /// Runs the hypervisor's own handler of a physical interrupt (SMMU
    /// events); false when the hypervisor does not own it.
    pub(super) hyp_irq: HypIrqHandler,
    /// Guests still running.
    pub(super) running: AtomicUsize,
    /// Set when the last guest stopped: the machine should power off.
    pub(super) all_off: AtomicBool,
    /// The console's escape-key parser (see `console.rs`).
    pub(super) keys: Box<spin::Mutex<crate::console::keys::Keys>>,
}

/// The machine is built on a CPU's stack (64 KiB) before it moves to its
/// static: large parts belong on the heap.
const _: () = assert!(core::mem::size_of::<Machine>() <= 512);

impl Machine {
    /// The machine running `guests`: each vCPU is assigned to its physical
    /// CPU and each guest's boot vCPU is asked to start (the CPUs start
    /// them from their idle loop).
    pub fn new(
        guests: Vec<Guest>,
        gic: &'static (dyn PhysGic + Sync),
        smmus: &'static dyn DmaControl,
        hyp_irq: HypIrqHandler,
    ) -> Self {
        let mut cpus = CpuSlots::new(gic);
        let block = cpus.block_ptr();
        // SAFETY: the port is in the slots' block, which the machine owns
        // and never moves: the reference stays valid as long as the
        // machine, and is only handed out borrowed from it (in `Here`).
        let gic_port: &'static CpuPort = unsafe { &(*block).port };
        for g in guests.iter() {
            let ram: *const GuestRam = &raw const g.ram;
            // SAFETY: `g` is in the guest list's buffer, which moves into
            // the machine and is never resized or freed while it lives: as
            // for `Assigned::guest`.
            let mem: &'static GuestRam = unsafe { &*ram };
            for (v, slot) in g.vcpus.iter().enumerate() {
                if slot.pcpu < MAX_CPUS {
                    let assigned = Assigned {
                        guest: NonNull::from(g),
                        vcpu: v,
                        slot: NonNull::from(slot),
                        ctx: AccessCtx {
                            vcpu: v,
                            mem,
                            gic: gic_port,
                        },
                    };
                    // SAFETY: in bounds; the slots are not yet shared (the
                    // port's pointer is raw, and only the port field is
                    // borrowed).
                    unsafe { (*block).cpus[slot.pcpu].assigned = Some(assigned) };
                }
            }
            g.request_boot();
        }
        let m = Machine {
            running: AtomicUsize::new(guests.len()),
            guests,
            cpus,
            gic,
            smmus,
            hyp_irq,
            all_off: AtomicBool::new(false),
            keys: Box::new(spin::Mutex::new(crate::console::keys::Keys::new())),
        };
        m.init_consoles();
        m
    }

    /// The guests.
    pub fn guests(&self) -> &[Guest] {
        &self.guests
    }

    /// The guest with owner identity `index` (its bundle position).
    pub fn guest_by_owner(&self, index: usize) -> Option<&Guest> {
        self.guests.iter().find(|g| g.index == index)
    }

    /// Guests still running.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    /// True once the last guest stopped: the caller powers the machine off.
    pub fn all_off(&self) -> bool {
        self.all_off.load(Ordering::Acquire)
    }

    /// The physical CPUs that run a vCPU.
    pub fn busy_cpus(&self) -> impl Iterator<Item = usize> + '_ {
        self.cpus
            .iter()
            .enumerate()
            .filter(|(_, c)| c.assigned.is_some())
            .map(|(i, _)| i)
    }

    /// Wakes every CPU with a vCPU other than this one, so that it starts
    /// its vCPU (after [`Machine::new`]).
    pub fn start(&self) {
        for pcpu in self.busy_cpus() {
            self.kick(pcpu);
        }
    }

    /// The guest and vCPU this physical CPU runs, if any.
    #[inline]
    pub(super) fn current(&self) -> Option<(&Guest, usize)> {
        let a = self.here().assigned?;
        // SAFETY: `Assigned` points into `self.guests`, fixed since `new`
        // and alive as long as `self`.
        Some((unsafe { a.guest.as_ref() }, a.vcpu))
    }

    /// This CPU's slot, the guest and the vCPU it runs, if any (the exit
    /// path: one read of the CPU index for the exit and its return).
    #[inline(always)]
    pub(super) fn current_here(&self) -> Option<(Here<'_>, &Guest, usize)> {
        let here = self.here();
        let a = here.assigned.as_ref()?;
        // SAFETY: as in `current`; `slot` points into that guest's vCPU
        // list, fixed since it was built.
        let vcpu = unsafe { a.slot.as_ref() };
        // SAFETY: as in `current`. `a.ctx` refers to the guest's RAM and
        // the machine's port, alive as long as `self`.
        Some((
            Here {
                cpu: here,
                vcpu,
                ctx: &a.ctx,
            },
            unsafe { a.guest.as_ref() },
            a.vcpu,
        ))
    }

    /// This CPU's slot.
    #[inline(always)]
    fn here(&self) -> &CpuSlot {
        // MAX_CPUS is a power of two: a mask, no bounds check or division.
        &self.cpus[Cpu::cpu_index() & (MAX_CPUS - 1)]
    }

    /// This CPU's queue of virtual interrupts waiting for a list register.
    #[allow(clippy::mut_from_ref)]
    pub(super) fn local_queue(&self) -> &mut PendingQueue {
        // SAFETY: only this CPU uses its slot's queue; EL2 runs with
        // interrupts masked and no caller keeps the reference across
        // another call to `local_queue` or `Here::queue`.
        unsafe { &mut *self.here().queue.0.get() }
    }

    /// What an access to the vGIC's registers by vCPU `v`, running here,
    /// reaches: the physical GIC and this CPU's queue.
    pub(super) fn gic_regs(&self, v: usize) -> RegCtx<'_> {
        RegCtx {
            phys: self.gic,
            vcpu: v,
            queue: self,
        }
    }

    /// Wakes physical CPU `pcpu` so that it looks at its requests.
    pub(super) fn kick(&self, pcpu: usize) {
        if pcpu != Cpu::cpu_index() {
            Cpu::gic_send_sgi(KICK_SGI, self.gic.cpu_mpidr(pcpu));
        }
    }

    /// A DMA fault the SMMU reported on a stream of guest `owner`
    /// (`repeats` times), from interrupt context on any CPU: counted, and
    /// with `endpoint` (the stream's requester ID) queued for the guest's
    /// virtio-iommu, whose vCPU is kicked to deliver it
    /// ([`Machine::deliver_faults`]). No lock of the guest's devices is
    /// taken here. Returns whether it was queued for the guest.
    pub fn dma_fault(
        &self,
        owner: usize,
        endpoint: Option<u32>,
        iova: u64,
        read: bool,
        repeats: usize,
    ) -> bool {
        let Some(g) = self.guest_by_owner(owner) else {
            return false;
        };
        g.count_dma_faults(repeats as u64);
        let (true, Some(endpoint)) = (g.has_viommu(), endpoint) else {
            return false;
        };
        if !g.faults.push(FaultReport {
            endpoint,
            iova,
            read,
        }) {
            return false;
        }
        if let Some(v) = g
            .vcpus
            .iter()
            .find(|v| v.power() == super::psci::VcpuPower::On)
        {
            self.kick(v.pcpu);
        }
        true
    }

    /// Hands the DMA faults queued for guest `g` to its virtio-iommu:
    /// called by a vCPU of `g`, which may take the device's lock.
    pub(super) fn deliver_faults(&self, g: &Guest) {
        if !g.has_viommu() {
            return;
        }
        while let Some(f) = g.faults.pop() {
            let effect = match (&g.viommu, &g.viommu_pci) {
                (Some(dev), _) => dev.report_fault(f.endpoint, f.iova, f.read),
                (None, Some(dev)) => dev.report_fault(f.endpoint, f.iova, f.read),
                (None, None) => return,
            };
            self.apply_effect(g, effect);
        }
    }

    /// The name of guest `owner`.
    pub fn owner_name(&self, owner: usize) -> Option<&str> {
        self.guest_by_owner(owner).map(Guest::name)
    }
}

impl LocalQueue for Machine {
    fn with_queue(&self, f: &mut dyn FnMut(&mut PendingQueue)) {
        self.cpus.port().with_queue(f);
    }

    fn raised_sgis(&self) -> u32 {
        self.cpus.port().raised_sgis()
    }
}

impl GicPort for Machine {
    fn phys(&self) -> &dyn PhysGic {
        self.gic
    }
}
