//! The `pci = [...]` key: each refusal, board-independent (form, repeat,
//! count, with a virtio-iommu) and against the host's bridges (segment,
//! bus range, two guests, a bridge also given whole), with its field,
//! position and message; and configurations that pass.

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use crate::config::{
    Field, GuestConfig, GuestRef, PciAddr, Problem, ValidationError, ViommuConfig, ViommuTransport,
    check_guests, validate,
};
use crate::fdt::HostDt;

/// QEMU `virt` with an SMMUv3: one host bridge, `/pcie@10000000`, buses
/// 0-255.
fn qemu() -> HostDt {
    HostDt::parse(include_bytes!("../../fdt/testdata/qemu-virt-smmu.dtb")).unwrap()
}

/// Two host bridges: `/pcie@10000000` (buses 0-1) and `/pcie@20000000`
/// (bus 0x10).
fn two_bridges() -> HostDt {
    HostDt::parse(include_bytes!("../../fdt/testdata/two-smmus.dtb")).unwrap()
}

/// A 64 MiB guest on `cpus` given the functions `pci` and no device.
fn guest(name: &str, cpus: &[u32], pci: &[&str]) -> GuestConfig {
    let mut g = GuestConfig::new(name, cpus, 64 << 20);
    g.pci = pci.iter().map(ToString::to_string).collect();
    g
}

/// The `pci` problems of guest `index`.
fn pci_problems(errors: &[ValidationError], index: usize) -> Vec<Problem> {
    errors
        .iter()
        .filter(|e| e.guest.as_ref().map(|g| g.index) == Some(index))
        .filter(|e| e.problem.field() == Field::Pci)
        .map(|e| e.problem.clone())
        .collect()
}

fn addr(s: &str) -> PciAddr {
    PciAddr::parse(s).unwrap()
}

#[test]
fn functions_given_to_two_guests_pass() {
    let guests = [
        guest("a", &[0], &["00:02.0", "0000:00:03.0"]),
        guest("b", &[1], &["00:04.0"]),
    ];
    assert_eq!(validate(&guests, &qemu()), []);
    assert_eq!(
        check_guests(&[guest("a", &[0], &["0001:10:00.0"])]),
        [],
        "no board: any segment"
    );
    assert_eq!(
        pci_problems(
            &validate(&[guest("a", &[0], &["0001:10:1f.7"])], &two_bridges()),
            0
        ),
        [],
        "segment 1 is the second bridge"
    );
}

#[test]
fn a_malformed_entry_is_refused() {
    let errors = check_guests(&[guest("a", &[0], &["00:02.0", "0:2.0"])]);
    let p = pci_problems(&errors, 0);
    assert_eq!(
        p,
        vec![Problem::PciBad {
            item: "0:2.0".into(),
            at: 1
        }]
    );
    assert_eq!((p[0].field(), p[0].item()), (Field::Pci, Some(1)));
    assert_eq!(
        p[0].to_string(),
        "\"0:2.0\" is not a PCI function address (BB:DD.F or SSSS:BB:DD.F, hexadecimal as lspci \
         prints them)"
    );
}

#[test]
fn a_function_listed_twice_is_refused_in_either_spelling() {
    let errors = check_guests(&[guest("a", &[0], &["00:02.0", "0000:00:02.0"])]);
    let p = pci_problems(&errors, 0);
    assert_eq!(
        p,
        vec![Problem::DuplicatePci {
            addr: addr("00:02.0"),
            at: 1
        }]
    );
    assert_eq!(p[0].item(), Some(1));
    assert_eq!(
        p[0].to_string(),
        "PCI function 0000:00:02.0 is listed twice"
    );
    // Not again against the board.
    let errors = validate(&[guest("a", &[0], &["00:02.0", "00:02.0"])], &qemu());
    assert_eq!(pci_problems(&errors, 0).len(), 1, "{errors:?}");
}

#[test]
fn at_most_31_functions() {
    let items: Vec<String> = (0..32).map(|d| alloc::format!("00:{d:02x}.0")).collect();
    let refs: Vec<&str> = items.iter().map(String::as_str).collect();
    assert_eq!(
        pci_problems(&check_guests(&[guest("a", &[0], &refs[..31])]), 0),
        []
    );
    let p = pci_problems(&check_guests(&[guest("a", &[0], &refs)]), 0);
    assert_eq!(p, vec![Problem::TooManyPci { count: 32 }]);
    assert_eq!((p[0].field(), p[0].item()), (Field::Pci, None));
    assert_eq!(
        p[0].to_string(),
        "32 PCI functions, at most 31 per guest (the virtual bus has 32 slots and keeps one)"
    );
}

#[test]
fn a_virtio_iommu_on_pci_needs_functions_to_serve() {
    let mut g = guest("a", &[0], &["00:02.0"]);
    g.viommu = Some(ViommuConfig::default()); // virtio-mmio
    assert_eq!(
        pci_problems(&check_guests(&[g.clone()]), 0),
        [],
        "on virtio-mmio"
    );
    g.viommu = Some(ViommuConfig {
        transport: ViommuTransport::Pci,
        ..ViommuConfig::default()
    });
    assert_eq!(
        pci_problems(&check_guests(&[g]), 0),
        [],
        "on the virtual bus"
    );
    // On PCI without functions: nothing to translate.
    let mut g = guest("a", &[0], &[]);
    g.viommu = Some(ViommuConfig {
        transport: ViommuTransport::Pci,
        ..ViommuConfig::default()
    });
    let p = pci_problems(&check_guests(&[g]), 0);
    assert_eq!(p, vec![Problem::ViommuPciWithoutPci]);
    let mut g = guest("a", &[0], &[]);
    g.viommu = Some(ViommuConfig::default());
    assert_eq!(
        pci_problems(&check_guests(&[g]), 0),
        [],
        "an empty pci is fine"
    );
}

#[test]
fn the_segment_names_a_host_bridge() {
    let errors = validate(&[guest("a", &[0], &["00:02.0", "0001:00:02.0"])], &qemu());
    let p = pci_problems(&errors, 0);
    assert_eq!(
        p,
        vec![Problem::PciNoBridge {
            addr: addr("0001:00:02.0"),
            at: 1,
            bridges: 1
        }]
    );
    assert_eq!(p[0].item(), Some(1));
    assert_eq!(
        p[0].to_string(),
        "PCI function 0001:00:02.0: segment 0001 names no host bridge (the host device tree has 1 \
         pci-host-ecam-generic bridges, numbered from 0000)"
    );
}

#[test]
fn the_bus_is_in_the_bridge_bus_range() {
    let errors = validate(
        &[guest("a", &[0], &["01:00.0", "02:00.0", "0001:0f:00.0"])],
        &two_bridges(),
    );
    let p = pci_problems(&errors, 0);
    assert_eq!(
        p,
        vec![
            Problem::PciBusOutOfRange {
                addr: addr("02:00.0"),
                at: 1,
                bridge: "/pcie@10000000".into(),
                range: (0, 1),
            },
            Problem::PciBusOutOfRange {
                addr: addr("0001:0f:00.0"),
                at: 2,
                bridge: "/pcie@20000000".into(),
                range: (0x10, 0x10),
            },
        ]
    );
    assert_eq!(p[1].item(), Some(2));
    assert_eq!(
        p[1].to_string(),
        "PCI function 0001:0f:00.0: bus 0f is outside the bus-range 10-10 of host bridge \
         /pcie@20000000"
    );
}

#[test]
fn a_function_is_given_to_one_guest() {
    let guests = [
        guest("a", &[0], &["00:02.0"]),
        guest("b", &[1], &["00:03.0", "0000:00:02.0"]),
    ];
    let errors = validate(&guests, &qemu());
    assert_eq!(pci_problems(&errors, 0), []);
    let p = pci_problems(&errors, 1);
    assert_eq!(
        p,
        vec![Problem::PciTaken {
            addr: addr("00:02.0"),
            at: 1,
            owner: GuestRef::named(0, "a"),
        }]
    );
    assert_eq!(p[0].item(), Some(1));
    assert_eq!(
        p[0].to_string(),
        "PCI function 0000:00:02.0 is already given to guest 0 (\"a\")"
    );
}

#[test]
fn not_on_a_bridge_given_whole() {
    // By another guest, later in the file.
    let mut whole = guest("b", &[1], &[]);
    whole.devices = vec!["/pcie@10000000".into()];
    whole.allow_untranslated_dma = vec!["/pcie@10000000".into()];
    let errors = validate(&[guest("a", &[0], &["00:02.0"]), whole.clone()], &qemu());
    let p = pci_problems(&errors, 0);
    assert_eq!(
        p,
        vec![Problem::PciBridgeTaken {
            addr: addr("00:02.0"),
            at: 0,
            bridge: "/pcie@10000000".into(),
            owner: GuestRef::named(1, "b"),
            owner_path: "/pcie@10000000".into(),
        }]
    );
    assert_eq!((p[0].field(), p[0].item()), (Field::Pci, Some(0)));
    assert_eq!(
        p[0].to_string(),
        "PCI function 0000:00:02.0 is on host bridge /pcie@10000000, which guest 1 (\"b\") is given \
         whole (devices entry /pcie@10000000); a bridge is given either whole or function by function"
    );
    // By the guest itself, under another spelling.
    let mut both = whole;
    both.devices = vec!["/pcie".into()];
    both.pci = vec!["00:02.0".into()];
    let p = pci_problems(&validate(&[both], &qemu()), 0);
    assert!(
        matches!(&p[..], [Problem::PciBridgeTaken { owner, owner_path, .. }]
            if owner.index == 0 && owner_path == "/pcie"),
        "{p:?}"
    );
    // A bridge given whole does not cover the other bridge.
    let mut first = guest("b", &[1], &[]);
    first.devices = vec!["/pcie@10000000".into()];
    let errors = validate(
        &[guest("a", &[0], &["0001:10:00.0"]), first],
        &two_bridges(),
    );
    assert_eq!(pci_problems(&errors, 0), []);
}
