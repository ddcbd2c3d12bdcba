//! Node paths: matching a node name against a path component (libfdt
//! rules), splitting paths into components, and reading `stdout-path`-style
//! values (`/path:options` or `alias/sub:options`). No allocation.

/// True when a node called `node_name` (`name@unit`) matches the path
/// component `component`: equal, or `component` has no unit address and
/// equals the name part (as libfdt does).
pub fn name_matches(node_name: &str, component: &str) -> bool {
    if node_name == component {
        return true;
    }
    !component.contains('@')
        && node_name
            .strip_prefix(component)
            .is_some_and(|rest| rest.starts_with('@'))
}

/// The non-empty components of `path` (`"/a//b/"` gives `a`, `b`).
pub fn components(path: &str) -> impl Iterator<Item = &str> + Clone {
    path.split('/').filter(|c| !c.is_empty())
}

/// A parsed `stdout-path`-style reference, options removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathRef<'a> {
    /// An absolute path such as `/pl011@9000000`.
    Absolute(&'a str),
    /// An alias, optionally followed by a path below the aliased node.
    Alias {
        /// The alias name (a property of `/aliases`).
        alias: &'a str,
        /// The rest of the path after the alias (may be empty).
        rest: &'a str,
    },
}

impl<'a> PathRef<'a> {
    /// Parses `value`, dropping everything from the first `:` on (the
    /// console options such as `115200n8`, as Linux does). `None` for an
    /// empty reference.
    pub fn parse(value: &'a str) -> Option<Self> {
        let path = value.split(':').next().unwrap_or("");
        if path.is_empty() {
            return None;
        }
        if path.starts_with('/') {
            return Some(Self::Absolute(path));
        }
        let (alias, rest) = path.split_once('/').unwrap_or((path, ""));
        Some(Self::Alias { alias, rest })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        assert!(name_matches("pl011@9000000", "pl011@9000000"));
        assert!(name_matches("pl011@9000000", "pl011"));
        assert!(!name_matches("pl011@9000000", "pl011@9000001"));
        assert!(!name_matches("pl0110", "pl011"));
        assert!(name_matches("chosen", "chosen"));
        assert!(!name_matches("chosen", "chosen@0"));
    }

    #[test]
    fn refs() {
        assert_eq!(
            PathRef::parse("/pl011@9000000"),
            Some(PathRef::Absolute("/pl011@9000000"))
        );
        assert_eq!(
            PathRef::parse("/soc/uart@1:115200n8"),
            Some(PathRef::Absolute("/soc/uart@1"))
        );
        assert_eq!(
            PathRef::parse("serial0:115200n8"),
            Some(PathRef::Alias {
                alias: "serial0",
                rest: ""
            })
        );
        assert_eq!(
            PathRef::parse("bus/uart"),
            Some(PathRef::Alias {
                alias: "bus",
                rest: "uart"
            })
        );
        assert_eq!(PathRef::parse(":1"), None);
        assert_eq!(PathRef::parse(""), None);
        assert_eq!(
            components("/a//b/")
                .collect::<heapless::Vec<_, 4>>()
                .as_slice(),
            &["a", "b"]
        );
    }
}
