//! A console with a memory: everything received is kept in a transcript
//! (and copied to a log file and, optionally, to stderr as it arrives).
//! Waits search the transcript after a cursor and move the cursor past what
//! they matched, so consecutive expectations also check order.
//!
//! A session can also watch for text that must never appear (a scenario's
//! `fail_on`): any wait fails as soon as one shows up after the point where
//! watching started.

use std::fs::File;
use std::io::{self, Write};
use std::thread;
use std::time::{Duration, Instant};

use crate::console::{Console, Recv};

/// Why a wait ended without its match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitError {
    /// Time ran out.
    Timeout,
    /// The console closed, and why.
    Closed(String),
    /// Watched-for text appeared.
    Unexpected(String),
}

/// A console and its transcript.
pub struct Session {
    console: Box<dyn Console>,
    transcript: Vec<u8>,
    cursor: usize,
    closed: Option<String>,
    watch: Vec<String>,
    watch_from: usize,
    watched_to: usize,
    log: Option<File>,
    log_error: Option<io::Error>,
    echo: bool,
    char_delay: Duration,
}

impl Session {
    /// A session on `console`, with an empty transcript.
    pub fn new(console: Box<dyn Console>) -> Self {
        Self {
            console,
            transcript: Vec::new(),
            cursor: 0,
            closed: None,
            watch: Vec::new(),
            watch_from: 0,
            watched_to: 0,
            log: None,
            log_error: None,
            echo: false,
            char_delay: Duration::ZERO,
        }
    }

    /// Copies everything received to `log` as it arrives.
    pub fn with_log(mut self, log: File) -> Self {
        self.log = Some(log);
        self
    }

    /// Echoes everything received to stderr as it arrives.
    pub fn with_echo(mut self, echo: bool) -> Self {
        self.echo = echo;
        self
    }

    /// Sends text one character at a time with this pause after each.
    pub fn set_char_delay(&mut self, delay: Duration) {
        self.char_delay = delay;
    }

    /// From the cursor on, any of `patterns` appearing fails every wait.
    pub fn watch(&mut self, patterns: &[String]) {
        self.watch = patterns.iter().filter(|p| !p.is_empty()).cloned().collect();
        self.watch_from = self.cursor;
        self.watched_to = self.cursor;
    }

    /// Everything received so far.
    pub fn transcript(&self) -> &[u8] {
        &self.transcript
    }

    /// The first error writing the log file, if any (the run goes on without it).
    pub fn log_error(&self) -> Option<&io::Error> {
        self.log_error.as_ref()
    }

    /// Where searches start (a byte offset into the transcript).
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Moves the cursor, clamped to the transcript.
    pub fn set_cursor(&mut self, cursor: usize) {
        self.cursor = cursor.min(self.transcript.len());
    }

    /// Writes `text` to the board (a character at a time with a char delay).
    pub fn send(&mut self, text: &str) -> io::Result<()> {
        if self.char_delay.is_zero() {
            return self.console.send(text.as_bytes());
        }
        for byte in text.bytes() {
            self.console.send(&[byte])?;
            thread::sleep(self.char_delay);
        }
        Ok(())
    }

    /// Waits until `matcher`, given the transcript after the cursor, returns
    /// a value and how many bytes it consumed; moves the cursor past them.
    pub fn wait<T>(
        &mut self,
        timeout: Duration,
        mut matcher: impl FnMut(&[u8]) -> Option<(T, usize)>,
    ) -> Result<T, WaitError> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if let Some(found) = self.check_watch() {
                return Err(WaitError::Unexpected(found));
            }
            if let Some((value, used)) = matcher(&self.transcript[self.cursor..]) {
                self.cursor = (self.cursor + used).min(self.transcript.len());
                return Ok(value);
            }
            if let Some(why) = &self.closed {
                return Err(WaitError::Closed(why.clone()));
            }
            let left = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                return Err(WaitError::Timeout);
            }
            self.receive(left);
        }
    }

    /// Waits for `needle` after the cursor.
    pub fn expect(&mut self, needle: &str, timeout: Duration) -> Result<(), WaitError> {
        self.expect_any(&[needle], timeout).map(|_| ())
    }

    /// Waits for the first of `needles` to appear after the cursor; returns
    /// its index (the earliest in the transcript wins).
    pub fn expect_any(&mut self, needles: &[&str], timeout: Duration) -> Result<usize, WaitError> {
        self.wait(timeout, |tail| {
            needles
                .iter()
                .enumerate()
                .filter_map(|(i, n)| find(tail, n.as_bytes()).map(|at| (at, i, at + n.len())))
                .min()
                .map(|(_, i, end)| (i, end))
        })
    }

    /// Waits until every one of `needles` has appeared after the cursor, in
    /// any order. The cursor does not move. On failure, also returns the
    /// needles still missing.
    pub fn expect_all(
        &mut self,
        needles: &[String],
        timeout: Duration,
    ) -> Result<(), (WaitError, Vec<String>)> {
        let start = self.cursor;
        let result = self.wait(timeout, |tail| {
            needles
                .iter()
                .all(|n| find(tail, n.as_bytes()).is_some())
                .then_some(((), 0))
        });
        self.cursor = start;
        result.map_err(|e| {
            let tail = &self.transcript[start..];
            let missing = needles
                .iter()
                .filter(|n| find(tail, n.as_bytes()).is_none())
                .cloned()
                .collect();
            (e, missing)
        })
    }

    /// The last `lines` lines of the transcript from byte `from` on, without
    /// carriage returns, for error messages.
    pub fn tail_text(&self, from: usize, lines: usize) -> String {
        last_lines(&self.transcript[from.min(self.transcript.len())..], lines)
    }

    /// Receives once, waiting at most `timeout`.
    fn receive(&mut self, timeout: Duration) {
        match self.console.recv(timeout) {
            Recv::Data(bytes) => self.absorb(&bytes),
            Recv::Idle => {}
            Recv::Closed(why) => self.closed = Some(why),
        }
    }

    fn absorb(&mut self, bytes: &[u8]) {
        self.transcript.extend_from_slice(bytes);
        if let Some(log) = &mut self.log
            && let Err(e) = log.write_all(bytes)
        {
            self.log_error.get_or_insert(e);
            self.log = None;
        }
        if self.echo {
            let mut err = io::stderr().lock();
            // Echo is a courtesy: a closed stderr must not stop the run.
            let _ = err.write_all(bytes).and_then(|()| err.flush());
        }
    }

    /// A watched pattern in the part of the transcript not yet checked.
    fn check_watch(&mut self) -> Option<String> {
        let longest = self.watch.iter().map(String::len).max()?;
        let start = self
            .watched_to
            .saturating_sub(longest.saturating_sub(1))
            .max(self.watch_from);
        let region = &self.transcript[start..];
        let found = self
            .watch
            .iter()
            .find(|p| find(region, p.as_bytes()).is_some())
            .cloned();
        self.watched_to = self.transcript.len();
        found
    }
}

/// Where `needle` first occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The last `count` non-empty lines of `bytes`, without carriage returns
/// and other control characters (terminal escapes lose their ESC).
pub fn last_lines(bytes: &[u8], count: usize) -> String {
    let text: String = String::from_utf8_lossy(bytes)
        .chars()
        .filter(|&c| c == '\n' || c == '\t' || !c.is_control())
        .collect();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::fake::FakeConsole;

    const SHORT: Duration = Duration::from_millis(100);

    fn session(c: FakeConsole) -> Session {
        Session::new(Box::new(c))
    }

    #[test]
    fn expectations_follow_the_cursor() {
        let mut s = session(FakeConsole::new("one\r\ntwo\r\nthree\r\n"));
        s.expect("two", SHORT).expect("two");
        assert_eq!(s.expect("one", SHORT), Err(WaitError::Timeout));
        assert_eq!(s.expect_any(&["zero", "three", "two"], SHORT), Ok(1));
        s.set_cursor(0);
        assert_eq!(
            s.expect_any(&["three", "one"], SHORT),
            Ok(1),
            "earliest wins"
        );
        let cursor = s.cursor();
        assert_eq!(s.expect_all(&["three".into(), "two".into()], SHORT), Ok(()));
        assert_eq!(s.cursor(), cursor, "expect_all does not move");
        let (err, missing) = s
            .expect_all(&["two".into(), "four".into()], SHORT)
            .expect_err("four is missing");
        assert_eq!(
            (err, missing),
            (WaitError::Timeout, vec!["four".to_owned()])
        );
    }

    #[test]
    fn replies_arrive_after_sending() {
        let mut s = session(FakeConsole::new("=> ").reply("version\n", "U-Boot 2023.01\r\n=> "));
        s.expect("=> ", SHORT).expect("prompt");
        s.send("version\n").expect("send");
        s.expect("U-Boot 2023.01", SHORT).expect("reply");
        s.set_char_delay(Duration::from_millis(1));
        s.send("ab").expect("slow send");
    }

    #[test]
    fn watched_text_fails_waits() {
        let mut s = session(
            FakeConsole::new("Kernel panic early\r\nboot\r\n")
                .reply("go\n", "starting\r\nKernel pa"),
        );
        s.expect("boot", SHORT).expect("boot");
        s.watch(&["Kernel panic".into()]);
        s.send("go\n").expect("send");
        s.expect("starting", SHORT)
            .expect("before the watch point is fine");
        // The pattern split across two receives is still found.
        let mut s2 = session(
            FakeConsole::new("ok\r\n")
                .reply("a", "Kernel pa")
                .reply("b", "nic - not syncing\r\n"),
        );
        s2.expect("ok", SHORT).expect("ok");
        s2.watch(&["Kernel panic".into()]);
        s2.send("a").expect("send");
        assert_eq!(
            s2.expect("nothing", Duration::from_millis(60)),
            Err(WaitError::Timeout)
        );
        s2.send("b").expect("send");
        assert_eq!(
            s2.expect("nothing", SHORT),
            Err(WaitError::Unexpected("Kernel panic".into()))
        );
    }

    #[test]
    fn closed_console_ends_waits_at_once() {
        let mut s = session(FakeConsole::new("bye\r\n").close_at_end());
        let start = Instant::now();
        assert_eq!(
            s.expect("never", Duration::from_secs(30)),
            Err(WaitError::Closed("the fake board ended".into()))
        );
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(s.tail_text(0, 5), "bye");
    }

    #[test]
    fn log_file_gets_everything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("console.log");
        let file = File::create(&path).expect("create");
        let mut s = session(FakeConsole::new("line 1\r\nline 2\r\n")).with_log(file);
        s.expect("line 2", SHORT).expect("line 2");
        drop(s);
        assert_eq!(std::fs::read(&path).expect("read"), b"line 1\r\nline 2\r\n");
    }

    #[test]
    fn last_lines_trims() {
        assert_eq!(last_lines(b"a\r\n\r\nb\r\nc", 2), "b\nc");
        assert_eq!(last_lines(b"~ # \x1b[6necho\x07", 1), "~ # [6necho");
        assert_eq!(last_lines(b"", 3), "");
    }
}
