//! A scripted console for unit tests: output at the start, and replies to
//! what is sent, with nothing running behind it.

use std::collections::VecDeque;
use std::io;
use std::thread;
use std::time::Duration;

use super::{Console, Recv};

/// A console that plays a script.
#[derive(Default)]
pub struct FakeConsole {
    /// Output not yet received.
    pending: VecDeque<Vec<u8>>,
    /// (text that triggers, output it produces); the first entry whose text
    /// has been sent fires, once.
    replies: Vec<(String, Vec<u8>)>,
    /// Everything sent so far.
    pub sent: Vec<u8>,
    /// Input not yet matched against `replies`.
    unmatched: String,
    /// Close instead of idling once the script has run out.
    close_at_end: bool,
}

impl FakeConsole {
    /// A console that prints `output` once connected.
    pub fn new(output: &str) -> Self {
        let mut c = Self::default();
        if !output.is_empty() {
            c.pending.push_back(output.as_bytes().to_vec());
        }
        c
    }

    /// When `input` has been sent, print `output`.
    pub fn reply(mut self, input: &str, output: &str) -> Self {
        self.replies
            .push((input.to_owned(), output.as_bytes().to_vec()));
        self
    }

    /// Report the console closed once all output is out.
    pub fn close_at_end(mut self) -> Self {
        self.close_at_end = true;
        self
    }
}

impl Console for FakeConsole {
    fn recv(&mut self, timeout: Duration) -> Recv {
        if let Some(chunk) = self.pending.pop_front() {
            return Recv::Data(chunk);
        }
        if self.close_at_end {
            return Recv::Closed("the fake board ended".into());
        }
        // Behave like a quiet board: the time passes.
        thread::sleep(timeout.min(Duration::from_millis(20)));
        Recv::Idle
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.sent.extend_from_slice(bytes);
        self.unmatched.push_str(&String::from_utf8_lossy(bytes));
        while let Some(i) = self
            .replies
            .iter()
            .position(|(input, _)| self.unmatched.contains(input.as_str()))
        {
            let (input, output) = self.replies.remove(i);
            if let Some(at) = self.unmatched.find(&input) {
                self.unmatched.drain(..at + input.len());
            }
            self.pending.push_back(output);
        }
        Ok(())
    }
}
