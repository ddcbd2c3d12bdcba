//! Ownership by host-physical address, against `fdt/testdata/soc-ownership.dtb`
//! (a `/soc` bus holding the GIC, an SMMUv3, the console UART and two
//! virtio-mmio transports in one page): one test per refusal, and a
//! two-guest configuration that passes.

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use crate::config::{
    Field, GuestConfig, GuestRef, Problem, ValidationError, ViommuConfig, check_guests, validate,
};
use crate::fdt::HostDt;
use crate::mm::layout::Region;

const SOC_DTB: &[u8] = include_bytes!("../../fdt/testdata/soc-ownership.dtb");

fn host() -> HostDt {
    HostDt::parse(SOC_DTB).unwrap()
}

/// A 64 MiB guest at 0x8000_0000 (clear of every device here) on `cpus`.
fn guest(name: &str, cpus: &[u32], devices: &[&str]) -> GuestConfig {
    let mut g = GuestConfig::new(name, cpus, 64 << 20);
    g.memory_base = 0x8000_0000;
    g.devices = devices.iter().map(ToString::to_string).collect();
    g
}

fn allowing(mut g: GuestConfig, allow: &[&str]) -> GuestConfig {
    g.allow_untranslated_dma = allow.iter().map(ToString::to_string).collect();
    g
}

/// The problems of guest `index`.
fn problems_of(errors: &[ValidationError], index: usize) -> Vec<Problem> {
    errors
        .iter()
        .filter(|e| e.guest.as_ref().map(|g| g.index) == Some(index))
        .map(|e| e.problem.clone())
        .collect()
}

/// The problems of a one-guest configuration.
fn problems(g: GuestConfig) -> Vec<Problem> {
    problems_of(&validate(&[g], &host()), 0)
}

#[test]
fn the_tree_is_what_the_tests_expect() {
    let host = host();
    assert_eq!(
        host.gic.as_ref().unwrap().path,
        "/soc/interrupt-controller@8000000"
    );
    assert_eq!(host.smmus.len(), 1);
    assert_eq!(host.smmus[0].path, "/soc/iommu@9050000");
    assert_eq!(host.stdout.as_ref().unwrap().path, "/soc/serial@9000000");
    assert_eq!(host.warnings, Vec::<String>::new());
}

#[test]
fn a_bus_holding_the_gic_is_refused() {
    let p = problems(guest("a", &[0], &["/soc"]));
    assert_eq!(
        p,
        vec![Problem::DeviceContainsReserved {
            path: "/soc".into(),
            at: 0,
            node: "/soc/interrupt-controller@8000000".into(),
            what: "the interrupt controller",
        }]
    );
    assert_eq!((p[0].field(), p[0].item()), (Field::Devices, Some(0)));
    assert_eq!(
        p[0].to_string(),
        "device /soc contains /soc/interrupt-controller@8000000, the interrupt controller, which the \
         hypervisor keeps for itself (passing a node passes its whole subtree); give the nodes beside it \
         instead"
    );
    // The SMMU and the GIC themselves, under /soc, stay refused.
    assert!(matches!(
        &problems(guest("a", &[0], &["/soc/iommu@9050000"]))[..],
        [Problem::DeviceReserved {
            what: "an SMMUv3",
            ..
        }]
    ));
    assert!(matches!(
        &problems(guest("a", &[0], &["/soc/interrupt-controller"]))[..],
        [Problem::DeviceReserved {
            what: "the interrupt controller",
            ..
        }]
    ));
}

#[test]
fn a_page_of_the_gic_distributor_is_refused() {
    assert_eq!(
        problems(guest("a", &[0], &["/soc/syscon@800f800"])),
        vec![Problem::DeviceOverlapsHypervisor {
            path: "/soc/syscon@800f800".into(),
            at: 0,
            mmio: Region::new(0x800_f000, 0x1000),
            what: "the GIC distributor",
            region: Region::new(0x800_0000, 0x1_0000),
        }]
    );
}

#[test]
fn a_page_of_the_smmu_is_refused() {
    let p = problems(guest("a", &[0], &["/soc/pmu@9060000"]));
    assert_eq!(
        p,
        vec![Problem::DeviceOverlapsHypervisor {
            path: "/soc/pmu@9060000".into(),
            at: 0,
            mmio: Region::new(0x906_0000, 0x1000),
            what: "an SMMUv3",
            region: Region::new(0x905_0000, 0x2_0000),
        }]
    );
    assert_eq!(
        p[0].to_string(),
        "device /soc/pmu@9060000 needs pages [0x9060000..0x9061000), which overlap an SMMUv3 \
         [0x9050000..0x9070000) that the hypervisor keeps for itself (stage 2 maps whole 4 KiB pages)"
    );
}

#[test]
fn the_console_page_is_refused_unless_the_guest_has_the_console() {
    // The GPIO block only shares the console UART's page.
    assert_eq!(
        problems(guest("a", &[0], &["/soc/gpio@9000f00"])),
        vec![Problem::DeviceOverlapsHypervisor {
            path: "/soc/gpio@9000f00".into(),
            at: 0,
            mmio: Region::new(0x900_0000, 0x1000),
            what: "the console UART",
            region: Region::new(0x900_0000, 0x100),
        }]
    );
    // A guest given the console UART has its page (as the default guest
    // has QEMU's PL011), and what shares it.
    assert_eq!(problems(guest("a", &[0], &["/soc/serial@9000000"])), vec![]);
    assert_eq!(
        problems(guest("a", &[0], &["/soc/serial", "/soc/gpio@9000f00"])),
        vec![]
    );
    // ...but not another guest.
    let errors = validate(
        &[
            guest("a", &[0], &["/soc/serial"]),
            guest("b", &[1], &["/soc/gpio@9000f00"]),
        ],
        &host(),
    );
    assert_eq!(problems_of(&errors, 0), vec![]);
    assert!(
        matches!(
            &problems_of(&errors, 1)[..],
            [Problem::DeviceOverlapsHypervisor {
                what: "the console UART",
                ..
            }]
        ),
        "{errors:?}"
    );
}

#[test]
fn host_ram_is_refused() {
    assert_eq!(
        problems(guest("a", &[0], &["/soc/sram@3ffffc00"])),
        vec![Problem::DeviceOverlapsHypervisor {
            path: "/soc/sram@3ffffc00".into(),
            at: 0,
            mmio: Region::new(0x3fff_f000, 0x2000),
            what: "host RAM",
            region: Region::new(0x4000_0000, 0x4000_0000),
        }]
    );
}

#[test]
fn the_guests_own_virtio_iommu_window_is_refused() {
    let mut g = allowing(
        guest("a", &[0], &["/soc/virtio_mmio@a000200"]),
        &["/soc/virtio_mmio@a000200"],
    );
    g.viommu = Some(ViommuConfig {
        base: 0xa00_0000,
        ..ViommuConfig::default()
    });
    assert_eq!(
        problems(g),
        vec![Problem::ViommuOverlapsDevice {
            path: "/soc/virtio_mmio@a000200".into(),
            window: Region::new(0xa00_0000, 0x1000),
            mmio: Region::new(0xa00_0200, 0x200),
        }]
    );
}

#[test]
fn two_guests_in_one_page_are_refused() {
    let guests = [
        allowing(
            guest("a", &[0], &["/soc/virtio_mmio@a000000"]),
            &["/soc/virtio_mmio@a000000"],
        ),
        allowing(
            guest("b", &[1], &["/soc/virtio_mmio@a000200"]),
            &["/soc/virtio_mmio@a000200"],
        ),
    ];
    let errors = validate(&guests, &host());
    assert_eq!(
        errors,
        vec![ValidationError::guest(
            1,
            "b",
            Problem::DevicePageShared {
                path: "/soc/virtio_mmio@a000200".into(),
                at: 0,
                mmio: Region::new(0xa00_0000, 0x1000),
                owner: GuestRef::named(0, "a"),
                owner_path: "/soc/virtio_mmio@a000000".into(),
                owner_mmio: Region::new(0xa00_0000, 0x1000),
            }
        )]
    );
    assert_eq!(
        errors[0].to_string(),
        "guest 1 (\"b\"): device /soc/virtio_mmio@a000200 needs pages [0xa000000..0xa001000), which \
         overlap pages [0xa000000..0xa001000) of device /soc/virtio_mmio@a000000 of guest 0 (\"a\") \
         (stage 2 maps whole 4 KiB pages, so each would reach the other's registers)"
    );
    // One guest may have both.
    assert_eq!(
        problems(allowing(
            guest(
                "a",
                &[0],
                &["/soc/virtio_mmio@a000000", "/soc/virtio_mmio@a000200"]
            ),
            &["/soc/virtio_mmio@a000000", "/soc/virtio_mmio@a000200"],
        )),
        vec![]
    );
}

#[test]
fn an_spi_of_another_guest_is_refused() {
    let guests = [
        guest("a", &[0], &["/soc/dma@a100000"]),
        guest("b", &[1], &["/soc/timer@a200000"]),
    ];
    let errors = validate(&guests, &host());
    assert_eq!(
        errors,
        vec![ValidationError::guest(
            1,
            "b",
            Problem::SpiTaken {
                path: "/soc/timer@a200000".into(),
                at: 0,
                spi: 20,
                owner: GuestRef::named(0, "a"),
                owner_path: "/soc/dma@a100000".into(),
            }
        )]
    );
    assert_eq!(
        errors[0].to_string(),
        "guest 1 (\"b\"): device /soc/timer@a200000 raises SPI 20 (INTID 52), which device \
         /soc/dma@a100000 of guest 0 (\"a\") raises too (an SPI belongs to one guest)"
    );
    // Within one guest, a shared SPI is that guest's.
    assert_eq!(
        problems(guest(
            "a",
            &[0],
            &["/soc/dma@a100000", "/soc/timer@a200000"]
        )),
        vec![]
    );
}

#[test]
fn an_spi_of_the_hypervisor_is_refused() {
    assert_eq!(
        problems(guest("a", &[0], &["/soc/watchdog@a300000"])),
        vec![Problem::SpiReserved {
            path: "/soc/watchdog@a300000".into(),
            at: 0,
            spi: 74,
            what: "an SMMUv3",
        }]
    );
}

#[test]
fn untranslated_dma_is_refused_unless_allowed() {
    let p = problems(guest("a", &[0], &["/soc/virtio_mmio@a000000"]));
    assert_eq!(
        p,
        vec![Problem::UntranslatedDma {
            path: "/soc/virtio_mmio@a000000".into(),
            at: 0,
            node: "/soc/virtio_mmio@a000000".into(),
            why: "dma-coherent without iommus",
        }]
    );
    assert_eq!(
        p[0].to_string(),
        "device /soc/virtio_mmio@a000000: /soc/virtio_mmio@a000000 can master DMA (dma-coherent without \
         iommus) and no SMMU the hypervisor runs translates it, so its DMA could reach any memory; list \
         it in allow_untranslated_dma to accept that"
    );
    assert_eq!(
        problems(guest("a", &[0], &["/pcie@10000000"])),
        vec![Problem::UntranslatedDma {
            path: "/pcie@10000000".into(),
            at: 0,
            node: "/pcie@10000000".into(),
            why: "a PCI host bridge without iommu-map",
        }]
    );
    // Behind the SMMU: fine.
    assert_eq!(problems(guest("a", &[0], &["/soc/dma@a100000"])), vec![]);
    // Named (under another spelling): accepted.
    assert_eq!(
        problems(allowing(
            guest("a", &[0], &["/soc/virtio_mmio@a000000", "/pcie"]),
            &["/soc/virtio_mmio@a000000", "/pcie@10000000"],
        )),
        vec![]
    );
}

#[test]
fn allow_list_entries_are_checked() {
    let g = allowing(
        guest("a", &[0], &["/soc/dma@a100000"]),
        &["soc", "/soc/nope", "/soc/timer@a200000", "/soc/dma"],
    );
    let problems = problems(g.clone());
    assert_eq!(
        problems,
        vec![
            Problem::AllowPathBad {
                path: "soc".into(),
                at: 0
            },
            Problem::AllowAbsent {
                path: "/soc/nope".into(),
                at: 1
            },
            Problem::AllowNotDevice {
                path: "/soc/timer@a200000".into(),
                at: 2
            },
        ]
    );
    assert!(
        problems
            .iter()
            .all(|p| p.field() == Field::AllowUntranslatedDma)
    );
    assert_eq!(
        problems[2].to_string(),
        "/soc/timer@a200000 is neither one of the guest's devices nor inside one"
    );
    // The syntax and the count are board-independent.
    let mut many = g;
    many.allow_untranslated_dma = (0..33).map(|i| alloc::format!("/n{i}")).collect();
    assert_eq!(
        problems_of(&check_guests(&[many]), 0),
        vec![Problem::TooManyAllowed { count: 33 }]
    );
}

#[test]
fn a_correct_two_guest_configuration_passes() {
    let mut a = guest(
        "linux",
        &[0],
        &[
            "/soc/serial@9000000",
            "/soc/gpio@9000f00",
            "/soc/dma@a100000",
            "/soc/timer@a200000",
        ],
    );
    a.viommu = Some(ViommuConfig::default());
    let b = allowing(
        guest(
            "bare",
            &[1],
            &[
                "/soc/virtio_mmio@a000000",
                "/soc/virtio_mmio@a000200",
                "/pcie@10000000",
            ],
        ),
        &[
            "/soc/virtio_mmio@a000000",
            "/soc/virtio_mmio@a000200",
            "/pcie@10000000",
        ],
    );
    assert_eq!(validate(&[a, b], &host()), vec![]);
}
