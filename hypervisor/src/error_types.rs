//! The crate's rule for errors, checked: every `enum …Error` in
//! `hypervisor/src` implements `Display` and `core::error::Error`, and no
//! function returns `Result<_, String>` (warnings collected for the boot
//! log stay `Vec<String>`: they are messages, not errors).

use std::path::{Path, PathBuf};
use std::string::String;
use std::vec::Vec;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read hypervisor/src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `.rs` file of `hypervisor/src` but this one, with its text.
fn crate_sources() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    files
        .into_iter()
        .filter(|p| !p.ends_with("error_types.rs"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read source");
            (p, text)
        })
        .collect()
}

/// The names declared as `enum NameError` (any visibility), comments
/// skipped.
fn error_enums(text: &str) -> impl Iterator<Item = &str> {
    text.lines().filter_map(|line| {
        let line = line.trim_start();
        if line.starts_with("//") {
            return None;
        }
        let rest = line.split("enum ").nth(1)?;
        let name = rest
            .split(|c: char| !c.is_alphanumeric() && c != '_')
            .next()?;
        name.ends_with("Error").then_some(name)
    })
}

#[test]
fn every_error_enum_is_a_core_error_with_a_message() {
    let mut missing = Vec::new();
    let mut seen = 0;
    // The impls sit beside the enum: two enums of one name (`AbortError`
    // in `arch` and in `vm`) are checked each in its own file.
    for (path, text) in &crate_sources() {
        for name in error_enums(text) {
            seen += 1;
            for imp in ["Display for", "core::error::Error for"] {
                if !text.contains(&alloc::format!("{imp} {name} {{")) {
                    missing.push(alloc::format!("{}: {name}: no {imp}", path.display()));
                }
            }
        }
    }
    assert!(missing.is_empty(), "{missing:#?}");
    // BuildError, DtError, SmmuError, ... : the scan must not come back empty.
    assert!(seen >= 20, "only {seen} error enums found");
    assert_eq!(
        error_enums("pub(crate) enum FooError {\n// enum BarError\nenum Baz {").collect::<Vec<_>>(),
        ["FooError"]
    );
}

#[test]
fn no_result_with_a_string_error() {
    let mut found = Vec::new();
    for (path, text) in crate_sources() {
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if !code.starts_with("//") && code.contains("Result<") && code.contains(", String>") {
                found.push(alloc::format!("{}:{}: {line}", path.display(), n + 1));
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}
