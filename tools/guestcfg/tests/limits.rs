//! The `[guest.limits]` table: defaults, sizes and counts, and every error
//! located at its key (`guest[0].limits.io_table_memory`).

mod common;

use common::{BASE, Fixture};
use guestcfg::ErrorKind;
use hypervisor::config::{GuestLimits, Problem};

fn with(table: &str) -> String {
    format!("{BASE}{table}")
}

fn loaded(text: &str) -> GuestLimits {
    Fixture::new().load(text).unwrap().guests[0].config.limits
}

#[test]
fn defaults() {
    let d = GuestLimits {
        domains: 32,
        io_table_memory: 8 << 20,
        io_mappings: 65536,
    };
    assert_eq!(loaded(BASE), d);
    assert_eq!(loaded(&with("[guest.limits]\n")), d);
    assert_eq!(d, GuestLimits::default());
    assert_eq!(d.io_table_pages(), 2048);
}

#[test]
fn explicit_values() {
    let l = loaded(&with(
        "[guest.limits]\nio_table_memory = \"2M\"\nio_mappings = 1024\n",
    ));
    assert_eq!(
        l,
        GuestLimits {
            io_table_memory: 2 << 20,
            io_mappings: 1024,
            ..GuestLimits::default()
        }
    );
    assert_eq!(
        loaded(&with("[guest.limits]\nio_table_memory = 65536\n")).io_table_memory,
        65536
    );
}

#[test]
fn out_of_range_values_are_refused_at_their_key() {
    let fx = Fixture::new();
    for (text, key) in [
        ("io_table_memory = 8192", "guest[0].limits.io_table_memory"),
        (
            "io_table_memory = 69632.5",
            "guest[0].limits.io_table_memory",
        ),
        (
            "io_table_memory = \"2G\"",
            "guest[0].limits.io_table_memory",
        ),
        ("io_table_memory = 20000", "guest[0].limits.io_table_memory"),
        ("io_mappings = 0", "guest[0].limits.io_mappings"),
        ("io_mappings = 2000000", "guest[0].limits.io_mappings"),
    ] {
        let errors =
            guestcfg::load(&fx.write(&with(&format!("[guest.limits]\n{text}\n")))).expect_err(text);
        assert_eq!(errors.len(), 1, "{text}: {errors:?}");
        assert_eq!(errors[0].key.as_deref(), Some(key), "{text}");
    }
    let errors = guestcfg::load(&fx.write(&with("[guest.limits]\nio_mappings = 0\n"))).unwrap_err();
    assert!(matches!(
        errors[0].kind,
        ErrorKind::Invalid(Problem::IoMappings { count: 0 })
    ));
}

#[test]
fn unknown_keys_are_refused() {
    let fx = Fixture::new();
    assert!(guestcfg::load(&fx.write(&with("[guest.limits]\nio_tables = 1\n"))).is_err());
}
