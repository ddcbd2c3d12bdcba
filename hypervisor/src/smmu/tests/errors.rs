//! Failure paths: CMD_SYNC timeout, command errors and their recovery
//! (skip as Linux does, acknowledge GERRORN, resume), global errors.

use alloc::format;

use super::fake::{Consume, FakeSmmu, QEMU_S2};
use super::{probe, try_probe};
use crate::smmu::SmmuError;
use crate::smmu::cmd::Cmd;
use crate::smmu::driver::ProbeOptions;
use crate::smmu::error::cerror;
use crate::smmu::regs::*;

fn quick(fake: &FakeSmmu) -> super::TestSmmu {
    let opts = ProbeOptions {
        poll_limit: 100,
        ..ProbeOptions::DEFAULT
    };
    try_probe(fake, opts).expect("probe")
}

#[test]
fn sync_timeout() {
    let fake = FakeSmmu::new(QEMU_S2);
    let mut smmu = quick(&fake);
    fake.state().consume = Consume::Never;
    assert_eq!(smmu.invalidate_vmid(1), Err(SmmuError::SyncTimeout));
    // Once the SMMU catches up, the queue is usable again.
    fake.state().consume = Consume::PerConsRead(u32::MAX);
    smmu.invalidate_vmid(2).expect("recovered");
    let cmds = fake.state().cmds();
    let n = cmds.len();
    assert_eq!(
        &cmds[n - 4..],
        [
            Cmd::tlbi_s12_vmall(1),
            Cmd::sync(),
            Cmd::tlbi_s12_vmall(2),
            Cmd::sync()
        ]
    );
}

#[test]
fn probe_sync_timeout() {
    let fake = FakeSmmu::new(QEMU_S2);
    fake.state().consume = Consume::Never;
    let opts = ProbeOptions {
        poll_limit: 10,
        ..ProbeOptions::DEFAULT
    };
    assert_eq!(try_probe(&fake, opts).err(), Some(SmmuError::SyncTimeout));
    // Translation was never enabled.
    assert_eq!(fake.state().cr0 & CR0_SMMUEN, 0);
}

#[test]
fn illegal_command_is_skipped_and_reported() {
    let fake = FakeSmmu::new(QEMU_S2);
    let mut smmu = quick(&fake);
    fake.state().consumed.clear();
    // The second command of the next batch fails.
    fake.state().inject = Some((1, cerror::ILL));
    let cmds = [
        Cmd::tlbi_s12_vmall(1),
        Cmd::tlbi_s12_vmall(2),
        Cmd::tlbi_s12_vmall(3),
    ];
    let err = smmu.issue(&cmds);
    assert_eq!(
        err,
        Err(SmmuError::CommandError {
            code: cerror::ILL,
            cmd: Cmd::tlbi_s12_vmall(2).0
        })
    );
    let s = fake.state();
    // The bad command became a CMD_SYNC; the rest ran.
    assert_eq!(s.faulted, [Cmd::tlbi_s12_vmall(2)]);
    assert_eq!(
        s.cmds(),
        [
            Cmd::tlbi_s12_vmall(1),
            Cmd::sync(),
            Cmd::tlbi_s12_vmall(3),
            Cmd::sync()
        ]
    );
    assert_eq!(s.gerror_active(), 0, "acknowledged");
    drop(s);
    // Reported once; the queue works.
    smmu.invalidate_vmid(7).expect("next sync is clean");
    assert!(format!("{}", err.unwrap_err()).contains("illegal command"));
}

#[test]
fn fetch_abort_is_retried() {
    let fake = FakeSmmu::new(QEMU_S2);
    let mut smmu = quick(&fake);
    fake.state().consumed.clear();
    fake.state().inject = Some((0, cerror::ABT));
    let err = smmu.invalidate_vmid(5);
    assert_eq!(
        err,
        Err(SmmuError::CommandError {
            code: cerror::ABT,
            cmd: Cmd::tlbi_s12_vmall(5).0
        })
    );
    // Not replaced: fetched again and executed.
    assert_eq!(fake.state().cmds(), [Cmd::tlbi_s12_vmall(5), Cmd::sync()]);
}

#[test]
fn unknown_opcode_is_illegal() {
    let fake = FakeSmmu::new(QEMU_S2);
    let mut smmu = quick(&fake);
    let err = smmu.issue(&[Cmd([0x7f, 0])]);
    assert_eq!(
        err,
        Err(SmmuError::CommandError {
            code: cerror::ILL,
            cmd: [0x7f, 0]
        })
    );
}

#[test]
fn error_while_waiting_for_room_is_reported_at_the_sync() {
    let mut idr = QEMU_S2;
    idr[1] = (idr[1] & !(0x1f << 21)) | 2 << 21; // 4 commands
    let fake = FakeSmmu::new(idr);
    let mut smmu = quick(&fake);
    fake.state().consumed.clear();
    fake.state().consume = Consume::PerConsRead(1);
    fake.state().inject = Some((2, cerror::ILL));
    let cmds: alloc::vec::Vec<Cmd> = (0..9).map(Cmd::tlbi_s12_vmall).collect();
    let err = smmu.issue(&cmds);
    assert_eq!(
        err,
        Err(SmmuError::CommandError {
            code: cerror::ILL,
            cmd: Cmd::tlbi_s12_vmall(2).0
        })
    );
    assert_eq!(fake.state().consumed.len(), 10);
}

#[test]
fn gerror_handler_acknowledges_and_skips() {
    let fake = FakeSmmu::new(QEMU_S2);
    let mut smmu = quick(&fake);
    assert!(smmu.handle_gerror().is_empty());
    // An event queue abort: reported and acknowledged.
    fake.state().gerror ^= GERROR_EVTQ_ABT_ERR;
    let r = smmu.handle_gerror();
    assert_eq!(r.active, GERROR_EVTQ_ABT_ERR);
    assert!(!r.service_failure && r.cmdq_error.is_none());
    assert!(format!("{r}").contains("EVTQ_ABT_ERR"));
    assert_eq!(fake.state().gerror_active(), 0);

    // A command error seen by the interrupt handler first: the SMMU is
    // slow, the sync times out, then it stops on the TLBI.
    fake.state().consume = Consume::Never;
    assert_eq!(smmu.invalidate_vmid(3), Err(SmmuError::SyncTimeout));
    let next = fake.state().consumed.len();
    fake.state().inject = Some((next, cerror::ILL));
    fake.state().consume = Consume::PerConsRead(1);
    // One read of CONS lets the fake stop on the TLBI.
    let _ = crate::smmu::regs::SmmuRegs::read32(&fake, CMDQ_CONS);
    assert_eq!(fake.state().gerror_active(), GERROR_CMDQ_ERR);
    let r = smmu.handle_gerror();
    assert_eq!(r.active, GERROR_CMDQ_ERR);
    assert_eq!(r.cmdq_error, Some((cerror::ILL, Cmd::tlbi_s12_vmall(3).0)));
    assert_eq!(fake.state().gerror_active(), 0);
    // The next sync drains the queue and reports the skipped command.
    fake.state().consume = Consume::OnProd;
    assert!(matches!(
        smmu.invalidate_vmid(4),
        Err(SmmuError::CommandError {
            code: cerror::ILL,
            ..
        })
    ));
    smmu.invalidate_vmid(4).expect("clean again");
}

#[test]
fn service_failure_disables_the_smmu() {
    let fake = FakeSmmu::new(QEMU_S2);
    let mut smmu = probe(&fake);
    fake.state().gerror ^= GERROR_SFM_ERR;
    let r = smmu.handle_gerror();
    assert!(r.service_failure);
    assert!(format!("{r}").contains("SFM_ERR"));
    let s = fake.state();
    assert_eq!(s.cr0, 0);
    assert_eq!(s.gbpa & GBPA_ABORT, GBPA_ABORT);
    assert_eq!(s.gerror_active(), 0);
}

#[test]
fn errors_display() {
    let all = [
        SmmuError::Unusable("no stage-2 translation"),
        SmmuError::NoMemory {
            what: "event queue",
        },
        SmmuError::AckTimeout { register: "CR0ACK" },
        SmmuError::SyncTimeout,
        SmmuError::QueueFullTimeout,
        SmmuError::CommandError {
            code: 9,
            cmd: [1, 2],
        },
        SmmuError::BadStreamId { sid: 3, limit: 2 },
        SmmuError::BadConfig("x"),
        SmmuError::BadRange,
    ];
    for e in all {
        assert!(!format!("{e}").is_empty());
    }
    assert!(format!("{}", all[5]).contains("unknown command error"));
}

#[test]
fn out_of_dma_memory() {
    use crate::smmu::dma::DmaMemory;
    let fake = FakeSmmu::new(QEMU_S2);
    // Use up the fake memory but a little.
    let mut m = fake.clone();
    m.alloc_zeroed(super::fake::MEM_BYTES - 4096, 4096)
        .expect("big");
    let err = try_probe(&fake, ProbeOptions::DEFAULT).err();
    assert_eq!(
        err,
        Some(SmmuError::NoMemory {
            what: "event queue"
        })
    );
}
