//! Building bundles from files: the bundle decodes to the same guests and
//! images; resolver failures name the guest and the source.

mod common;

use common::{BASE, Fixture, edit};
use guestcfg::{BuildError, Source, build_bundle};
use hypervisor::config::Bundle;

fn resolve(source: &Source) -> Result<Vec<u8>, String> {
    match source {
        Source::File(path) => std::fs::read(path).map_err(|e| e.to_string()),
        Source::DebianKernel => Ok(b"debian kernel".to_vec()),
        Source::DefaultInitramfs => Err("not built yet".into()),
    }
}

#[test]
fn bundle_round_trip() {
    let fx = Fixture::new();
    let text = format!(
        "{BASE}{}",
        BASE.replace("\"linux\"", "\"second\"")
            .replace("[0, 1]", "[2]")
            .replace(
                "kernel = \"Image\"\ninitrd = \"initrd.img\"",
                "kernel = \"@debian-kernel\"",
            )
            .replace("devices = [\"/pl011@9000000\"]\n", "")
    );
    let file = fx.load(&text).unwrap();
    let bytes = build_bundle(&file, resolve).unwrap();
    let bundle = Bundle::parse(&bytes).unwrap();
    assert_eq!(bundle.guests.len(), 2);
    assert_eq!(bundle.guests[0].config, file.guests[0].config);
    assert_eq!(bundle.guests[0].kernel, b"kernel");
    assert_eq!(bundle.guests[0].initrd, Some(&b"initrd"[..]));
    assert_eq!(bundle.guests[1].config, file.guests[1].config);
    assert_eq!(bundle.guests[1].kernel, b"debian kernel");
    assert_eq!(bundle.guests[1].initrd, None);
}

#[test]
fn resolver_failure_names_guest_and_source() {
    let fx = Fixture::new();
    let file = fx
        .load(&edit("\"initrd.img\"", "\"@default-initramfs\""))
        .unwrap();
    let err = build_bundle(&file, resolve).unwrap_err();
    assert!(matches!(&err, BuildError::Resolve { part: "initrd", .. }));
    assert_eq!(
        err.to_string(),
        "guest \"linux\": cannot get the initrd (@default-initramfs): not built yet"
    );
}
