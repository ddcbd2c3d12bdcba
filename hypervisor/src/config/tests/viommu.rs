//! The `viommu` setting: its defaults, and each of its rules (alone, then
//! against the QEMU `virt` device trees of `fdt/testdata/`).

use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;

use super::{linux, pcie_untranslated};
use crate::config::limits::{
    DEFAULT_VIOMMU_BASE, DEFAULT_VIOMMU_SPI, MAX_GUEST_PHYS, MAX_VIOMMU_SPI, VIOMMU_PAGE,
};
use crate::config::{
    Field, GuestConfig, Problem, ValidationError, ViommuConfig, ViommuTransport, check_board,
    check_guests, check_spi_count, validate,
};
use crate::fdt::HostDt;
use crate::mm::layout::Region;

const SMMU_DTB: &[u8] = include_bytes!("../../fdt/testdata/qemu-virt-smmu.dtb");
const GICV2_DTB: &[u8] = include_bytes!("../../fdt/testdata/qemu-virt-gicv2.dtb");

/// The default guest with its virtio-iommu at `base`, SPI `spi`.
fn with_viommu(base: u64, spi: u32) -> GuestConfig {
    let mut g = linux();
    g.viommu = Some(ViommuConfig {
        transport: ViommuTransport::Mmio,
        base,
        spi,
    });
    g
}

/// Every problem of `guests` (one guest expected) on `dtb`.
fn problems(guest: GuestConfig, dtb: &[u8]) -> Vec<Problem> {
    let host = HostDt::parse(dtb).unwrap();
    validate(&[guest], &host)
        .into_iter()
        .map(|e| e.problem)
        .collect()
}

fn page(base: u64) -> Region {
    Region::new(base, VIOMMU_PAGE)
}

#[test]
fn defaults() {
    let v = ViommuConfig::default();
    assert_eq!(v.transport, ViommuTransport::Mmio);
    assert_eq!((v.base, v.spi), (0x0b00_0000, 96));
    assert_eq!((DEFAULT_VIOMMU_BASE, DEFAULT_VIOMMU_SPI), (v.base, v.spi));
    assert_eq!(v.intid(), 128);
    assert_eq!(GuestConfig::new("a", &[0], 16 << 20).viommu, None);
    // The default place fits every QEMU board (default_guest_fits_every_qemu_board
    // covers the others), and so does a guest without a virtio-iommu.
    assert_eq!(problems(linux(), SMMU_DTB), vec![]);
    // (That board has no SMMU: its PCIe host's DMA must be accepted
    // untranslated.)
    assert_eq!(problems(pcie_untranslated(linux()), GICV2_DTB), vec![]);
    let mut none = linux();
    none.viommu = None;
    assert_eq!(problems(none, SMMU_DTB), vec![]);
}

#[test]
fn base_unaligned() {
    let p = problems(with_viommu(0x0b00_0200, 96), SMMU_DTB);
    assert_eq!(p, vec![Problem::ViommuBaseUnaligned { base: 0x0b00_0200 }]);
    assert_eq!(p[0].field(), Field::ViommuBase);
    assert_eq!(p[0].item(), None);
    assert_eq!(
        p[0].to_string(),
        "virtio-iommu base 0xb000200 is not aligned to 4 KiB (its page is trapped whole)"
    );
}

#[test]
fn base_too_high() {
    // Without the PCIe host, whose 64-bit window ends at 1 TiB.
    let uart_only = |base| {
        let mut g = with_viommu(base, 96);
        g.devices.truncate(1);
        g
    };
    let last = MAX_GUEST_PHYS - VIOMMU_PAGE;
    assert_eq!(problems(uart_only(last), SMMU_DTB), vec![]);
    for base in [MAX_GUEST_PHYS, u64::MAX - VIOMMU_PAGE + 1] {
        assert_eq!(
            problems(uart_only(base), SMMU_DTB),
            vec![Problem::ViommuTooHigh { base }],
            "{base:#x}"
        );
    }
}

#[test]
fn overlaps_guest_ram() {
    let g = with_viommu(0x5000_0000, 96);
    let ram = Region::new(0x4000_0000, 512 << 20);
    let errors = check_guests(&[g]);
    assert_eq!(
        errors,
        vec![ValidationError::guest(
            0,
            "linux",
            Problem::ViommuOverlapsRam {
                window: page(0x5000_0000),
                ram
            }
        )]
    );
    assert_eq!(
        errors[0].to_string(),
        "guest 0 (\"linux\"): the virtio-iommu page [0x50000000..0x50001000) overlaps guest RAM \
         [0x40000000..0x60000000); move viommu.base"
    );
    // Just below RAM is fine.
    assert_eq!(check_guests(&[with_viommu(0x3fff_f000, 96)]), vec![]);
}

#[test]
fn spi_above_the_maximum() {
    assert_eq!(
        problems(with_viommu(DEFAULT_VIOMMU_BASE, MAX_VIOMMU_SPI), SMMU_DTB),
        vec![]
    );
    let p = problems(
        with_viommu(DEFAULT_VIOMMU_BASE, MAX_VIOMMU_SPI + 1),
        SMMU_DTB,
    );
    assert_eq!(p, vec![Problem::ViommuSpiTooHigh { spi: 988, max: 987 }]);
    assert_eq!(p[0].field(), Field::ViommuSpi);
    assert_eq!(
        p[0].to_string(),
        "virtio-iommu SPI 988 is above the GIC's highest SPI 987"
    );
}

#[test]
fn spi_against_the_gic_count() {
    let mut plain = linux();
    plain.viommu = None;
    let guests = [plain, with_viommu(DEFAULT_VIOMMU_BASE, 96)];
    assert_eq!(check_spi_count(&guests, 97), vec![]);
    assert_eq!(
        check_spi_count(&guests, 96),
        vec![ValidationError::guest(
            1,
            "linux",
            Problem::ViommuSpiTooHigh { spi: 96, max: 95 }
        )]
    );
}

#[test]
fn overlaps_a_passed_through_device() {
    let p = problems(with_viommu(0x0900_0000, 96), SMMU_DTB);
    assert_eq!(
        p,
        vec![Problem::ViommuOverlapsDevice {
            path: "/pl011@9000000".into(),
            window: page(0x0900_0000),
            mmio: Region::new(0x0900_0000, 0x1000),
        }]
    );
    assert_eq!(p[0].field(), Field::ViommuBase);
    assert_eq!(p[0].item(), None, "located at viommu.base, not devices[0]");
    assert!(
        p[0].to_string()
            .starts_with("the virtio-iommu page [0x9000000..0x9001000) overlaps [0x9000000..0x9001000) of device /pl011@9000000"),
        "{}",
        p[0]
    );
    // The PCIe host's windows count (its 32-bit memory window here).
    let p = problems(with_viommu(0x2000_0000, 96), SMMU_DTB);
    assert!(
        matches!(&p[..], [Problem::ViommuOverlapsDevice { path, mmio, .. }] if path == "/pcie@10000000" && mmio.contains(0x2000_0000)),
        "{p:?}"
    );
    // A host device the guest does not have stays unmapped: no clash (the
    // RTC at 0x9010000, QEMU's virtio-mmio transports at 0xa000000).
    assert_eq!(problems(with_viommu(0x0901_0000, 96), SMMU_DTB), vec![]);
    assert_eq!(problems(with_viommu(0x0a00_0000, 96), SMMU_DTB), vec![]);
}

#[test]
fn overlaps_the_gic() {
    let cases: [(&[u8], u64, &str, Region); 3] = [
        (
            SMMU_DTB,
            0x0800_f000,
            "the GIC distributor",
            Region::new(0x0800_0000, 0x1_0000),
        ),
        (
            SMMU_DTB,
            0x08ff_f000,
            "a GIC redistributor region",
            Region::new(0x080a_0000, 0xf6_0000),
        ),
        // GICv2 host: the emulated GICv3's redistributors follow the
        // distributor, one 128 KiB frame per vCPU (two here).
        (
            GICV2_DTB,
            0x0804_f000,
            "the GIC redistributor region",
            Region::new(0x0801_0000, 0x4_0000),
        ),
    ];
    for (dtb, base, what, gic) in cases {
        assert_eq!(
            problems(pcie_untranslated(with_viommu(base, 96)), dtb),
            vec![Problem::ViommuOverlapsGic {
                window: page(base),
                gic,
                what
            }],
            "{base:#x}"
        );
    }
    // Past the GICv2 guest's two redistributors.
    assert_eq!(
        problems(pcie_untranslated(with_viommu(0x0805_0000, 96)), GICV2_DTB),
        vec![]
    );
    let text = Problem::ViommuOverlapsGic {
        window: page(0x0800_0000),
        gic: Region::new(0x0800_0000, 0x1_0000),
        what: "the GIC distributor",
    }
    .to_string();
    assert!(
        text.contains("overlaps the GIC distributor [0x8000000..0x8010000)"),
        "{text}"
    );
}

#[test]
fn spi_of_a_passed_through_device() {
    // The PL011 raises SPI 1; the PCIe host's interrupt-map names SPIs 3-6.
    let mut g = with_viommu(DEFAULT_VIOMMU_BASE, 1);
    g.devices = vec!["/pl011".to_string(), "/pcie@10000000".to_string()];
    let p = problems(g, SMMU_DTB);
    assert_eq!(
        p,
        vec![Problem::ViommuSpiTaken {
            spi: 1,
            path: "/pl011".into()
        }]
    );
    assert_eq!(p[0].field(), Field::ViommuSpi);
    assert_eq!(
        p[0].to_string(),
        "virtio-iommu SPI 1 (INTID 33) is already raised by device /pl011"
    );
    assert_eq!(
        problems(with_viommu(DEFAULT_VIOMMU_BASE, 5), SMMU_DTB),
        vec![Problem::ViommuSpiTaken {
            spi: 5,
            path: "/pcie@10000000".into()
        }]
    );
    // The SPI of a device the guest does not have is free for it (the RTC
    // raises SPI 2).
    assert_eq!(
        problems(with_viommu(DEFAULT_VIOMMU_BASE, 2), SMMU_DTB),
        vec![]
    );
}

#[test]
fn board_rules_need_a_usable_base() {
    // An unaligned base is reported once, not again as overlaps.
    let host = HostDt::parse(SMMU_DTB).unwrap();
    assert_eq!(check_board(&[with_viommu(0x0900_0010, 96)], &host), vec![]);
}
