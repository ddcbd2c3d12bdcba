//! Facts about the host that decide how prerequisites are installed: the
//! distribution (`/etc/os-release`), whether we are root, whether the
//! bookworm-backports apt suite is configured, and where programs are.
//!
//! Reading is separated from interpreting so that the interpretation can be
//! unit-tested with literal file contents.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

/// The distribution, as far as installing QEMU is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Distro {
    /// Debian 12: QEMU comes from bookworm-backports.
    DebianBookworm,
    /// Debian 13 (trixie), testing or unstable: the distribution's QEMU is new enough.
    DebianNewer,
    /// Debian 11 or older: no packaged QEMU >= 10.0.
    DebianOlder(String),
    /// Anything else (name from os-release, or "unknown").
    Other(String),
}

impl Distro {
    /// Whether apt and Debian's package names can be used.
    pub fn is_debian(&self) -> bool {
        matches!(
            self,
            Self::DebianBookworm | Self::DebianNewer | Self::DebianOlder(_)
        )
    }
}

/// The fields of os-release(5) that matter here.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OsRelease {
    /// `ID`, e.g. "debian".
    pub id: String,
    /// `VERSION_ID`, e.g. "12" (absent on testing/unstable).
    pub version_id: Option<String>,
    /// `VERSION_CODENAME`, e.g. "bookworm".
    pub codename: Option<String>,
    /// `PRETTY_NAME`, for messages.
    pub pretty_name: Option<String>,
}

impl OsRelease {
    /// Parses the contents of an os-release file (shell-like `KEY=value` lines).
    pub fn parse(text: &str) -> Self {
        let mut os = Self::default();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = unquote(value.trim());
            match key.trim() {
                "ID" => os.id = value,
                "VERSION_ID" => os.version_id = Some(value),
                "VERSION_CODENAME" => os.codename = Some(value),
                "PRETTY_NAME" => os.pretty_name = Some(value),
                _ => {}
            }
        }
        os
    }

    /// Reads `/etc/os-release` (or `/usr/lib/os-release`); `None` if neither exists.
    pub fn read() -> Option<Self> {
        ["/etc/os-release", "/usr/lib/os-release"]
            .iter()
            .find_map(|path| fs::read_to_string(path).ok())
            .map(|text| Self::parse(&text))
    }

    /// Which kind of distribution this is.
    pub fn distro(&self) -> Distro {
        let name = || {
            self.pretty_name
                .clone()
                .unwrap_or_else(|| {
                    format!("{} {}", self.id, self.version_id.as_deref().unwrap_or(""))
                })
                .trim()
                .to_owned()
        };
        if self.id != "debian" {
            return Distro::Other(name());
        }
        match self.codename.as_deref() {
            Some("bookworm") => return Distro::DebianBookworm,
            Some("bullseye" | "buster" | "stretch" | "jessie") => {
                return Distro::DebianOlder(name());
            }
            _ => {}
        }
        match self.version_id.as_deref().map(str::parse::<u32>) {
            Some(Ok(12)) => Distro::DebianBookworm,
            Some(Ok(v)) if v < 12 => Distro::DebianOlder(name()),
            // 13 and later, or testing/unstable (no numeric VERSION_ID).
            _ => Distro::DebianNewer,
        }
    }
}

/// Removes one level of shell quoting from an os-release value.
fn unquote(value: &str) -> String {
    for q in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner.replace("\\\"", "\"").replace("\\\\", "\\");
        }
    }
    value.to_owned()
}

/// Whether this process runs with effective user id 0.
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| effective_uid(&status))
        .or_else(|| {
            let out = std::process::Command::new("id").arg("-u").output().ok()?;
            String::from_utf8_lossy(&out.stdout).trim().parse().ok()
        })
        == Some(0)
}

/// The effective uid from the contents of `/proc/self/status`
/// (`Uid:` real, effective, saved, filesystem).
pub fn effective_uid(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Apt source files: `/etc/apt/sources.list` and `/etc/apt/sources.list.d/*.{list,sources}`.
fn apt_source_files() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        for entry in dir.flatten() {
            let path = entry.path();
            if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("list" | "sources")
            ) {
                files.push(path);
            }
        }
    }
    files
}

/// Whether any apt source file already names the bookworm-backports suite.
pub fn backports_configured() -> bool {
    apt_source_files()
        .iter()
        .filter_map(|path| fs::read_to_string(path).ok())
        .any(|text| mentions_backports(&text))
}

/// Whether an apt source file (one-line or deb822 format) enables
/// bookworm-backports on a line that is not a comment.
pub fn mentions_backports(text: &str) -> bool {
    let mut enabled = true;
    let mut found_in_stanza = false;
    let mut any = false;
    // deb822 stanzas are separated by blank lines and may say `Enabled: no`.
    for line in text.lines().chain(std::iter::once("")) {
        let line = line.trim();
        if line.is_empty() {
            any |= found_in_stanza && enabled;
            enabled = true;
            found_in_stanza = false;
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if let Some(value) = line.strip_prefix("Enabled:") {
            enabled = !value.trim().eq_ignore_ascii_case("no");
        }
        if line
            .split(|c: char| c.is_whitespace() || c == ':')
            .any(|word| word == "bookworm-backports")
        {
            found_in_stanza = true;
        }
    }
    any
}

/// Finds an executable named `name` on `PATH`.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// Whether `path` is a regular file with an execute bit set.
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOKWORM: &str = r#"PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
"#;

    #[test]
    fn os_release_parsing() {
        let os = OsRelease::parse(BOOKWORM);
        assert_eq!(os.id, "debian");
        assert_eq!(os.version_id.as_deref(), Some("12"));
        assert_eq!(os.codename.as_deref(), Some("bookworm"));
        assert_eq!(
            os.pretty_name.as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(os.distro(), Distro::DebianBookworm);
    }

    #[test]
    fn distro_classification() {
        let trixie = "ID=debian\nVERSION_ID=\"13\"\nVERSION_CODENAME=trixie\n";
        assert_eq!(OsRelease::parse(trixie).distro(), Distro::DebianNewer);
        let sid = "PRETTY_NAME=\"Debian GNU/Linux forky/sid\"\nID=debian\nVERSION_CODENAME=forky\n";
        assert_eq!(OsRelease::parse(sid).distro(), Distro::DebianNewer);
        let bullseye = "PRETTY_NAME='Debian GNU/Linux 11 (bullseye)'\nID=debian\nVERSION_ID=\"11\"\nVERSION_CODENAME=bullseye\n";
        assert_eq!(
            OsRelease::parse(bullseye).distro(),
            Distro::DebianOlder("Debian GNU/Linux 11 (bullseye)".into())
        );
        let ubuntu = "PRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\nID=ubuntu\nID_LIKE=debian\nVERSION_CODENAME=noble\n";
        let distro = OsRelease::parse(ubuntu).distro();
        assert_eq!(distro, Distro::Other("Ubuntu 24.04.1 LTS".into()));
        assert!(!distro.is_debian());
        assert_eq!(OsRelease::default().distro(), Distro::Other(String::new()));
    }

    #[test]
    fn uid_from_proc_status() {
        let status = "Name:\txtask\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(effective_uid(status), Some(0));
        assert_eq!(effective_uid("Uid:\t0\t1000\t0\t0\n"), Some(1000));
        assert_eq!(effective_uid("Name:\tx\n"), None);
    }

    #[test]
    fn backports_detection() {
        assert!(mentions_backports(
            "deb http://deb.debian.org/debian bookworm-backports main\n"
        ));
        assert!(!mentions_backports(
            "# deb http://deb.debian.org/debian bookworm-backports main\n"
        ));
        assert!(mentions_backports(
            "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-backports\nComponents: main\n"
        ));
        assert!(!mentions_backports(
            "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nEnabled: no\n\nTypes: deb\nSuites: bookworm\n"
        ));
        assert!(!mentions_backports(
            "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\n"
        ));
        assert!(!mentions_backports(
            "deb http://deb.debian.org/debian bullseye-backports main\n"
        ));
    }

    #[test]
    fn path_lookup() {
        assert!(find_in_path("sh").is_some());
        assert!(find_in_path("partita-no-such-program").is_none());
    }
}
