//! A running process (QEMU, or anything else for the harness's own tests)
//! whose stdout and stderr are collected into one transcript by reader
//! threads, with expectation methods that wait on it.
//!
//! The session keeps a cursor into the transcript: [`Session::expect`] and
//! its siblings search from the cursor and move it past what they matched,
//! so consecutive expectations check order. [`Session::cursor`] and
//! [`Session::set_cursor`] let a test check several things in any order.
//!
//! With several guests on the hypervisor's console, [`Session::focus`]
//! gives one of them the focus (typed input goes to it) and
//! [`Session::expect_from`] looks for text in one guest's lines (tagged
//! `[name] `), through the same functions as the scenario engine
//! ([`hil::guests`]).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{HarnessError, Report};

/// How long to wait for the output pipes to close after the process ended,
/// so that the transcript in a report is complete.
const DRAIN: Duration = Duration::from_secs(2);

/// How often process state is polled while waiting for an exit.
const POLL: Duration = Duration::from_millis(10);

/// The transcript shared with the reader threads.
#[derive(Default)]
struct Console {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// Everything read so far, stdout and stderr interleaved as they arrived.
    bytes: Vec<u8>,
    /// Output streams not yet at end of file.
    open: usize,
}

impl Console {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A reader thread cannot panic while holding the lock, but a test
        // thread could; the bytes stay valid either way.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Environment variable that, when set (and not `0`), echoes every session's
/// output to the test's stderr as it arrives (libtest shows it with `--nocapture`).
pub const ECHO_ENV: &str = "PARTITA_ECHO";

/// Copies one output stream into the console until end of file, echoing it
/// to stderr when `echo` is set.
fn pump(mut stream: impl Read, console: &Console, echo: bool) {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if echo {
                    // eprint! (not io::stderr) so that libtest's capture applies.
                    eprint!("{}", String::from_utf8_lossy(&buf[..n]));
                }
                console.lock().bytes.extend_from_slice(&buf[..n]);
                console.changed.notify_all();
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let mut state = console.lock();
    state.open = state.open.saturating_sub(1);
    drop(state);
    console.changed.notify_all();
}

/// The outcome of waiting on the transcript.
enum Wait<T> {
    /// The condition held.
    Found(T),
    /// All output streams closed first: the process is gone.
    Closed,
    /// Time ran out; `true` when the session's overall deadline cut the wait short.
    TimedOut(bool),
}

/// A running process and its console transcript. The process is killed when
/// the session is dropped, when a wait times out, and when the session's
/// overall deadline passes during a wait.
pub struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    console: Arc<Console>,
    cursor: usize,
    command: String,
    deadline: Instant,
    overall: Duration,
    status: Option<ExitStatus>,
    /// Guest numbers learnt from the guest list (Ctrl-] `l`), by name.
    guests: HashMap<String, u8>,
}

impl Session {
    /// Starts `cmd` with piped stdin, stdout and stderr. No wait on this
    /// session lasts beyond `overall` from now.
    pub fn spawn(mut cmd: Command, overall: Duration) -> Result<Self, HarnessError> {
        let command = display(&cmd);
        eprintln!("[hv-tests] starting: {command}");
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| HarnessError::Spawn {
            command: command.clone(),
            source,
        })?;
        let console = Arc::new(Console::default());
        let echo = std::env::var_os(ECHO_ENV).is_some_and(|v| !v.is_empty() && v != "0");
        let streams: [Option<Box<dyn Read + Send>>; 2] = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ];
        for (name, stream) in ["stdout", "stderr"].into_iter().zip(streams) {
            let Some(stream) = stream else { continue };
            console.lock().open += 1;
            let shared = Arc::clone(&console);
            let started = thread::Builder::new()
                .name(format!("console-{name}"))
                .spawn(move || pump(stream, &shared, echo));
            if let Err(source) = started {
                // Best effort: the process is useless without its reader.
                let _ = child.kill();
                let _ = child.wait();
                return Err(HarnessError::Spawn { command, source });
            }
        }
        Ok(Self {
            stdin: child.stdin.take(),
            child,
            console,
            cursor: 0,
            command,
            // An absurd `overall` (Duration::MAX) means "a year".
            deadline: Instant::now()
                .checked_add(overall)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 24 * 3600)),
            overall,
            status: None,
            guests: HashMap::new(),
        })
    }

    /// The command line, shell-quoted.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// The whole transcript so far (invalid UTF-8 replaced).
    pub fn transcript(&self) -> String {
        String::from_utf8_lossy(&self.console.lock().bytes).into_owned()
    }

    /// The command line and the whole transcript, for an error message.
    pub fn report(&self) -> Report {
        Report {
            command: self.command.clone(),
            transcript: self.transcript(),
        }
    }

    /// An error for a check the test made itself, with the report attached.
    pub fn fail(&self, problem: impl Into<String>) -> HarnessError {
        HarnessError::Check {
            problem: problem.into(),
            report: self.report(),
        }
    }

    /// The cursor: a byte offset into the transcript where searches start.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Moves the cursor (for example back to an earlier [`Session::cursor`]),
    /// clamped to the end of the transcript.
    pub fn set_cursor(&mut self, cursor: usize) {
        self.cursor = cursor.min(self.console.lock().bytes.len());
    }

    /// Waits until `needle` appears after the cursor; moves the cursor past it.
    pub fn expect(&mut self, needle: &str, timeout: Duration) -> Result<(), HarnessError> {
        self.expect_then(needle, timeout, None)
    }

    /// As [`Session::expect`], but when the wait times out, first types
    /// `diagnose` (console keys or a command whose output helps explain the
    /// failure) and lets `settle` pass, so that its answer is in the
    /// failure's transcript.
    pub fn expect_or_diagnose(
        &mut self,
        needle: &str,
        timeout: Duration,
        diagnose: &str,
        settle: Duration,
    ) -> Result<(), HarnessError> {
        self.expect_then(needle, timeout, Some((diagnose, settle)))
    }

    /// [`Session::expect`], typing `diagnose.0` and waiting `diagnose.1`
    /// first when the wait times out (not when the session's overall
    /// timeout cut it).
    fn expect_then(
        &mut self,
        needle: &str,
        timeout: Duration,
        diagnose: Option<(&str, Duration)>,
    ) -> Result<(), HarnessError> {
        let mut what = format!("{needle:?} after byte {} of the console", self.cursor);
        let started = Instant::now();
        match self.wait_for(timeout, |tail, _| {
            find(tail, needle.as_bytes()).map(|at| at + needle.len())
        }) {
            Wait::Found(end) => {
                self.cursor += end;
                Ok(())
            }
            Wait::Closed => Err(self.ended(what)),
            Wait::TimedOut(cut) => {
                if let (false, Some((keys, settle))) = (cut, diagnose) {
                    what = format!("{what} (then typed {keys:?} to see why)");
                    if self.send(keys).is_ok() {
                        let _ = self.wait_for(settle, |_, _| None::<usize>);
                    }
                }
                Err(self.timed_out(what, started, cut))
            }
        }
    }

    /// Waits until every one of `needles` appears after the cursor, in any
    /// order; moves the cursor past the last of them.
    pub fn expect_all(&mut self, needles: &[&str], timeout: Duration) -> Result<(), HarnessError> {
        let ends = |tail: &[u8]| -> Vec<Option<usize>> {
            needles
                .iter()
                .map(|n| find(tail, n.as_bytes()).map(|at| at + n.len()))
                .collect()
        };
        let started = Instant::now();
        let result = self.wait_for(timeout, |tail, _| {
            ends(tail).into_iter().collect::<Option<Vec<_>>>()
        });
        if let Wait::Found(found) = result {
            self.cursor += found.into_iter().max().unwrap_or(0);
            return Ok(());
        }
        let missing: Vec<&str> = {
            let state = self.console.lock();
            let tail = state.bytes.get(self.cursor..).unwrap_or_default();
            needles
                .iter()
                .zip(ends(tail))
                .filter(|(_, end)| end.is_none())
                .map(|(n, _)| *n)
                .collect()
        };
        let what = format!(
            "all of {needles:?} after byte {} of the console (missing: {missing:?})",
            self.cursor
        );
        match result {
            Wait::TimedOut(cut) => Err(self.timed_out(what, started, cut)),
            _ => Err(self.ended(what)),
        }
    }

    /// Waits for a complete line after the cursor that contains every one of
    /// `parts`; returns it (without the line ending) and moves the cursor to
    /// the next line.
    pub fn expect_line(
        &mut self,
        parts: &[&str],
        timeout: Duration,
    ) -> Result<String, HarnessError> {
        let what = format!(
            "a line containing all of {parts:?} after byte {} of the console",
            self.cursor
        );
        let started = Instant::now();
        match self.wait_for(timeout, |tail, closed| find_line(tail, parts, closed)) {
            Wait::Found((line, end)) => {
                self.cursor += end;
                Ok(line)
            }
            Wait::Closed => Err(self.ended(what)),
            Wait::TimedOut(cut) => Err(self.timed_out(what, started, cut)),
        }
    }

    /// Waits for `needle` in a line of guest `guest` (one starting
    /// `[guest] `, the needle after the tag) after the cursor; moves the
    /// cursor past it.
    pub fn expect_from(
        &mut self,
        guest: &str,
        needle: &str,
        timeout: Duration,
    ) -> Result<(), HarnessError> {
        let what = format!(
            "{needle:?} in a line tagged [{guest}] after byte {} of the console",
            self.cursor
        );
        let head = {
            let state = self.console.lock();
            hil::guests::line_head(&state.bytes, self.cursor).to_vec()
        };
        let started = Instant::now();
        match self.wait_for(timeout, |tail, _| {
            hil::guests::find_tagged(&head, tail, guest, needle)
        }) {
            Wait::Found(end) => {
                self.cursor += end;
                Ok(())
            }
            Wait::Closed => Err(self.ended(what)),
            Wait::TimedOut(cut) => Err(self.timed_out(what, started, cut)),
        }
    }

    /// Types `line` (a newline is added) and waits for `answer` in a line
    /// of guest `guest`, typing it again every `every` until the answer
    /// comes or `timeout` has passed; moves the cursor past the answer.
    /// For a guest that may still be booting: what reaches it before its
    /// `/init` has opened the console is lost (Linux's PL011 driver drains
    /// its receive FIFO when the port is opened).
    pub fn ask_from(
        &mut self,
        guest: &str,
        line: &str,
        answer: &str,
        every: Duration,
        timeout: Duration,
    ) -> Result<(), HarnessError> {
        let what = format!(
            "{answer:?} in a line tagged [{guest}] after byte {} of the console (asked every {:.0} s)",
            self.cursor,
            every.as_secs_f64()
        );
        let head = {
            let state = self.console.lock();
            hil::guests::line_head(&state.bytes, self.cursor).to_vec()
        };
        let started = Instant::now();
        loop {
            self.send(&format!("{line}\n"))?;
            let left = timeout.saturating_sub(started.elapsed());
            match self.wait_for(every.min(left), |tail, _| {
                hil::guests::find_tagged(&head, tail, guest, answer)
            }) {
                Wait::Found(end) => {
                    self.cursor += end;
                    return Ok(());
                }
                Wait::Closed => return Err(self.ended(what)),
                Wait::TimedOut(cut) if cut || started.elapsed() >= timeout => {
                    return Err(self.timed_out(what, started, cut));
                }
                Wait::TimedOut(_) => {}
            }
        }
    }

    /// Gives guest `guest` the focus of the hypervisor's console: its
    /// number from the guest list (Ctrl-] `l`, the first time a guest is
    /// named), then Ctrl-] and the number; waits (each at most `timeout`)
    /// for the list and for the hypervisor's confirmation.
    pub fn focus(&mut self, guest: &str, timeout: Duration) -> Result<(), HarnessError> {
        let number = match self.guests.get(guest) {
            Some(&n) => n,
            None => {
                self.send(hil::guests::LIST_KEYS)?;
                let start = self.cursor;
                let what = format!(
                    "guest '{guest}' in the guest list (Ctrl-] l) after byte {start} of the console"
                );
                let started = Instant::now();
                let n =
                    match self.wait_for(timeout, |tail, _| hil::guests::find_listed(tail, guest)) {
                        Wait::Found((n, end)) => {
                            self.cursor += end;
                            n
                        }
                        Wait::Closed => return Err(self.ended(what)),
                        Wait::TimedOut(cut) => return Err(self.timed_out(what, started, cut)),
                    };
                let listed = hil::guests::listed(&self.console.lock().bytes[start..]);
                for (n, name) in listed {
                    self.guests.entry(name).or_insert(n);
                }
                self.guests.insert(guest.to_owned(), n);
                n
            }
        };
        if number > 9 {
            return Err(self.fail(format!(
                "guest '{guest}' is guest {number}: Ctrl-] and a digit reach guests 0 to 9 only"
            )));
        }
        self.send(&hil::guests::focus_keys(number))?;
        self.expect(&hil::guests::focus_reply(number, guest), timeout)
    }

    /// Watches the console for `window` (or until the process ends) and fails
    /// if `needle` appears after the cursor. The cursor does not move.
    pub fn expect_absent(&mut self, needle: &str, window: Duration) -> Result<(), HarnessError> {
        let started = Instant::now();
        match self.wait_for(window, |tail, _| find(tail, needle.as_bytes())) {
            Wait::Found(_) => Err(HarnessError::Unexpected {
                found: needle.to_owned(),
                report: self.report(),
            }),
            Wait::Closed | Wait::TimedOut(false) => Ok(()),
            Wait::TimedOut(true) => Err(self.timed_out(
                format!("{:.1} s without {needle:?}", window.as_secs_f64()),
                started,
                true,
            )),
        }
    }

    /// Fails if `needle` appears anywhere in the transcript so far, whatever
    /// the cursor. Does not wait.
    pub fn expect_not_seen(&self, needle: &str) -> Result<(), HarnessError> {
        if find(&self.console.lock().bytes, needle.as_bytes()).is_some() {
            Err(HarnessError::Unexpected {
                found: needle.to_owned(),
                report: self.report(),
            })
        } else {
            Ok(())
        }
    }

    /// Fails if the process ends within `duration`.
    pub fn expect_running(&mut self, duration: Duration) -> Result<(), HarnessError> {
        let what = format!(
            "the process to keep running for {:.1} s",
            duration.as_secs_f64()
        );
        let started = Instant::now();
        let (end, cut) = self.limit(duration);
        loop {
            if let Some(status) = self.poll_exit()? {
                self.drain();
                return Err(HarnessError::Exited {
                    expected: what,
                    status: status.to_string(),
                    report: self.report(),
                });
            }
            if Instant::now() >= end {
                return if cut {
                    Err(self.timed_out(what, started, true))
                } else {
                    Ok(())
                };
            }
            thread::sleep(POLL);
        }
    }

    /// Writes `text` to the process's stdin (the serial console's input).
    pub fn send(&mut self, text: &str) -> Result<(), HarnessError> {
        let result = match self.stdin.as_mut() {
            Some(stdin) => stdin
                .write_all(text.as_bytes())
                .and_then(|()| stdin.flush()),
            None => Err(io::Error::new(io::ErrorKind::BrokenPipe, "stdin is closed")),
        };
        result.map_err(|source| HarnessError::Send {
            text: text.to_owned(),
            source,
            report: self.report(),
        })
    }

    /// Waits for the process to exit and returns its status; kills it and
    /// fails if it does not exit within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, HarnessError> {
        let started = Instant::now();
        let (end, cut) = self.limit(timeout);
        loop {
            if let Some(status) = self.poll_exit()? {
                self.drain();
                return Ok(status);
            }
            if Instant::now() >= end {
                return Err(self.timed_out("the process to exit".into(), started, cut));
            }
            thread::sleep(POLL);
        }
    }

    /// Waits for the process to exit with status `code` (see [`Session::wait_exit`]).
    pub fn expect_exit_code(&mut self, code: i32, timeout: Duration) -> Result<(), HarnessError> {
        let status = self.wait_exit(timeout)?;
        if status.code() == Some(code) {
            Ok(())
        } else {
            Err(self.fail(format!(
                "expected the process to exit with status {code}, but it ended with {status}"
            )))
        }
    }

    /// Kills the process (if still running) and waits for it.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            // Errors mean it already exited; wait() then reaps it.
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }

    /// The exit status if the process has ended, without blocking.
    fn poll_exit(&mut self) -> Result<Option<ExitStatus>, HarnessError> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .map_err(|e| self.fail(format!("cannot query the process state: {e}")))?;
        }
        Ok(self.status)
    }

    /// When a wait of `timeout` must end, and whether the overall deadline cut it short.
    fn limit(&self, timeout: Duration) -> (Instant, bool) {
        match Instant::now().checked_add(timeout) {
            Some(end) if end <= self.deadline => (end, false),
            _ => (self.deadline, true),
        }
    }

    /// Waits until `check` (given the transcript after the cursor and whether
    /// all output has ended) returns something, output ends, or time runs out.
    fn wait_for<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&[u8], bool) -> Option<T>,
    ) -> Wait<T> {
        let (end, cut) = self.limit(timeout);
        let mut state = self.console.lock();
        loop {
            let closed = state.open == 0;
            let tail = state.bytes.get(self.cursor..).unwrap_or_default();
            if let Some(found) = check(tail, closed) {
                return Wait::Found(found);
            }
            if closed {
                return Wait::Closed;
            }
            let now = Instant::now();
            if now >= end {
                return Wait::TimedOut(cut);
            }
            state = match self.console.changed.wait_timeout(state, end - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Waits (briefly) for the reader threads to see end of file.
    fn drain(&self) {
        let end = Instant::now() + DRAIN;
        let mut state = self.console.lock();
        while state.open > 0 {
            let now = Instant::now();
            if now >= end {
                break;
            }
            state = match self.console.changed.wait_timeout(state, end - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// The error for a wait that ran out of time; kills the process first.
    fn timed_out(&mut self, expected: String, started: Instant, cut: bool) -> HarnessError {
        let waited = started.elapsed();
        let expected = if cut {
            format!(
                "{expected} (the session's overall timeout of {:.0} s ran out)",
                self.overall.as_secs_f64()
            )
        } else {
            expected
        };
        self.kill();
        self.drain();
        HarnessError::Timeout {
            expected,
            waited,
            report: self.report(),
        }
    }

    /// The error for output that ended before an expectation was met.
    fn ended(&mut self, expected: String) -> HarnessError {
        let end = Instant::now() + DRAIN;
        let status = loop {
            match self.poll_exit() {
                Ok(Some(status)) => break status.to_string(),
                Ok(None) if Instant::now() < end => thread::sleep(POLL),
                Ok(None) => break "output closed, process still running".to_owned(),
                Err(e) => break e.to_string(),
            }
        };
        HarnessError::Exited {
            expected,
            status,
            report: self.report(),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The first complete line of `tail` containing all `parts`, and the offset
/// just past it. An unterminated last line counts once output has ended.
fn find_line(tail: &[u8], parts: &[&str], closed: bool) -> Option<(String, usize)> {
    let mut start = 0;
    while start < tail.len() {
        let (line, next) = match tail[start..].iter().position(|&b| b == b'\n') {
            Some(len) => (&tail[start..start + len], start + len + 1),
            None if closed => (&tail[start..], tail.len()),
            None => return None,
        };
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r');
        if parts.iter().all(|p| line.contains(p)) {
            return Some((line.to_owned(), next));
        }
        start = next;
    }
    None
}

/// The command line as it could be pasted into a shell.
pub(crate) fn display(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(shell_quote)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Quotes one word for a POSIX shell when needed.
fn shell_quote(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@%".contains(c));
    if plain {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: Duration = Duration::from_secs(5);

    fn sh(script: &str) -> Session {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        Session::spawn(cmd, Duration::from_secs(30)).expect("sh starts")
    }

    #[test]
    fn expect_finds_output_and_drop_kills() {
        let mut s = sh("echo hello; echo world; exec sleep 30");
        s.expect("hello", SHORT).expect("hello is printed");
        s.expect("world", SHORT).expect("then world");
        s.expect_running(Duration::from_millis(200))
            .expect("sleep keeps it running");
        let start = Instant::now();
        drop(s);
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "drop kills promptly"
        );
    }

    #[test]
    fn a_timeout_types_the_diagnosis_and_keeps_its_answer() {
        let mut cmd = Command::new("cat");
        cmd.stdin(std::process::Stdio::piped());
        let mut s = Session::spawn(cmd, Duration::from_secs(30)).expect("cat starts");
        let err = s
            .expect_or_diagnose(
                "never printed",
                Duration::from_millis(300),
                "counters: 7 faults\n",
                Duration::from_millis(500),
            )
            .expect_err("must time out");
        let text = err.to_string();
        assert!(matches!(err, HarnessError::Timeout { .. }), "{text}");
        assert!(text.contains("to see why"), "{text}");
        assert!(
            text.contains("counters: 7 faults"),
            "the answer is in the transcript: {text}"
        );
        let mut s = sh("echo done; exec sleep 30");
        s.expect_or_diagnose("done", SHORT, "x", SHORT)
            .expect("found: nothing typed");
    }

    #[test]
    fn cursor_enforces_order_and_can_rewind() {
        let mut s = sh("echo one; echo two; exec sleep 30");
        s.expect("two", SHORT).expect("two");
        let err = s
            .expect("one", Duration::from_millis(200))
            .expect_err("one is before the cursor");
        assert!(matches!(err, HarnessError::Timeout { .. }), "{err}");
        let mut s = sh("echo one; echo two; exec sleep 30");
        let start = s.cursor();
        s.expect("two", SHORT).expect("two");
        s.set_cursor(start);
        s.expect("one", SHORT).expect("one, after rewinding");
    }

    #[test]
    fn timeout_reports_expectation_and_transcript() {
        let mut s = sh("echo 'partita booting'; exec sleep 30");
        let start = Instant::now();
        let err = s
            .expect("never printed", Duration::from_millis(300))
            .expect_err("must time out");
        assert!(start.elapsed() < Duration::from_secs(3));
        let text = err.to_string();
        assert!(matches!(err, HarnessError::Timeout { .. }), "{text}");
        assert!(text.contains("\"never printed\""), "{text}");
        assert!(text.contains("partita booting"), "{text}");
        assert!(text.contains("command: sh -c"), "{text}");
        // The Debug form (what libtest prints) is just as readable.
        assert_eq!(format!("{err:?}"), text);
        // The process was killed on timeout.
        let status = s.wait_exit(SHORT).expect("already dead");
        assert!(!status.success());
    }

    #[test]
    fn early_exit_is_reported_without_waiting() {
        let mut s = sh("echo bye; exit 3");
        let start = Instant::now();
        let err = s
            .expect("never printed", Duration::from_secs(20))
            .expect_err("the process ended");
        assert!(start.elapsed() < Duration::from_secs(5));
        let text = err.to_string();
        assert!(matches!(err, HarnessError::Exited { .. }), "{text}");
        assert!(text.contains("exit status: 3"), "{text}");
        assert!(text.contains("bye"), "{text}");
    }

    #[test]
    fn exit_status_and_stderr() {
        let mut s = sh("echo to-stderr >&2; exit 0");
        s.expect("to-stderr", SHORT).expect("stderr is captured");
        s.expect_exit_code(0, SHORT).expect("exit 0");
        let mut s = sh("exit 4");
        let err = s.expect_exit_code(0, SHORT).expect_err("exit 4 is not 0");
        assert!(err.to_string().contains("exit status: 4"), "{err}");
    }

    #[test]
    fn wait_exit_times_out_and_kills() {
        let mut s = sh("exec sleep 30");
        let err = s
            .wait_exit(Duration::from_millis(200))
            .expect_err("sleep does not exit");
        assert!(matches!(err, HarnessError::Timeout { .. }), "{err}");
        assert!(s.wait_exit(SHORT).is_ok(), "killed on timeout");
    }

    #[test]
    fn expect_running_fails_when_process_exits() {
        let mut s = sh("exit 0");
        let err = s
            .expect_running(Duration::from_secs(5))
            .expect_err("sh exits at once");
        assert!(matches!(err, HarnessError::Exited { .. }), "{err}");
    }

    #[test]
    fn send_reaches_stdin() {
        let mut cmd = Command::new("cat");
        cmd.arg("-u");
        let mut s = Session::spawn(cmd, Duration::from_secs(30)).expect("cat starts");
        s.send("ping\n").expect("stdin is open");
        s.expect("ping", SHORT).expect("cat echoes");
    }

    #[test]
    fn unordered_and_line_expectations() {
        let mut s = sh(
            "printf 'cpu 2 online\\r\\ncpu 0 online\\r\\nsmmuv3 at 0x9050000: stages=s1+s2\\r\\ngic: GICv3\\r\\n'; exec sleep 30",
        );
        s.expect_all(&["cpu 0 online", "cpu 2 online"], SHORT)
            .expect("both, out of order");
        let line = s
            .expect_line(&["smmuv3", "stages="], SHORT)
            .expect("the smmu line");
        assert_eq!(line, "smmuv3 at 0x9050000: stages=s1+s2");
        s.expect_line(&["gic: GICv3"], SHORT).expect("the gic line");
        let err = s
            .expect_all(
                &["cpu 0 online", "cpu 1 online"],
                Duration::from_millis(200),
            )
            .expect_err("cpu 1 is missing");
        assert!(
            err.to_string()
                .contains("missing: [\"cpu 0 online\", \"cpu 1 online\"]"),
            "{err}"
        );
    }

    #[test]
    fn partial_lines_do_not_match_until_complete() {
        assert_eq!(find_line(b"smmuv3 stages=s", &["smmuv3"], false), None);
        assert_eq!(
            find_line(b"smmuv3 stages=s", &["smmuv3"], true),
            Some(("smmuv3 stages=s".into(), 15))
        );
        assert_eq!(
            find_line(b"a\nb smmuv3\r\nc", &["smmuv3"], false),
            Some(("b smmuv3".into(), 12))
        );
    }

    #[test]
    fn absence_checks() {
        let mut s = sh("echo 'cpu 0 online'; sleep 0.3; echo 'cpu 1 online'; exec sleep 30");
        s.expect("cpu 0 online", SHORT).expect("cpu 0");
        s.expect_not_seen("panic").expect("no panic");
        let err = s
            .expect_absent("cpu 1 online", SHORT)
            .expect_err("cpu 1 shows up within the window");
        assert!(matches!(err, HarnessError::Unexpected { .. }), "{err}");
        assert!(s.expect_not_seen("cpu 0 online").is_err());
        s.expect_absent("panic", Duration::from_millis(100))
            .expect("nothing else");
    }

    #[test]
    fn guests_get_the_focus_and_are_told_apart() {
        // A fake hypervisor console: the list on Ctrl-] l, the focus reply
        // on Ctrl-] 1, tagged lines.
        let mut s = sh(r#"printf '[alpha] ~ # \r\n[beta] ready\r\n'
while k=$(dd bs=1 count=2 2>/dev/null) && [ -n "$k" ]; do
  case "$k" in
    *l) printf "partita console: guest 0 'alpha': running\r\npartita console: guest 1 'beta': running\r\n" ;;
    *1) printf "partita console: focus on guest 1 'beta'\r\n[alpha] beta-not-here\r\n[beta] hi from beta\r\n" ;;
    *0) printf "partita console: focus on guest 0 'alpha'\r\n" ;;
  esac
done"#);
        s.expect_from("beta", "ready", SHORT).expect("beta's line");
        s.focus("beta", SHORT).expect("beta gets the focus");
        s.expect_from("beta", "beta", SHORT)
            .expect("beta's own line");
        s.expect_not_seen("partita console: focus on guest 0")
            .expect("not yet");
        // alpha's number was learnt from the same list: no second list.
        s.focus("alpha", SHORT).expect("alpha gets the focus");
        assert_eq!(
            s.transcript().matches("partita console: guest 0").count(),
            1
        );
        // A wait that fails kills the process: one failure, the last.
        let err = s
            .expect_from("alpha", "hi from beta", Duration::from_millis(300))
            .expect_err("that line is beta's");
        assert!(
            err.to_string().contains("in a line tagged [alpha]"),
            "{err}"
        );
    }

    #[test]
    fn overall_deadline_bounds_every_wait() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let mut s = Session::spawn(cmd, Duration::from_millis(300)).expect("sleep starts");
        let start = Instant::now();
        let err = s
            .expect("anything", Duration::from_secs(30))
            .expect_err("the overall deadline ends the wait");
        assert!(start.elapsed() < Duration::from_secs(3));
        assert!(err.to_string().contains("overall timeout"), "{err}");
    }

    #[test]
    fn spawn_failure_names_the_command() {
        let err = Session::spawn(Command::new("/nonexistent/qemu"), SHORT)
            .err()
            .expect("cannot start");
        assert!(err.to_string().contains("/nonexistent/qemu"), "{err}");
    }
}
