//! Checking files against a board's device tree (QEMU `virt` with 4 CPUs,
//! 1 GiB, GICv3 and an SMMUv3): one test per board rule.

mod common;

use common::{BASE, Fixture, QEMU_VIRT_DTB, edit, guests, render};
use guestcfg::{ErrorKind, check_against_board};

/// Loads `toml` (which must be valid on its own) and checks it against the
/// board, returning the rendered errors.
fn board_errors(toml: &str) -> Vec<String> {
    let fx = Fixture::new();
    let path = fx.write(toml);
    let file = guestcfg::load(&path).unwrap();
    render(
        &check_against_board(&file, QEMU_VIRT_DTB).expect_err("the board accepted it"),
        &path,
    )
}

#[test]
fn base_file_fits() {
    let fx = Fixture::new();
    let file = fx.load(BASE).unwrap();
    check_against_board(&file, QEMU_VIRT_DTB).unwrap();
}

#[test]
fn repository_configuration_fits_qemu_virt() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../guest-configs/qemu-virt-linux.toml");
    let file = guestcfg::load(&path).unwrap();
    check_against_board(&file, QEMU_VIRT_DTB).unwrap();
}

#[test]
fn device_absent_from_board() {
    let errors = board_errors(&edit(
        "\"/pl011@9000000\"",
        "\"/pl011@9000000\", \"/uart@1c090000\"",
    ));
    assert_eq!(
        errors,
        ["7:30: guest[0].devices[1]: device /uart@1c090000 is not in the host device tree"]
    );
}

#[test]
fn cpu_absent_from_board() {
    let errors = board_errors(&edit("cpus = [0, 1]", "cpus = [0, 7]"));
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with(
            "3:12: guest[0].cpus[1]: CPU 7 is not present (the host has 4 usable CPUs"
        ),
        "{errors:?}"
    );
}

#[test]
fn device_claimed_by_two_guests() {
    let text = guests(2)
        .replace("cpus = [1]", "cpus = [1]\ndevices = [\"/pl011\"]")
        .replace("cpus = [0]", "cpus = [0]\ndevices = [\"/pl011@9000000\"]");
    let errors = board_errors(&text);
    assert_eq!(
        errors,
        [
            "13:12: guest[1].devices[0]: device /pl011 is already claimed by guest 0 (\"g0\") (as /pl011@9000000)"
        ]
    );
}

#[test]
fn hypervisor_device_refused() {
    let errors = board_errors(&edit(
        "\"/pl011@9000000\"",
        "\"/smmuv3@9050000\", \"/intc@8000000\"",
    ));
    assert_eq!(
        errors,
        [
            "7:12: guest[0].devices[0]: device /smmuv3@9050000 is an SMMUv3, which the hypervisor keeps for itself",
            "7:31: guest[0].devices[1]: device /intc@8000000 is the interrupt controller, which the hypervisor keeps \
             for itself",
        ]
    );
}

#[test]
fn total_memory_larger_than_host_ram() {
    let errors = board_errors(&guests(2).replace("\"64M\"", "\"1G\""));
    assert_eq!(
        errors,
        [
            "16:8: guest[1].memory.size: this guest brings the guests' RAM to 2 GiB, more than the host's 1 GiB of usable RAM"
        ]
    );
}

#[test]
fn ram_overlaps_own_device() {
    let errors = board_errors(&edit("size = \"64M\"", "size = \"64M\"\nbase = 0x8000000"));
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with(
            "7:12: guest[0].devices[0]: guest RAM [0x8000000..0xc000000) overlaps [0x9000000..0x9001000) of device \
             /pl011@9000000"
        ),
        "{errors:?}"
    );
}

#[test]
fn unusable_board_blob() {
    let fx = Fixture::new();
    let file = fx.load(BASE).unwrap();
    let errors = check_against_board(&file, b"not a device tree").unwrap_err();
    assert!(matches!(
        errors[..],
        [guestcfg::ConfigError {
            kind: ErrorKind::BadBoard(_),
            position: None,
            ..
        }]
    ));
    assert!(
        errors[0]
            .to_string()
            .contains(": the board's device tree is unusable: "),
        "{}",
        errors[0]
    );
}

/// Every configuration in guest-configs/ that names a board with an
/// upstream DTB passes the board check against that DTB.
#[test]
fn repository_board_configurations_fit_their_boards() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(root.join("guest-configs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let file = guestcfg::load(&path).unwrap();
        let Some(dtb) = file.board.as_deref().and_then(guestcfg::board_dtb) else {
            continue;
        };
        let blob = std::fs::read(root.join(guestcfg::BOARD_DTB_DIR).join(dtb)).unwrap();
        if let Err(errors) = check_against_board(&file, &blob) {
            panic!("{}: {}", path.display(), render(&errors, &path).join("\n"));
        }
        checked.push(file.board.clone().unwrap());
    }
    checked.sort();
    assert_eq!(
        checked,
        ["fvp-base-revc", "imx8mp-evk", "imx95-evk", "rock-5b"],
        "one configuration per board"
    );
}

/// A configuration for one board does not fit another: the check reads
/// the board's own tree.
#[test]
fn a_board_configuration_is_refused_elsewhere() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let file = guestcfg::load(&root.join("guest-configs/fvp-base-revc-linux.toml")).unwrap();
    let imx95 = std::fs::read(
        root.join(guestcfg::BOARD_DTB_DIR)
            .join("imx95-19x19-evk.dtb"),
    )
    .unwrap();
    let errors = check_against_board(&file, &imx95).expect_err("no /pci@40000000 on the i.MX 95");
    assert!(
        errors.iter().any(|e| e
            .to_string()
            .contains("/pci@40000000 is not in the host device tree")),
        "{errors:?}"
    );
}
