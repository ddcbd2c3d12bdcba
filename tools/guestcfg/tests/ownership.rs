//! Ownership by host-physical address through the host tool, against
//! `soc-ownership.dtb` (a `/soc` bus holding the GIC, an SMMUv3, the console
//! UART and two virtio-mmio transports in one page): each refusal located
//! in the file, the `allow_untranslated_dma` key read, checked and carried
//! by the bundle.

mod common;

use common::{BASE, Fixture, render};
use guestcfg::{Source, build_bundle, check_against_board};
use hypervisor::config::Bundle;

const SOC_DTB: &[u8] = include_bytes!("../../../hypervisor/src/fdt/testdata/soc-ownership.dtb");

/// `BASE` with the devices `devices` (a TOML array body) and, after
/// them, `extra` lines.
fn with_devices(devices: &str, extra: &str) -> String {
    BASE.replace(
        "devices = [\"/pl011@9000000\"]\n",
        &format!("devices = [{devices}]\n{extra}"),
    )
    .replace("size = \"64M\"", "size = \"64M\"\nbase = 0x8000_0000")
}

/// Loads `toml` (valid on its own), checks it against the soc board and
/// renders the errors (empty when it fits).
fn soc_errors(toml: &str) -> Vec<String> {
    let fx = Fixture::new();
    let path = fx.write(toml);
    let file = guestcfg::load(&path).unwrap();
    match check_against_board(&file, SOC_DTB) {
        Ok(()) => Vec::new(),
        Err(errors) => render(&errors, &path),
    }
}

#[test]
fn a_bus_holding_the_gic_is_refused() {
    assert_eq!(
        soc_errors(&with_devices("\"/soc\"", "")),
        [
            "7:12: guest[0].devices[0]: device /soc contains /soc/interrupt-controller@8000000, the interrupt \
          controller, which the hypervisor keeps for itself (passing a node passes its whole subtree); give \
          the nodes beside it instead"
        ]
    );
}

#[test]
fn hypervisor_pages_are_refused() {
    let errors = soc_errors(&with_devices(
        "\"/soc/pmu@9060000\", \"/soc/gpio@9000f00\", \"/soc/sram\"",
        "",
    ));
    assert_eq!(
        errors,
        [
            "7:12: guest[0].devices[0]: device /soc/pmu@9060000 needs pages [0x9060000..0x9061000), which \
             overlap an SMMUv3 [0x9050000..0x9070000) that the hypervisor keeps for itself (stage 2 maps \
             whole 4 KiB pages)",
            "7:32: guest[0].devices[1]: device /soc/gpio@9000f00 needs pages [0x9000000..0x9001000), which \
             overlap the console UART [0x9000000..0x9000100) that the hypervisor keeps for itself (stage 2 \
             maps whole 4 KiB pages)",
            "7:53: guest[0].devices[2]: device /soc/sram needs pages [0x3ffff000..0x40001000), which overlap \
             host RAM [0x40000000..0x80000000) that the hypervisor keeps for itself (stage 2 maps whole 4 KiB \
             pages)",
        ]
    );
    // With the console UART itself, its page is the guest's.
    assert_eq!(
        soc_errors(&with_devices("\"/soc/serial\", \"/soc/gpio@9000f00\"", "")),
        Vec::<String>::new()
    );
}

/// Two guests (CPU 0 and CPU 1) with the given device lines.
fn two_guests(first: &str, second: &str) -> String {
    let one = |name: &str, cpu: u32, devices: &str| {
        with_devices(devices, "")
            .replace("name = \"linux\"", &format!("name = \"{name}\""))
            .replace("cpus = [0, 1]", &format!("cpus = [{cpu}]"))
    };
    one("a", 0, first) + &one("b", 1, second)
}

#[test]
fn shared_pages_and_spis_are_refused() {
    let text = two_guests(
        "\"/soc/dma@a100000\", \"/soc/virtio_mmio@a000000\"]\nallow_untranslated_dma = [\"/soc/virtio_mmio@a000000\"",
        "\"/soc/timer@a200000\", \"/soc/virtio_mmio@a000200\"]\nallow_untranslated_dma = [\"/soc/virtio_mmio@a000200\"",
    );
    assert_eq!(
        soc_errors(&text),
        [
            "18:12: guest[1].devices[0]: device /soc/timer@a200000 raises SPI 20 (INTID 52), which device \
             /soc/dma@a100000 of guest 0 (\"a\") raises too (an SPI belongs to one guest)",
            "18:34: guest[1].devices[1]: device /soc/virtio_mmio@a000200 needs pages [0xa000000..0xa001000), \
             which overlap pages [0xa000000..0xa001000) of device /soc/virtio_mmio@a000000 of guest 0 (\"a\") \
             (stage 2 maps whole 4 KiB pages, so each would reach the other's registers)",
        ]
    );
}

#[test]
fn untranslated_dma_needs_the_key() {
    assert_eq!(
        soc_errors(&with_devices("\"/soc/virtio_mmio@a000000\", \"/pcie\"", "")),
        [
            "7:12: guest[0].devices[0]: device /soc/virtio_mmio@a000000: /soc/virtio_mmio@a000000 can master \
             DMA (dma-coherent without iommus) and no SMMU the hypervisor runs translates it, so its DMA could \
             reach any memory; list it in allow_untranslated_dma to accept that",
            "7:40: guest[0].devices[1]: device /pcie: /pcie@10000000 can master DMA (a PCI host bridge without \
             iommu-map) and no SMMU the hypervisor runs translates it, so its DMA could reach any memory; list \
             it in allow_untranslated_dma to accept that",
        ]
    );
    let allowed = with_devices(
        "\"/soc/virtio_mmio@a000000\", \"/pcie\"",
        "allow_untranslated_dma = [\"/soc/virtio_mmio\", \"/pcie@10000000\"]\n",
    );
    assert_eq!(soc_errors(&allowed), Vec::<String>::new());
}

#[test]
fn allow_entries_are_located() {
    let fx = Fixture::new();
    let bad = with_devices(
        "\"/soc/dma@a100000\"",
        "allow_untranslated_dma = [\"/soc/dma\", \"soc\"]\n",
    );
    assert_eq!(
        fx.errors(&bad),
        [
            "8:39: guest[0].allow_untranslated_dma[1]: \"soc\" is not a device-tree node path (absolute, not \
          `/`, at most 256 bytes)"
        ]
    );
    let text = with_devices(
        "\"/soc/dma@a100000\"",
        "allow_untranslated_dma = [\"/soc/dma\", \"/soc/timer\", \"/nope\"]\n",
    );
    assert_eq!(
        soc_errors(&text),
        [
            "8:39: guest[0].allow_untranslated_dma[1]: /soc/timer is neither one of the guest's devices nor \
             inside one",
            "8:53: guest[0].allow_untranslated_dma[2]: /nope is not in the host device tree",
        ]
    );
    let wrong_type = with_devices("\"/soc/dma\"", "allow_untranslated_dma = \"/soc/dma\"\n");
    let errors = fx.errors(&wrong_type);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("8:26: guest[0].allow_untranslated_dma: "),
        "{errors:?}"
    );
}

#[test]
fn the_bundle_carries_the_key() {
    let fx = Fixture::new();
    let file = fx
        .load(&with_devices(
            "\"/soc/virtio_mmio@a000000\"",
            "allow_untranslated_dma = [\"/soc/virtio_mmio@a000000\"]\n",
        ))
        .unwrap();
    assert_eq!(
        file.guests[0].config.allow_untranslated_dma,
        ["/soc/virtio_mmio@a000000"]
    );
    let bytes = build_bundle(&file, |source| match source {
        Source::File(path) => std::fs::read(path).map_err(|e| e.to_string()),
        other => Err(format!("{other} is not available here")),
    })
    .unwrap();
    let bundle = Bundle::parse(&bytes).unwrap();
    assert_eq!(bundle.guests[0].config, file.guests[0].config);
    // Absent, the key means no allowance.
    let plain = fx.load(BASE).unwrap();
    assert!(plain.guests[0].config.allow_untranslated_dma.is_empty());
}
