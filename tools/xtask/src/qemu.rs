//! QEMU: which version is installed, and the command line that boots the
//! image the way `cargo xtask run` does.

use std::ffi::OsString;
use std::fmt;
use std::path::Path;
use std::process::Command;

/// The program that emulates the boards partita targets.
pub const PROGRAM: &str = "qemu-system-aarch64";

/// The oldest QEMU the tests run on: its SMMUv3 offers stage 2 (since
/// 9.1, `-M virt-9.1` and later) and it has the `imx8mp-evk` machine
/// (since 10.0), the second SoC the QEMU tests boot.
pub const MIN_VERSION: QemuVersion = QemuVersion {
    major: 10,
    minor: 0,
    micro: 0,
};

/// The machine `cargo xtask run` boots: EL2 entry, GICv3, an SMMUv3 in front
/// of the PCIe root complex.
pub const MACHINE: &str = "virt,virtualization=on,gic-version=3,iommu=smmuv3";

/// The CPU model; `pauth-impdef=on` halves boot time under TCG.
pub const CPU: &str = "max,pauth-impdef=on";

/// A QEMU release number, ordered as releases are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct QemuVersion {
    /// Major number (10 in 10.0.2).
    pub major: u32,
    /// Minor number (0 in 10.0.2).
    pub minor: u32,
    /// Micro number (2 in 10.0.2; 0 when absent).
    pub micro: u32,
}

impl fmt::Display for QemuVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

impl QemuVersion {
    /// Parses the output of `qemu-system-aarch64 --version`, whose first line
    /// reads `QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)`.
    pub fn parse_version_output(output: &str) -> Option<Self> {
        let first = output.lines().find(|l| !l.trim().is_empty())?;
        let mut words = first.split_whitespace();
        words.find(|w| *w == "version")?;
        Self::parse_number(words.next()?)
    }

    /// Parses `MAJOR.MINOR[.MICRO]`, ignoring a suffix such as `-rc1` or `+ds`.
    pub fn parse_number(text: &str) -> Option<Self> {
        let end = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let mut parts = text[..end].split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let micro = match parts.next() {
            None | Some("") => 0,
            Some(m) => m.parse().ok()?,
        };
        Some(Self {
            major,
            minor,
            micro,
        })
    }

    /// Whether this release is recent enough for partita.
    pub fn is_supported(self) -> bool {
        self >= MIN_VERSION
    }
}

/// The command `cargo xtask run` executes: the default machine, then
/// `extra` verbatim (later options override earlier ones in QEMU).
pub fn run_command(qemu: &Path, image: &Path, extra: &[OsString]) -> Command {
    let mut cmd = Command::new(qemu);
    cmd.args([
        "-M",
        MACHINE,
        "-cpu",
        CPU,
        "-smp",
        "4",
        "-m",
        "1G",
        "-nographic",
    ])
    .arg("-kernel")
    .arg(image)
    .args(extra);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(major: u32, minor: u32, micro: u32) -> QemuVersion {
        QemuVersion {
            major,
            minor,
            micro,
        }
    }

    #[test]
    fn parses_real_version_lines() {
        let backports = "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\nCopyright (c) 2003-2025 Fabrice Bellard and the QEMU Project developers\n";
        assert_eq!(
            QemuVersion::parse_version_output(backports),
            Some(v(10, 0, 2))
        );
        let bookworm = "QEMU emulator version 7.2.15 (Debian 1:7.2+dfsg-7+deb12u12)\n";
        assert_eq!(
            QemuVersion::parse_version_output(bookworm),
            Some(v(7, 2, 15))
        );
        let git = "QEMU emulator version 9.2.50 (v9.2.0-2218-g3f0ad1f9e8)\n";
        assert_eq!(QemuVersion::parse_version_output(git), Some(v(9, 2, 50)));
        assert_eq!(
            QemuVersion::parse_version_output("QEMU emulator version 9.1.0-rc1\n"),
            Some(v(9, 1, 0))
        );
        assert_eq!(
            QemuVersion::parse_version_output("QEMU emulator version 9.1\n"),
            Some(v(9, 1, 0))
        );
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(QemuVersion::parse_version_output(""), None);
        assert_eq!(
            QemuVersion::parse_version_output("qemu-system-aarch64: command not found"),
            None
        );
        assert_eq!(
            QemuVersion::parse_version_output("QEMU emulator version (unknown)"),
            None
        );
        assert_eq!(QemuVersion::parse_number("10"), None);
    }

    #[test]
    fn minimum_version() {
        assert!(!v(9, 1, 0).is_supported());
        assert!(!v(9, 2, 0).is_supported());
        assert!(v(10, 0, 0).is_supported());
        assert!(v(10, 0, 2).is_supported());
        assert!(!v(9, 0, 2).is_supported());
        assert!(!v(8, 2, 2).is_supported());
        assert!(!v(7, 2, 15).is_supported());
        assert_eq!(MIN_VERSION.to_string(), "10.0.0");
    }

    #[test]
    fn extra_arguments_come_last() {
        let extra = [OsString::from("-s"), OsString::from("-S")];
        let cmd = run_command(Path::new("qemu"), Path::new("/abs/partita.bin"), &extra);
        let args: Vec<_> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "-M",
                MACHINE,
                "-cpu",
                CPU,
                "-smp",
                "4",
                "-m",
                "1G",
                "-nographic",
                "-kernel",
                "/abs/partita.bin",
                "-s",
                "-S"
            ]
        );
    }
}
