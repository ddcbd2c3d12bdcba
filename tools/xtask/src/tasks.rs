//! The tasks: `build`, `run`, `test` (`hil` is in [`crate::hil`]).

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::error::XtaskError;
use crate::hil;
use crate::image;
use crate::payload;
use crate::prereq::{self, Emulator, TARGET};
use crate::process;
use crate::qemu;
use crate::workspace::Workspace;

/// `cargo xtask build [--config FILE]`: checks the Rust target, builds,
/// converts; with a configuration also builds its guest bundle. Returns the
/// image path.
pub fn build(ws: &Workspace, config: Option<&Path>) -> Result<PathBuf, XtaskError> {
    prereq::ensure_target(&ws.root)?;
    let image = build_image(ws)?;
    if let Some(config) = config {
        let emulator = prereq::ensure_emulator()?;
        payload::build(ws, config, &emulator.qemu)?;
    }
    Ok(image)
}

/// Builds the hypervisor ELF in release mode and converts it to the raw image.
pub(crate) fn build_image(ws: &Workspace) -> Result<PathBuf, XtaskError> {
    let (elf, image) = (ws.elf(), ws.image());
    let (pieces, raw) = build_variant(ws, &[], None, &elf, &image)?;
    println!(
        "elf: {} ({} PT_LOAD segment(s) with contents, from {:#x})",
        elf.display(),
        raw.segments,
        raw.base
    );
    println!(
        "W^X layout: text {:#x}..{:#x} r-x, rodata {:#x}..{:#x} r--, data {:#x}..{:#x} rw-",
        pieces.start,
        pieces.text_end,
        pieces.text_end,
        pieces.rodata_end,
        pieces.rodata_end,
        pieces.end
    );
    println!("image: {}", image.display());
    println!("image size: {} bytes", raw.bytes.len());
    Ok(image)
}

/// Builds the hypervisor with the `profile` feature (counter reads around
/// the virtio-iommu request phases) into `target/profile/`, apart from the
/// release image; returns the raw image path.
pub(crate) fn build_profiled_image(ws: &Workspace) -> Result<PathBuf, XtaskError> {
    let dir = ws.target_dir.join("profile");
    let elf = dir.join(TARGET).join("release").join("hypervisor");
    let image = dir.join("partita-profile.bin");
    build_variant(ws, &["--features", "profile"], Some(&dir), &elf, &image)?;
    Ok(image)
}

/// `cargo build --release` of the hypervisor binary with `extra` arguments
/// (into `target_dir`, if given), then the ELF at `elf` checked against the
/// W^X pieces and converted to `image`.
fn build_variant(
    ws: &Workspace,
    extra: &[&str],
    target_dir: Option<&Path>,
    elf: &Path,
    image: &Path,
) -> Result<(crate::wx::Pieces, image::RawImage), XtaskError> {
    let mut cmd = ws.cargo();
    cmd.args([
        "build",
        "--release",
        "-p",
        "hypervisor",
        "--bin",
        "hypervisor",
    ])
    .args(extra)
    .args(["--target", TARGET]);
    if let Some(dir) = target_dir {
        cmd.arg("--target-dir").arg(dir);
    }
    process::run(&mut cmd)?;
    let err = |source| XtaskError::Image {
        elf: elf.to_path_buf(),
        source,
    };
    let pieces = image::check_wx(elf).map_err(err)?;
    let raw = image::convert(elf, image).map_err(err)?;
    Ok((pieces, raw))
}

/// Checks every prerequisite of `run` and `test`.
pub(crate) fn ensure_all(ws: &Workspace) -> Result<Emulator, XtaskError> {
    prereq::ensure_target(&ws.root)?;
    Ok(prereq::ensure_emulator()?)
}

/// `cargo xtask run`: boots the image with the guests of `config` (or the
/// default configuration) on QEMU; returns QEMU's exit code.
pub fn run(
    ws: &Workspace,
    config: Option<&Path>,
    qemu_args: &[OsString],
) -> Result<u8, XtaskError> {
    let emulator = ensure_all(ws)?;
    let image = build_image(ws)?;
    let config = config
        .map(Path::to_path_buf)
        .unwrap_or_else(|| ws.root.join(payload::DEFAULT_CONFIG));
    let bundle = payload::build(ws, &config, &emulator.qemu)?;
    let mut args: Vec<OsString> = vec!["-initrd".into(), bundle.into_os_string()];
    args.extend(qemu_args.iter().cloned());
    let mut cmd = qemu::run_command(&emulator.qemu, &image, &args);
    eprintln!("booting (Ctrl-A X quits QEMU, Ctrl-A H lists the other keys)");
    let status = process::status(&mut cmd)?;
    Ok(exit_code(status))
}

/// A shell-style exit code for a child's status: its code, or 128 + signal.
fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(1),
        (None, Some(signal)) => u8::try_from((128 + signal) & 0xff).unwrap_or(1),
        (None, None) => 1,
    }
}

/// The stages of `cargo xtask test`, in order.
const STAGES: [&str; 6] = [
    "prerequisites",
    "host unit tests",
    "image build",
    "guest payloads",
    "QEMU tests",
    "HIL (qemu-uboot)",
];

/// How each stage of `cargo xtask test` went.
#[derive(Debug, Default)]
struct Stages {
    /// Stages that ran: name, wall time, success.
    done: Vec<(&'static str, Duration, bool)>,
}

impl Stages {
    /// Runs one stage, timing it and wrapping its error with the stage name.
    fn run<T>(
        &mut self,
        name: &'static str,
        stage: impl FnOnce() -> Result<T, XtaskError>,
    ) -> Result<T, XtaskError> {
        eprintln!("\n==> {name}");
        let start = Instant::now();
        let result = stage();
        self.done.push((name, start.elapsed(), result.is_ok()));
        result.map_err(|source| XtaskError::Stage {
            stage: name,
            source: Box::new(source),
        })
    }

    /// The summary table: every stage with its outcome and wall time.
    fn summary(&self, total: Duration) -> String {
        let mut out = String::from("summary:\n");
        for name in STAGES {
            let line = match self.done.iter().find(|(n, ..)| *n == name) {
                Some((_, time, ok)) => format!(
                    "  {name:<16} {:<7} {:>7.1} s\n",
                    if *ok { "ok" } else { "FAILED" },
                    time.as_secs_f64()
                ),
                None => format!("  {name:<16} not run\n"),
            };
            out.push_str(&line);
        }
        out.push_str(&format!(
            "  {:<16} {:<7} {:>7.1} s",
            "total",
            "",
            total.as_secs_f64()
        ));
        out
    }
}

/// `cargo xtask test`: prerequisites, host unit tests, image, QEMU tests,
/// the HIL run on the `qemu-uboot` board.
pub fn test(ws: &Workspace, test_args: &[OsString]) -> Result<(), XtaskError> {
    let start = Instant::now();
    let mut stages = Stages::default();
    let result = test_stages(ws, test_args, &mut stages);
    eprintln!();
    println!("{}", stages.summary(start.elapsed()));
    result
}

/// The stages of [`test`]; stops at the first failure.
fn test_stages(
    ws: &Workspace,
    test_args: &[OsString],
    stages: &mut Stages,
) -> Result<(), XtaskError> {
    let emulator = stages.run(STAGES[0], || {
        let emulator = ensure_all(ws)?;
        hil::ensure_test_board(ws)?;
        Ok(emulator)
    })?;
    stages.run(STAGES[1], || {
        Ok(process::run(ws.cargo().args([
            "test",
            "--workspace",
            "--exclude",
            "hv-tests",
            "--no-fail-fast",
        ]))?)
    })?;
    let image = stages.run(STAGES[2], || build_image(ws))?;
    // Every guest-configs/*.toml, then the bare-metal guests and the
    // bundles of the QEMU tests that run them, all in one directory.
    let bundles = stages.run(STAGES[3], || {
        payload::build_all(ws, &emulator.qemu)?;
        payload::build_test_guests(ws, &emulator.qemu)
    })?;
    stages.run(STAGES[4], || {
        Ok(process::run(
            ws.cargo()
                .args(["test", "-p", "hv-tests", "--no-fail-fast", "--"])
                .args(test_args)
                .env("PARTITA_IMAGE", &image)
                .env("PARTITA_QEMU", &emulator.qemu)
                .env("PARTITA_BUNDLES", &bundles)
                .env("PARTITA_GUEST_IMAGES", payload::guest_image_dir(ws)),
        )?)
    })?;
    stages.run(STAGES[5], || {
        hil::test_stage(ws, &image, &bundles, &emulator.qemu)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137); // SIGKILL
    }

    #[test]
    fn summary_lists_every_stage() {
        let mut stages = Stages::default();
        stages.run(STAGES[0], || Ok(())).expect("an ok stage is ok");
        let err = stages
            .run(STAGES[1], || -> Result<(), XtaskError> {
                Err(XtaskError::Process(process::ProcessError::Failed {
                    command: "cargo test".into(),
                    status: ExitStatus::from_raw(101 << 8),
                }))
            })
            .expect_err("a failed stage fails");
        assert!(
            err.to_string()
                .starts_with("stage `host unit tests` failed: `cargo test` failed"),
            "{err}"
        );
        let summary = stages.summary(Duration::from_secs(3));
        assert!(summary.contains("prerequisites    ok"), "{summary}");
        assert!(summary.contains("host unit tests  FAILED"), "{summary}");
        assert!(summary.contains("image build      not run"), "{summary}");
        assert!(summary.contains("QEMU tests       not run"), "{summary}");
        assert!(summary.contains("total"), "{summary}");
    }
}
