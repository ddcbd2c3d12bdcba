//! Problems located in the TOML source from the bundle's [`Origin`]: the
//! key each problem names, its fallbacks when the precise key is absent,
//! and the message the boot prints.

use crate::config::{GuestRef, KeyAt, Located, Origin, PciAddr, Problem, ValidationError};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;

fn at(key: &str, line: u32, column: u32) -> KeyAt {
    KeyAt {
        key: key.into(),
        line,
        column,
    }
}

fn origin() -> Origin {
    Origin {
        file: "two.toml".into(),
        index: 1,
        keys: vec![
            at("", 12, 1),
            at("name", 13, 8),
            at("pci", 15, 7),
            at("pci[0]", 15, 8),
            at("pci[1]", 15, 19),
            at("memory", 14, 1),
        ],
    }
}

fn addr(s: &str) -> PciAddr {
    PciAddr::parse(s).expect("a PCI address")
}

fn located(problem: Problem, origin: Option<&Origin>) -> String {
    let error = ValidationError::guest(1, "beta", problem);
    format!(
        "{}",
        Located {
            error: &error,
            origin
        }
    )
}

#[test]
fn keys_go_from_the_item_to_the_guest_table() {
    let p = Problem::PciAbsent {
        addr: addr("00:07.0"),
        at: 1,
        bridge: "/pcie@10000000".into(),
    };
    assert_eq!(p.keys(), ["pci[1]", "pci", ""]);
    assert_eq!(Problem::EmptyName.keys(), ["name", ""]);
    assert_eq!(
        Problem::MemoryBaseUnaligned { base: 1 }.keys(),
        ["memory.base", "memory", ""]
    );
    assert_eq!(Problem::NoGuests.keys(), [""]);
}

#[test]
fn a_boot_problem_names_file_line_column_and_key() {
    let o = origin();
    let text = located(
        Problem::PciAbsent {
            addr: addr("00:07.0"),
            at: 1,
            bridge: "/pcie@10000000".into(),
        },
        Some(&o),
    );
    assert!(
        text.starts_with(
            "two.toml:15:19: guest[1].pci[1]: guest 1 (\"beta\"): PCI function 0000:00:07.0"
        ),
        "{text}"
    );
    let text = located(
        Problem::PciIntxShared {
            addr: addr("00:06.0"),
            at: 0,
            intid: 37,
            holder: GuestRef::named(0, "alpha"),
            holder_addr: addr("00:02.0"),
        },
        Some(&o),
    );
    assert!(
        text.starts_with("two.toml:15:8: guest[1].pci[0]: "),
        "{text}"
    );
    assert!(
        text.contains("INTID 37") && text.contains("00:02.0, given to guest 0 (\"alpha\")"),
        "{text}"
    );
}

#[test]
fn an_absent_key_falls_back_to_its_table_then_the_guest() {
    let o = origin();
    // No `memory.base` in the file: the `[guest.memory]` table.
    let text = located(Problem::MemoryBaseUnaligned { base: 1 }, Some(&o));
    assert!(
        text.starts_with("two.toml:14:1: guest[1].memory: "),
        "{text}"
    );
    // No `cmdline`: named, at the guest table's place.
    let text = located(Problem::CmdlineNul, Some(&o));
    assert!(
        text.starts_with("two.toml:12:1: guest[1].cmdline: "),
        "{text}"
    );
}

#[test]
fn without_an_origin_the_error_is_printed_as_it_is() {
    let p = Problem::EmptyName;
    let plain = ValidationError::guest(1, "beta", p.clone()).to_string();
    assert_eq!(located(p.clone(), None), plain);
    let empty = Origin::default();
    assert_eq!(located(p, Some(&empty)), plain);
    let global = ValidationError::global(Problem::NoGuests);
    let o = origin();
    let text = format!(
        "{}",
        Located {
            error: &global,
            origin: Some(&o)
        }
    );
    assert_eq!(text, global.to_string(), "a global error has no guest key");
}
