//! The generated blobs through the reference tool: `dtc -I dtb -O dts`
//! must accept them without errors (skipped when dtc is not installed).

extern crate std;

use std::io::Write;
use std::process::{Command, Stdio};
use std::string::String;
use std::vec::Vec;

use super::{QEMU_BLOBS, spec};
use crate::fdt::HostDt;
use crate::vm::guest_dt::build;

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
