//! The `pci = [...]` key through the host tool: read into the guest's
//! configuration and the bundle, and each refusal located at its entry
//! (`guest[i].pci[j]`, line and column).

mod common;

use common::{BASE, Fixture, QEMU_VIRT_DTB, edit, render};
use guestcfg::{Source, build_bundle, check_against_board};
use hypervisor::config::{Bundle, Located, PciAddr, Problem, ValidationError};

/// `BASE` with `pci = [items]` after `devices` and no device.
fn with_pci(items: &str) -> String {
    edit(
        "devices = [\"/pl011@9000000\"]\n",
        &format!("pci = [{items}]\n"),
    )
}

#[test]
fn functions_are_read_and_bundled() {
    let fx = Fixture::new();
    let file = fx.load(&with_pci("\"00:02.0\", \"0000:00:03.0\"")).unwrap();
    assert_eq!(file.guests[0].config.pci, ["00:02.0", "0000:00:03.0"]);
    check_against_board(&file, QEMU_VIRT_DTB).unwrap();
    let bytes = build_bundle(&file, |source| match source {
        Source::File(path) => std::fs::read(path).map_err(|e| e.to_string()),
        other => Err(format!("{other} is not available here")),
    })
    .unwrap();
    let bundle = Bundle::parse(&bytes).unwrap();
    assert_eq!(bundle.guests[0].config, file.guests[0].config);
    let file = fx.load(BASE).unwrap();
    assert!(file.guests[0].config.pci.is_empty(), "pci is optional");
}

#[test]
fn a_bad_entry_is_located_at_its_line() {
    let errors = Fixture::new().errors(&with_pci("\"00:02.0\",\n  \"00:2.0\", \"00:02.0\""));
    assert_eq!(
        errors,
        [
            "8:3: guest[0].pci[1]: \"00:2.0\" is not a PCI function address (BB:DD.F or SSSS:BB:DD.F, \
             hexadecimal as lspci prints them)",
            "8:13: guest[0].pci[2]: PCI function 0000:00:02.0 is listed twice",
        ]
    );
}

#[test]
fn a_virtio_iommu_on_pci_without_functions_is_refused_at_its_key() {
    let text = with_pci("") + "[guest.viommu]\ntransport = \"pci\"\n";
    let errors = Fixture::new().errors(&text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains(
            "guest[0].pci: a virtio-iommu on virtio-pci sits on the guest's virtual PCI bus"
        ),
        "{errors:?}"
    );
}

#[test]
fn board_refusals_are_located() {
    let fx = Fixture::new();
    let path = fx.write(&with_pci("\"00:02.0\", \"0001:00:02.0\""));
    let file = guestcfg::load(&path).unwrap();
    let errors = check_against_board(&file, QEMU_VIRT_DTB).unwrap_err();
    assert_eq!(
        render(&errors, &path),
        [
            "7:19: guest[0].pci[1]: PCI function 0001:00:02.0: segment 0001 names no host bridge (the \
          host device tree has 1 pci-host-ecam-generic bridges, numbered from 0000)"
        ]
    );
}

#[test]
fn the_bundle_lets_the_boot_locate_what_only_it_can_check() {
    // Whether 00:07.0 exists is known at boot only (device trees do not
    // list functions): the bundle carries the keys' places, so the boot's
    // message names the file, line, column and key as the tool would.
    let fx = Fixture::new();
    let file = fx.load(&with_pci("\"00:02.0\",\n  \"00:07.0\"")).unwrap();
    let bytes = build_bundle(&file, |source| match source {
        Source::File(path) => std::fs::read(path).map_err(|e| e.to_string()),
        other => Err(format!("{other} is not available here")),
    })
    .unwrap();
    let bundle = Bundle::parse(&bytes).unwrap();
    let config = &bundle.guests[0].config;
    let error = ValidationError::guest(
        0,
        &config.name,
        Problem::PciAbsent {
            addr: PciAddr::parse("00:07.0").unwrap(),
            at: 1,
            bridge: "/pcie@10000000".into(),
        },
    );
    let text = Located {
        error: &error,
        origin: Some(&config.origin),
    }
    .to_string();
    assert!(
        text.starts_with("guests.toml:8:3: guest[0].pci[1]: "),
        "{text}"
    );
}
