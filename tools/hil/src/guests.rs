//! The hypervisor's guest consoles as seen from the serial line
//! (`docs/guests.md`, "Consoles"): what to type to reach a guest, and how
//! to read its output among the others'.
//!
//! - When several guests run, every line a guest writes starts with
//!   `[name] `; [`find_tagged`] finds text in the lines of one guest.
//! - Ctrl-] `l` lists the guests, one line each:
//!   `partita console: guest N 'name': running, ...`; [`find_listed`] reads
//!   a guest's number N from it (its place in the configuration, which is
//!   the bundle's order).
//! - Ctrl-] N gives guest N the focus ([`focus_keys`]); the hypervisor
//!   answers [`focus_reply`].
//!
//! Pure functions over bytes: the scenario engine and the QEMU test
//! harness (`tests/src/session.rs`) both use them.

/// The escape key of the hypervisor's console, Ctrl-].
pub const ESCAPE: char = '\u{1d}';

/// The keys that list the guests (Ctrl-] `l`).
pub const LIST_KEYS: &str = "\u{1d}l";

/// The keys that give guest `number` the focus (Ctrl-] and its digit).
///
/// Only guests 0 to 9 can be reached this way; the caller checks.
pub fn focus_keys(number: u8) -> String {
    format!("{ESCAPE}{number}")
}

/// What the hypervisor prints once guest `number` called `name` has the focus.
pub fn focus_reply(number: u8, name: &str) -> String {
    format!("partita console: focus on guest {number} '{name}'")
}

/// Whether `name` can be a guest's name in a scenario (non-empty, printable,
/// none of the characters that delimit it on the console: `'`, `[`, `]`).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '\'' | '[' | ']'))
}

/// The number of guest `name` in the guest list (Ctrl-] `l`) in `text`:
/// the first line `partita console: guest N 'name': ...` and where it
/// ends (just past `':`).
pub fn find_listed(text: &[u8], name: &str) -> Option<(u8, usize)> {
    const HEAD: &[u8] = b"partita console: guest ";
    let tail = format!(" '{name}':");
    let mut from = 0;
    while let Some(at) = crate::session::find(&text[from..], HEAD) {
        let digits_at = from + at + HEAD.len();
        let digits = text[digits_at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let rest = &text[digits_at + digits..];
        if digits > 0 && rest.starts_with(tail.as_bytes()) {
            let number = std::str::from_utf8(&text[digits_at..digits_at + digits])
                .ok()
                .and_then(|d| d.parse().ok());
            if let Some(number) = number {
                return Some((number, digits_at + digits + tail.len()));
            }
        }
        from = digits_at;
    }
    None
}

/// Every guest of the guest list (Ctrl-] `l`) in `text`: numbers and names.
pub fn listed(text: &[u8]) -> Vec<(u8, String)> {
    const HEAD: &str = "partita console: guest ";
    String::from_utf8_lossy(text)
        .lines()
        .filter_map(|line| {
            let rest = &line[line.find(HEAD)? + HEAD.len()..];
            let (number, rest) = rest.split_once(" '")?;
            let (name, _) = rest.split_once("':")?;
            Some((number.parse().ok()?, name.to_owned()))
        })
        .filter(|(_, name)| valid_name(name))
        .collect()
}

/// The start of the line that `at` is in: the bytes of `text` after its
/// last newline before `at` (what [`find_tagged`] needs to know about the
/// line a search starts in).
pub fn line_head(text: &[u8], at: usize) -> &[u8] {
    let at = at.min(text.len());
    let start = text[..at]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |nl| nl + 1);
    &text[start..at]
}

/// Finds `needle` in a line of `tail` written by guest `name` (a line
/// starting `[name] `, the needle after that tag); returns where the needle
/// ends in `tail`. `head` is the start of the line `tail` begins in (see
/// [`line_head`]; empty when `tail` starts a line). A line whose tag has
/// not fully arrived yet does not match.
pub fn find_tagged(head: &[u8], tail: &[u8], name: &str, needle: &str) -> Option<usize> {
    let tag = format!("[{name}] ");
    let tag = tag.as_bytes();
    let needle = needle.as_bytes();
    let mut start = 0;
    let mut first = true;
    while start <= tail.len() {
        let end = tail[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(tail.len(), |i| start + i);
        // Where this line's text after the tag starts in `tail`, if it is
        // one of the guest's lines.
        let content = if first {
            let head = trim_cr(head);
            if head.len() >= tag.len() {
                head.starts_with(tag).then_some(0)
            } else {
                let missing = tag.len() - head.len();
                let line = trim_cr_at(tail, 0, head.is_empty());
                (tag.starts_with(head) && tail[line..end].starts_with(&tag[head.len()..]))
                    .then_some(line + missing)
            }
        } else {
            let line = trim_cr_at(tail, start, true);
            tail[line..end].starts_with(tag).then_some(line + tag.len())
        };
        if let Some(from) = content
            && from <= end
            && let Some(at) = crate::session::find(&tail[from..end], needle)
        {
            return Some(from + at + needle.len());
        }
        first = false;
        start = end + 1;
    }
    None
}

/// `line` without its leading carriage returns.
fn trim_cr(line: &[u8]) -> &[u8] {
    let n = line.iter().take_while(|&&b| b == b'\r').count();
    &line[n..]
}

/// Past the carriage returns at `at` in `text` (when `skip`).
fn trim_cr_at(text: &[u8], at: usize, skip: bool) -> usize {
    if !skip {
        return at;
    }
    at + text[at..].iter().take_while(|&&b| b == b'\r').count()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &[u8] = b"[alpha] ~ # hostname\r\n[beta] ~ # \r\n[alpha] alpha\r\n\
partita console: guest 0 'alpha': running, 2/2 vcpus on, emulated console\r\n\
partita console: guest 1 'beta': stopped, 0/2 vcpus on, emulated console (focus)\r\n\
[beta] beta-says\r\n[be";

    #[test]
    fn tagged_lines_are_found_after_their_tag_only() {
        let end = find_tagged(b"", OUT, "alpha", "alpha").expect("alpha's own line");
        assert!(OUT[..end].ends_with(b"[alpha] alpha"));
        // `[beta]` itself, alpha's lines and the hypervisor's do not count.
        let end = find_tagged(b"", OUT, "beta", "beta").expect("beta's line");
        assert!(OUT[..end].ends_with(b"[beta] beta"), "{end}");
        assert_eq!(find_tagged(b"", OUT, "beta", "hostname"), None);
        assert_eq!(find_tagged(b"", OUT, "gamma", "~ #"), None);
        assert_eq!(find_tagged(b"", OUT, "beta", "running"), None);
    }

    #[test]
    fn the_line_the_search_starts_in_counts() {
        // The cursor is in the middle of alpha's prompt line.
        let text = b"log\n[alpha] ~ # echo hi\r\nhi-untagged\r\n";
        let cursor = 14;
        let head = line_head(text, cursor);
        assert_eq!(head, b"[alpha] ~ ");
        let tail = &text[cursor..];
        assert_eq!(find_tagged(head, tail, "alpha", "echo"), Some(6));
        assert_eq!(find_tagged(head, tail, "alpha", "hi-untagged"), None);
        assert_eq!(find_tagged(head, tail, "beta", "echo"), None);
        // The cursor inside the tag itself.
        let head = line_head(text, 8);
        assert_eq!(head, b"[alp");
        assert_eq!(find_tagged(head, &text[8..], "alpha", "~ #"), Some(7));
        assert_eq!(find_tagged(head, &text[8..], "alpha", "ha]"), None);
        assert_eq!(find_tagged(b"[bet", &text[8..], "alpha", "~ #"), None);
        // A tag not fully arrived yet.
        assert_eq!(find_tagged(b"", b"[be", "beta", "x"), None);
        assert_eq!(find_tagged(b"", b"", "beta", "x"), None);
    }

    #[test]
    fn guest_numbers_come_from_the_list() {
        let (n, end) = find_listed(OUT, "beta").expect("beta is listed");
        assert_eq!(n, 1);
        assert!(OUT[..end].ends_with(b"guest 1 'beta':"));
        assert_eq!(find_listed(OUT, "alpha").map(|(n, _)| n), Some(0));
        assert_eq!(find_listed(OUT, "bet"), None);
        assert_eq!(find_listed(b"partita console: guest 'x':", "x"), None);
        assert_eq!(
            find_listed(b"partita console: guest 12 'x': running", "x").map(|(n, _)| n),
            Some(12)
        );
        assert_eq!(
            find_listed(b"partita console: guest 999 'x': running", "x"),
            None
        );
    }

    #[test]
    fn the_whole_list_is_read() {
        assert_eq!(
            listed(OUT),
            [(0, "alpha".to_owned()), (1, "beta".to_owned())]
        );
        assert_eq!(listed(b"partita console: guest x 'a': y\n"), []);
    }

    #[test]
    fn keys_and_names() {
        assert_eq!(focus_keys(1), "\u{1d}1");
        assert_eq!(
            focus_reply(1, "beta"),
            "partita console: focus on guest 1 'beta'"
        );
        assert!(valid_name("beta-2_x"));
        for bad in ["", "a b", "it's", "[x]", "a\n"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
