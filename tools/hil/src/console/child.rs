//! A process as the console: QEMU with `-serial stdio`. Its stdout and
//! stderr are the board's output, its stdin the board's input; the process
//! is killed when the console is dropped.

use std::io;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{Console, Recv, StreamConsole};

/// How long to wait for the exit status once the output has ended.
const REAP: Duration = Duration::from_secs(1);
/// How often to look meanwhile.
const POLL: Duration = Duration::from_millis(5);

/// A running process whose stdio is the console.
pub struct ChildConsole {
    child: Child,
    inner: StreamConsole,
}

impl ChildConsole {
    /// Starts `cmd` with piped stdio.
    pub fn spawn(mut cmd: Command) -> io::Result<Self> {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        let streams = (child.stdout.take(), child.stderr.take(), child.stdin.take());
        let (Some(stdout), Some(stderr), Some(stdin)) = streams else {
            // Cannot happen with piped stdio; do not leave the process behind.
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other("the child's stdio is not piped"));
        };
        let inner = match StreamConsole::new(
            vec![("stdout", Box::new(stdout)), ("stderr", Box::new(stderr))],
            Box::new(stdin),
            false,
            None,
        ) {
            Ok(inner) => inner,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        Ok(Self { child, inner })
    }

    /// The exit status if the process has ended.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Console for ChildConsole {
    fn recv(&mut self, timeout: Duration) -> Recv {
        match self.inner.recv(timeout) {
            Recv::Closed(why) => {
                // The pipes close a moment before the process can be reaped.
                let end = Instant::now() + REAP;
                loop {
                    match self.child.try_wait() {
                        Ok(Some(status)) => {
                            return Recv::Closed(format!("the process ended: {status}"));
                        }
                        Ok(None) if Instant::now() < end => thread::sleep(POLL),
                        _ => return Recv::Closed(why),
                    }
                }
            }
            other => other,
        }
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.inner.send(bytes)
    }
}

impl Drop for ChildConsole {
    fn drop(&mut self) {
        // An error means it has exited already; wait() reaps it either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(c: &mut ChildConsole) -> (Vec<u8>, String) {
        let mut got = Vec::new();
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            match c.recv(Duration::from_millis(100)) {
                Recv::Data(d) => got.extend(d),
                Recv::Idle => {}
                Recv::Closed(why) => return (got, why),
            }
        }
        panic!("the process did not end");
    }

    #[test]
    fn stdin_stdout_stderr_and_exit() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "read line; echo \"out:$line\"; echo err >&2; exit 3"]);
        let mut c = ChildConsole::spawn(cmd).expect("sh starts");
        c.send(b"hi\n").expect("stdin open");
        let (got, why) = collect(&mut c);
        let text = String::from_utf8_lossy(&got);
        assert!(text.contains("out:hi") && text.contains("err"), "{text}");
        assert!(why.contains("exit status: 3"), "{why}");
    }

    #[test]
    fn drop_kills() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let c = ChildConsole::spawn(cmd).expect("sleep starts");
        let start = Instant::now();
        drop(c);
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(ChildConsole::spawn(Command::new("/nonexistent/qemu")).is_err());
    }
}
