//! Copying referenced nodes, nested devices and the reference checks, on
//! host trees modified for the purpose.

use alloc::string::String;
use alloc::vec;

use super::{be, build_on, host_tree, node, node_mut, phandles, spec};
use crate::fdt::{Prop, Tree};
use crate::vm::guest_dt::{GuestDtError, GuestDtSpec};

/// A host with `/soc` (a simple bus) holding `dev@100` (clocked by a chain
/// of two clocks, reset by a reset controller) and an unrelated sibling.
fn soc_host() -> Tree {
    let mut tree = host_tree();
    let mut soc = node(
        "soc",
        &[
            ("compatible", b"simple-bus\0"),
            ("#address-cells", &be(&[1])),
            ("#size-cells", &be(&[1])),
            ("ranges", &be(&[0, 0, 0x2000_0000, 0x10_0000])),
            ("reg", &be(&[0, 0x2000_0000, 0, 0x1000])),
        ],
    );
    soc.children.push(node(
        "dev@100",
        &[
            ("compatible", b"acme,dev\0"),
            ("reg", &be(&[0x100, 0x100])),
            ("interrupts", &be(&[0, 40, 4])),
            ("clocks", &be(&[0x9001])),
            ("resets", &be(&[0x9003, 7])),
            ("iommus", &be(&[0x8007, 0x42])),
        ],
    ));
    soc.children
        .push(node("other@200", &[("reg", &be(&[0x200, 0x100]))]));
    tree.root.children.push(soc);
    let clock = |name: &str, phandle: u32, parent: Option<u32>| {
        let mut n = node(
            name,
            &[
                ("compatible", b"fixed-factor-clock\0"),
                ("#clock-cells", &be(&[0])),
            ],
        );
        n.props.push(Prop::new("phandle", &be(&[phandle])));
        if let Some(p) = parent {
            n.props.push(Prop::new("clocks", &be(&[p])));
        }
        n
    };
    tree.root
        .children
        .push(clock("clk-a", 0x9001, Some(0x9002)));
    tree.root.children.push(clock("clk-b", 0x9002, None));
    tree.root.children.push(node(
        "reset@3000",
        &[
            ("#reset-cells", &be(&[1])),
            ("phandle", &be(&[0x9003])),
            ("reg", &be(&[0, 0x3000, 0, 0x100])),
        ],
    ));
    tree
}

fn soc_spec(devices: &'static [&'static str]) -> GuestDtSpec<'static> {
    GuestDtSpec {
        devices,
        stdout: None,
        ..spec()
    }
}

#[test]
fn nested_device_with_clock_chain_and_reset() {
    let dtb = build_on(soc_host(), &soc_spec(&["/soc/dev@100"])).expect("build");
    let guest = Tree::parse(&dtb).expect("parse");
    let soc = guest.find("/soc").expect("soc skeleton");
    let kept: vec::Vec<&str> = soc.props.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        kept,
        ["compatible", "#address-cells", "#size-cells", "ranges"],
        "no `reg` of the bus"
    );
    let children: vec::Vec<&str> = soc.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(children, ["dev@100"]);
    let dev = guest.find("/soc/dev@100").expect("dev");
    assert!(!dev.has_prop("iommus"));
    assert_eq!(
        dev.reg_cpu(),
        Ok(vec![crate::fdt::Region::new(0x2000_0100, 0x100)])
    );
    for (path, phandle) in [
        ("/clk-a", 0x9001),
        ("/clk-b", 0x9002),
        ("/reset@3000", 0x9003),
    ] {
        assert_eq!(
            guest.find(path).and_then(|n| n.phandle()),
            Some(phandle),
            "{path}"
        );
    }
    let mut all = phandles(&guest);
    let count = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), count);
}

#[test]
fn bus_then_child_and_child_then_bus() {
    for devices in [&["/soc/dev@100", "/soc"][..], &["/soc", "/soc/dev@100"][..]] {
        let s = GuestDtSpec {
            devices,
            stdout: None,
            ..spec()
        };
        let dtb = build_on(soc_host(), &s).expect("build");
        let guest = Tree::parse(&dtb).expect("parse");
        let soc = guest.find("/soc").expect("soc");
        assert!(soc.has_prop("reg"), "whole bus copied");
        assert_eq!(soc.children.len(), 2);
    }
}

#[test]
fn reference_errors() {
    // A clock phandle that names nothing.
    let mut tree = soc_host();
    node_mut(&mut tree, "/soc/dev@100")
        .props
        .retain(|p| p.name != "clocks");
    node_mut(&mut tree, "/soc/dev@100")
        .props
        .push(Prop::new("clocks", &be(&[0x7777])));
    let err = build_on(tree, &soc_spec(&["/soc/dev@100"]));
    let expected = GuestDtError::BadReference {
        path: "/soc/dev@100".into(),
        prop: "clocks".into(),
        phandle: 0x7777,
    };
    assert_eq!(err, Err(expected));

    // A clock without #clock-cells.
    let mut tree = soc_host();
    node_mut(&mut tree, "/clk-b")
        .props
        .retain(|p| p.name != "#clock-cells");
    let err = build_on(tree, &soc_spec(&["/soc/dev@100"]));
    assert_eq!(
        err,
        Err(GuestDtError::Malformed {
            path: "/clk-b".into(),
            prop: "#clock-cells".into()
        })
    );

    // Too few argument cells for the reset controller.
    let mut tree = soc_host();
    node_mut(&mut tree, "/soc/dev@100")
        .props
        .retain(|p| p.name != "resets");
    node_mut(&mut tree, "/soc/dev@100")
        .props
        .push(Prop::new("resets", &be(&[0x9003])));
    let err = build_on(tree, &soc_spec(&["/soc/dev@100"]));
    assert_eq!(
        err,
        Err(GuestDtError::Malformed {
            path: "/soc/dev@100".into(),
            prop: "resets".into()
        })
    );

    // A reference kind that is not followed.
    let mut tree = soc_host();
    node_mut(&mut tree, "/soc/dev@100")
        .props
        .push(Prop::new("dmas", &be(&[0x9002, 1])));
    let err = build_on(tree, &soc_spec(&["/soc/dev@100"])).unwrap_err();
    assert_eq!(
        err,
        GuestDtError::UnsupportedReference {
            path: "/soc/dev@100".into(),
            prop: String::from("dmas")
        }
    );
    assert!(alloc::string::ToString::to_string(&err).contains("dmas"));

    // An interrupt parent that stays on the host.
    let mut tree = soc_host();
    node_mut(&mut tree, "/soc/dev@100")
        .props
        .push(Prop::new("interrupt-parent", &be(&[0x8008])));
    let err = build_on(tree, &soc_spec(&["/soc/dev@100"]));
    let expected = GuestDtError::DanglingReference {
        path: "/soc/dev@100".into(),
        prop: "interrupt-parent".into(),
        phandle: 0x8008,
    };
    assert_eq!(err, Err(expected));
}

#[test]
fn truncated_interrupt_map() {
    let mut tree = host_tree();
    let pcie = node_mut(&mut tree, "/pcie@10000000");
    for p in pcie.props.iter_mut().filter(|p| p.name == "interrupt-map") {
        p.value.truncate(p.value.len() - 4);
    }
    let err = build_on(
        tree,
        &GuestDtSpec {
            devices: &["/pcie@10000000"],
            stdout: None,
            ..spec()
        },
    );
    let expected = GuestDtError::Malformed {
        path: "/pcie@10000000".into(),
        prop: "interrupt-map".into(),
    };
    assert_eq!(err, Err(expected));
}

#[test]
fn gic_without_phandle_gets_a_fresh_one() {
    let mut tree = host_tree();
    node_mut(&mut tree, "/intc@8000000")
        .props
        .retain(|p| p.name != "phandle");
    tree.root.props.retain(|p| p.name != "interrupt-parent");
    node_mut(&mut tree, "/platform-bus@c000000")
        .props
        .retain(|p| p.name != "interrupt-parent");
    let dtb = build_on(
        tree,
        &GuestDtSpec {
            devices: &["/pl011@9000000"],
            ..spec()
        },
    )
    .expect("build");
    let guest = Tree::parse(&dtb).expect("parse");
    // The host's largest phandle is the PL061's 0x8008.
    assert_eq!(
        guest.find("/intc@8000000").and_then(|n| n.phandle()),
        Some(0x8009)
    );
    assert_eq!(guest.root.prop_u32("interrupt-parent"), Some(0x8009));
}
