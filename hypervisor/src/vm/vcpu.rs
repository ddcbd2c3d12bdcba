//! Running vCPUs: each physical CPU either idles (waiting for a start
//! request) or runs the one vCPU assigned to it. Guest exits arrive here
//! from the exception vectors: data aborts go to the emulated GIC,
//! HVC/SMC to PSCI, trapped SGI writes to the virtual GIC, physical
//! interrupts are acknowledged and injected. Before returning to the guest
//! pending virtual interrupts are moved into list registers.

use super::guest::{Guest, request};
use super::psci::{self, Outcome, VcpuPower};
use crate::arch::aarch64::{cpu, gicv3, guest as arch_guest};
use crate::arch::exit::{self as abort};
use crate::arch::frame::{CrashReport, TrapFrame, VectorKind};
use crate::gic::phys::{self, MAX_CPUS};
use crate::gic::{KICK_SGI, MAINTENANCE_PPI, hyp_irq};
use crate::mm::accounting::Owner;
use crate::mm::heap;
use crate::vgic::SPI_BASE;
use crate::vgic::pending::{PendingQueue, VirqRequest, fill_list_registers};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use log::{error, info, warn};
use spin::Once;

/// The guests, created once at boot.
static GUESTS: Once<Vec<Guest>> = Once::new();
/// Per physical CPU: guest index + 1 (0 = none) and vCPU index.
static ASSIGNED: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(0) }; MAX_CPUS];
static ASSIGNED_VCPU: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(0) }; MAX_CPUS];
/// Per physical CPU: top of its EL2 stack.
static STACK_TOP: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Per physical CPU: virtual interrupts waiting for a list register.
static QUEUES: [CpuLocal<PendingQueue>; MAX_CPUS] =
    [const { CpuLocal::new(PendingQueue::new()) }; MAX_CPUS];

/// Data only its own physical CPU touches, at EL2 with interrupts masked:
/// no lock needed on the exit path.
struct CpuLocal<T>(core::cell::UnsafeCell<T>);

// SAFETY: each element is accessed only by the CPU whose index it has
// (`local_queue` indexes by the running CPU), never concurrently.
unsafe impl<T> Sync for CpuLocal<T> {}

impl<T> CpuLocal<T> {
    const fn new(v: T) -> Self {
        CpuLocal(core::cell::UnsafeCell::new(v))
    }
}

/// This CPU's queue of virtual interrupts waiting for a list register.
fn local_queue() -> &'static mut PendingQueue {
    let me = cpu::cpu_index() % MAX_CPUS;
    // SAFETY: only this CPU uses QUEUES[me]; EL2 runs with interrupts
    // masked and no caller keeps the reference across another call to
    // `local_queue`.
    unsafe { &mut *QUEUES[me].0.get() }
}
/// Guests still running.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

const ICH_HCR_EN: u64 = 1;
const ICH_HCR_UIE: u64 = 1 << 1;

/// Records this CPU's stack top (where guest entry resets the stack to).
pub fn set_stack_top(top: u64) {
    STACK_TOP[cpu::cpu_index() % MAX_CPUS].store(top, Ordering::Relaxed);
}

/// Installs the guests and assigns their vCPUs to physical CPUs.
pub fn install(guests: Vec<Guest>) {
    for g in &guests {
        for (v, slot) in g.vcpus.iter().enumerate() {
            ASSIGNED_VCPU[slot.pcpu].store(v, Ordering::Relaxed);
            ASSIGNED[slot.pcpu].store(g.index + 1, Ordering::Release);
        }
        let boot = &g.vcpus[0];
        boot.entry.store(g.layout.kernel, Ordering::Relaxed);
        boot.context.store(g.layout.dtb, Ordering::Relaxed);
        boot.set_power(VcpuPower::OnPending);
        boot.requests.fetch_or(request::START, Ordering::Release);
    }
    RUNNING.store(guests.len(), Ordering::Release);
    GUESTS.call_once(|| guests);
}

/// The running guests (empty before [`install`]).
pub fn guests() -> &'static [Guest] {
    GUESTS.get().map(Vec::as_slice).unwrap_or(&[])
}

/// The guest and vCPU this physical CPU runs, if any.
fn current() -> Option<(&'static Guest, usize)> {
    let me = cpu::cpu_index() % MAX_CPUS;
    let g = ASSIGNED[me].load(Ordering::Acquire);
    let g = guests().get(g.checked_sub(1)?)?;
    Some((g, ASSIGNED_VCPU[me].load(Ordering::Relaxed)))
}

/// Wakes physical CPU `pcpu` so that it looks at its requests.
fn kick(pcpu: usize) {
    if pcpu == cpu::cpu_index() {
        return;
    }
    if let Some(p) = phys::get() {
        gicv3::send_sgi(KICK_SGI, p.cpu_mpidr(pcpu));
    }
}

/// The loop of a physical CPU without a running vCPU: waits for a start
/// request for its vCPU, then enters the guest. Never returns.
pub fn cpu_loop() -> ! {
    loop {
        if let Some((g, v)) = current() {
            let slot = &g.vcpus[v];
            let req = slot.requests.swap(0, Ordering::AcqRel);
            if req & request::START != 0 && req & request::STOP == 0 {
                enter_vcpu(g, v);
            }
        }
        // Take the kick that woke us, so the next WFI really waits.
        loop {
            let intid = gicv3::ack();
            if intid >= 1020 {
                break;
            }
            gicv3::priority_drop(intid);
            hyp_irq::dispatch(intid);
            gicv3::deactivate(intid);
        }
        if cpu::cpu_index() == 0 {
            super::dma::poll_events();
        }
        cpu::wait_for_interrupt();
    }
}

fn enter_vcpu(g: &'static Guest, v: usize) -> ! {
    let slot = &g.vcpus[v];
    // From here until the vCPU stops, this CPU works for the guest: what
    // its exits allocate is charged to it.
    heap::set_owner(g.owner());
    arch_guest::configure(g.vttbr, g.vtcr, v);
    gicv3::enable_virtual_interface(ICH_HCR_EN);
    local_queue().clear();
    slot.sgis.store(0, Ordering::Relaxed);
    let mut frame = TrapFrame {
        elr: slot.entry.load(Ordering::Acquire),
        spsr: arch_guest::SPSR_EL1H,
        ..Default::default()
    };
    frame.x[0] = slot.context.load(Ordering::Acquire);
    slot.set_power(VcpuPower::On);
    info!(
        "guest '{}': vcpu {v} starts on cpu {} at {:#x}",
        g.config.name,
        cpu::cpu_index(),
        frame.elr
    );
    let top = STACK_TOP[cpu::cpu_index() % MAX_CPUS].load(Ordering::Relaxed);
    // SAFETY: the CPU is configured for this guest; nothing on this CPU's
    // stack is needed any more (we never return to the caller).
    unsafe { arch_guest::enter(&frame, top) }
}

/// Stops the vCPU running here: its list registers are emptied (hardware
/// interrupts still active are deactivated so they can fire again), the
/// virtual interface is disabled, and the CPU goes back to [`cpu_loop`].
fn stop_here(g: &Guest, v: usize) -> ! {
    for n in 0..gicv3::list_register_count() {
        let lr = gicv3::read_lr(n);
        if lr >> 61 & 1 == 1 && lr >> 62 != 0 {
            gicv3::deactivate(((lr >> 32) & 0x3ff) as u32);
        }
        gicv3::write_lr(n, 0);
    }
    gicv3::set_hcr(0);
    local_queue().clear();
    g.vcpus[v].set_power(VcpuPower::Off);
    heap::set_owner(Owner::Hypervisor);
    cpu_loop()
}

/// Synchronous exception from the guest.
pub fn handle_sync(frame: &mut TrapFrame) {
    let Some((g, v)) = current() else {
        fatal(frame, 8);
    };
    let ec = (frame.esr >> 26) & 0x3f;
    match ec {
        0x16 | 0x17 => {
            if ec == 0x17 {
                frame.elr += 4; // a trapped SMC returns to the next instruction
            }
            if frame.esr & 0xffff != 0 {
                frame.x[0] = psci::ret::NOT_SUPPORTED as u64;
            } else {
                hypercall(g, v, frame);
            }
        }
        0x18 => sysreg(g, v, frame),
        0x24 => data_abort(g, v, frame),
        _ => {
            warn!(
                "guest '{}': vcpu {v}: unexpected exception class {ec:#x} ({}) at {:#x}; undefined instruction injected",
                g.config.name,
                crate::arch::frame::exception_class_name(ec as u8),
                frame.elr
            );
            let esr = 1 << 25; // EC 0 (unknown), IL
            arch_guest::inject_sync_exception(frame, esr, 0);
        }
    }
    prepare_return(g, v);
}

fn reg(frame: &TrapFrame, n: usize) -> u64 {
    if n == 31 { 0 } else { frame.x[n] }
}

fn data_abort(g: &Guest, v: usize, frame: &mut TrapFrame) {
    let access = match abort::decode(VectorKind(8), frame.esr, frame.far, arch_guest::hpfar) {
        abort::Exit::Mmio(a) => a,
        other => {
            let e = match other {
                abort::Exit::BadDataAbort { why, .. } => why,
                _ => abort::AbortError::NoSyndrome,
            };
            warn!(
                "guest '{}': vcpu {v}: data abort at pc {:#x} cannot be emulated: {e}; abort injected",
                g.config.name, frame.elr
            );
            inject_abort(frame);
            return;
        }
    };
    let mut phys = phys::get();
    let value = access.store_value(reg(frame, access.reg));
    // Some(read value) for a claimed access (None for a write), None when
    // no emulated device claims the address.
    let handled: Option<Option<u64>> = if g.gicd.contains(access.ipa) {
        let off = access.ipa - g.gicd.base;
        let mut vgic = g.vgic.lock();
        Some(if access.write {
            if let Some(p) = phys.as_mut() {
                vgic.dist_write(p, off, access.width, value);
            }
            None
        } else {
            Some(vgic.dist_read(off, access.width))
        })
    } else if g.gicr.contains(access.ipa) {
        let mut vgic = g.vgic.lock();
        vgic.redist_frame(access.ipa - g.gicr.base)
            .map(|(target, off)| {
                if access.write {
                    if let Some(p) = phys.as_mut() {
                        vgic.redist_write(p, target, off, access.width, value);
                    }
                    None
                } else {
                    Some(vgic.redist_read(target, off, access.width))
                }
            })
    } else {
        super::viommu::mmio_access(g, access.ipa, access.width, access.write.then_some(value))
    };
    match handled {
        Some(Some(raw)) => {
            if access.reg != 31 {
                frame.x[access.reg] = access.load_value(raw);
            }
            frame.elr += 4;
        }
        Some(None) => frame.elr += 4,
        None => {
            warn!(
                "guest '{}': vcpu {v}: {} of {} bytes at unclaimed address {:#x} (pc {:#x}); abort injected",
                g.config.name,
                if access.write { "write" } else { "read" },
                access.width,
                access.ipa,
                frame.elr
            );
            inject_abort(frame);
        }
    }
}

fn inject_abort(frame: &mut TrapFrame) {
    let ec: u64 = if abort::spsr_is_el1(frame.spsr) {
        0x25
    } else {
        0x24
    };
    let wnr = frame.esr & (1 << 6);
    let esr = ec << 26 | 1 << 25 | wnr | 0x10; // synchronous external abort
    arch_guest::inject_sync_exception(frame, esr, frame.far);
}

fn sysreg(g: &Guest, v: usize, frame: &mut TrapFrame) {
    let iss = frame.esr & 0x1ff_ffff;
    let is_read = iss & 1 == 1;
    let rt = ((iss >> 5) & 0x1f) as usize;
    // Op0 3, Op1 0, CRn 12, CRm 11, Op2 5/6/7: ICC_SGI1R / ASGI1R / SGI0R.
    let key = iss & !(0x1f << 5) & !1;
    let sgi1r = (3 << 20) | (5 << 17) | (12 << 10) | (11 << 1);
    let op2 = (iss >> 17) & 7;
    if !is_read && key & !(7 << 17) == sgi1r & !(7 << 17) && (5..=7).contains(&op2) {
        send_virtual_sgi(g, v, reg(frame, rt));
    } else {
        warn!(
            "guest '{}': vcpu {v}: trapped system register access (ISS {iss:#x}) at {:#x}; undefined instruction injected",
            g.config.name, frame.elr
        );
        arch_guest::inject_sync_exception(frame, 1 << 25, 0);
        return;
    }
    frame.elr += 4;
}

fn send_virtual_sgi(g: &Guest, me: usize, value: u64) {
    let intid = ((value >> 24) & 0xf) as u32;
    let all_but_self = value & (1 << 40) != 0;
    let targets: Vec<usize> = if all_but_self {
        (0..g.vcpus.len()).filter(|&t| t != me).collect()
    } else {
        // Our vCPUs have Aff1-3 = 0; RS selects the block of 16.
        if (value >> 16) & 0xff != 0 || (value >> 32) & 0xff != 0 || (value >> 48) & 0xff != 0 {
            return;
        }
        let rs = ((value >> 44) & 0xf) as usize;
        (0..16)
            .filter(|b| value & (1 << b) != 0)
            .map(|b| rs * 16 + b)
            .filter(|&t| t < g.vcpus.len())
            .collect()
    };
    for t in targets {
        g.vcpus[t].sgis.fetch_or(1 << intid, Ordering::AcqRel);
        kick(g.vcpus[t].pcpu);
    }
}

fn hypercall(g: &'static Guest, v: usize, frame: &mut TrapFrame) {
    match psci::handle(g, [frame.x[0], frame.x[1], frame.x[2], frame.x[3]]) {
        Outcome::Return(r) => frame.x[0] = r as u64,
        Outcome::Suspend => {
            frame.x[0] = 0;
            cpu::wait_for_interrupt();
        }
        Outcome::StartVcpu {
            vcpu,
            entry,
            context,
        } => {
            let slot = &g.vcpus[vcpu];
            slot.entry.store(entry, Ordering::Relaxed);
            slot.context.store(context, Ordering::Relaxed);
            slot.set_power(VcpuPower::OnPending);
            slot.requests.fetch_or(request::START, Ordering::Release);
            kick(slot.pcpu);
            frame.x[0] = 0;
        }
        Outcome::StopVcpu => stop_here(g, v),
        Outcome::SystemOff => guest_off(g, v, "powered off"),
        Outcome::SystemReset => match g.config.on_reset {
            crate::config::ResetAction::PowerOff => guest_off(g, v, "reset; on_reset = poweroff"),
            crate::config::ResetAction::Restart => guest_restart(g, v),
        },
    }
}

/// Stops every other vCPU of the guest and waits until they are off.
fn stop_others(g: &Guest, me: usize) {
    for (i, s) in g.vcpus.iter().enumerate() {
        if i != me && s.power() != VcpuPower::Off {
            s.requests.fetch_or(request::STOP, Ordering::Release);
            kick(s.pcpu);
        }
    }
    let start = cpu::uptime_us();
    while g
        .vcpus
        .iter()
        .enumerate()
        .any(|(i, s)| i != me && s.power() == VcpuPower::On)
    {
        if cpu::uptime_us() - start > 1_000_000 {
            warn!("guest '{}': a vcpu did not stop within 1 s", g.config.name);
            break;
        }
        core::hint::spin_loop();
    }
    for s in &g.vcpus {
        s.requests.store(0, Ordering::Release);
        if s.power() == VcpuPower::OnPending {
            s.set_power(VcpuPower::Off);
        }
    }
}

fn guest_off(g: &'static Guest, v: usize, why: &str) -> ! {
    if g.stopping.swap(1, Ordering::AcqRel) != 0 {
        stop_here(g, v);
    }
    stop_others(g, v);
    super::dma::detach_guest(g);
    g.reset_interrupts();
    info!(
        "guest '{}' {why} ({} DMA fault(s) reported by the SMMU)",
        g.config.name,
        g.dma_faults.load(Ordering::Relaxed)
    );
    if let Some(c) = super::viommu::counters(g) {
        info!("guest '{}': virtio-iommu requests:\n{c}", g.config.name);
    }
    g.log_hypervisor_ram();
    if RUNNING.fetch_sub(1, Ordering::AcqRel) == 1 {
        info!("no guest left running: powering off");
        crate::boot::power_off();
    }
    stop_here(g, v)
}

fn guest_restart(g: &'static Guest, v: usize) -> ! {
    if g.stopping.swap(1, Ordering::AcqRel) != 0 {
        stop_here(g, v);
    }
    stop_others(g, v);
    // No device may write into the guest's memory while it is reloaded.
    super::viommu::reset(g);
    super::dma::detach_guest(g);
    g.reset_interrupts();
    g.log_hypervisor_ram();
    info!("guest '{}' reset: restarting", g.config.name);
    g.load_images();
    if let Err(e) = super::dma::attach_guest(g, g.config.viommu.is_none()) {
        error!(
            "guest '{}': its devices cannot DMA after the reset: {e}",
            g.config.name
        );
    }
    let boot = &g.vcpus[0];
    boot.entry.store(g.layout.kernel, Ordering::Relaxed);
    boot.context.store(g.layout.dtb, Ordering::Relaxed);
    g.stopping.store(0, Ordering::Release);
    boot.set_power(VcpuPower::OnPending);
    boot.requests.fetch_or(request::START, Ordering::Release);
    kick(boot.pcpu);
    stop_here(g, v)
}

/// A physical interrupt while the guest ran.
pub fn handle_irq(frame: &mut TrapFrame) {
    let Some((g, v)) = current() else {
        fatal(frame, 9);
    };
    let me = cpu::cpu_index();
    loop {
        let intid = gicv3::ack();
        if intid >= 1020 {
            break;
        }
        gicv3::priority_drop(intid);
        if intid == KICK_SGI || intid == MAINTENANCE_PPI || hyp_irq::dispatch(intid) {
            gicv3::deactivate(intid);
            continue;
        }
        let prio = {
            let vgic = g.vgic.lock();
            vgic.hw_target(intid, me)
                .and_then(|_| vgic.irq(v, intid).map(|s| s.priority))
        };
        match prio {
            Some(priority) => {
                let req = VirqRequest {
                    intid,
                    priority,
                    hw: true,
                };
                if !local_queue().push(req) {
                    warn!(
                        "guest '{}': vcpu {v}: interrupt queue full, INTID {intid} dropped",
                        g.config.name
                    );
                    gicv3::deactivate(intid);
                }
            }
            None => {
                // Not the guest's: never reaches it.
                gicv3::deactivate(intid);
                if intid >= SPI_BASE {
                    warn!("spurious physical INTID {intid} on cpu {me}; deactivated");
                }
            }
        }
    }
    prepare_return(g, v);
}

/// Raises virtual SPI `intid` of an emulated device of guest `g` (not a
/// hardware interrupt): queued on its target vCPU, which is kicked when it
/// runs on another CPU. Called at EL2 from a trap handler.
pub fn raise_virtual_spi(g: &Guest, intid: u32) {
    let target = g.vgic.lock().spi(intid).map(|s| s.target).unwrap_or(0);
    let Some(slot) = g.vcpus.get(target) else {
        return;
    };
    let mut spis = slot.spis.lock();
    slot.spis_pending.store(true, Ordering::Release);
    if !spis.contains(&intid) && spis.push(intid).is_err() {
        warn!(
            "guest '{}': vcpu {target}: too many pending virtual SPIs, INTID {intid} dropped",
            g.config.name
        );
    }
    drop(spis);
    kick(slot.pcpu);
}

/// Before returning to the guest: act on requests, take SGIs other vCPUs
/// raised, and fill the list registers.
fn prepare_return(g: &'static Guest, v: usize) {
    let slot = &g.vcpus[v];
    if slot.requests.load(Ordering::Acquire) & request::STOP != 0 {
        slot.requests.fetch_and(!request::STOP, Ordering::AcqRel);
        stop_here(g, v);
    }
    let queue = local_queue();
    // A plain load first: the exchange only when another vCPU raised one.
    let sgis = if slot.sgis.load(Ordering::Relaxed) != 0 {
        slot.sgis.swap(0, Ordering::AcqRel)
    } else {
        0
    };
    if sgis != 0 {
        let vgic = g.vgic.lock();
        for intid in (0..16u32).filter(|i| sgis & (1 << i) != 0) {
            match vgic.irq(v, intid) {
                Some(s) if s.enabled => {
                    queue.push(VirqRequest {
                        intid,
                        priority: s.priority,
                        hw: false,
                    });
                }
                // Disabled: it stays pending until the guest enables it.
                _ => {
                    slot.sgis.fetch_or(1 << intid, Ordering::AcqRel);
                }
            }
        }
    }
    if slot.spis_pending.load(Ordering::Acquire) {
        let mut spis = slot.spis.lock();
        slot.spis_pending.store(false, Ordering::Relaxed);
        if !spis.is_empty() {
            let vgic = g.vgic.lock();
            spis.retain(|&intid| match vgic.spi(intid) {
                // Delivered when the guest has it enabled; kept pending otherwise.
                Some(s) if s.enabled && vgic.group1_enabled() => {
                    queue.push(VirqRequest {
                        intid,
                        priority: s.priority,
                        hw: false,
                    });
                    false
                }
                Some(_) => true,
                None => false,
            });
            if !spis.is_empty() {
                slot.spis_pending.store(true, Ordering::Relaxed);
            }
        }
    }
    if queue.is_empty() {
        return;
    }
    let n = gicv3::list_register_count();
    let mut lrs = [0u64; 16];
    let empty = gicv3::empty_lrs();
    for (i, lr) in lrs.iter_mut().enumerate().take(n) {
        if empty & (1 << i) == 0 {
            *lr = gicv3::read_lr(i);
        }
    }
    let more = fill_list_registers(queue, &lrs[..n], gicv3::write_lr);
    gicv3::set_hcr(if more {
        ICH_HCR_EN | ICH_HCR_UIE
    } else {
        ICH_HCR_EN
    });
}

/// An FIQ or SError taken from the guest: logged; an SError is passed on
/// to the guest as a virtual SError (HCR_EL2.VSE) so that its own handler
/// deals with it.
pub fn handle_async_abort(frame: &mut TrapFrame, kind: u64) {
    let Some((g, v)) = current() else {
        fatal(frame, kind);
    };
    warn!(
        "guest '{}': vcpu {v}: {} at pc {:#x} (ESR {:#x})",
        g.config.name,
        VectorKind(kind),
        frame.elr,
        frame.esr
    );
    if kind == 11 {
        arch_guest::inject_virtual_serror();
    }
    prepare_return(g, v);
}

/// Entry from the vector table: guest exits go to the vCPU code; anything
/// else is fatal.
#[unsafe(no_mangle)]
pub extern "C" fn partita_trap(frame: &mut TrapFrame, kind: u64) {
    match kind {
        8 => handle_sync(frame),
        9 => handle_irq(frame),
        // A guest's FIQ or SError must not take the CPU down: report it and
        // let the guest go on (it sees no FIQ; an SError is delivered to it
        // as a virtual SError).
        10 | 11 => handle_async_abort(frame, kind),
        _ => fatal(frame, kind),
    }
}

/// Prints the crash report for an exception nobody handles and parks the CPU.
pub fn fatal(frame: &TrapFrame, kind: u64) -> ! {
    let kind = VectorKind(kind);
    crate::console::emergency_print(format_args!(
        "\n{}cpu {} parked\n",
        CrashReport { kind, frame },
        crate::arch::aarch64::cpu::cpu_index()
    ));
    crate::arch::aarch64::cpu::park();
}
