//! Validation: the board-independent rules, and the board rules against
//! the QEMU `virt` device trees of `fdt/testdata/`.

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use super::{linux, pcie_untranslated};
use crate::config::limits::{MAX_CMDLINE_LEN, MAX_GUESTS};
use crate::config::{
    GuestConfig, GuestRef, Problem, ValidationError, check_board, check_guests, validate,
};
use crate::fdt::HostDt;
use crate::mm::layout::Region;

/// 4 CPUs, 1 GiB, GICv3 with ITS, SMMUv3.
fn smmu_board() -> HostDt {
    HostDt::parse(include_bytes!("../../fdt/testdata/qemu-virt-smmu.dtb")).unwrap()
}

fn guest(name: &str, cpus: &[u32], mib: u64, devices: &[&str]) -> GuestConfig {
    let mut g = GuestConfig::new(name, cpus, mib << 20);
    g.devices = devices.iter().map(ToString::to_string).collect();
    g
}

/// The problems of `errors`, for guest `index` only.
fn problems_of(errors: &[ValidationError], index: usize) -> Vec<Problem> {
    errors
        .iter()
        .filter(|e| e.guest.as_ref().map(|g| g.index) == Some(index))
        .map(|e| e.problem.clone())
        .collect()
}

#[test]
fn default_guest_fits_every_qemu_board() {
    let blobs: [(&str, &[u8]); 5] = [
        (
            "smmu",
            include_bytes!("../../fdt/testdata/qemu-virt-smmu.dtb"),
        ),
        (
            "nosmmu",
            include_bytes!("../../fdt/testdata/qemu-virt-nosmmu.dtb"),
        ),
        (
            "9.1",
            include_bytes!("../../fdt/testdata/qemu-virt-9.1.dtb"),
        ),
        (
            "gicv2",
            include_bytes!("../../fdt/testdata/qemu-virt-gicv2.dtb"),
        ),
        (
            "hvc",
            include_bytes!("../../fdt/testdata/qemu-virt-hvc.dtb"),
        ),
    ];
    for (name, blob) in blobs {
        let host = HostDt::parse(blob).unwrap();
        if !host.smmus.is_empty() {
            assert_eq!(validate(&[linux()], &host), vec![], "{name}");
            continue;
        }
        // Without an SMMU the PCIe host's DMA is untranslated: refused
        // unless the configuration accepts it.
        assert_eq!(
            validate(&[linux()], &host),
            vec![ValidationError::guest(
                0,
                "linux",
                Problem::UntranslatedDma {
                    path: "/pcie@10000000".into(),
                    at: 1,
                    node: "/pcie@10000000".into(),
                    why: "a PCI host bridge without iommu-map",
                }
            )],
            "{name}"
        );
        assert_eq!(
            validate(&[pcie_untranslated(linux())], &host),
            vec![],
            "{name}"
        );
    }
}

#[test]
fn board_independent_rules() {
    assert_eq!(
        check_guests(&[]),
        vec![ValidationError::global(Problem::NoGuests)]
    );
    let many: Vec<_> = (0..=MAX_GUESTS as u32)
        .map(|i| guest(&alloc::format!("g{i}"), &[i], 16, &[]))
        .collect();
    assert_eq!(
        check_guests(&many),
        vec![ValidationError::global(Problem::TooManyGuests { count: 9 })]
    );

    let mut bad = guest("", &[], 15, &["pl011", "/", "/a//b", "/x", "/x"]);
    bad.memory_base = 0x4010_0000;
    bad.cmdline = "a\0".repeat(MAX_CMDLINE_LEN);
    let problems = problems_of(&check_guests(&[bad]), 0);
    assert_eq!(
        problems,
        vec![
            Problem::EmptyName,
            Problem::NoCpus,
            Problem::MemoryTooSmall { size: 15 << 20 },
            Problem::MemorySizeUnaligned { size: 15 << 20 },
            Problem::MemoryBaseUnaligned { base: 0x4010_0000 },
            Problem::CmdlineTooLong {
                len: 2 * MAX_CMDLINE_LEN
            },
            Problem::CmdlineNul,
            Problem::DevicePathBad {
                path: "pl011".into(),
                at: 0
            },
            Problem::DevicePathBad {
                path: "/".into(),
                at: 1
            },
            Problem::DevicePathBad {
                path: "/a//b".into(),
                at: 2
            },
            Problem::DuplicateDevice {
                path: "/x".into(),
                at: 4
            },
        ]
    );
}

#[test]
fn names_cpus_and_high_memory() {
    let mut a = guest("a b", &[0, 1, 0], 32, &[]);
    a.memory_base = (1 << 40) - (16 << 20);
    let b = guest("a b", &[1, 2], 32, &[]);
    let c = guest(&"x".repeat(33), &(0..65).collect::<Vec<_>>(), 32, &[]);
    let errors = check_guests(&[a, b, c]);
    assert_eq!(
        problems_of(&errors, 0),
        vec![
            Problem::NameBadChar { c: ' ' },
            Problem::DuplicateCpu { cpu: 0, at: 2 },
            Problem::MemoryTooHigh {
                base: (1 << 40) - (16 << 20),
                size: 32 << 20
            },
        ]
    );
    let p1 = problems_of(&errors, 1);
    assert_eq!(p1[1], Problem::DuplicateName { first: 0 });
    assert_eq!(
        p1[2],
        Problem::CpuTaken {
            cpu: 1,
            at: 0,
            owner: GuestRef::named(0, "a b")
        }
    );
    let p2 = problems_of(&errors, 2);
    assert!(p2.contains(&Problem::NameTooLong { len: 33 }));
    assert!(p2.contains(&Problem::TooManyCpus { count: 65 }));
    let wraps = GuestConfig {
        memory_base: u64::MAX - (2 << 20) + 1,
        ..guest("w", &[3], 16, &[])
    };
    assert!(
        problems_of(&check_guests(&[wraps]), 0).contains(&Problem::MemoryTooHigh {
            base: u64::MAX - (2 << 20) + 1,
            size: 16 << 20
        })
    );
}

#[test]
fn cpu_absent_from_board() {
    let errors = validate(&[guest("a", &[0, 4], 64, &[])], &smmu_board());
    assert_eq!(
        problems_of(&errors, 0),
        vec![Problem::CpuAbsent {
            cpu: 4,
            at: 1,
            host_cpus: 4
        }]
    );
    assert_eq!(
        errors[0].to_string(),
        "guest 0 (\"a\"): CPU 4 is not present (the host has 4 usable CPUs, numbered from 0 as the hypervisor \
         prints them)"
    );
}

#[test]
fn cpu_claimed_twice() {
    let errors = validate(
        &[guest("a", &[0, 1], 64, &[]), guest("b", &[1], 64, &[])],
        &smmu_board(),
    );
    assert_eq!(
        errors,
        vec![ValidationError::guest(
            1,
            "b",
            Problem::CpuTaken {
                cpu: 1,
                at: 0,
                owner: GuestRef::named(0, "a")
            }
        )]
    );
    assert_eq!(
        errors[0].to_string(),
        "guest 1 (\"b\"): CPU 1 is already claimed by guest 0 (\"a\")"
    );
}

#[test]
fn device_absent() {
    let errors = check_board(
        &[guest("a", &[0], 64, &["/pl011@9000000", "/uart@1234"])],
        &smmu_board(),
    );
    assert_eq!(
        problems_of(&errors, 0),
        vec![Problem::DeviceAbsent {
            path: "/uart@1234".into(),
            at: 1
        }]
    );
}

#[test]
fn device_claimed_by_two_guests_under_two_spellings() {
    let guests = [
        guest("a", &[0], 64, &["/pl011"]),
        guest("b", &[1], 64, &["/pl011@9000000"]),
    ];
    let errors = check_board(&guests, &smmu_board());
    assert_eq!(
        problems_of(&errors, 1),
        vec![Problem::DeviceTaken {
            path: "/pl011@9000000".into(),
            at: 0,
            owner: GuestRef::named(0, "a"),
            owner_path: "/pl011@9000000".into(),
        }]
    );
}

#[test]
fn ancestor_and_descendant_clash() {
    let guests = [
        guest("a", &[0], 64, &["/gpio-keys/poweroff"]),
        guest("b", &[1], 64, &["/gpio-keys"]),
    ];
    let errors = check_board(&guests, &smmu_board());
    assert!(
        matches!(&problems_of(&errors, 1)[..], [Problem::DeviceTaken { owner_path, .. }] if owner_path == "/gpio-keys/poweroff")
    );
    // Within one guest, two spellings of one node are a duplicate.
    let errors = validate(
        &[guest("a", &[0], 64, &["/pl011", "/pl011@9000000"])],
        &smmu_board(),
    );
    assert_eq!(
        problems_of(&errors, 0),
        vec![Problem::DuplicateDevice {
            path: "/pl011@9000000".into(),
            at: 1
        }]
    );
    // The same string twice is reported once.
    let errors = validate(
        &[guest("a", &[0], 64, &["/pl011", "/pl011"])],
        &smmu_board(),
    );
    assert_eq!(
        problems_of(&errors, 0),
        vec![Problem::DuplicateDevice {
            path: "/pl011".into(),
            at: 1
        }]
    );
}

#[test]
fn hypervisor_devices_are_refused() {
    let cases = [
        ("/smmuv3@9050000", "an SMMUv3"),
        ("/intc@8000000", "the interrupt controller"),
        ("/intc@8000000/its@8080000", "the interrupt controller"),
        ("/intc", "the interrupt controller"),
        ("/cpus/cpu@0", "the CPU list"),
        ("/memory@40000000", "host RAM"),
        ("/chosen", "/chosen"),
        ("/timer", "the generic timer"),
        ("/psci", "the PSCI firmware node"),
    ];
    let host = smmu_board();
    for (path, what) in cases {
        let errors = check_board(&[guest("a", &[0], 64, &[path])], &host);
        assert_eq!(
            problems_of(&errors, 0),
            vec![Problem::DeviceReserved {
                path: path.into(),
                at: 0,
                what
            }],
            "{path}"
        );
    }
    let gicv2 = HostDt::parse(include_bytes!("../../fdt/testdata/qemu-virt-gicv2.dtb")).unwrap();
    let errors = check_board(&[guest("a", &[0], 64, &["/intc@8000000"])], &gicv2);
    assert!(matches!(
        &problems_of(&errors, 0)[..],
        [Problem::DeviceReserved {
            what: "the interrupt controller",
            ..
        }]
    ));
    let text = errors[0].to_string();
    assert_eq!(
        text,
        "guest 0 (\"a\"): device /intc@8000000 is the interrupt controller, which the hypervisor keeps for itself"
    );
}

#[test]
fn total_memory_beyond_host_ram() {
    let guests = [
        guest("a", &[0], 512, &[]),
        guest("b", &[1], 512, &[]),
        guest("c", &[2], 16, &[]),
    ];
    let errors = check_board(&guests, &smmu_board());
    assert_eq!(
        errors,
        vec![ValidationError::guest(
            2,
            "c",
            Problem::TotalMemory {
                total: 1040 << 20,
                available: 1 << 30
            }
        )]
    );
    assert!(
        errors[0]
            .to_string()
            .contains("1040 MiB, more than the host's 1 GiB"),
        "{}",
        errors[0]
    );
}

#[test]
fn ram_overlapping_own_device_mmio() {
    let mut a = guest("a", &[0], 16, &["/pl011@9000000"]);
    a.memory_base = 0x0900_0000;
    let errors = check_board(&[a], &smmu_board());
    assert_eq!(
        problems_of(&errors, 0),
        vec![Problem::RamOverlapsDevice {
            path: "/pl011@9000000".into(),
            at: 0,
            ram: Region::new(0x0900_0000, 16 << 20),
            mmio: Region::new(0x0900_0000, 0x1000),
        }]
    );
    // A PCIe host's memory window counts too.
    let mut b = guest("b", &[0], 64, &["/pcie@10000000"]);
    b.memory_base = 0x2000_0000;
    let errors = check_board(&[b], &smmu_board());
    assert!(
        matches!(&problems_of(&errors, 0)[..], [Problem::RamOverlapsDevice { mmio, .. }] if mmio.base == 0x1000_0000),
        "{errors:?}"
    );
    // Another guest's device does not matter: address spaces are separate.
    let mut c = guest("c", &[1], 16, &[]);
    c.memory_base = 0x0900_0000;
    assert_eq!(
        check_board(&[guest("d", &[0], 64, &["/pl011"]), c], &smmu_board()),
        vec![]
    );
}

#[test]
fn every_problem_displays_with_guest() {
    let mut g = guest("", &[9, 9], 1, &["x", "/nope", "/smmuv3@9050000"]);
    g.memory_base = 1;
    g.cmdline = String::from("\0");
    for e in validate(&[g], &smmu_board()) {
        let text = e.to_string();
        assert!(text.starts_with("guest 0 (\"\"): "), "{text}");
    }
    let text = ValidationError::global(Problem::NoGuests).to_string();
    assert_eq!(text, "configuration: no guest is defined");
}
