//! Who has a partial line on the terminal: the line discipline that keeps
//! the hypervisor's log and several guests' output from mixing within a
//! line. A source (a guest's console, or the hypervisor) that writes while
//! another's line is unfinished first ends that line (`\r\n`); a guest's
//! line starts with its tag when there is one. Pure state over an output
//! function, so it is tested on the host.

/// The source number of the hypervisor's own output.
pub const HYPERVISOR: u16 = u16::MAX;

/// The terminal's line state.
#[derive(Debug, Default)]
pub struct Lines {
    /// The source whose line is unfinished, if any.
    open: Option<u16>,
}

impl Lines {
    /// No line open.
    pub const fn new() -> Self {
        Lines { open: None }
    }

    /// Before `source` writes: ends another source's open line and, when
    /// `source` starts a line, writes its tag.
    pub fn begin(&mut self, source: u16, tag: Option<&str>, mut out: impl FnMut(&[u8])) {
        if self.open == Some(source) {
            return;
        }
        if self.open.is_some() {
            out(b"\r\n");
        }
        if let Some(tag) = tag {
            out(b"[");
            out(tag.as_bytes());
            out(b"] ");
        }
        self.open = Some(source);
    }

    /// After `source` wrote: its line is finished when `complete`.
    pub fn end(&mut self, source: u16, complete: bool) {
        if complete && self.open == Some(source) {
            self.open = None;
        }
    }

    /// [`Self::begin`], `bytes`, [`Self::end`].
    pub fn write(
        &mut self,
        source: u16,
        tag: Option<&str>,
        bytes: &[u8],
        complete: bool,
        mut out: impl FnMut(&[u8]),
    ) {
        if bytes.is_empty() {
            return;
        }
        self.begin(source, tag, &mut out);
        out(bytes);
        self.end(source, complete);
    }
}

#[cfg(test)]
std::thread_local! {
    static CAPTURED: core::cell::RefCell<(Lines, alloc::vec::Vec<u8>)> =
        const { core::cell::RefCell::new((Lines::new(), alloc::vec::Vec::new())) };
}

/// Host tests: what guest consoles wrote on this thread goes through a
/// [`Lines`] of its own into a buffer ([`take_captured`]).
#[cfg(test)]
pub fn capture(source: u16, tag: Option<&str>, bytes: &[u8], complete: bool) {
    CAPTURED.with(|c| {
        let (lines, buf) = &mut *c.borrow_mut();
        lines.write(source, tag, bytes, complete, |b| buf.extend_from_slice(b));
    });
}

/// Host tests: the captured output so far (and forgets it).
#[cfg(test)]
pub fn take_captured() -> alloc::string::String {
    CAPTURED.with(|c| {
        let (lines, buf) = &mut *c.borrow_mut();
        *lines = Lines::new();
        alloc::string::String::from_utf8_lossy(&core::mem::take(buf)).into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn run(steps: &[(u16, Option<&str>, &str, bool)]) -> alloc::string::String {
        let mut l = Lines::new();
        let mut out = Vec::new();
        for &(src, tag, text, complete) in steps {
            l.write(src, tag, text.as_bytes(), complete, |b| {
                out.extend_from_slice(b)
            });
        }
        alloc::string::String::from_utf8(out).unwrap()
    }

    #[test]
    fn whole_lines_are_tagged_and_never_mixed() {
        let out = run(&[
            (0, Some("a"), "one\n", true),
            (1, Some("b"), "two\n", true),
            (0, Some("a"), "prompt # ", false),
            (0, Some("a"), "ls", false),
            (1, Some("b"), "late\n", true),
            (0, Some("a"), "\n", true),
            (HYPERVISOR, None, "log\n", true),
        ]);
        assert_eq!(
            out,
            "[a] one\n[b] two\n[a] prompt # ls\r\n[b] late\n[a] \n\
             log\n"
        );
    }

    #[test]
    fn untagged_when_alone() {
        assert_eq!(
            run(&[(0, None, "x", false), (0, None, "y\n", true)]),
            "xy\n"
        );
        assert_eq!(run(&[(0, None, "", false)]), "");
    }
}
