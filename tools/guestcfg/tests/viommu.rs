//! The `[guest.viommu]` table: defaults, `enabled = false`, and every
//! error located at its key (`guest[0].viommu.base`), from the file alone
//! and against the QEMU `virt` board.

mod common;

use common::{BASE, Fixture, QEMU_VIRT_DTB, render};
use guestcfg::{ErrorKind, check_against_board};
use hypervisor::config::{Problem, ViommuConfig, ViommuTransport};

/// `BASE` followed by `table` (lines from 10 on).
fn with(table: &str) -> String {
    format!("{BASE}{table}")
}

/// The virtio-iommu `text` loads to.
fn loaded(text: &str) -> Option<ViommuConfig> {
    Fixture::new().load(text).unwrap().guests[0].config.viommu
}

/// Loads `toml` (valid on its own) and checks it against the board.
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
fn absent_by_default() {
    assert_eq!(loaded(BASE), None);
}

#[test]
fn defaults_when_present() {
    let default = Some(ViommuConfig {
        transport: ViommuTransport::Mmio,
        base: 0x0b00_0000,
        spi: 96,
    });
    assert_eq!(loaded(&with("[guest.viommu]\n")), default);
    assert_eq!(
        loaded(&with("[guest.viommu]\ntransport = \"mmio\"\n")),
        default
    );
    assert_eq!(loaded(&with("[guest.viommu]\nenabled = true\n")), default);
    assert_eq!(default, Some(ViommuConfig::default()));
}

#[test]
fn explicit_values_and_inline_table() {
    let text = with("[guest.viommu]\ntransport = \"mmio\"\nbase = 0x0c00_1000\nspi = 100\n");
    assert_eq!(
        loaded(&text),
        Some(ViommuConfig {
            transport: ViommuTransport::Mmio,
            base: 0x0c00_1000,
            spi: 100
        })
    );
    let inline = BASE.replace("cmdline =", "viommu = { base = 0x0b01_0000 }\ncmdline =");
    assert_eq!(
        loaded(&inline).map(|v| (v.base, v.spi)),
        Some((0x0b01_0000, 96))
    );
}

#[test]
fn switched_off() {
    assert_eq!(loaded(&with("[guest.viommu]\nenabled = false\n")), None);
    // Its other values are not checked then (beyond their types).
    assert_eq!(
        loaded(&with(
            "[guest.viommu]\nenabled = false\nbase = 0x123\nspi = 5000\n"
        )),
        None
    );
}

#[test]
fn the_repository_default_has_one() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest-configs");
    let file = guestcfg::load(&dir.join("qemu-virt-linux.toml")).unwrap();
    assert_eq!(file.guests[0].config.viommu, Some(ViommuConfig::default()));
    check_against_board(&file, QEMU_VIRT_DTB).unwrap();
    for other in [
        "qemu-virt-linux-reset-poweroff.toml",
        "qemu-virt-linux-highmem.toml",
    ] {
        let file = guestcfg::load(&dir.join(other)).unwrap();
        assert_eq!(file.guests[0].config.viommu, None, "{other}");
    }
}

#[test]
fn unknown_key() {
    let errors = Fixture::new().errors(&with("[guest.viommu]\nbse = 0x1000\n"));
    assert_eq!(
        errors,
        [
            "11:1: guest[0].viommu.bse: unknown field `bse`, expected one of `enabled`, `transport`, \
             `base`, `spi`"
        ]
    );
}

#[test]
fn bad_values_of_the_wrong_type() {
    let fx = Fixture::new();
    let errors = fx.errors(&with("[guest.viommu]\ntransport = \"ccw\"\n"));
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with(
            "11:13: guest[0].viommu.transport: unknown variant `ccw`, expected `mmio` or `pci`"
        ),
        "{errors:?}"
    );
    let errors = fx.errors(&with("[guest.viommu]\nenabled = \"yes\"\n"));
    assert!(
        errors[0].starts_with("11:11: guest[0].viommu.enabled: invalid type: string \"yes\""),
        "{errors:?}"
    );
    let errors = fx.errors(&with("[guest.viommu]\nspi = -1\n"));
    assert!(
        errors[0].starts_with("11:7: guest[0].viommu.spi: invalid value: integer `-1`"),
        "{errors:?}"
    );
    let errors = fx.errors(&with("[guest.viommu]\nbase = \"0xb000000\"\n"));
    assert!(
        errors[0].starts_with("11:8: guest[0].viommu.base: invalid type: string"),
        "{errors:?}"
    );
}

#[test]
fn negative_base() {
    let errors = Fixture::new().errors(&with("[guest.viommu]\nbase = -4096\n"));
    assert_eq!(errors, ["11:8: guest[0].viommu.base: -4096 is negative"]);
}

#[test]
fn unaligned_base() {
    let errors = Fixture::new().errors(&with("[guest.viommu]\nbase = 0xb000200\n"));
    assert_eq!(
        errors,
        [
            "11:8: guest[0].viommu.base: virtio-iommu base 0xb000200 is not aligned to 4 KiB (its page is \
             trapped whole)"
        ]
    );
}

#[test]
fn base_in_guest_ram() {
    let errors = Fixture::new().errors(&with("[guest.viommu]\nbase = 0x4000_0000\n"));
    assert_eq!(
        errors,
        [
            "11:8: guest[0].viommu.base: the virtio-iommu page [0x40000000..0x40001000) overlaps guest RAM \
             [0x40000000..0x44000000); move viommu.base"
        ]
    );
    // The default base, moved into RAM by memory.base: the table is named.
    let text =
        with("[guest.viommu]\n").replace("size = \"64M\"", "size = \"64M\"\nbase = 0xa000000");
    let errors = Fixture::new().errors(&text);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .starts_with("11:1: guest[0].viommu: the virtio-iommu page [0xb000000..0xb001000)"),
        "{errors:?}"
    );
}

#[test]
fn spi_too_high() {
    let errors = Fixture::new().errors(&with("[guest.viommu]\nspi = 988\n"));
    assert_eq!(
        errors,
        ["11:7: guest[0].viommu.spi: virtio-iommu SPI 988 is above the GIC's highest SPI 987"]
    );
}

#[test]
fn error_kind_is_typed() {
    let fx = Fixture::new();
    let errors = guestcfg::load(&fx.write(&with("[guest.viommu]\nspi = 1000\n"))).unwrap_err();
    assert!(matches!(
        errors[0].kind,
        ErrorKind::Invalid(Problem::ViommuSpiTooHigh {
            spi: 1000,
            max: 987
        })
    ));
    assert_eq!(errors[0].key.as_deref(), Some("guest[0].viommu.spi"));
}

#[test]
fn board_device_overlap() {
    let errors = board_errors(&with("[guest.viommu]\nbase = 0x9000000\n"));
    assert_eq!(
        errors,
        [
            "11:8: guest[0].viommu.base: the virtio-iommu page [0x9000000..0x9001000) overlaps \
             [0x9000000..0x9001000) of device /pl011@9000000 (devices keep their host addresses); move \
             viommu.base"
        ]
    );
}

#[test]
fn board_gic_overlap() {
    let errors = board_errors(&with("[guest.viommu]\nbase = 0x80a0000\n"));
    assert_eq!(
        errors,
        [
            "11:8: guest[0].viommu.base: the virtio-iommu page [0x80a0000..0x80a1000) overlaps a GIC \
             redistributor region [0x80a0000..0x9000000) (the guest sees the GIC at the host's addresses); \
             move viommu.base"
        ]
    );
}

#[test]
fn board_spi_of_a_device() {
    let errors = board_errors(&with("[guest.viommu]\nspi = 1\n"));
    assert_eq!(
        errors,
        [
            "11:7: guest[0].viommu.spi: virtio-iommu SPI 1 (INTID 33) is already raised by device /pl011@9000000"
        ]
    );
}
