//! The generated blobs through the reference tool: `dtc -I dtb -O dts`
//! must accept them without errors (skipped when dtc is not installed).

extern crate std;

use std::io::Write;
use std::process::{Command, Stdio};
use std::string::String;
use std::vec::Vec;

use super::{QEMU_BLOBS, be, build_on, host_tree, node_mut, spec};
use crate::fdt::{HostDt, Prop};
use crate::vm::guest_dt::{ConsoleDt, GuestDtSpec, ViommuDt, build};

/// dtc's diagnostics for `dtb`, or `None` when dtc cannot be run.
fn dtc(dtb: &[u8]) -> Option<(bool, String)> {
    let mut child = Command::new("dtc")
        .args(["-I", "dtb", "-O", "dts", "-o", "/dev/null", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(dtb).ok()?;
    let out = child.wait_with_output().ok()?;
    Some((
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn dtc_accepts_the_output() {
    for (name, blob) in QEMU_BLOBS {
        let host = HostDt::parse(blob).expect(name);
        let dtb: Vec<u8> = build(&spec(), &host).expect(name);
        let Some((ok, stderr)) = dtc(&dtb) else {
            std::eprintln!("dtc not found on PATH; skipping");
            return;
        };
        assert!(ok, "{name}: dtc failed: {stderr}");
        assert!(!stderr.to_lowercase().contains("error"), "{name}: {stderr}");
        assert!(stderr.is_empty(), "{name}: dtc warnings: {stderr}");
    }
}

#[test]
fn dtc_accepts_a_guest_with_viommu() {
    let with_viommu = GuestDtSpec {
        viommu: Some(ViommuDt {
            base: 0x0b00_0000,
            spi: 96,
        }),
        ..spec()
    };
    let mut blobs: Vec<(&str, Vec<u8>)> = Vec::new();
    for (name, blob) in QEMU_BLOBS {
        let host = HostDt::parse(blob).expect(name);
        blobs.push((name, build(&with_viommu, &host).expect(name)));
    }
    // A platform node with `iommus` too (dtc checks it against
    // `#iommu-cells`).
    let mut tree = host_tree();
    node_mut(&mut tree, "/pl011@9000000")
        .props
        .push(Prop::new("iommus", &be(&[0x8007, 0x2_0000])));
    blobs.push(("pl011 iommus", build_on(tree, &with_viommu).expect("build")));
    for (name, dtb) in blobs {
        let Some((ok, stderr)) = dtc(&dtb) else {
            std::eprintln!("dtc not found on PATH; skipping");
            return;
        };
        assert!(ok, "{name}: dtc failed: {stderr}");
        assert!(stderr.is_empty(), "{name}: dtc warnings: {stderr}");
    }
}

#[test]
fn dtc_accepts_a_guest_with_an_emulated_console() {
    let with_console = GuestDtSpec {
        devices: &["/pcie@10000000"],
        stdout: None,
        console: Some(ConsoleDt {
            base: 0x0900_0000,
            spi: 1,
        }),
        ..spec()
    };
    for (name, blob) in QEMU_BLOBS {
        let host = HostDt::parse(blob).expect(name);
        let dtb = build(&with_console, &host).expect(name);
        let guest = crate::fdt::Tree::parse(&dtb).expect("parse");
        let uart = guest.find("/pl011@9000000").expect("console node");
        assert!(uart.is_compatible("arm,pl011") && uart.is_compatible("arm,primecell"));
        let chosen = guest.find("/chosen").expect("chosen");
        assert_eq!(
            chosen
                .prop("stdout-path")
                .and_then(|p| p.as_str_list())
                .map(|l| l.join(",")),
            Some("/pl011@9000000".into())
        );
        let Some((ok, stderr)) = dtc(&dtb) else {
            std::eprintln!("dtc not found on PATH; skipping");
            return;
        };
        assert!(ok, "{name}: dtc failed: {stderr}");
        assert!(stderr.is_empty(), "{name}: dtc warnings: {stderr}");
    }
}

#[test]
fn dtc_accepts_a_guest_with_a_virtual_pci_bridge() {
    use crate::fdt::{PciRange, PciSpace};
    use crate::vm::vpci::{VpciDt, VpciSlot};
    let v = VpciDt {
        ecam: crate::mm::layout::Region::new(0x40_1000_0000, 1 << 20),
        ranges: vec![
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
        ],
        slots: vec![VpciSlot {
            dev: 0,
            pin: 1,
            intid: 37,
        }],
        dma_coherent: true,
        viommu_slot: Some(1),
    };
    let with_vpci = GuestDtSpec {
        devices: &["/pl011@9000000"],
        vpci: Some(&v),
        ..spec()
    };
    for (name, blob) in QEMU_BLOBS {
        let host = HostDt::parse(blob).expect(name);
        let dtb = build(&with_vpci, &host).expect(name);
        let guest = crate::fdt::Tree::parse(&dtb).expect("parse");
        let pcie = guest.find("/pcie@4010000000").expect("bridge node");
        assert!(pcie.is_compatible("pci-host-ecam-generic"));
        let map = pcie
            .prop("interrupt-map")
            .and_then(|p| p.as_u32_list())
            .unwrap();
        // Slot 0, INTA -> GIC, SPI 5 (INTID 37), level-high.
        assert_eq!(&map[..4], &[0, 0, 0, 1]);
        assert_eq!(&map[map.len() - 3..], &[0, 5, 4]);
        let chosen = guest.find("/chosen").expect("chosen");
        assert_eq!(chosen.prop_u32("linux,pci-probe-only"), Some(1));
        // The virtio-iommu at 00:01.0: every requester ID below its own
        // (0x08) goes to it.
        let iommu = guest
            .find("/pcie@4010000000/iommu@1,0")
            .expect("iommu child");
        assert!(iommu.is_compatible("virtio,pci-iommu"));
        let phandle = iommu.prop_u32("phandle").unwrap();
        let imap = pcie
            .prop("iommu-map")
            .and_then(|p| p.as_u32_list())
            .unwrap();
        assert_eq!(imap, [0, phandle, 0, 8]);
        let Some((ok, stderr)) = dtc(&dtb) else {
            std::eprintln!("dtc not found on PATH; skipping");
            return;
        };
        assert!(ok, "{name}: dtc failed: {stderr}");
        assert!(
            stderr
                .lines()
                .all(|l| l.contains("interrupt_map") || l.is_empty()),
            "{name}: dtc warnings: {stderr}"
        );
    }
}
