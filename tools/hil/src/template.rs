//! Placeholders in board definitions: `{name}` is replaced by the runner
//! (`{run_dir}`, `{workspace}`, `{qemu}`); `${name}` is left alone for
//! U-Boot or the shell to expand.
//!
//! A placeholder is `{` + a lowercase identifier + `}` not preceded by `$`;
//! anything else in braces (`{}`, `{a,b}`, `{ print $1 }`) is plain text.

use std::collections::BTreeMap;

/// The placeholders the runner knows.
pub const KNOWN: &[&str] = &["run_dir", "workspace", "qemu"];

/// A placeholder that cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// No value for this name.
    #[error("unknown placeholder {{{name}}} (known: {})", known_list())]
    Unknown {
        /// The name in braces.
        name: String,
    },
    /// The value has characters that would break a shell or QEMU command line.
    #[error(
        "{{{name}}} = {value:?} contains a space, quote, comma or other special character; \
         use a path made of letters, digits and -_./+@%:"
    )]
    Unsafe {
        /// The placeholder.
        name: String,
        /// Its value.
        value: String,
    },
}

fn known_list() -> String {
    KNOWN
        .iter()
        .map(|k| format!("{{{k}}}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Values for the placeholders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars(BTreeMap<String, String>);

impl Vars {
    /// No values.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `value`; refuses values that are unsafe on a command line.
    pub fn set(&mut self, name: &str, value: impl Into<String>) -> Result<(), TemplateError> {
        let value = value.into();
        let safe = !value.is_empty()
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./+@%:".contains(c));
        if !safe {
            return Err(TemplateError::Unsafe {
                name: name.to_owned(),
                value,
            });
        }
        self.0.insert(name.to_owned(), value);
        Ok(())
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Every name and value (for the environment of hooks).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// The placeholders in `text`, in order: (byte range of `{name}`, name).
pub fn placeholders(text: &str) -> Vec<(std::ops::Range<usize>, &str)> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'{' && (i == 0 || bytes[i - 1] != b'$') {
            let rest = &text[i + 1..];
            let len = rest
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(rest.len());
            let name = &rest[..len];
            let starts_with_letter = name.starts_with(|c: char| c.is_ascii_lowercase());
            if starts_with_letter && rest[len..].starts_with('}') {
                found.push((i..i + len + 2, name));
                i += len + 2;
                continue;
            }
        }
        i += 1;
    }
    found
}

/// Names in `text` that are not in [`KNOWN`].
pub fn unknown_names(text: &str) -> Vec<String> {
    placeholders(text)
        .into_iter()
        .filter(|(_, name)| !KNOWN.contains(name))
        .map(|(_, name)| name.to_owned())
        .collect()
}

/// `text` with every placeholder replaced by its value.
pub fn expand(text: &str, vars: &Vars) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (range, name) in placeholders(text) {
        let value = vars.get(name).ok_or_else(|| TemplateError::Unknown {
            name: name.to_owned(),
        })?;
        out.push_str(&text[last..range.start]);
        out.push_str(value);
        last = range.end;
    }
    out.push_str(&text[last..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        let mut v = Vars::new();
        v.set("run_dir", "/w/target/hil/b-s").expect("safe");
        v.set("qemu", "/usr/bin/qemu-system-aarch64").expect("safe");
        v
    }

    #[test]
    fn expands_braces_but_not_dollar_braces() {
        let text = "tftp={run_dir}/tftp ${fdtcontroladdr} ${HOME} {} {a,b} { print } {run_dir}";
        assert_eq!(
            expand(text, &vars()).expect("known names"),
            "tftp=/w/target/hil/b-s/tftp ${fdtcontroladdr} ${HOME} {} {a,b} { print } /w/target/hil/b-s"
        );
        assert_eq!(
            expand("{qemu}", &vars()).as_deref(),
            Ok("/usr/bin/qemu-system-aarch64")
        );
    }

    #[test]
    fn unknown_and_unset_names() {
        assert_eq!(unknown_names("{run_dir} {tftp_root} ${x}"), ["tftp_root"]);
        let err = expand("{workspace}", &vars()).expect_err("not set");
        assert!(err.to_string().contains("{workspace}"), "{err}");
    }

    #[test]
    fn unsafe_values_are_refused() {
        let mut v = Vars::new();
        let err = v.set("run_dir", "/my dir/x").expect_err("space");
        assert!(err.to_string().contains("\"/my dir/x\""), "{err}");
        assert!(v.set("run_dir", "/a,b").is_err());
        assert!(v.set("run_dir", "").is_err());
        assert!(v.set("run_dir", "/ok/dir-1.2").is_ok());
    }
}
