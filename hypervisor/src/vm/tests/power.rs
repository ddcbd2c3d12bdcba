//! vCPUs starting and stopping: boot entry, CPU_ON/CPU_OFF, a guest's
//! power-off and restart while another guest runs, and the machine's
//! power-off when the last guest stops.

use super::*;
use crate::arch::exit::{Action, Exit};
use crate::arch::fake::Op;
use crate::arch::frame::TrapFrame;
use crate::virtio::memory::GuestMemory;
use crate::vm::power::Idle;
use crate::vm::psci::VcpuPower;
use crate::vm::viommu::vmids::unattached_vmid;
use core::sync::atomic::Ordering;

const CPU_OFF: u64 = 0x8400_0002;
const CPU_ON: u64 = 0xc400_0003;
const SYSTEM_OFF: u64 = 0x8400_0008;
const SYSTEM_RESET: u64 = 0x8400_0009;

fn call(m: &Machine, x: [u64; 4]) -> Option<Action> {
    let mut frame = TrapFrame::default();
    frame.x[..4].copy_from_slice(&x);
    m.handle_exit(&frame, Exit::Hvc { imm: 0 })
}

fn enter(m: &Machine) -> TrapFrame {
    match m.idle() {
        Idle::Enter(f) => f,
        Idle::Wait => panic!("no vCPU to enter on cpu {}", fake::with(|s| s.cpu)),
    }
}

#[test]
fn the_boot_vcpu_enters_the_kernel_with_the_device_tree() {
    let w = World::new();
    let g = w.guest(0, config("a", &[0, 1], false));
    let (kernel, dtb, vttbr) = (g.images.layout.kernel, g.images.layout.dtb, g.vttbr);
    let m = w.machine(vec![g]);
    m.start();
    assert!(fake::take_ops().contains(&Op::SendSgi {
        sgi: crate::gic::KICK_SGI,
        mpidr: 0x101
    }));
    let f = enter(m);
    assert_eq!((f.elr, f.x[0], f.spsr), (kernel, dtb, 0x3c5));
    let ops = fake::take_ops();
    assert!(
        ops.contains(&Op::ConfigureGuest {
            vttbr,
            vtcr: ops
                .iter()
                .find_map(|o| match o {
                    Op::ConfigureGuest { vtcr, .. } => Some(*vtcr),
                    _ => None,
                })
                .unwrap(),
            vcpu: 0
        })
    );
    assert_eq!(m.guests()[0].vcpus[0].power(), VcpuPower::On);
    // vCPU 1 (CPU 1) has no start request: it waits.
    on_cpu(1);
    assert!(matches!(m.idle(), Idle::Wait));
}

#[test]
fn cpu_on_starts_a_vcpu_on_its_cpu_and_cpu_off_stops_it() {
    let w = World::new();
    let g = w.guest(0, config("a", &[0, 2], false));
    let m = w.machine(vec![g]);
    enter(m);
    fake::take_ops();
    let a = call(m, [CPU_ON, 1, 0x4008_0000, 0x55]);
    assert_eq!(
        a,
        Some(Action::Return {
            x0: 0,
            advance: false
        })
    );
    let g = &m.guests()[0];
    assert_eq!(g.vcpus[1].power(), VcpuPower::OnPending);
    assert!(fake::take_ops().contains(&Op::SendSgi {
        sgi: crate::gic::KICK_SGI,
        mpidr: 0x102
    }));
    // Already pending: the second CPU_ON is refused.
    assert_eq!(
        call(m, [CPU_ON, 1, 0x4008_0000, 0x55]),
        Some(Action::Return {
            x0: -5i64 as u64, // ON_PENDING
            advance: false
        })
    );
    on_cpu(2);
    let f = enter(m);
    assert_eq!((f.elr, f.x[0]), (0x4008_0000, 0x55));
    assert_eq!(g.vcpus[1].power(), VcpuPower::On);
    // CPU_OFF: the vCPU stops, its list registers are emptied, and a
    // hardware interrupt still active in one is deactivated.
    fake::with(|s| s.lrs[1] = 3 << 62 | 1 << 61 | 33 << 32 | 33);
    fake::take_ops();
    assert_eq!(call(m, [CPU_OFF, 0, 0, 0]), Some(Action::Stop));
    assert_eq!(g.vcpus[1].power(), VcpuPower::Off);
    let ops = fake::take_ops();
    assert!(ops.contains(&Op::Deactivate(33)));
    assert!(ops.contains(&Op::SetIchHcr(0)));
    assert!(fake::with(|s| s.lrs.iter().all(|&lr| lr == 0)));
    assert!(matches!(m.idle(), Idle::Wait));
    assert_eq!(m.running(), 1);
}

#[test]
fn one_guest_powers_off_while_the_other_runs_and_the_last_powers_the_machine_off() {
    let w = World::new();
    let a = w.guest(0, config("a", &[0, 1], false));
    let b = w.guest(1, config("b", &[2], true));
    w.dma.take();
    let m = w.machine(vec![a, b]);
    enter(m);
    on_cpu(2);
    enter(m);
    on_cpu(0);
    // Guest a: vCPU 1 never started (on-pending is cleared), power off.
    assert_eq!(call(m, [SYSTEM_OFF, 0, 0, 0]), Some(Action::Stop));
    assert_eq!(m.running(), 1);
    assert!(!m.all_off());
    assert_eq!(w.dma.take(), [DmaCall::Detach(0, 1)]);
    let ops = w.gic.take();
    assert!(
        ops.contains(&("enable", 33, 0, false)),
        "its interrupts are disabled: {ops:?}"
    );
    // Guest b still runs.
    on_cpu(2);
    let mut frame = TrapFrame::default();
    frame.x[0] = 0x8400_0000;
    assert!(matches!(
        m.handle_exit(&frame, Exit::Hvc { imm: 0 }),
        Some(Action::Return { x0: 0x1_0001, .. })
    ));
    assert_eq!(call(m, [SYSTEM_OFF, 0, 0, 0]), Some(Action::Stop));
    assert!(m.all_off(), "no guest left: the machine powers off");
}

#[test]
fn power_off_stops_the_other_vcpus_first_and_waits_for_a_slow_one() {
    let w = World::new();
    let g = w.guest(0, config("a", &[0, 1], false));
    let m = w.machine(vec![g]);
    let g = &m.guests()[0];
    enter(m);
    g.vcpus[1].set_power(VcpuPower::On); // running on CPU 1, slow to exit
    fake::take_ops();
    fake::with(|s| s.tick_us = 1000); // each clock read 1 ms later
    // CPU 1 stops its vCPU only after many seconds of the waiting CPU's
    // (fake) time: the power-off must not go on before that.
    let slow = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let g = &m.guests()[0];
        assert!(!m.all_off(), "the power-off went on beside a running vCPU");
        g.vcpus[1].set_power(VcpuPower::Off);
    });
    assert_eq!(call(m, [SYSTEM_OFF, 0, 0, 0]), Some(Action::Stop));
    slow.join().expect("CPU 1's thread");
    assert!(m.all_off());
    // Its stop request is withdrawn so a later start is clean.
    assert_eq!(g.vcpus[1].requests().load(Ordering::Relaxed), 0);
    let kicks = fake::take_ops()
        .iter()
        .filter(|o| {
            **o == Op::SendSgi {
                sgi: crate::gic::KICK_SGI,
                mpidr: 0x101,
            }
        })
        .count();
    assert!(
        kicks >= 2,
        "kicked once, then again while waiting ({kicks})"
    );
}

#[test]
fn a_stop_request_stops_a_vcpu_at_its_next_exit() {
    let w = World::new();
    let g = w.guest(0, config("a", &[0], false));
    let m = w.machine(vec![g]);
    enter(m);
    let g = &m.guests()[0];
    g.vcpus[0]
        .requests()
        .fetch_or(crate::vm::vcpu::request::STOP, Ordering::Relaxed);
    assert_eq!(
        m.handle_exit(&TrapFrame::default(), Exit::Wfx),
        Some(Action::Stop)
    );
    assert_eq!(g.vcpus[0].power(), VcpuPower::Off);
}

#[test]
fn reset_restarts_the_guest_with_fresh_images_and_streams() {
    let w = World::new();
    let g = w.guest(0, config("a", &[0], true));
    w.dma.take();
    let m = w.machine(vec![g]);
    let g = &m.guests()[0];
    let f = enter(m);
    // The guest scribbles over its kernel, then resets.
    g.ram.write(RAM_BASE + 64, b"XXXX").expect("in RAM");
    assert_eq!(call(m, [SYSTEM_RESET, 0, 0, 0]), Some(Action::Stop));
    let mut magic = [0u8; 4];
    g.ram.read(RAM_BASE + 64, &mut magic).unwrap();
    assert_eq!(&magic, b"KERN", "kernel reloaded");
    assert_eq!(
        w.dma.take(),
        [
            DmaCall::Detach(0, 1),
            DmaCall::Issue(0, vec![Cmd::tlbi_s12_vmall(unattached_vmid(0))]),
            DmaCall::Attach(0, Some(unattached_vmid(0)))
        ],
        "streams abort during the reload, then wait for the virtio-iommu again"
    );
    assert!(!g.stopping.load(Ordering::Relaxed));
    assert_eq!(m.running(), 1);
    // The boot vCPU starts again on this CPU.
    let f2 = enter(m);
    assert_eq!((f2.elr, f2.x[0]), (f.elr, f.x[0]));
}

#[test]
fn the_boot_cpu_drains_smmu_events_when_idle() {
    let w = World::new();
    let g = w.guest(0, config("a", &[1], false));
    let m = w.machine(vec![g]);
    w.dma.take();
    assert!(matches!(m.idle(), Idle::Wait));
    assert_eq!(w.dma.take(), [DmaCall::Poll]);
    on_cpu(3);
    assert!(matches!(m.idle(), Idle::Wait));
    assert!(w.dma.take().is_empty());
}
