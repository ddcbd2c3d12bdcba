//! Where things are: the workspace root, the target directory, the image,
//! and how to invoke cargo for the workspace.

use std::env;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::prereq::TARGET;

/// The workspace this xtask belongs to.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The directory holding the top `Cargo.toml`.
    pub root: PathBuf,
    /// Cargo's target directory (`CARGO_TARGET_DIR`, or `target/` under the root).
    pub target_dir: PathBuf,
    /// `CARGO_TARGET_DIR` as given, made absolute, to pass on to nested cargo runs.
    target_dir_override: Option<PathBuf>,
    /// The cargo that started us (`CARGO`), or `cargo` from `PATH`.
    cargo: OsString,
}

impl Workspace {
    /// Finds the workspace from this crate's location (`tools/xtask`).
    pub fn locate() -> io::Result<Self> {
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = manifest_dir
            .ancestors()
            .nth(2)
            .filter(|root| root.join("Cargo.toml").is_file())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "no workspace Cargo.toml two levels above {}",
                        manifest_dir.display()
                    ),
                )
            })?
            .to_owned();
        let target_dir_override = match env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
            // Cargo resolves a relative CARGO_TARGET_DIR against its working directory.
            Some(dir) => Some(env::current_dir()?.join(dir)),
            None => None,
        };
        let target_dir = target_dir_override
            .clone()
            .unwrap_or_else(|| root.join("target"));
        let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        Ok(Self {
            root,
            target_dir,
            target_dir_override,
            cargo,
        })
    }

    /// `cargo` run from the workspace root with the same target directory as ours.
    pub fn cargo(&self) -> Command {
        let mut cmd = Command::new(&self.cargo);
        cmd.current_dir(&self.root);
        if let Some(dir) = &self.target_dir_override {
            cmd.env("CARGO_TARGET_DIR", dir);
        }
        cmd
    }

    /// The hypervisor ELF produced by the release build.
    pub fn elf(&self) -> PathBuf {
        self.target_dir
            .join(TARGET)
            .join("release")
            .join("hypervisor")
    }

    /// The raw image next to it.
    pub fn image(&self) -> PathBuf {
        self.target_dir
            .join(TARGET)
            .join("release")
            .join("partita.bin")
    }
}
