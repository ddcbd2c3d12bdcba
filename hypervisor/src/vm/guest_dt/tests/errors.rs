//! Refused specifications and device lists: each error names what is
//! wrong.

use alloc::string::{String, ToString};

use super::{build_on, host, host_tree, node, node_mut, spec};
use crate::mm::layout::Region;
use crate::vm::guest_dt::{GuestDtError, GuestDtSpec, build};

fn build_with(devices: &[&str]) -> Result<alloc::vec::Vec<u8>, GuestDtError> {
    build(
        &GuestDtSpec {
            devices,
            stdout: None,
            ..spec()
        },
        &host(),
    )
}

fn owned(path: &str, what: &'static str) -> GuestDtError {
    GuestDtError::HypervisorOwned {
        path: path.into(),
        what,
    }
}

#[test]
fn missing_device() {
    let err = build_with(&["/pl011@9000000", "/nope@1234"]).unwrap_err();
    assert_eq!(err, GuestDtError::DeviceNotFound("/nope@1234".into()));
    assert!(err.to_string().contains("/nope@1234"), "{err}");
}

#[test]
fn hypervisor_owned_devices() {
    let err = build_with(&["/smmuv3@9050000"]).unwrap_err();
    assert_eq!(err, owned("/smmuv3@9050000", "SMMUv3"));
    assert!(err.to_string().contains("/smmuv3@9050000"), "{err}");
    assert_eq!(
        build_with(&["/smmuv3"]),
        Err(owned("/smmuv3@9050000", "SMMUv3"))
    );
    let ic = "interrupt controller";
    assert_eq!(
        build_with(&["/intc@8000000"]),
        Err(owned("/intc@8000000", ic))
    );
    assert_eq!(
        build_with(&["/intc@8000000/its@8080000"]),
        Err(owned("/intc@8000000/its@8080000", ic))
    );
    assert_eq!(build_with(&["/psci"]), Err(owned("/psci", "PSCI")));
    assert_eq!(
        build_with(&["/timer"]),
        Err(owned("/timer", "generic timer"))
    );
    assert_eq!(
        build_with(&["/cpus/cpu@1"]),
        Err(owned("/cpus/cpu@1", "CPUs"))
    );
    assert_eq!(
        build_with(&["/memory@40000000"]),
        Err(owned("/memory@40000000", "memory"))
    );
    assert_eq!(
        build_with(&["/chosen"]),
        Err(owned("/chosen", "boot configuration"))
    );
    assert_eq!(build_with(&["/"]), Err(owned("/", "the root")));
}

#[test]
fn disabled_device_and_path_conflict() {
    let mut tree = host_tree();
    node_mut(&mut tree, "/pl031@9010000")
        .props
        .push(crate::fdt::Prop::new("status", b"disabled\0"));
    let s = GuestDtSpec {
        devices: &["/pl031@9010000"],
        stdout: None,
        ..spec()
    };
    assert_eq!(
        build_on(tree, &s),
        Err(GuestDtError::DeviceDisabled("/pl031@9010000".into()))
    );

    // Not a memory node, but where the generated one goes.
    let mut tree = host_tree();
    let sram = node("memory@50000000", &[("compatible", b"acme,sram\0")]);
    tree.root.children.push(sram);
    let s = GuestDtSpec {
        memory: Region::new(0x5000_0000, 0x1000_0000),
        initrd: None,
        devices: &["/memory@50000000"],
        stdout: None,
        ..spec()
    };
    let conflict = GuestDtError::PathConflict("/memory@50000000".into());
    assert_eq!(build_on(tree, &s), Err(conflict));
}

#[test]
fn bad_specs() {
    let h = host();
    let check = |s: GuestDtSpec<'_>, expected: GuestDtError| {
        let err = build(&s, &h).unwrap_err();
        assert!(!err.to_string().is_empty());
        assert_eq!(err, expected);
    };
    check(
        GuestDtSpec { vcpus: 0, ..spec() },
        GuestDtError::BadVcpuCount { vcpus: 0 },
    );
    check(
        GuestDtSpec {
            vcpus: 1000,
            ..spec()
        },
        GuestDtError::BadVcpuCount { vcpus: 1000 },
    );
    let redist = Region::new(0x80a_0000, 0x2_0000);
    check(
        GuestDtSpec {
            gic_redist: redist,
            ..spec()
        },
        GuestDtError::RedistTooSmall {
            region: redist,
            needed: 0x4_0000,
        },
    );
    let empty = Region::new(0x4000_0000, 0);
    check(
        GuestDtSpec {
            memory: empty,
            ..spec()
        },
        GuestDtError::BadRegion {
            what: "memory",
            region: empty,
        },
    );
    let wraps = Region::new(u64::MAX, 2);
    check(
        GuestDtSpec {
            gic_dist: wraps,
            ..spec()
        },
        GuestDtError::BadRegion {
            what: "GIC distributor",
            region: wraps,
        },
    );
    check(
        GuestDtSpec {
            gic_dist: Region::new(0x4000_0000, 0x1_0000),
            ..spec()
        },
        GuestDtError::Overlap {
            first: "memory",
            second: "GIC distributor",
        },
    );
    let initrd = Region::new(0x5ff0_0000, 0x20_0000);
    check(
        GuestDtSpec {
            initrd: Some(initrd),
            ..spec()
        },
        GuestDtError::InitrdOutsideMemory { initrd },
    );
    check(
        GuestDtSpec {
            psci_method: "svc",
            ..spec()
        },
        GuestDtError::BadPsciMethod(String::from("svc")),
    );
    check(
        GuestDtSpec {
            bootargs: "a\0b",
            ..spec()
        },
        GuestDtError::BadString { what: "bootargs" },
    );
    check(
        GuestDtSpec {
            stdout: Some("/pl031@9010000"),
            ..spec()
        },
        GuestDtError::StdoutNotPassedThrough("/pl031@9010000".into()),
    );
    check(
        GuestDtSpec {
            stdout: Some("/nope"),
            ..spec()
        },
        GuestDtError::StdoutNotPassedThrough("/nope".into()),
    );
}

#[test]
fn addresses_must_fit_the_root_cells() {
    let mut tree = host_tree();
    tree.root
        .props
        .retain(|p| p.name != "#address-cells" && p.name != "#size-cells");
    tree.root
        .props
        .push(crate::fdt::Prop::new("#address-cells", &1u32.to_be_bytes()));
    tree.root
        .props
        .push(crate::fdt::Prop::new("#size-cells", &1u32.to_be_bytes()));
    let s = GuestDtSpec {
        memory: Region::new(0x1_0000_0000, 0x1000_0000),
        initrd: None,
        devices: &[],
        stdout: None,
        ..spec()
    };
    assert_eq!(
        build_on(tree, &s),
        Err(GuestDtError::TooWide {
            what: "memory",
            value: 0x1_0000_0000
        })
    );
}
