//! `guestimg`: fetch Debian's arm64 kernel and build a busybox initramfs by
//! hand (`cargo run -p guestimg -- help`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use guestimg::{InitramfsSpec, build_initramfs, debian_kernel};

/// Command-line help.
const USAGE: &str = "\
usage:
  guestimg kernel [OUT] [--cache DIR]
      Fetch (once) Debian's arm64 kernel, its modules and busybox-static into
      the cache, print what is there, and copy the Image to OUT if given.
  guestimg initramfs OUT [MODULE...] [--cache DIR] [--extra-init SCRIPT]
      Build a gzip'd cpio initramfs at OUT that loads MODULE... (e.g. nvme)
      and their dependencies, then runs a shell on the console.

The cache defaults to target/guest-cache of the workspace.";

/// Parsed command line.
struct Args {
    command: String,
    out: Option<PathBuf>,
    modules: Vec<String>,
    cache: PathBuf,
    extra_init: String,
}

/// The workspace's `target/guest-cache`.
fn default_cache() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("guest-cache")
}

/// Parses `args` (without the program name).
fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let command = args.next().ok_or("no command")?;
    let mut parsed = Args {
        command,
        out: None,
        modules: Vec::new(),
        cache: default_cache(),
        extra_init: String::new(),
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--cache" => parsed.cache = args.next().ok_or("--cache needs a directory")?.into(),
            "--extra-init" => {
                parsed.extra_init = args.next().ok_or("--extra-init needs a script")?
            }
            a if a.starts_with('-') => return Err(format!("unknown option {a}")),
            _ if parsed.out.is_none() => parsed.out = Some(arg.into()),
            _ => parsed.modules.push(arg),
        }
    }
    Ok(parsed)
}

/// Runs the command.
fn run(args: Args) -> Result<(), String> {
    match args.command.as_str() {
        "kernel" => {
            if !args.modules.is_empty() {
                return Err("kernel takes at most one OUT".into());
            }
            let k = debian_kernel(&args.cache).map_err(|e| e.to_string())?;
            println!("release         {}", k.release);
            println!("kernel package  {} {}", k.kernel_package, k.kernel_version);
            println!("Image           {}", k.image.display());
            println!("modules         {}", k.modules_dir.display());
            println!(
                "busybox         {} ({})",
                k.busybox.display(),
                k.busybox_version
            );
            if let Some(out) = args.out {
                std::fs::copy(&k.image, &out)
                    .map_err(|e| format!("cannot copy the Image to {}: {e}", out.display()))?;
                println!("copied Image to {}", out.display());
            }
            Ok(())
        }
        "initramfs" => {
            let out = args.out.ok_or("initramfs needs OUT")?;
            let k = debian_kernel(&args.cache).map_err(|e| e.to_string())?;
            let spec = InitramfsSpec {
                modules: args.modules,
                extra_init: args.extra_init,
            };
            build_initramfs(&k, &spec, &out).map_err(|e| e.to_string())
        }
        other => Err(format!("unknown command {other:?}")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || matches!(args[0].as_str(), "help" | "-h" | "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let result = parse(args.into_iter()).and_then(run);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
