//! Power control: shell hooks that power-cycle or switch off a real board,
//! and the board process of an emulator (started for the session, stopped
//! at its end). Hooks and board processes run in a process group of their
//! own, so stopping them also stops whatever they started, and get SIGKILL
//! if the runner dies (Ctrl-C: the terminal's SIGINT does not reach another
//! process group), so an emulator is never left behind; their output goes
//! to `power.log` in the run directory.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;

use rustix::process::{Pid, Signal, kill_process_group, set_parent_process_death_signal};

use crate::error::Failure;

/// How often a running hook is polled.
const POLL: Duration = Duration::from_millis(20);

/// How long a board process gets to exit after SIGTERM.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// `sh -c CMD` in its own process group, output appended to `log`.
fn shell(cmd: &str, env: &[(String, String)], log: &Path) -> Result<Command, Failure> {
    let open = || -> std::io::Result<(File, File)> {
        let out = OpenOptions::new().create(true).append(true).open(log)?;
        let err = out.try_clone()?;
        Ok((out, err))
    };
    let (out, err) =
        open().map_err(|e| Failure::Power(format!("cannot open {}: {e}", log.display())))?;
    let mut command = Command::new("sh");
    command
        .args(["-c", cmd])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    // SAFETY: the hook runs in the forked child before exec and only makes
    // one prctl system call, which is async-signal-safe and touches no
    // memory shared with the parent.
    unsafe {
        command.pre_exec(|| {
            set_parent_process_death_signal(Some(Signal::KILL)).map_err(std::io::Error::from)
        });
    }
    Ok(command)
}

/// Kills the process group led by `child` (errors mean it is gone already).
fn kill_group(child: &Child, signal: Signal) {
    let _ = kill_process_group(Pid::from_child(child), signal);
}

/// Runs a hook (`what`: "cycle", "off") to completion within `timeout`.
pub fn run_hook(
    what: &str,
    cmd: &str,
    env: &[(String, String)],
    timeout: Duration,
    log: &Path,
) -> Result<(), Failure> {
    let mut child = shell(cmd, env, log)?
        .spawn()
        .map_err(|e| Failure::Power(format!("cannot start the {what} hook `{cmd}`: {e}")))?;
    let end = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(Failure::Power(format!(
                    "the {what} hook `{cmd}` failed ({status}); its output is in {}",
                    log.display()
                )));
            }
            Ok(None) if Instant::now() < end => thread::sleep(POLL),
            Ok(None) => {
                kill_group(&child, Signal::KILL);
                let _ = child.wait();
                return Err(Failure::Power(format!(
                    "the {what} hook `{cmd}` did not finish within {} s (killed)",
                    timeout.as_secs_f64()
                )));
            }
            Err(e) => return Err(Failure::Power(format!("the {what} hook `{cmd}`: {e}"))),
        }
    }
}

/// An emulator running as the board.
pub struct BoardProcess {
    child: Child,
    ended: Option<String>,
}

impl BoardProcess {
    /// Starts `cmd` in the background.
    pub fn spawn(cmd: &str, env: &[(String, String)], log: &Path) -> Result<Self, Failure> {
        let child = shell(cmd, env, log)?
            .spawn()
            .map_err(|e| Failure::Power(format!("cannot start the board process `{cmd}`: {e}")))?;
        Ok(Self { child, ended: None })
    }

    /// How it ended, if it has.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `grace` for it to exit by itself, then stops it; says how
    /// it ended.
    pub fn finish(&mut self, grace: Duration) -> String {
        if let Some(ended) = &self.ended {
            return ended.clone();
        }
        let end = Instant::now() + grace;
        let ended = loop {
            if let Some(status) = self.exited() {
                break format!("exited by itself: {status}");
            }
            if Instant::now() >= end {
                kill_group(&self.child, Signal::TERM);
                break self.reap_after_term();
            }
            thread::sleep(POLL);
        };
        self.ended = Some(ended.clone());
        ended
    }

    fn reap_after_term(&mut self) -> String {
        let end = Instant::now() + TERM_GRACE;
        while Instant::now() < end {
            if let Some(status) = self.exited() {
                return format!("stopped by the runner (SIGTERM): {status}");
            }
            thread::sleep(POLL);
        }
        kill_group(&self.child, Signal::KILL);
        match self.child.wait() {
            Ok(status) => format!("stopped by the runner (SIGKILL): {status}"),
            Err(e) => format!("stopped by the runner (SIGKILL): {e}"),
        }
    }
}

impl Drop for BoardProcess {
    fn drop(&mut self) {
        self.finish(Duration::ZERO);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        vec![("HIL_BOARD".into(), "fake".into())]
    }

    #[test]
    fn hooks_succeed_fail_and_time_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("power.log");
        run_hook(
            "cycle",
            "echo cycling $HIL_BOARD",
            &env(),
            Duration::from_secs(5),
            &log,
        )
        .expect("exit 0");
        assert_eq!(
            std::fs::read_to_string(&log).expect("log"),
            "cycling fake\n"
        );
        let err =
            run_hook("cycle", "exit 7", &env(), Duration::from_secs(5), &log).expect_err("exit 7");
        assert!(err.to_string().contains("failed (exit status: 7)"), "{err}");
        let start = Instant::now();
        let err = run_hook("off", "sleep 30", &env(), Duration::from_millis(200), &log)
            .expect_err("too slow");
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(
            err.to_string().contains("did not finish within 0.2 s"),
            "{err}"
        );
    }

    #[test]
    fn board_process_exits_or_is_stopped_with_its_children() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("power.log");
        let mut p = BoardProcess::spawn("exit 0", &env(), &log).expect("starts");
        assert_eq!(
            p.finish(Duration::from_secs(5)),
            "exited by itself: exit status: 0"
        );
        // A shell that started a child: both go.
        let mut p = BoardProcess::spawn("sleep 30 & sleep 30", &env(), &log).expect("starts");
        let start = Instant::now();
        let how = p.finish(Duration::from_millis(100));
        assert!(how.starts_with("stopped by the runner (SIGTERM)"), "{how}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
