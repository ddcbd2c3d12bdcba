//! `HostDt` against blobs dumped from QEMU 10's virt machine: every field.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::{dtb, ppi, qemu_blobs, r, spi};
use crate::fdt::*;

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| String::from(*s)).collect()
}

fn expect_virt_cpus(hw: &HostDt, n: u64) {
    // QEMU names no enable-method when there is a single CPU.
    let method = (n > 1).then(|| String::from("psci"));
    let expected: Vec<Cpu> = (0..n)
        .map(|i| Cpu {
            path: alloc::format!("/cpus/cpu@{i}"),
            mpidr: i,
            enable_method: method.clone(),
        })
        .collect();
    assert_eq!(hw.cpus, expected);
}

fn expect_virt_uart(hw: &HostDt) {
    let uart = hw.stdout.as_ref().expect("stdout uart");
    assert_eq!(
        uart,
        &Uart {
            path: "/pl011@9000000".into(),
            base: 0x900_0000,
            size: 0x1000,
            compatible: strings(&["arm,pl011", "arm,primecell"]),
            interrupt: Some(spi(1, 4)),
            driver: Ok(platform::uart::UartKind::Pl011),
        }
    );
    assert_eq!(uart.interrupt.map(|i| i.intid()), Some(33));
}

fn expect_virt_timer(hw: &HostDt, hyp_virt: bool) {
    let t = hw.timer.as_ref().expect("timer");
    assert_eq!(t.secure_phys, Some(ppi(13, 4)));
    assert_eq!(t.phys, Some(ppi(14, 4)));
    assert_eq!(t.virt, Some(ppi(11, 4)));
    assert_eq!(t.hyp_phys, Some(ppi(10, 4)));
    assert_eq!(t.hyp_virt, hyp_virt.then(|| ppi(12, 4)));
    assert_eq!(t.frequency, None);
    assert_eq!(t.hyp_phys.map(|i| i.intid()), Some(26));
    assert_eq!(t.virt.map(|i| i.intid()), Some(27));
}

fn expect_virt_gicv3(hw: &HostDt, phandle: u32, its_phandle: u32, maintenance: Option<Interrupt>) {
    let gic = hw.gic.as_ref().expect("gic");
    assert_eq!(
        gic,
        &Gic {
            path: "/intc@8000000".into(),
            phandle: Some(phandle),
            version: 3,
            dist: r(0x800_0000, 0x1_0000),
            redists: vec![r(0x80a_0000, 0xf6_0000)],
            cpu_if: vec![],
            maintenance,
            its: vec![GicIts {
                path: "/intc@8000000/its@8080000".into(),
                phandle: Some(its_phandle),
                region: r(0x808_0000, 0x2_0000),
            }],
        }
    );
}

fn virt_ranges() -> Vec<PciRange> {
    vec![
        PciRange {
            space: PciSpace::Io,
            prefetchable: false,
            pci_addr: 0,
            cpu_addr: 0x3eff_0000,
            size: 0x1_0000,
        },
        PciRange {
            space: PciSpace::Mem32,
            prefetchable: false,
            pci_addr: 0x1000_0000,
            cpu_addr: 0x1000_0000,
            size: 0x2eff_0000,
        },
        PciRange {
            space: PciSpace::Mem64,
            prefetchable: false,
            pci_addr: 0x80_0000_0000,
            cpu_addr: 0x80_0000_0000,
            size: 0x80_0000_0000,
        },
    ]
}

fn expect_virt_common(hw: &HostDt) {
    assert_eq!(hw.model.as_deref(), Some("linux,dummy-virt"));
    assert_eq!(hw.compatible, strings(&["linux,dummy-virt"]));
    assert!(hw.reserved.is_empty());
    assert_eq!(hw.chosen.stdout_path.as_deref(), Some("/pl011@9000000"));
    assert!(hw.warnings.is_empty(), "{:?}", hw.warnings);
    expect_virt_uart(hw);
    let psci = hw.psci.as_ref().expect("psci");
    assert_eq!(
        psci.compatible,
        strings(&["arm,psci-1.0", "arm,psci-0.2", "arm,psci"])
    );
}

#[test]
fn virt_smmuv3_every_field() {
    let hw = HostDt::parse(dtb!("qemu-virt-smmu.dtb")).expect("parse");
    expect_virt_common(&hw);
    assert_eq!(hw.memory, vec![r(0x4000_0000, 0x4000_0000)]);
    expect_virt_cpus(&hw, 4);
    assert_eq!(hw.psci.as_ref().map(|p| p.conduit), Some(Conduit::Smc));
    expect_virt_gicv3(&hw, 0x8005, 0x8006, Some(ppi(9, 4)));
    assert_eq!(
        hw.gic
            .as_ref()
            .and_then(|g| g.maintenance)
            .map(|i| i.intid()),
        Some(25)
    );
    expect_virt_timer(&hw, true);
    assert_eq!(
        hw.smmus,
        vec![Smmu {
            path: "/smmuv3@9050000".into(),
            base: 0x905_0000,
            size: 0x2_0000,
            phandle: Some(0x8007),
            interrupts: vec![
                ("eventq".into(), spi(0x4a, 1)),
                ("priq".into(), spi(0x4b, 1)),
                ("cmdq-sync".into(), spi(0x4c, 1)),
                ("gerror".into(), spi(0x4d, 1)),
            ],
            dma_coherent: true,
        }]
    );
    assert_eq!(hw.smmus[0].interrupts[0].1.intid(), 106);
    assert!(hw.smmus[0].interrupts[0].1.is_edge());
    assert_eq!(
        hw.pcie,
        vec![PcieHost {
            path: "/pcie@10000000".into(),
            ecam: r(0x40_1000_0000, 0x1000_0000),
            bus_range: (0, 255),
            ranges: virt_ranges(),
            iommu_map: vec![IommuMapEntry {
                rid_base: 0,
                iommu_phandle: 0x8007,
                iommu_base: 0,
                length: 0x1_0000
            }],
            iommu_map_mask: None,
            msi_parent: None,
            msi_map: vec![MsiMapEntry {
                rid_base: 0,
                msi_phandle: 0x8006,
                msi_base: 0,
                length: 0x1_0000
            }],
            dma_coherent: true,
        }]
    );
    let map = &hw.pcie[0].iommu_map[0];
    let smmu = hw
        .smmu_by_phandle(map.iommu_phandle)
        .expect("iommu-map names the SMMU");
    assert_eq!(smmu.base, 0x905_0000);
    assert_eq!(hw.pcie[0].iommu_for_rid(0x08), Some((0x8007, 0x08)));
    assert_eq!(hw.pcie[0].iommu_for_rid(0x1_0000), None);
    assert!(hw.smmu_by_phandle(0x8006).is_none());
    assert_eq!(
        hw.chosen,
        Chosen {
            bootargs: None,
            stdout_path: Some("/pl011@9000000".into()),
            initrd: None
        }
    );
    assert_eq!(
        hw.tree()
            .find("/psci")
            .and_then(|n| n.prop_str("method").map(String::from)),
        Some("smc".into())
    );
}

#[test]
fn virt_smp1() {
    let hw = HostDt::parse(dtb!("qemu-virt-smp1.dtb")).expect("parse");
    expect_virt_common(&hw);
    expect_virt_cpus(&hw, 1);
    assert_eq!(hw.memory, vec![r(0x4000_0000, 0x4000_0000)]);
    assert_eq!(hw.smmus.len(), 1);
    expect_virt_timer(&hw, true);
}

#[test]
fn virt_without_smmu() {
    let hw = HostDt::parse(dtb!("qemu-virt-nosmmu.dtb")).expect("parse");
    expect_virt_common(&hw);
    expect_virt_cpus(&hw, 4);
    assert!(hw.smmus.is_empty());
    expect_virt_gicv3(&hw, 0x8005, 0x8006, Some(ppi(9, 4)));
    assert_eq!(hw.pcie.len(), 1);
    assert!(hw.pcie[0].iommu_map.is_empty());
    assert_eq!(hw.pcie[0].iommu_for_rid(0), None);
    assert_eq!(hw.pcie[0].ranges, virt_ranges());
    assert_eq!(hw.pcie[0].msi_map[0].msi_phandle, 0x8006);
}

#[test]
fn virt_initrd_and_bootargs() {
    let hw = HostDt::parse(dtb!("qemu-virt-initrd.dtb")).expect("parse");
    expect_virt_common(&hw);
    assert_eq!(hw.chosen.bootargs.as_deref(), Some("x y"));
    assert_eq!(hw.chosen.initrd, Some(r(0x4800_0000, 100_000)));
    assert!(
        hw.reserved.is_empty(),
        "QEMU does not add a /memreserve/ for the initrd"
    );
}

#[test]
fn virt_9_1_matches_virt() {
    let a = HostDt::parse(dtb!("qemu-virt-9.1.dtb")).expect("parse");
    let b = HostDt::parse(dtb!("qemu-virt-smmu.dtb")).expect("parse");
    // Only the random seeds in /chosen differ.
    assert_eq!(
        (
            &a.memory, &a.cpus, &a.psci, &a.stdout, &a.gic, &a.timer, &a.smmus, &a.pcie, &a.chosen
        ),
        (
            &b.memory, &b.cpus, &b.psci, &b.stdout, &b.gic, &b.timer, &b.smmus, &b.pcie, &b.chosen
        )
    );
    assert_ne!(
        a.tree()
            .find("/chosen")
            .and_then(|c| c.prop("rng-seed").cloned()),
        None
    );
}

#[test]
fn virt_without_el2_uses_hvc() {
    let hw = HostDt::parse(dtb!("qemu-virt-hvc.dtb")).expect("parse");
    expect_virt_common(&hw);
    assert_eq!(hw.psci.as_ref().map(|p| p.conduit), Some(Conduit::Hvc));
    assert_eq!(hw.memory, vec![r(0x4000_0000, 0x2000_0000)]);
    expect_virt_cpus(&hw, 2);
    expect_virt_timer(&hw, false);
    // Without EL2 there is no GIC maintenance interrupt either.
    expect_virt_gicv3(&hw, 0x8003, 0x8004, None);
}

#[test]
fn virt_gicv2() {
    let hw = HostDt::parse(dtb!("qemu-virt-gicv2.dtb")).expect("parse");
    expect_virt_common(&hw);
    assert_eq!(hw.memory, vec![r(0x4000_0000, 0x8000_0000)]);
    let gic = hw.gic.as_ref().expect("gic");
    assert_eq!(gic.version, 2);
    assert_eq!(gic.phandle, Some(0x8003));
    assert_eq!(gic.dist, r(0x800_0000, 0x1_0000));
    assert!(gic.redists.is_empty() && gic.its.is_empty());
    assert_eq!(
        gic.cpu_if,
        vec![
            r(0x801_0000, 0x1_0000),
            r(0x803_0000, 0x1_0000),
            r(0x804_0000, 0x1_0000)
        ]
    );
    // GICv2 timer flags carry a CPU mask in bits 15:8.
    assert_eq!(hw.timer.as_ref().and_then(|t| t.phys), Some(ppi(14, 0x304)));
    assert_eq!(hw.pcie[0].msi_map[0].msi_phandle, 0x8004);
}

#[test]
fn every_qemu_blob_parses_cleanly() {
    for (name, blob) in qemu_blobs() {
        let hw = HostDt::parse(blob).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(hw.warnings.is_empty(), "{name}: {:?}", hw.warnings);
        assert!(
            hw.gic.is_some() && hw.timer.is_some() && hw.stdout.is_some() && hw.psci.is_some(),
            "{name}"
        );
        assert_eq!(hw.pcie.len(), 1, "{name}");
    }
}
