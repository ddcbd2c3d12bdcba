//! Definition files: reading TOML into a schema type, finding a definition
//! by name in its directory, listing a directory's definitions.

use std::fs;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::error::LoadError;

/// Reads `path` and parses it as `T` (unknown keys are errors in every schema).
pub fn read_toml<T: DeserializeOwned>(path: &Path) -> Result<T, LoadError> {
    let text = fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_toml(path, &text)
}

/// Parses `text` (the contents of `path`) as `T`.
pub fn parse_toml<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, LoadError> {
    toml::from_str(text).map_err(|e| LoadError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().replace('\n', "\n  "),
    })
}

/// The definition file for `name_or_path`: a path when it contains `/` or
/// ends with `.toml`, otherwise `<dir>/<name>.toml`.
pub fn locate(dir: &Path, name_or_path: &str, what: &'static str) -> Result<PathBuf, LoadError> {
    if name_or_path.contains('/') || name_or_path.ends_with(".toml") {
        return Ok(PathBuf::from(name_or_path));
    }
    let path = dir.join(format!("{name_or_path}.toml"));
    if path.is_file() {
        Ok(path)
    } else {
        Err(LoadError::Unknown {
            what,
            name: name_or_path.to_owned(),
            path,
            known: names(dir),
        })
    }
}

/// The stems of the `*.toml` files directly in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
                .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The name of a definition: its file stem.
pub fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "unnamed".into())
}

/// Checks a duration in seconds from a definition file.
pub fn check_secs(problems: &mut Vec<String>, key: &str, secs: f64, max: f64) {
    if !(secs > 0.0 && secs <= max) {
        problems.push(format!(
            "{key}: {secs} is not a time limit (seconds, more than 0 and at most {max})"
        ));
    }
}

/// A time limit in seconds as a duration, clamped to `0..=max` (NaN and
/// infinities, already reported by [`check_secs`], become zero).
pub fn duration(secs: f64, max: f64) -> std::time::Duration {
    if secs.is_finite() {
        std::time::Duration::from_secs_f64(secs.clamp(0.0, max))
    } else {
        std::time::Duration::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_by_name_or_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("a.toml"), "").expect("write");
        fs::write(dir.path().join("b.toml"), "").expect("write");
        fs::write(dir.path().join("notes.md"), "").expect("write");
        assert_eq!(
            locate(dir.path(), "a", "board").expect("exists"),
            dir.path().join("a.toml")
        );
        assert_eq!(
            locate(dir.path(), "x/y.toml", "board").expect("a path"),
            PathBuf::from("x/y.toml")
        );
        let err = locate(dir.path(), "c", "board").expect_err("no c");
        assert!(err.to_string().contains("no board named `c`"), "{err}");
        assert!(err.to_string().ends_with("known: a, b"), "{err}");
    }

    #[test]
    fn odd_time_limits() {
        let mut problems = Vec::new();
        for secs in [f64::NAN, f64::INFINITY, -1.0, 0.0, 601.0] {
            check_secs(&mut problems, "timeout", secs, 600.0);
            assert!(duration(secs, 600.0) <= std::time::Duration::from_secs(600));
        }
        assert_eq!(problems.len(), 5, "{problems:?}");
        check_secs(&mut problems, "timeout", 0.5, 600.0);
        assert_eq!(problems.len(), 5);
        assert_eq!(duration(0.5, 600.0), std::time::Duration::from_millis(500));
    }

    #[test]
    fn parse_errors_name_the_file_and_line() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct S {
            a: u32,
        }
        let err = parse_toml::<S>(Path::new("x.toml"), "a = 1\nb = 2\n").expect_err("b");
        let text = err.to_string();
        assert!(text.starts_with("x.toml: "), "{text}");
        assert!(text.contains("line 2"), "{text}");
        assert!(text.contains("unknown field `b`"), "{text}");
    }
}
