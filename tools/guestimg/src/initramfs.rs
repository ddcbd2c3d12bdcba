//! Building the gzip'd cpio initramfs: busybox and its applet links, the
//! requested kernel modules (uncompressed, with their dependencies), device
//! and mount-point directories, and `/init`.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::busybox;
use crate::cpio::CpioWriter;
use crate::depmod::read_module;
use crate::error::GuestImgError;
use crate::human_size;
use crate::init::{self, InitPlan};
use crate::kernel::KernelArtifacts;
use crate::modules::{self, ModulesDep};

/// What goes into the initramfs besides busybox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InitramfsSpec {
    /// Kernel modules to load at boot, by name (`"nvme"`, `"virtio_iommu"`;
    /// `-` and `_` are the same). Their dependencies are added and loaded
    /// first; names of built-in drivers are accepted and skipped.
    pub modules: Vec<String>,
    /// Shell text that `/init` runs after printing
    /// [`INIT_DONE`](crate::INIT_DONE) and before starting the interactive
    /// shell (for tests).
    pub extra_init: String,
}

/// One archive member.
enum Node {
    Dir(u32),
    File(u32, Vec<u8>),
    Symlink(String),
    CharDev(u32, u32),
}

/// The archive's contents by path; parents sort before their children.
#[derive(Default)]
struct Tree(BTreeMap<String, Node>);

impl Tree {
    /// Adds `node` at `path`, and any missing parent directories.
    fn add(&mut self, path: &str, node: Node) {
        for (i, _) in path.match_indices('/') {
            self.0
                .entry(path[..i].to_owned())
                .or_insert(Node::Dir(0o755));
        }
        self.0.insert(path.to_owned(), node);
    }

    /// Writes the archive, gzip'd, to `out`.
    fn write(&self, out: impl Write) -> io::Result<()> {
        let gz = flate2::write::GzEncoder::new(out, flate2::Compression::best());
        let mut w = CpioWriter::new(gz);
        for (path, node) in &self.0 {
            match node {
                Node::Dir(perm) => w.dir(path, *perm)?,
                Node::File(perm, data) => w.file(path, *perm, data)?,
                Node::Symlink(target) => w.symlink(path, target)?,
                Node::CharDev(major, minor) => w.char_dev(path, 0o600, *major, *minor)?,
            }
        }
        w.finish()?.finish()?.flush()
    }
}

/// root's account, home /root.
const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n";

/// A stand-in `lspci` for a busybox without one: slot, class and IDs from
/// sysfs, in busybox's format.
const LSPCI: &str = r#"#!/bin/sh
# lspci stand-in (this busybox has none), written by tools/guestimg.
for d in /sys/bus/pci/devices/*; do
	[ -e "$d/class" ] || continue
	echo "${d##*/} Class $(cut -c3-6 "$d/class"): $(cut -c3- "$d/vendor"):$(cut -c3- "$d/device")"
done
"#;

/// Builds a gzip'd cpio newc initramfs at `out` from the kernel and busybox
/// in `k`, as described in `spec`. Offline: uses only files in the cache.
pub fn build_initramfs(
    k: &KernelArtifacts,
    spec: &InitramfsSpec,
    out: &Path,
) -> Result<(), GuestImgError> {
    let mut tree = Tree::default();
    let have_lspci = add_busybox(&mut tree, &k.busybox)?;
    if !have_lspci {
        tree.add("bin/lspci", Node::File(0o755, LSPCI.as_bytes().to_vec()));
    }
    for dir in ["dev", "proc", "sys", "root", "etc"] {
        tree.add(dir, Node::Dir(0o755));
    }
    tree.add("tmp", Node::Dir(0o1777));
    tree.add("dev/console", Node::CharDev(5, 1));
    // busybox takes the home directory for "~" in the prompt from here.
    tree.add("etc/passwd", Node::File(0o644, PASSWD.as_bytes().to_vec()));
    tree.add("etc/group", Node::File(0o644, b"root:x:0:\n".to_vec()));
    tree.add("sbin", Node::Symlink("bin".into()));
    tree.add("usr/bin", Node::Symlink("../bin".into()));
    tree.add("usr/sbin", Node::Symlink("../bin".into()));

    let (modules, builtin) = add_modules(&mut tree, k, &spec.modules)?;
    let script = init::script(&InitPlan {
        release: &k.release,
        modules: &modules,
        builtin: &builtin,
        extra: &spec.extra_init,
    });
    tree.add("init", Node::File(0o755, script.into_bytes()));

    let mut tmp = out.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let file = fs::File::create(&tmp).map_err(GuestImgError::io("create", &tmp))?;
    tree.write(BufWriter::new(file))
        .map_err(GuestImgError::io("write", &tmp))?;
    fs::rename(&tmp, out).map_err(GuestImgError::io("rename", &tmp))?;
    let size = fs::metadata(out)
        .map_err(GuestImgError::io("stat", out))?
        .len();
    eprintln!(
        "guestimg: initramfs {} ({}, {} module(s){})",
        out.display(),
        human_size(size),
        modules.len(),
        if builtin.is_empty() {
            String::new()
        } else {
            format!(", built in: {}", builtin.join(" "))
        }
    );
    Ok(())
}

/// Adds `/bin/busybox` and a link per applet; returns whether busybox has
/// `lspci`.
fn add_busybox(tree: &mut Tree, path: &Path) -> Result<bool, GuestImgError> {
    let binary = fs::read(path).map_err(GuestImgError::io("read", path))?;
    let applets = busybox::applets(&binary)
        .ok_or_else(|| GuestImgError::invalid(path, "no busybox applet table found"))?;
    let missing: Vec<String> = busybox::REQUIRED
        .iter()
        .filter(|a| !applets.iter().any(|b| b == *a))
        .map(|a| a.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(GuestImgError::MissingApplets {
            path: path.to_owned(),
            missing,
        });
    }
    let absent: Vec<&str> = busybox::WANTED
        .iter()
        .copied()
        .filter(|a| !applets.iter().any(|b| b == a))
        .collect();
    if !absent.is_empty() {
        let stand_in = if absent.contains(&"lspci") {
            " (/bin/lspci is a small sysfs script instead)"
        } else {
            ""
        };
        eprintln!(
            "guestimg: note: busybox has no {}{stand_in}",
            absent.join(", ")
        );
    }
    tree.add("bin/busybox", Node::File(0o755, binary));
    for applet in applets.iter().filter(|a| *a != "busybox") {
        tree.add(&format!("bin/{applet}"), Node::Symlink("busybox".into()));
    }
    Ok(applets.iter().any(|a| a == "lspci"))
}

/// Adds the modules for `requested` with their dependencies, uncompressed,
/// and a `modules.dep` for them. Returns the guest paths in load order and
/// the requested names that are built in.
fn add_modules(
    tree: &mut Tree,
    k: &KernelArtifacts,
    requested: &[String],
) -> Result<(Vec<String>, Vec<String>), GuestImgError> {
    let dep_path = k.modules_dir.join("modules.dep");
    let dep_text = fs::read_to_string(&dep_path).map_err(GuestImgError::io("read", &dep_path))?;
    let dep = ModulesDep::parse(&dep_text);
    let builtin = match fs::read_to_string(k.modules_dir.join("modules.builtin")) {
        Ok(text) => modules::parse_builtin(&text),
        Err(_) => HashSet::new(),
    };
    let plan =
        dep.load_order(requested, &builtin)
            .map_err(|name| GuestImgError::UnknownModule {
                name: name.to_owned(),
                dir: k.modules_dir.clone(),
            })?;
    let base = format!("lib/modules/{}", k.release);
    let mut guest_paths = Vec::new();
    for rel in &plan.paths {
        let elf = read_module(&k.modules_dir.join(rel))?;
        let stored = format!("{base}/{}", rel.strip_suffix(".xz").unwrap_or(rel));
        guest_paths.push(format!("/{stored}"));
        tree.add(&stored, Node::File(0o644, elf));
    }
    tree.add(
        &format!("{base}/modules.dep"),
        Node::File(0o644, dep.subset(&plan.paths).into_bytes()),
    );
    Ok((guest_paths, plan.builtin))
}

#[cfg(test)]
mod tests;
