//! A private apt configuration for arm64 package lists, kept in its own
//! directory so the host's apt and dpkg state are neither read nor changed.
//!
//! All settings live in one `apt.conf` given through `APT_CONFIG`, which apt
//! reads before anything else; it points `Dir::Etc::main` at `/dev/null` and
//! `Dir::Etc::parts` at an empty directory, so the host's own apt
//! configuration does not apply either.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::GuestImgError;
use crate::process::{APT_CACHE, APT_GET, DPKG_DEB, Tool};

/// Where packages come from.
pub(crate) const MIRROR: &str = "http://deb.debian.org/debian";
/// The suites searched: backports first for its newer kernel.
pub(crate) const SUITES: &str = "bookworm bookworm-backports";
/// The key the archive's Release files are checked against.
pub(crate) const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// A private apt configuration rooted in one directory.
#[derive(Debug)]
pub(crate) struct PrivateApt {
    conf: PathBuf,
}

/// One stanza of `apt-cache show`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Stanza {
    /// `Package:`.
    pub package: String,
    /// `Version:`.
    pub version: String,
    /// `Depends:` (raw).
    pub depends: String,
    /// `Size:` of the .deb in bytes.
    pub size: u64,
}

impl PrivateApt {
    /// Creates (or refreshes) the configuration under `dir`, which must be
    /// an absolute path.
    pub(crate) fn create(dir: &Path) -> Result<Self, GuestImgError> {
        if !Path::new(KEYRING).exists() {
            return Err(GuestImgError::MissingTool {
                tool: KEYRING.to_owned(),
                package: "debian-archive-keyring",
            });
        }
        let d = dir
            .to_str()
            .filter(|s| !s.contains('"'))
            .ok_or_else(|| GuestImgError::BadCachePath(dir.to_owned()))?;
        for sub in [
            "etc/apt.conf.d",
            "etc/preferences.d",
            "etc/sources.list.d",
            "etc/trusted.gpg.d",
            "state/lists/partial",
            "cache/archives/partial",
        ] {
            let path = dir.join(sub);
            fs::create_dir_all(&path).map_err(GuestImgError::io("create", path))?;
        }
        write(&dir.join("state/status"), "")?;
        write(&dir.join("etc/sources.list.d/debian.sources"), &sources())?;
        let conf = dir.join("apt.conf");
        write(&conf, &apt_conf(d))?;
        Ok(Self { conf })
    }

    /// Starts a fetch into the package directory `dir` (absolute): drops
    /// its stamp (what follows may leave it half-written), makes sure the
    /// unpacker exists before anything is downloaded, then creates the
    /// configuration in `dir/apt` and fetches the package lists.
    pub(crate) fn for_fetch(dir: &Path) -> Result<Self, GuestImgError> {
        let stamp = dir.join("stamp");
        if stamp.exists() {
            fs::remove_file(&stamp).map_err(GuestImgError::io("remove", &stamp))?;
        }
        DPKG_DEB.run(DPKG_DEB.command().arg("--version"))?;
        let apt = Self::create(&dir.join("apt"))?;
        eprintln!(
            "guestimg: fetching arm64 package lists ({SUITES}) from {MIRROR} into {}",
            dir.join("apt").display()
        );
        apt.update()?;
        Ok(apt)
    }

    /// A command for `tool` under this configuration.
    fn command(&self, tool: Tool) -> Command {
        let mut cmd = tool.command();
        cmd.env("APT_CONFIG", &self.conf);
        cmd
    }

    /// `apt-get update`: fetches the arm64 package lists.
    pub(crate) fn update(&self) -> Result<(), GuestImgError> {
        let mut cmd = self.command(APT_GET);
        cmd.args(["-q", "update"]);
        APT_GET.run(&mut cmd).map(drop)
    }

    /// `apt-cache show PACKAGE`: every version the lists have (none if the
    /// package is unknown).
    pub(crate) fn show(&self, package: &str) -> Result<Vec<Stanza>, GuestImgError> {
        let mut cmd = self.command(APT_CACHE);
        cmd.args(["show", package]);
        let output = APT_CACHE.output(&mut cmd)?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() && stderr.contains("No packages found") {
            return Ok(Vec::new());
        }
        crate::process::check(&cmd, &output)?;
        Ok(parse_show(&String::from_utf8_lossy(&output.stdout)))
    }

    /// What `apt-get install` would install, from nothing, for `packages`
    /// (each `NAME` or `NAME=VERSION`), without recommends and preferring
    /// the suite `target_release`: apt's own resolution, simulated
    /// (`-s`), so nothing is installed and no root is needed.
    pub(crate) fn resolve(
        &self,
        target_release: &str,
        packages: &[String],
    ) -> Result<Vec<Resolved>, GuestImgError> {
        let mut cmd = self.command(APT_GET);
        cmd.args([
            "-q",
            "-s",
            "--no-install-recommends",
            "-t",
            target_release,
            "install",
        ])
        .args(packages);
        let out = APT_GET.run(&mut cmd)?;
        let resolved = parse_simulation(&out);
        if resolved.is_empty() {
            return Err(GuestImgError::invalid(
                &self.conf,
                format!(
                    "apt-get -s install {} listed nothing to install",
                    packages.join(" ")
                ),
            ));
        }
        Ok(resolved)
    }

    /// `apt-get download NAME=VERSION...` of every package of `set` into
    /// `dest` (emptied first); returns the .deb files, one per package.
    pub(crate) fn download_all(
        &self,
        set: &[Resolved],
        dest: &Path,
    ) -> Result<Vec<PathBuf>, GuestImgError> {
        fresh(dest)?;
        let mut cmd = self.command(APT_GET);
        cmd.args(["-q", "download"])
            .args(set.iter().map(|r| format!("{}={}", r.package, r.version)))
            .current_dir(dest);
        APT_GET.run(&mut cmd)?;
        let debs = debs_in(dest)?;
        if debs.len() != set.len() {
            return Err(GuestImgError::invalid(
                dest,
                format!("expected {} .deb files, found {}", set.len(), debs.len()),
            ));
        }
        Ok(debs)
    }

    /// `apt-get download PACKAGE=VERSION` into `dest` (the current directory
    /// of apt-get); returns the path of the downloaded file.
    pub(crate) fn download(&self, spec: &str, dest: &Path) -> Result<PathBuf, GuestImgError> {
        fresh(dest)?;
        let mut cmd = self.command(APT_GET);
        cmd.args(["-q", "download", spec]).current_dir(dest);
        APT_GET.run(&mut cmd)?;
        let debs = debs_in(dest)?;
        match <[PathBuf; 1]>::try_from(debs) {
            Ok([deb]) => Ok(deb),
            Err(debs) => Err(GuestImgError::invalid(
                dest,
                format!(
                    "expected one .deb after downloading {spec}, found {}",
                    debs.len()
                ),
            )),
        }
    }
}

/// One package of a resolution: what `apt-get -s install` would install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// The package name.
    pub package: String,
    /// The exact version apt chose.
    pub version: String,
}

/// Removes `dir` if present and creates it empty.
fn fresh(dir: &Path) -> Result<(), GuestImgError> {
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(GuestImgError::io("remove", dir))?;
    }
    fs::create_dir_all(dir).map_err(GuestImgError::io("create", dir))
}

/// The .deb files in `dir`, sorted.
fn debs_in(dir: &Path) -> Result<Vec<PathBuf>, GuestImgError> {
    let mut debs = Vec::new();
    for entry in fs::read_dir(dir).map_err(GuestImgError::io("read", dir))? {
        let path = entry.map_err(GuestImgError::io("read", dir))?.path();
        if path.extension().is_some_and(|e| e == "deb") {
            debs.push(path);
        }
    }
    debs.sort();
    Ok(debs)
}

/// The `Inst NAME (VERSION SUITE [ARCH])` lines of `apt-get -s install`
/// (`Inst NAME [OLD] (VERSION ...)` for an upgrade), in apt's order.
pub(crate) fn parse_simulation(text: &str) -> Vec<Resolved> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("Inst ")?;
            let package = rest.split_whitespace().next()?;
            let version = rest.split_once('(')?.1.split_whitespace().next()?;
            Some(Resolved {
                package: package.to_owned(),
                version: version.to_owned(),
            })
        })
        .collect()
}

/// Writes `text` to `path`.
fn write(path: &Path, text: &str) -> Result<(), GuestImgError> {
    fs::write(path, text).map_err(GuestImgError::io("write", path))
}

/// The deb822 sources file.
fn sources() -> String {
    format!(
        "# Written by partita's guestimg: arm64 packages only, for a guest image.\n\
         Types: deb\n\
         URIs: {MIRROR}\n\
         Suites: {SUITES}\n\
         Components: main\n\
         Architectures: arm64\n\
         Signed-By: {KEYRING}\n"
    )
}

/// The apt.conf that redirects every directory into `dir`.
fn apt_conf(dir: &str) -> String {
    format!(
        r#"// Written by partita's guestimg: a private apt for arm64 package lists.
// Used through APT_CONFIG; the host's apt configuration and dpkg state are not used.
Dir::Etc::main "/dev/null";
Dir::Etc::parts "{dir}/etc/apt.conf.d";
Dir::Etc::sourcelist "{dir}/etc/sources.list";
Dir::Etc::sourceparts "{dir}/etc/sources.list.d";
Dir::Etc::preferences "{dir}/etc/preferences";
Dir::Etc::preferencesparts "{dir}/etc/preferences.d";
Dir::Etc::trusted "{dir}/etc/trusted.gpg";
Dir::Etc::trustedparts "{dir}/etc/trusted.gpg.d";
Dir::State "{dir}/state";
Dir::State::status "{dir}/state/status";
Dir::Cache "{dir}/cache";
APT::Architecture "arm64";
APT::Architectures {{ "arm64"; }};
Acquire::Languages "none";
APT::Sandbox::User "root";
"#
    )
}

/// Parses `apt-cache show` output into stanzas.
pub(crate) fn parse_show(text: &str) -> Vec<Stanza> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut s = Stanza::default();
        for line in block.lines() {
            let Some((key, value)) = line.split_once(": ") else {
                continue;
            };
            match key {
                "Package" => s.package = value.to_owned(),
                "Version" => s.version = value.to_owned(),
                "Depends" => s.depends = value.to_owned(),
                "Size" => s.size = value.parse().unwrap_or(0),
                _ => {}
            }
        }
        if !s.package.is_empty() && !s.version.is_empty() {
            out.push(s);
        }
    }
    out
}

/// The package names in a `Depends:` field (first alternative of each).
pub(crate) fn depends_names(depends: &str) -> impl Iterator<Item = &str> {
    depends
        .split(',')
        .filter_map(|d| d.split('|').next())
        .filter_map(|d| d.split_whitespace().next())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOW: &str = "\
Package: linux-image-arm64
Source: linux-signed-arm64 (6.12.95+1~bpo12+1)
Version: 6.12.95-1~bpo12+1
Architecture: arm64
Depends: linux-image-6.12.95+deb12-arm64 (= 6.12.95-1~bpo12+1)
Size: 1480
Description: Linux for 64-bit ARMv8 machines (meta-package)

Package: linux-image-arm64
Version: 6.1.176-1
Depends: linux-image-6.1.0-50-arm64 (= 6.1.176-1), foo | bar
Size: 1460
";

    #[test]
    fn parses_stanzas() {
        let s = parse_show(SHOW);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].version, "6.12.95-1~bpo12+1");
        assert_eq!(s[0].size, 1480);
        assert_eq!(s[1].package, "linux-image-arm64");
        let deps: Vec<&str> = depends_names(&s[1].depends).collect();
        assert_eq!(deps, ["linux-image-6.1.0-50-arm64", "foo"]);
    }

    #[test]
    fn parses_a_simulated_install() {
        let text = "\
NOTE: This is only a simulation!
Reading package lists...
Inst libaudit-common (1:3.0.9-1 Debian:12.15/oldstable [all])
Inst libgcc-s1 (12.2.0-14+deb12u1 Debian:12.15/oldstable [arm64]) []
Inst libfoo [1.0-1] (1.1-1 Debian:12.15/oldstable [arm64])
Conf libaudit-common (1:3.0.9-1 Debian:12.15/oldstable [all])
Inst qemu-system-arm (1:10.0.2+ds-2+deb13u1~bpo12+1 Debian Backports:oldstable-backports [arm64])
";
        let r = parse_simulation(text);
        let pairs: Vec<(&str, &str)> = r
            .iter()
            .map(|r| (r.package.as_str(), r.version.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("libaudit-common", "1:3.0.9-1"),
                ("libgcc-s1", "12.2.0-14+deb12u1"),
                ("libfoo", "1.1-1"),
                ("qemu-system-arm", "1:10.0.2+ds-2+deb13u1~bpo12+1"),
            ]
        );
        assert!(parse_simulation("Conf x (1 y)\n").is_empty());
    }

    #[test]
    fn config_stays_inside_its_dir() {
        let conf = apt_conf("/c/apt");
        for line in conf.lines().filter(|l| l.starts_with("Dir::")) {
            assert!(
                line.contains("\"/c/apt/") || line.contains("\"/dev/null\""),
                "{line}"
            );
        }
        assert!(conf.contains("APT::Architectures { \"arm64\"; };"));
        assert!(sources().contains("Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"));
    }
}
