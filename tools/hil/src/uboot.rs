//! Talking to U-Boot: reach the prompt (stopping autoboot), run commands and
//! check their status, start the image.
//!
//! Every command but the last is sent as `CMD; echo hil-rc=$?` and its
//! status read back from the console (U-Boot's hush shell sets `$?`); the
//! echo of the typed line shows `hil-rc=$?`, never `hil-rc=` and a digit,
//! so the two cannot be confused. The boot command must print
//! `Starting kernel`; U-Boot's prompt coming back instead means it failed.
//!
//! The runner sets these variables for the boot command: `hv_image_addr`,
//! `hv_bundle_addr`, `hv_bundle_size` (from `${filesize}` after loading the
//! bundle) and `hv_dtb_addr`. `fdt_high` and `initrd_high` are set to all
//! ones so that `booti` uses the DT and the bundle where they were put.

use std::time::Duration;

use crate::board::{Board, Delivery, Dtb, Network, UBoot, Via};
use crate::engine::wait_failure;
use crate::error::Failure;
use crate::session::{Session, WaitError, find, last_lines};

/// What U-Boot prints once `booti` hands over to the image.
pub const STARTING: &str = "Starting kernel";

/// The status marker echoed after each command.
const RC_MARKER: &str = "hil-rc=";

/// The names of the delivered files, as U-Boot asks for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    /// The hypervisor image.
    pub image: String,
    /// The guest bundle.
    pub bundle: String,
    /// The DTB, when the board loads one from a file.
    pub dtb: Option<String>,
}

/// One command of the boot script, with its time limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The command line.
    pub text: String,
    /// How long it may take.
    pub timeout: Duration,
}

/// The commands that load everything and prepare `booti` (not `booti` itself).
pub fn script(board: &Board, files: &Files) -> Vec<Command> {
    let u = &board.uboot;
    let short = |text: String| Command {
        text,
        timeout: u.command_timeout,
    };
    let mut cmds = Vec::new();
    if let Via::Tftp(net) = &board.delivery.via {
        cmds.push(short("setenv netretry no".into()));
        match net {
            Network::Dhcp { server_ip } => {
                cmds.push(short("setenv autoload no".into()));
                cmds.push(Command {
                    text: "dhcp".into(),
                    timeout: u.load_timeout,
                });
                if let Some(server) = server_ip {
                    cmds.push(short(format!("setenv serverip {server}")));
                }
            }
            Network::Static {
                ip,
                server_ip,
                netmask,
            } => {
                cmds.push(short(format!("setenv ipaddr {ip}")));
                cmds.push(short(format!("setenv serverip {server_ip}")));
                if let Some(mask) = netmask {
                    cmds.push(short(format!("setenv netmask {mask}")));
                }
            }
        }
    }
    let dtb_addr = match &board.dtb {
        Dtb::UBootInPlace => "${fdtcontroladdr}".to_owned(),
        Dtb::UBootCopy { addr, .. } | Dtb::File { addr, .. } => format!("{addr:#x}"),
    };
    for (var, value) in [
        ("hv_image_addr", format!("{:#x}", board.load.image)),
        ("hv_bundle_addr", format!("{:#x}", board.load.bundle)),
        ("hv_dtb_addr", dtb_addr),
        ("fdt_high", "0xffffffffffffffff".into()),
        ("initrd_high", "0xffffffffffffffff".into()),
    ] {
        cmds.push(short(format!("setenv {var} {value}")));
    }
    cmds.push(short(if u.bootargs.is_empty() {
        "setenv bootargs".into()
    } else {
        format!("setenv bootargs {}", u.bootargs)
    }));
    let load = |addr_var: &str, file: &str| Command {
        text: format!(
            "{} ${{{addr_var}}} {}{file}",
            loader(&board.delivery),
            board.delivery.prefix
        ),
        timeout: u.load_timeout,
    };
    cmds.push(load("hv_image_addr", &files.image));
    cmds.push(load("hv_bundle_addr", &files.bundle));
    cmds.push(short("setenv hv_bundle_size ${filesize}".into()));
    match (&board.dtb, &files.dtb) {
        (Dtb::File { .. }, Some(dtb)) => cmds.push(load("hv_dtb_addr", dtb)),
        (Dtb::UBootCopy { size, .. }, _) => {
            cmds.push(short("fdt addr ${fdtcontroladdr}".into()));
            cmds.push(short(format!(
                "fdt move ${{fdtcontroladdr}} ${{hv_dtb_addr}} {size:#x}"
            )));
        }
        _ => {}
    }
    cmds.extend(u.pre_boot.iter().map(|c| short(c.clone())));
    cmds
}

/// The command that loads a file: `tftpboot` or the disk's load command.
fn loader(delivery: &Delivery) -> &str {
    match &delivery.via {
        Via::Tftp(_) => "tftpboot",
        Via::Disk { load_command } => load_command,
    }
}

/// Waits for the autoboot countdown (and stops it) or the prompt.
pub fn enter_prompt(session: &mut Session, u: &UBoot) -> Result<(), Failure> {
    let no_prompt = |timeout: Duration| Failure::NoPrompt {
        secs: timeout.as_secs_f64().ceil() as u64,
        autoboot: u.autoboot.clone(),
        prompt: u.prompt.clone(),
    };
    let seen = session
        .expect_any(&[&u.autoboot, &u.prompt], u.prompt_timeout)
        .map_err(|e| match e {
            WaitError::Timeout => no_prompt(u.prompt_timeout),
            other => wait_failure(
                other,
                "the U-Boot prompt",
                &format!("{:?}", u.prompt),
                u.prompt_timeout,
            ),
        })?;
    if seen == 0 {
        session.send(&u.interrupt).map_err(|e| Failure::Console {
            what: "write (autoboot interrupt)".into(),
            reason: e.to_string(),
        })?;
        session
            .expect(&u.prompt, u.command_timeout)
            .map_err(|e| match e {
                WaitError::Timeout => no_prompt(u.command_timeout),
                other => wait_failure(
                    other,
                    "the U-Boot prompt",
                    &format!("{:?}", u.prompt),
                    u.command_timeout,
                ),
            })?;
    }
    Ok(())
}

/// Runs one command at the prompt and checks its status.
pub fn run(session: &mut Session, u: &UBoot, cmd: &Command) -> Result<(), Failure> {
    let start = session.cursor();
    session
        .send(&format!("{}; echo {RC_MARKER}$?\n", cmd.text))
        .map_err(|e| Failure::Console {
            what: format!("write `{}`", cmd.text),
            reason: e.to_string(),
        })?;
    let prompt = u.prompt.as_bytes().to_vec();
    let status = session
        .wait(cmd.timeout, |tail| status_then_prompt(tail, &prompt))
        .map_err(|e| match e {
            WaitError::Timeout => Failure::CommandTimeout {
                command: cmd.text.clone(),
                secs: cmd.timeout.as_secs_f64().ceil() as u64,
            },
            other => wait_failure(
                other,
                &format!("`{}`", cmd.text),
                "the U-Boot prompt",
                cmd.timeout,
            ),
        })?;
    if status == 0 {
        return Ok(());
    }
    Err(Failure::CommandFailed {
        command: cmd.text.clone(),
        status,
        output: command_output(&session.transcript()[start..session.cursor()], &u.prompt),
    })
}

/// In `tail`: `hil-rc=N` then the prompt; returns N and the end of the prompt.
fn status_then_prompt(tail: &[u8], prompt: &[u8]) -> Option<(u32, usize)> {
    let mut from = 0;
    while let Some(at) = find(&tail[from..], RC_MARKER.as_bytes()) {
        let digits_at = from + at + RC_MARKER.len();
        let digits = tail[digits_at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits > 0 {
            let text = String::from_utf8_lossy(&tail[digits_at..digits_at + digits]);
            let status = text.parse().unwrap_or(u32::MAX);
            let after = digits_at + digits;
            return find(&tail[after..], prompt).map(|p| (status, after + p + prompt.len()));
        }
        from = digits_at;
    }
    None
}

/// What a command printed: the lines between its echo and the status
/// marker, the last few of them on one line.
fn command_output(bytes: &[u8], prompt: &str) -> String {
    let text = String::from_utf8_lossy(bytes).replace('\r', "");
    let lines: Vec<&str> = text
        .lines()
        .skip(1)
        .filter(|l| !l.contains(RC_MARKER) && !l.trim().is_empty() && l.trim() != prompt.trim())
        .collect();
    let shown = lines[lines.len().saturating_sub(4)..].join(" | ");
    if shown.is_empty() {
        "(no output)".into()
    } else {
        shown
    }
}

/// Sends the boot command and waits for U-Boot to hand over.
pub fn boot(session: &mut Session, u: &UBoot) -> Result<(), Failure> {
    let start = session.cursor();
    session
        .send(&format!("{}\n", u.booti))
        .map_err(|e| Failure::Console {
            what: format!("write `{}`", u.booti),
            reason: e.to_string(),
        })?;
    let seen = session
        .expect_any(&[STARTING, &u.prompt], u.boot_timeout)
        .map_err(|e| wait_failure(e, "booti", &format!("{STARTING:?}"), u.boot_timeout))?;
    if seen == 0 {
        Ok(())
    } else {
        Err(Failure::BootFailed {
            command: u.booti.clone(),
            output: last_lines(&session.transcript()[start..], 6).replace('\n', " | "),
        })
    }
}

#[cfg(test)]
mod tests;
