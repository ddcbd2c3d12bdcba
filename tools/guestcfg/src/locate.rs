//! Turning byte offsets into positions and key paths: line and column of an
//! offset, and the key path (`guest[0].memory.size`) of the deepest key or
//! value of the document that covers it (for the `toml` crate's errors,
//! which carry a span but no path).

use std::fmt::Write;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::Position;

/// The 1-based line and column (in characters) of byte `offset` of `text`
/// (clamped to the text).
pub(crate) fn position(text: &str, offset: usize) -> Position {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Position {
        line,
        column: before[line_start..].chars().count() + 1,
    }
}

/// The key path at byte `offset` of the TOML document `text`, if the text
/// parses and the offset lies in a key or value.
pub(crate) fn key_path_at(text: &str, offset: usize) -> Option<String> {
    let doc = DeTable::parse(text).ok()?;
    let mut path = String::new();
    in_table(doc.get_ref(), offset, &mut path).then_some(path)
}

fn in_table(table: &DeTable<'_>, at: usize, path: &mut String) -> bool {
    for (key, value) in table.iter() {
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key.get_ref());
        if key.span().contains(&at) || in_value(value, at, path) {
            return true;
        }
        path.truncate(len);
    }
    false
}

fn in_value(value: &Spanned<DeValue<'_>>, at: usize, path: &mut String) -> bool {
    match value.get_ref() {
        DeValue::Table(table) if in_table(table, at, path) => return true,
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                let _ = write!(path, "[{i}]");
                if in_value(item, at, path) {
                    return true;
                }
                path.truncate(len);
            }
        }
        _ => {}
    }
    value.span().contains(&at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(position(text, 0), Position { line: 1, column: 1 });
        assert_eq!(position(text, 6), Position { line: 2, column: 1 });
        assert_eq!(position(text, 9), Position { line: 2, column: 3 });
        assert_eq!(
            position(text, 8),
            Position { line: 2, column: 2 },
            "inside a character"
        );
        assert_eq!(position(text, 999), Position { line: 3, column: 1 });
    }

    #[test]
    fn key_paths() {
        let text = "board = \"x\"\n[[guest]]\nname = \"a\"\ncpus = [0, 1]\n[guest.memory]\nsize = \"1M\"\n";
        let at = |s: &str| text.find(s).unwrap();
        assert_eq!(key_path_at(text, at("\"x\"")).as_deref(), Some("board"));
        assert_eq!(
            key_path_at(text, at("1]")).as_deref(),
            Some("guest[0].cpus[1]")
        );
        assert_eq!(
            key_path_at(text, at("size")).as_deref(),
            Some("guest[0].memory.size")
        );
        assert_eq!(
            key_path_at(text, at("\"1M\"")).as_deref(),
            Some("guest[0].memory.size")
        );
        assert_eq!(key_path_at("a = ", 0), None);
    }
}
