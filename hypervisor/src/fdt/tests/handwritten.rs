//! `HostDt` against the hand-written trees: malformed optional nodes are
//! skipped with a warning naming the node; missing required parts fail.

use alloc::string::String;
use alloc::vec;

use super::{dtb, ppi, r, spi};
use crate::fdt::*;

/// The warnings that start with `path: `.
fn warnings_for<'a>(hw: &'a HostDt, path: &str) -> alloc::vec::Vec<&'a str> {
    let prefix = alloc::format!("{path}: ");
    hw.warnings
        .iter()
        .filter(|w| w.starts_with(&prefix))
        .map(String::as_str)
        .collect()
}

#[test]
fn truncated_iommu_map_skips_that_host_only() {
    let hw = HostDt::parse(dtb!("bad-iommu-map.dtb")).expect("parse");
    let smmu = hw.smmus.first().expect("smmu").clone();
    assert_eq!(hw.warnings.len(), 1, "{:?}", hw.warnings);
    let w = warnings_for(&hw, "/pcie@10000000");
    assert!(
        w.len() == 1 && w[0].contains("iommu-map") && w[0].contains("truncated"),
        "{w:?}"
    );
    assert_eq!(
        hw.pcie,
        vec![PcieHost {
            path: "/pcie@20000000".into(),
            ecam: r(0x50_0000_0000, 0x100_0000),
            bus_range: (0, 15),
            ranges: vec![PciRange {
                space: PciSpace::Mem64,
                prefetchable: false,
                pci_addr: 0x90_0000_0000,
                cpu_addr: 0x90_0000_0000,
                size: 0x10_0000_0000,
            }],
            iommu_map: vec![IommuMapEntry {
                rid_base: 0,
                iommu_phandle: smmu.phandle.expect("phandle"),
                iommu_base: 0x1_0000,
                length: 0x1000,
            }],
            iommu_map_mask: None,
            msi_parent: None,
            msi_map: vec![],
            dma_coherent: false,
        }]
    );
    assert_eq!(
        hw.pcie[0].iommu_for_rid(0x10),
        smmu.phandle.map(|p| (p, 0x1_0010))
    );
    assert_eq!(
        hw.smmu_by_phandle(hw.pcie[0].iommu_map[0].iommu_phandle),
        Some(&smmu)
    );
    assert_eq!(
        smmu.interrupts,
        vec![("eventq".into(), spi(74, 1)), ("gerror".into(), spi(77, 1))]
    );
}

#[test]
fn smmu_without_reg_is_skipped() {
    let hw = HostDt::parse(dtb!("smmu-no-reg.dtb")).expect("parse");
    assert_eq!(
        hw.smmus,
        vec![Smmu {
            path: "/smmuv3@9050000".into(),
            base: 0x905_0000,
            size: 0x2_0000,
            phandle: None,
            interrupts: vec![("combined".into(), spi(74, 1))],
            dma_coherent: true,
        }]
    );
    assert_eq!(hw.warnings.len(), 2, "{:?}", hw.warnings);
    assert_eq!(
        warnings_for(&hw, "/smmuv3@9000000"),
        ["/smmuv3@9000000: no `reg` property; SMMU ignored"]
    );
    assert_eq!(
        warnings_for(&hw, "/smmuv3@9100000"),
        ["/smmuv3@9100000: `reg` has a malformed length (12 bytes); SMMU ignored"]
    );
}

#[test]
fn bad_memory_reg_is_skipped() {
    let hw = HostDt::parse(dtb!("bad-memory-reg.dtb")).expect("parse");
    assert_eq!(hw.memory, vec![r(0x4000_0000, 0x2000_0000)]);
    assert_eq!(
        hw.warnings,
        ["/memory@80000000: `reg` has a malformed length (12 bytes); memory node ignored"]
    );
    assert_eq!(hw.cpus.len(), 1);
    assert_eq!(hw.cpus[0].enable_method, None);
}

#[test]
fn missing_required_parts_fail() {
    assert_eq!(
        HostDt::parse(dtb!("no-memory.dtb")).err(),
        Some(DtError::NoMemory)
    );
    assert_eq!(
        HostDt::parse(dtb!("no-cpus.dtb")).err(),
        Some(DtError::NoCpus)
    );
    // The trees themselves are well-formed.
    assert!(Tree::parse(dtb!("no-memory.dtb")).is_ok());
    assert_eq!(
        Tree::parse(dtb!("no-cpus.dtb")).map(|t| t.find("/cpus").map(|c| c.children.len())),
        Ok(Some(4))
    );
}

#[test]
fn features_every_field() {
    let hw = HostDt::parse(dtb!("features.dtb")).expect("parse");
    assert_eq!(hw.model.as_deref(), Some("Partita test board"));
    assert_eq!(hw.compatible, ["partita,features", "partita,test"]);
    assert_eq!(
        hw.memory,
        vec![r(0x8000_0000, 0x4000_0000), r(0x8_8000_0000, 0x4000_0000)]
    );
    assert_eq!(
        hw.reserved,
        vec![
            r(0x4800_0000, 0x10_0000),
            r(0x8000_f000, 0x1000),
            r(0x8000_0000, 0x20_0000)
        ]
    );
    assert_eq!(
        hw.cpus,
        vec![
            Cpu {
                path: "/cpus/cpu@0".into(),
                mpidr: 0,
                enable_method: Some("psci".into())
            },
            Cpu {
                path: "/cpus/cpu@100".into(),
                mpidr: 0x100,
                enable_method: Some("spin-table".into())
            },
            Cpu {
                path: "/cpus/cpu@100000000".into(),
                mpidr: 0x1_0000_0000,
                enable_method: None
            },
        ]
    );
    assert_eq!(
        hw.psci,
        Some(Psci {
            conduit: Conduit::Hvc,
            compatible: vec!["arm,psci-0.2".into()]
        })
    );
    assert_eq!(
        hw.stdout,
        Some(Uart {
            path: "/soc/serial@1000".into(),
            base: 0x1c00_1000,
            size: 0x1000,
            compatible: vec!["arm,pl011".into(), "arm,primecell".into()],
            interrupt: Some(spi(5, 4)),
            driver: Ok(platform::uart::UartKind::Pl011),
        })
    );
    let gic_path = "/interrupt-controller@2f000000";
    assert_eq!(
        hw.gic,
        Some(Gic {
            path: gic_path.into(),
            phandle: hw.tree().find(gic_path).and_then(|n| n.phandle()),
            version: 3,
            dist: r(0x2f00_0000, 0x1_0000),
            redists: vec![r(0x2f10_0000, 0x10_0000), r(0x2f30_0000, 0x10_0000)],
            cpu_if: vec![
                r(0x2c00_0000, 0x2000),
                r(0x2c01_0000, 0x2000),
                r(0x2c02_f000, 0x2000)
            ],
            maintenance: Some(ppi(9, 4)),
            its: vec![GicIts {
                path: "/interrupt-controller@2f000000/msi-controller@2f020000".into(),
                phandle: hw.pcie.first().and_then(|p| p.msi_parent),
                region: r(0x2f02_0000, 0x2_0000),
            }],
        })
    );
    assert_eq!(
        hw.timer,
        Some(Timer {
            secure_phys: Some(ppi(13, 8)),
            phys: Some(ppi(14, 8)),
            virt: Some(ppi(11, 8)),
            hyp_phys: Some(ppi(10, 8)),
            hyp_virt: None,
            frequency: Some(100_000_000),
        })
    );
    let smmu = hw.smmus.first().expect("smmu");
    assert_eq!(smmu.path, "/iommu@2b400000");
    assert_eq!((smmu.base, smmu.size), (0x2b40_0000, 0x10_0000));
    assert_eq!(
        smmu.interrupts,
        vec![
            ("eventq".into(), spi(100, 1)),
            ("gerror".into(), spi(101, 1)),
            (String::new(), spi(102, 1))
        ]
    );
    assert!(
        !smmu.dma_coherent,
        "dma-noncoherent overrides nothing above it"
    );
    let pcie = hw.pcie.first().expect("pcie");
    assert_eq!(pcie.ecam, r(0x4000_0000, 0x200_0000));
    assert_eq!(pcie.bus_range, (1, 0x20));
    assert_eq!(
        pcie.ranges,
        vec![
            PciRange {
                space: PciSpace::Io,
                prefetchable: false,
                pci_addr: 0,
                cpu_addr: 0x5f80_0000,
                size: 0x80_0000
            },
            PciRange {
                space: PciSpace::Mem32,
                prefetchable: true,
                pci_addr: 0x6000_0000,
                cpu_addr: 0x6000_0000,
                size: 0x2000_0000,
            },
            PciRange {
                space: PciSpace::Mem64,
                prefetchable: true,
                pci_addr: 0x40_0000_0000,
                cpu_addr: 0x40_0000_0000,
                size: 0x40_0000_0000,
            },
        ]
    );
    assert_eq!(pcie.iommu_map_mask, Some(0xff00));
    let ph = smmu.phandle.expect("smmu phandle");
    assert_eq!(
        pcie.iommu_map,
        vec![
            IommuMapEntry {
                rid_base: 0,
                iommu_phandle: ph,
                iommu_base: 0,
                length: 0x100
            },
            IommuMapEntry {
                rid_base: 0x100,
                iommu_phandle: ph,
                iommu_base: 0x1000,
                length: 0x100
            },
        ]
    );
    // The mask drops the low byte (device/function) before the lookup.
    assert_eq!(pcie.iommu_for_rid(0x0108), Some((ph, 0x1000)));
    assert_eq!(pcie.iommu_for_rid(0x0208), None);
    assert!(pcie.msi_parent.is_some() && pcie.msi_map.is_empty() && pcie.dma_coherent);
    assert_eq!(
        hw.chosen,
        Chosen {
            bootargs: Some("console=ttyAMA0 quiet".into()),
            stdout_path: Some("serial0:115200n8".into()),
            initrd: Some(r(0x4800_0000, 0x10_0000)),
        }
    );
    // Only the duplicate MPIDR is worth a warning.
    assert_eq!(hw.warnings.len(), 1, "{:?}", hw.warnings);
    assert!(hw.warnings[0].starts_with("/cpus/cpu@dup: MPIDR 0x100 already used by /cpus/cpu@100"));
}

#[test]
fn one_cell_board() {
    let hw = HostDt::parse(dtb!("cells32.dtb")).expect("parse");
    assert_eq!(
        hw.memory,
        vec![
            r(0, 0x1000_0000),
            r(0x2000_0000, 0x1000_0000),
            r(0x8000_0000, 0x800_0000)
        ]
    );
    assert_eq!(
        hw.cpus
            .iter()
            .map(|c| c.mpidr)
            .collect::<alloc::vec::Vec<_>>(),
        [0, 1]
    );
    let uart = hw.stdout.as_ref().expect("pl011 fallback");
    assert_eq!(
        (uart.path.as_str(), uart.base, uart.size, uart.interrupt),
        ("/uart@fe002000", 0xfe00_2000, 0x1000, None)
    );
    assert!(hw.gic.is_none() && hw.timer.is_none() && hw.psci.is_none());
    assert!(hw.smmus.is_empty() && hw.pcie.is_empty() && hw.reserved.is_empty());
    assert_eq!(hw.chosen, Chosen::default());
    assert_eq!(
        hw.warnings,
        ["/uart@fe002000: UART interrupt: no interrupt parent"]
    );
}

#[test]
fn every_optional_part_malformed() {
    let hw = HostDt::parse(dtb!("bad-optional.dtb")).expect("required parts are fine");
    assert_eq!(hw.memory, vec![r(0x4000_0000, 0x1000_0000)]);
    assert!(hw.psci.is_none() && hw.gic.is_none() && hw.timer.is_none() && hw.stdout.is_none());
    assert!(hw.pcie.is_empty());
    assert_eq!(hw.chosen.initrd, None);
    // The SMMU stays (the driver can poll) but loses its interrupts.
    assert_eq!(hw.smmus.len(), 1);
    assert!(hw.smmus[0].interrupts.is_empty());
    for (path, needle) in [
        ("/memory@40000000", "wraps"),
        ("/chosen", "initrd"),
        ("/chosen", "/nowhere@0"),
        ("/psci", "method"),
        ("/intc@8000000", "GIC ignored"),
        ("/timer", "not a GIC"),
        ("/pl011@9001000", "no `reg`"),
        ("/smmuv3@9050000", "0x1234"),
        ("/pcie@10000000", "bus-range"),
        ("/pcie@20000000", "0x4321"),
    ] {
        let found = warnings_for(&hw, path);
        assert!(
            found.iter().any(|w| w.contains(needle)),
            "{path}: {needle:?} not in {:?}",
            hw.warnings
        );
    }
    assert_eq!(hw.warnings.len(), 10, "{:?}", hw.warnings);
}
