//! `cargo xtask layering`: how much of the hypervisor compiles only for the
//! bare-metal target (and so is never run by `cargo test`), and whether the
//! dependency rules of docs/architecture.md hold. Its test is part of the
//! host unit tests, so `cargo xtask test` fails when either slips.
//!
//! How lines are counted (`hypervisor/src`):
//! - a line counts when it is neither blank nor only a comment (`//`, `//!`,
//!   `///`);
//! - test code is left out: files under a `tests/` directory, files named
//!   `tests.rs`, and every item under `#[cfg(test)]`;
//! - a line is target-only when its file is a module declared under
//!   `#[cfg(all(target_arch = "aarch64", target_os = "none"))]` (or inside
//!   such a module), or it belongs to an item with that attribute;
//! - `arch/aarch64/` and `main.rs` are the sanctioned home of target code:
//!   counted in the total, not in the target-only lines.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The attribute that makes code target-only.
const TARGET_CFG: &str = "#[cfg(all(target_arch = \"aarch64\", target_os = \"none\"))]";
/// Target-only code allowed outside the sanctioned places, in percent.
pub const LIMIT_PERCENT: f64 = 5.0;

/// Line counts of one tree.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Report {
    /// Non-test, non-blank, non-comment lines in all.
    pub total: usize,
    /// Of those, target-only outside `arch/aarch64/` and `main.rs`.
    pub target_only: usize,
    /// Target-only lines per file (outside the sanctioned places).
    pub by_file: Vec<(PathBuf, usize)>,
    /// Broken dependency rules: file and the offending line.
    pub violations: Vec<(PathBuf, String)>,
    /// Files no module declaration reaches (dead code the compiler never
    /// sees).
    pub orphans: Vec<PathBuf>,
}

impl Report {
    /// Target-only share in percent.
    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            100.0 * self.target_only as f64 / self.total as f64
        }
    }
}

/// Whether a line is code (not blank, not only a comment).
fn is_code(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with("//")
}

/// For each line of `text`: (is test code, is under the target cfg), from
/// item attributes. An attribute applies to the item that follows it: up
/// to the end of its braces, or to its `;` if it has none.
fn classify(text: &str) -> Vec<(bool, bool)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = vec![(false, false); lines.len()];
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim();
        let test = t == "#[cfg(test)]";
        let target = t == TARGET_CFG;
        if !(test || target) {
            i += 1;
            continue;
        }
        // The item's extent: from the attribute to its closing brace.
        let mut depth = 0i64;
        let mut opened = false;
        let mut j = i;
        while j < lines.len() {
            let code = lines[j].split("//").next().unwrap_or("");
            for c in code.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            let ends = if opened {
                depth <= 0
            } else {
                code.trim_end().ends_with(';')
            };
            if ends {
                break;
            }
            j += 1;
        }
        for o in out.iter_mut().take(j.min(lines.len() - 1) + 1).skip(i) {
            o.0 |= test;
            o.1 |= target;
        }
        i = j + 1;
    }
    out
}

/// Modules declared in `text` under the target cfg (`mod name;` right
/// after the attribute).
fn target_modules(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    lines
        .windows(2)
        .filter(|w| w[0] == TARGET_CFG)
        .filter_map(|w| {
            let rest = w[1].strip_prefix("pub ").unwrap_or(w[1]);
            let rest = rest.strip_prefix("pub(crate) ").unwrap_or(rest);
            let name = rest.strip_prefix("mod ")?.strip_suffix(';')?;
            Some(name.to_owned())
        })
        .collect()
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// Whether `text` declares module `name` (`mod name;`, any visibility).
fn declares(text: &str, name: &str) -> bool {
    text.lines().map(str::trim).any(|l| {
        let l = l
            .strip_prefix("pub(crate) ")
            .or_else(|| l.strip_prefix("pub(super) "))
            .or_else(|| l.strip_prefix("pub "))
            .unwrap_or(l);
        l.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) == Some(name)
    })
}

/// Files under `src` that no `mod` declaration (or `#[path]`) reaches.
fn orphans(src: &Path, files: &[PathBuf]) -> io::Result<Vec<PathBuf>> {
    let mut texts = Vec::new();
    for f in files {
        texts.push((f.clone(), fs::read_to_string(f)?));
    }
    let read = |p: &Path| texts.iter().find(|(f, _)| f == p).map(|(_, t)| t.as_str());
    let mut out = Vec::new();
    for f in files {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Some(dir) = f.parent() else { continue };
        if dir == src && (name == "lib.rs" || name == "main.rs") {
            continue;
        }
        // The module's name and the files that may declare it.
        let (module, parent_dir) = if name == "mod.rs" {
            let Some(m) = dir.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(p) = dir.parent() else { continue };
            (m.to_owned(), p.to_path_buf())
        } else {
            (name.trim_end_matches(".rs").to_owned(), dir.to_path_buf())
        };
        let mut parents = vec![parent_dir.join("mod.rs")];
        if parent_dir == src {
            parents.push(src.join("lib.rs"));
            parents.push(src.join("main.rs"));
        } else {
            parents.push(parent_dir.with_extension("rs"));
        }
        let declared = parents
            .iter()
            .filter_map(|p| read(p))
            .any(|t| declares(t, &module));
        let rel = f
            .strip_prefix(src)
            .unwrap_or(f)
            .to_string_lossy()
            .replace('\\', "/");
        let by_path = texts.iter().any(|(_, t)| {
            t.lines().any(|l| {
                l.trim().starts_with("#[path") && {
                    let tail = l.split('"').nth(1).unwrap_or("");
                    !tail.is_empty() && rel.ends_with(tail.trim_start_matches("../"))
                }
            })
        });
        if !declared && !by_path {
            out.push(f.strip_prefix(src).unwrap_or(f).to_path_buf());
        }
    }
    Ok(out)
}

/// Counts `src` (the hypervisor's `src/` directory).
pub fn measure(src: &Path) -> io::Result<Report> {
    let mut files = Vec::new();
    rust_files(src, &mut files)?;
    files.sort();
    // Directories and files that are target-only modules.
    let mut target_paths: Vec<PathBuf> = Vec::new();
    for f in &files {
        let text = fs::read_to_string(f)?;
        let dir = match f.file_name().and_then(|n| n.to_str()) {
            Some("mod.rs") | Some("lib.rs") | Some("main.rs") => f.parent().map(Path::to_path_buf),
            _ => f.with_extension("").into(),
        };
        let Some(dir) = dir else { continue };
        for m in target_modules(&text) {
            target_paths.push(dir.join(&m));
            target_paths.push(dir.join(format!("{m}.rs")));
        }
    }
    let mut report = Report {
        orphans: orphans(src, &files)?,
        ..Report::default()
    };
    for f in &files {
        let rel = f.strip_prefix(src).unwrap_or(f).to_path_buf();
        let rel_s = rel.to_string_lossy().replace('\\', "/");
        if rel_s.split('/').any(|c| c == "tests") || rel_s.ends_with("/tests.rs") {
            continue;
        }
        let text = fs::read_to_string(f)?;
        let sanctioned = rel_s.starts_with("arch/aarch64/") || rel_s == "main.rs";
        let whole_file = target_paths.iter().any(|p| f.starts_with(p));
        let mut target_lines = 0;
        for (line, (test, target)) in text.lines().zip(classify(&text)) {
            if test || !is_code(line) {
                continue;
            }
            report.total += 1;
            if !sanctioned && (whole_file || target) {
                target_lines += 1;
            }
        }
        if target_lines > 0 {
            report.by_file.push((rel.clone(), target_lines));
            report.target_only += target_lines;
        }
        for line in text.lines().filter(|l| is_code(l)) {
            let upward = if rel_s.starts_with("arch/") {
                line.contains("crate::") && !line.contains("crate::arch")
            } else if rel_s.starts_with("smmu/") {
                line.contains("crate::vm") || line.contains("crate::boot")
            } else {
                false
            };
            if upward {
                report
                    .violations
                    .push((rel.clone(), line.trim().to_owned()));
            }
        }
    }
    Ok(report)
}

/// Prints the report of `src` (a closed pipe, as with `| head`, ends the
/// listing quietly).
pub fn print(src: &Path) -> io::Result<Report> {
    use std::io::Write;
    let r = measure(src)?;
    let mut out = io::stdout().lock();
    let _ = (|| -> io::Result<()> {
        writeln!(
            out,
            "hypervisor/src: {} lines of code (tests excluded), {} target-only outside arch/aarch64/ and main.rs: {:.2}% (limit {LIMIT_PERCENT}%)",
            r.total,
            r.target_only,
            r.percent()
        )?;
        for (f, n) in &r.by_file {
            writeln!(out, "  {n:>5}  {}", f.display())?;
        }
        for (f, line) in &r.violations {
            writeln!(
                out,
                "  layering: {} names a layer above it: {line}",
                f.display()
            )?;
        }
        for f in &r.orphans {
            writeln!(
                out,
                "  orphan: {} is in no module (the compiler never reads it)",
                f.display()
            )?;
        }
        Ok(())
    })();
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_items_and_modules() {
        let text = "\
fn a() {}
#[cfg(all(target_arch = \"aarch64\", target_os = \"none\"))]
fn b() {
    x();
}
#[cfg(test)]
mod tests {
    #[test]
    fn t() {}
}
#[cfg(all(target_arch = \"aarch64\", target_os = \"none\"))]
pub mod hw;
";
        let c = classify(text);
        assert_eq!(c[0], (false, false));
        assert!(c[1..5].iter().all(|&(t, g)| !t && g));
        assert!(c[5..10].iter().all(|&(t, _)| t));
        assert_eq!(c[11], (false, true));
        assert_eq!(target_modules(text), ["hw"]);
    }

    /// The hypervisor itself: target-only code stays under the limit and
    /// no layer names one above it.
    #[test]
    fn hypervisor_layering_holds() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../hypervisor/src");
        let r = measure(&src).expect("hypervisor/src is readable");
        assert!(
            r.total > 5000,
            "counted {} lines: wrong directory?",
            r.total
        );
        assert!(
            r.violations.is_empty(),
            "layering broken: {:#?}",
            r.violations
        );
        assert!(r.orphans.is_empty(), "files in no module: {:#?}", r.orphans);
        assert!(
            r.percent() < LIMIT_PERCENT,
            "{:.2}% of hypervisor/src compiles only for the target (limit {LIMIT_PERCENT}%): {:#?}",
            r.percent(),
            r.by_file
        );
    }
}
