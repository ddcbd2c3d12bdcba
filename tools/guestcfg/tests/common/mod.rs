//! Shared helpers: a temporary directory with a kernel and an initrd, a
//! small valid TOML file to start from, and error rendering without the
//! temporary path.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use guestcfg::{ConfigError, ConfigFile};
use tempfile::TempDir;

/// A valid one-guest file; tests edit it with [`Fixture::edit`].
pub const BASE: &str = r#"[[guest]]
name = "linux"
cpus = [0, 1]
kernel = "Image"
initrd = "initrd.img"
cmdline = "console=ttyAMA0"
devices = ["/pl011@9000000"]
[guest.memory]
size = "64M"
"#;

/// The QEMU `virt` blob with 4 CPUs, 1 GiB, GICv3 and an SMMUv3.
pub const QEMU_VIRT_DTB: &[u8] =
    include_bytes!("../../../../hypervisor/src/fdt/testdata/qemu-virt-smmu.dtb");

/// A temporary directory holding `Image` and `initrd.img`.
pub struct Fixture {
    pub dir: TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Image"), b"kernel").unwrap();
        std::fs::write(dir.path().join("initrd.img"), b"initrd").unwrap();
        Self { dir }
    }

    /// Writes `toml` as `guests.toml` and returns its path.
    pub fn write(&self, toml: &str) -> PathBuf {
        let path = self.dir.path().join("guests.toml");
        std::fs::write(&path, toml).unwrap();
        path
    }

    /// Loads `toml`.
    pub fn load(&self, toml: &str) -> Result<ConfigFile, Vec<ConfigError>> {
        guestcfg::load(&self.write(toml))
    }

    /// Loads `toml`, which must fail, and renders the errors without the
    /// file path (`"9:8: guest[0].memory.size: ..."`).
    pub fn errors(&self, toml: &str) -> Vec<String> {
        let path = self.write(toml);
        let errors = guestcfg::load(&path).expect_err("the file was accepted");
        render(&errors, &path)
    }
}

/// `BASE` with `from` replaced by `to` (which must occur).
pub fn edit(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from:?} not in BASE");
    BASE.replacen(from, to, 1)
}

/// `n` copies of the guest of `BASE`, named g0, g1... on CPUs 0, 1, ...
pub fn guests(n: usize) -> String {
    (0..n)
        .map(|i| {
            BASE.replace("name = \"linux\"", &format!("name = \"g{i}\""))
                .replace("cpus = [0, 1]", &format!("cpus = [{i}]"))
                .replace("devices = [\"/pl011@9000000\"]\n", "")
        })
        .collect()
}

/// The errors as text, with `path` and its `:` stripped from the front.
pub fn render(errors: &[ConfigError], path: &Path) -> Vec<String> {
    let prefix = format!("{}:", path.display());
    errors
        .iter()
        .map(|e| {
            let text = e.to_string();
            text.strip_prefix(&prefix)
                .map(|t| t.trim_start().to_owned())
                .unwrap_or(text)
        })
        .collect()
}
