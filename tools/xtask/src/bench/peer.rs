//! `cargo xtask bench --peer`: what a user would pick instead of partita,
//! measured with the same bench guest inside the same emulator. The outer
//! QEMU (the machine partita runs on: EL2, SMMUv3, GICv3, plus an `edu`)
//! boots Debian's arm64 kernel as an L1 host with KVM; in it Debian's
//! arm64 QEMU runs the bench guest (L2) under KVM with QEMU's
//! virtio-iommu on each transport (`virtio-iommu-device` on virtio-mmio,
//! `virtio-iommu-pci`), its endpoint being either QEMU's own emulated `edu`
//! (each request costs a VM exit and a return to the VMM process) or the
//! outer `edu` bound to `vfio-pci` in L1 and assigned to L2 (each MAP and
//! UNMAP is also a `VFIO_IOMMU_MAP_DMA`/`UNMAP_DMA` ioctl into L1's SMMUv3
//! driver, which programs the outer SMMU model).
//!
//! Everything runs under `-icount shift=0 -seed 1`: the L1 kernel's and
//! the VMM's instructions are guest time as partita's EL2 instructions are.
//! See docs/performance.md ("The peer").

mod console;
pub mod l1;
pub mod report;

use std::fs;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use console::PeerConsole;

use crate::error::XtaskError;
use crate::process;
use crate::qemu;
use crate::tasks;
use crate::workspace::Workspace;

/// Wall-clock limit of the whole L1 boot and its L2 runs.
pub const L1_TIMEOUT: Duration = Duration::from_secs(45 * 60);
/// The outer machine: partita's (EL2, GICv3, SMMUv3).
pub const OUTER_MACHINE: &str = qemu::MACHINE;
/// The function assigned to L2: QEMU's `edu` on the outer bus.
pub const OUTER_EDU: &str = "edu,addr=5.0";
/// L1's CPUs: one, so every instruction of the exit path (L1 kernel, the
/// VMM's threads) runs on the CPU whose counter the guest reads.
pub const L1_CPUS: &str = "1";
/// L1's RAM.
pub const L1_MEM: &str = "1G";

/// Why the peer could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// Fetching the Debian packages or building the initramfs failed.
    #[error(transparent)]
    Image(#[from] guestimg::GuestImgError),
    /// A file operation failed.
    #[error("cannot {what} {}: {source}", .path.display())]
    Io {
        /// The operation.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The outer QEMU could not be started.
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The outer QEMU did not finish in time; it was killed.
    #[error("L1 killed after {} s; last console line: {last:?} (console: {})", .after.as_secs(), .log.display())]
    Timeout {
        /// The limit.
        after: Duration,
        /// The last line it printed.
        last: String,
        /// The console log.
        log: PathBuf,
    },
    /// L1 never reached its script (no `peer l1` line).
    #[error("L1 did not reach the peer script: {seen} (console: {})", .log.display())]
    NoL1 {
        /// What the console showed instead.
        seen: String,
        /// The console log.
        log: PathBuf,
    },
}

/// What `--peer` measured: one L1 boot, each L2 run repeated.
#[derive(Debug)]
pub struct PeerOutcome {
    /// The parsed console.
    pub console: PeerConsole,
    /// The L1 image.
    pub image: l1::L1Image,
    /// The outer command line.
    pub command: String,
    /// Wall-clock time of the boot.
    pub wall: Duration,
    /// The console log.
    pub log: PathBuf,
}

/// The outer QEMU command booting L1.
pub fn outer_command(emulator: &Path, image: &l1::L1Image) -> Command {
    let mut c = Command::new(emulator);
    c.args(["-M", OUTER_MACHINE, "-cpu", qemu::CPU])
        .args(["-smp", L1_CPUS, "-m", L1_MEM])
        .args(["-device", OUTER_EDU])
        .args(["-display", "none", "-serial", "stdio", "-monitor", "none"])
        .arg("-kernel")
        .arg(&image.kernel)
        .arg("-initrd")
        .arg(&image.initrd)
        .args(["-append", "console=ttyAMA0 panic=-1"])
        .args(["-no-reboot"])
        .args(["-icount", "shift=0", "-seed", "1"]);
    c
}

/// Builds the L1 image (packages fetched once into `cache`) around the
/// bench guest `guest`, boots it once with each L2 run repeated `reps`
/// times, and parses the console.
pub fn run(
    emulator: &Path,
    cache: &Path,
    guest: &Path,
    out: &Path,
    reps: usize,
) -> Result<PeerOutcome, PeerError> {
    let image = l1::build(cache, guest, out, reps)?;
    let command = process::display(&outer_command(emulator, &image));
    eprintln!(
        "==> peer: L1 Linux/KVM on the outer machine, the bench guest under its QEMU, {reps} run(s) each way (minutes)"
    );
    let log = out.join("peer.log");
    let start = Instant::now();
    let text = run_outer(&mut outer_command(emulator, &image), &log)?;
    let wall = start.elapsed();
    let console = console::parse(&text);
    if console.l1.is_none() {
        return Err(PeerError::NoL1 {
            seen: console::last_lines(&text, 5),
            log,
        });
    }
    Ok(PeerOutcome {
        console,
        image,
        command,
        wall,
        log,
    })
}

/// Runs the outer QEMU, copying its console to `log` as it comes (to
/// watch a long run) and to stderr prefixed `  L1| `; kills it after
/// [`L1_TIMEOUT`]. Returns the console.
fn run_outer(cmd: &mut Command, log: &Path) -> Result<String, PeerError> {
    eprintln!("$ {}", process::display(cmd));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| PeerError::Spawn {
            command: process::display(cmd),
            source,
        })?;
    let io = |what: &'static str| {
        let path = log.to_owned();
        move |source| PeerError::Io { what, path, source }
    };
    let mut file = fs::File::create(log).map_err(io("create"))?;
    let (tx, rx) = mpsc::channel::<String>();
    let out = child.stdout.take().expect("piped stdout");
    let err = child.stderr.take().expect("piped stderr");
    let tx2 = tx.clone();
    let readers = [
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        }),
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx2.send(format!("qemu stderr: {line}"));
            }
        }),
    ];
    let start = Instant::now();
    let mut text = String::new();
    let mut timed_out = false;
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let line = line.trim_end_matches('\r');
                writeln!(file, "{line}").map_err(io("write"))?;
                if line.starts_with("peer ") || line.starts_with("bench ") {
                    eprintln!("  L1| {line}");
                }
                text.push_str(line);
                text.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if !timed_out && start.elapsed() > L1_TIMEOUT {
            timed_out = true;
            let _ = child.kill();
        }
    }
    let _ = child.wait();
    for r in readers {
        let _ = r.join();
    }
    if timed_out {
        return Err(PeerError::Timeout {
            after: L1_TIMEOUT,
            last: text.lines().last().unwrap_or("").to_owned(),
            log: log.to_owned(),
        });
    }
    Ok(text)
}

/// `cargo xtask bench --peer-only`: the peer alone, its table printed and
/// written to `target/bench/peer.md`.
pub fn bench_only(ws: &Workspace, runs: usize) -> Result<(), XtaskError> {
    let emulator = tasks::ensure_all(ws)?;
    let out = ws.target_dir.join("bench");
    fs::create_dir_all(&out).map_err(|e| XtaskError::io("create", &out, e))?;
    let guest = super::build_guest(ws, &out)?;
    let outcome = run(
        &emulator.qemu,
        &ws.target_dir.join("guest-cache"),
        &guest,
        &out,
        runs,
    )?;
    let md = report::markdown(&outcome, None);
    println!("{md}");
    let path = out.join("peer.md");
    fs::write(&path, &md).map_err(|e| XtaskError::io("write", &path, e))?;
    println!("written: {}", path.display());
    Ok(())
}
