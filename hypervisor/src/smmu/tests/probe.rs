//! The probe sequence: register programming order, initial invalidation,
//! memory attributes, refusal of unusable SMMUs, acknowledgement timeouts.

use alloc::vec::Vec;

use super::fake::{FakeSmmu, QEMU_S2};
use super::{probe, try_probe};
use crate::smmu::SmmuError;
use crate::smmu::cmd::Cmd;
use crate::smmu::driver::ProbeOptions;
use crate::smmu::regs::*;
use crate::smmu::ste::{Ste, SteConfig};
use crate::smmu::streamtable::StreamTableFormat;

#[test]
fn programs_registers_in_order() {
    let fake = FakeSmmu::new(QEMU_S2);
    let smmu = probe(&fake);
    let s = fake.state();
    let offsets = s.write_offsets();
    let expect = [
        GBPA,
        CR0,
        IRQ_CTRL,
        GERROR_IRQ_CFG0,
        EVTQ_IRQ_CFG0,
        CR1,
        CR2,
        STRTAB_BASE,
        STRTAB_BASE_CFG,
        CMDQ_BASE,
        CMDQ_PROD,
        CMDQ_CONS,
        CR0,
        CMDQ_PROD, // CFGI_ALL, TLBI_NSNH_ALL
        CMDQ_PROD, // CMD_SYNC
        EVTQ_BASE,
        EVTQ_PROD,
        EVTQ_CONS,
        CR0,
        CR0,
    ];
    assert_eq!(offsets, expect);
    let cr0: Vec<u64> = s
        .writes
        .iter()
        .filter(|w| w.0 == CR0)
        .map(|w| w.1)
        .collect();
    let (c, e, en) = (CR0_CMDQEN as u64, CR0_EVTQEN as u64, CR0_SMMUEN as u64);
    assert_eq!(cr0, [0, c, c | e, c | e | en]);
    assert_eq!(s.cr0ack, CR0_CMDQEN | CR0_EVTQEN | CR0_SMMUEN);
    assert_eq!(s.gbpa & GBPA_ABORT, GBPA_ABORT);
    assert_eq!(s.gbpa & GBPA_UPDATE, 0);
    assert_eq!(
        s.cmds(),
        [Cmd::cfgi_all(), Cmd::tlbi_nsnh_all(), Cmd::sync()]
    );
    // Coherent: write-back inner shareable everywhere (Linux's value).
    assert_eq!(s.cr1, 0xd75);
    assert_eq!(s.cr2, CR2_RECINVSID | CR2_PTM);
    assert!(s.cleans.is_empty() && s.invalidates.is_empty());
    // Queues: RWA, aligned base, LOG2SIZE capped at 8 and 10.
    assert_eq!(s.cmdq_base & Q_BASE_LOG2SIZE_MASK, 8);
    assert_eq!(s.evtq_base & Q_BASE_LOG2SIZE_MASK, 10);
    assert_eq!(s.cmdq_base & Q_BASE_RWA, Q_BASE_RWA);
    assert_eq!((s.cmdq_base & Q_BASE_ADDR_MASK) % (256 * 16), 0);
    assert_eq!((s.evtq_base & Q_BASE_ADDR_MASK) % (1024 * 32), 0);
    // 16-bit StreamIDs: two levels, SPLIT 8.
    assert_eq!(smmu.stream_table().format(), StreamTableFormat::TwoLevel);
    assert_eq!(s.strtab_base_cfg, 1 << 16 | 8 << 6 | 16);
    assert_eq!(s.strtab_base & STRTAB_BASE_RA, STRTAB_BASE_RA);
    assert!(!smmu.hyp());
    assert!(smmu.coherent());
}

#[test]
fn hyp_smmu_gets_tlbi_el2_all() {
    let mut idr = QEMU_S2;
    idr[0] |= IDR0_HYP;
    let fake = FakeSmmu::new(idr);
    let smmu = probe(&fake);
    assert!(smmu.hyp());
    assert_eq!(
        fake.state().cmds(),
        [
            Cmd::cfgi_all(),
            Cmd::tlbi_el2_all(),
            Cmd::tlbi_nsnh_all(),
            Cmd::sync()
        ]
    );
}

#[test]
fn every_stream_aborts_after_probe() {
    let mut idr = QEMU_S2;
    idr[1] = (idr[1] & !0x3f) | 6; // 64 StreamIDs: linear
    let fake = FakeSmmu::new(idr);
    let smmu = probe(&fake);
    assert_eq!(smmu.stream_table().format(), StreamTableFormat::Linear);
    let s = fake.state();
    assert_eq!(s.strtab_base_cfg, 6);
    for sid in 0..64 {
        assert_eq!(s.walk_ste(sid), Some(Ste::ABORT), "sid {sid}");
        assert_eq!(smmu.ste(sid), Ok(Some(Ste::ABORT)));
    }
    assert_eq!(s.walk_ste(64), None);
    drop(s);
    // Two-level: nothing reachable until a level-2 table exists.
    let fake = FakeSmmu::new(QEMU_S2);
    let smmu = probe(&fake);
    assert_eq!(fake.state().walk_ste(0x10), None);
    assert_eq!(smmu.ste(0x10), Ok(None));
    assert_eq!(
        fake.state().walk_ste(0xffff).map(|s| s.config()),
        None::<SteConfig>
    );
}

#[test]
fn non_coherent_smmu_gets_nc_attributes_and_cleans() {
    let mut idr = QEMU_S2;
    idr[0] &= !(1 << 4);
    let fake = FakeSmmu::new(idr);
    let smmu = probe(&fake);
    assert!(!smmu.coherent());
    assert!(!smmu.ste_options().coherent_walk);
    let s = fake.state();
    // Non-cacheable, outer shareable for tables and queues.
    assert_eq!(s.cr1, 0x820);
    // Both queues cleaned+invalidated, the level-1 table cleaned, each
    // command batch cleaned.
    let cmdq = s.cmdq_base & Q_BASE_ADDR_MASK;
    let evtq = s.evtq_base & Q_BASE_ADDR_MASK;
    assert!(s.invalidates.contains(&(cmdq, 256 * 16)));
    assert!(s.invalidates.contains(&(evtq, 1024 * 32)));
    let l1 = s.strtab_base & STRTAB_BASE_ADDR_MASK;
    assert!(s.cleans.contains(&(l1, 256 * 8)));
    assert!(s.cleans.contains(&(cmdq, 2 * 16)));
    assert!(s.cleans.contains(&(cmdq + 2 * 16, 16)));
}

#[test]
fn firmware_coherency_wins() {
    let mut idr = QEMU_S2;
    idr[0] &= !(1 << 4);
    let fake = FakeSmmu::new(idr);
    let opts = ProbeOptions {
        coherent: Some(true),
        ..ProbeOptions::DEFAULT
    };
    let smmu = try_probe(&fake, opts).expect("probe");
    assert!(smmu.coherent());
    assert_eq!(fake.state().cr1, 0xd75);
}

#[test]
fn refuses_an_smmu_without_stage2() {
    let mut idr = QEMU_S2;
    idr[0] = (idr[0] & !1) | 2; // S1P only
    let fake = FakeSmmu::new(idr);
    let err = try_probe(&fake, ProbeOptions::DEFAULT).err();
    assert_eq!(err, Some(SmmuError::Unusable("no stage-2 translation")));
    assert!(fake.state().writes.is_empty(), "nothing touched");

    let mut idr = QEMU_S2;
    idr[5] &= !(1 << 4); // no 4K granule
    let fake = FakeSmmu::new(idr);
    let err = try_probe(&fake, ProbeOptions::DEFAULT).err();
    assert_eq!(err, Some(SmmuError::Unusable("no 4 KiB granule")));
}

#[test]
fn ack_timeout() {
    let fake = FakeSmmu::new(QEMU_S2);
    fake.state().ack_stuck = true;
    fake.state().cr0ack = 0xdead; // never follows CR0
    let opts = ProbeOptions {
        poll_limit: 50,
        ..ProbeOptions::DEFAULT
    };
    let err = try_probe(&fake, opts).err();
    assert_eq!(err, Some(SmmuError::AckTimeout { register: "CR0ACK" }));
    // GBPA abort was set before anything else.
    assert_eq!(fake.state().gbpa & GBPA_ABORT, GBPA_ABORT);
}

#[test]
fn irqs_enable_with_ack() {
    let fake = FakeSmmu::new(QEMU_S2);
    let mut smmu = probe(&fake);
    smmu.enable_irqs(true, true).expect("irqs");
    assert_eq!(
        fake.state().irq_ctrlack,
        IRQ_CTRL_EVTQ_IRQEN | IRQ_CTRL_GERROR_IRQEN
    );
    smmu.enable_irqs(false, true).expect("irqs");
    assert_eq!(fake.state().irq_ctrl, IRQ_CTRL_GERROR_IRQEN);
    smmu.disable().expect("disable");
    assert_eq!(fake.state().cr0, 0);
}
