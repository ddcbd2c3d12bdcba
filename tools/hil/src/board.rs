//! Board definitions (`tools/hil/boards/NAME.toml`): how to reach a board's
//! console, talk to its U-Boot, get the image and the guest bundle into its
//! RAM, power-cycle it and what the hypervisor must print once started.
//! The schema is documented in `docs/hil.md`; the shipped files are
//! commented examples.
//!
//! String fields that name paths or commands may use the placeholders of
//! [`crate::template`] (`{run_dir}`, `{workspace}`, `{qemu}`).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::LoadError;
use crate::file;
use crate::template;

mod raw;

pub use raw::{DtbSource, Method, Status};

/// The default `booti` line: image, bundle as the initrd (address:size), DT.
pub const DEFAULT_BOOTI: &str =
    "booti ${hv_image_addr} ${hv_bundle_addr}:${hv_bundle_size} ${hv_dtb_addr}";

/// How the console is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serial {
    /// A serial device (USB-serial adapter, a pty): path and baud rate.
    Device {
        /// e.g. `/dev/ttyUSB0`.
        path: String,
        /// e.g. 115200.
        baud: u32,
    },
    /// A Unix socket (QEMU `-serial unix:PATH,server=on`).
    Unix(String),
    /// A TCP port (ser2net, an FVP's telnet terminal): `host:port`.
    Tcp(String),
}

/// How U-Boot is driven.
#[derive(Debug, Clone, PartialEq)]
pub struct UBoot {
    /// The prompt, e.g. `=> `.
    pub prompt: String,
    /// The start of the autoboot countdown message.
    pub autoboot: String,
    /// What to send to stop the countdown.
    pub interrupt: String,
    /// Time from power-on to the autoboot message or the prompt.
    pub prompt_timeout: Duration,
    /// Time limit for a short command.
    pub command_timeout: Duration,
    /// Time limit for one file load (`tftpboot`, `load`).
    pub load_timeout: Duration,
    /// Time from `booti` to `Starting kernel`.
    pub boot_timeout: Duration,
    /// Pause after each character sent (slow UARTs without flow control).
    pub char_delay: Duration,
    /// The hypervisor command line (`setenv bootargs`), may be empty.
    pub bootargs: String,
    /// Commands run just before the boot command.
    pub pre_boot: Vec<String>,
    /// The boot command (U-Boot syntax; the `hv_*` variables are set by the runner).
    pub booti: String,
}

/// Network settings for TFTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    /// `dhcp` (the server from `server_ip` if given, else from the DHCP answer).
    Dhcp {
        /// The TFTP server, if not the one DHCP names.
        server_ip: Option<Ipv4Addr>,
    },
    /// Fixed addresses.
    Static {
        /// The board's address.
        ip: Ipv4Addr,
        /// The TFTP server.
        server_ip: Ipv4Addr,
        /// The netmask, if it must be set.
        netmask: Option<Ipv4Addr>,
    },
}

/// How files reach the board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Where the runner copies the files (the TFTP root or a subdirectory of
    /// it; or a mounted boot partition).
    pub dir: String,
    /// The path of `dir` as U-Boot names it (prepended to file names).
    pub prefix: String,
    /// TFTP with its network settings, or a disk U-Boot reads with `load`.
    pub via: Via,
}

/// The transport of [`Delivery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// `tftpboot`.
    Tftp(Network),
    /// `<load_command> ADDR FILE`, e.g. `load mmc 0:1`.
    Disk {
        /// The load command without address and file.
        load_command: String,
    },
}

/// Where the device tree handed to the hypervisor comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dtb {
    /// The DT U-Boot runs with (`${fdtcontroladdr}`), used in place.
    UBootInPlace,
    /// The DT U-Boot runs with, copied to `addr` (`fdt move`) with room `size`.
    UBootCopy {
        /// Destination.
        addr: u64,
        /// Size of the copy (at least the DT's `totalsize`).
        size: u64,
    },
    /// A DTB file copied next to the image and loaded at `addr`.
    File {
        /// The file on the host.
        path: String,
        /// Load address.
        addr: u64,
    },
}

/// Load addresses and the RAM that must hold them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// The image (2 MiB aligned: `booti` moves it otherwise).
    pub image: u64,
    /// The guest bundle (the initrd).
    pub bundle: u64,
    /// RAM start and size, when given: every load must fit in it.
    pub ram: Option<(u64, u64)>,
}

/// Power control: shell commands, empty when there is none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Power {
    /// Power-cycles the board and returns.
    pub cycle: String,
    /// Runs in the background as the board itself for the whole session
    /// (emulators); stopped at the end.
    pub spawn: String,
    /// Powers the board off at the end.
    pub off: String,
    /// Time limit for `cycle` and `off`.
    pub hook_timeout: Duration,
}

/// What the hypervisor must print after `booti`, in any order.
#[derive(Debug, Clone, PartialEq)]
pub struct AfterBoot {
    /// Texts that must all appear.
    pub expect: Vec<String>,
    /// Time limit.
    pub timeout: Duration,
}

/// What the host needs for this board.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Requires {
    /// Files that must exist (e.g. U-Boot for an emulator).
    pub files: Vec<String>,
    /// Debian packages that provide them.
    pub debian_packages: Vec<String>,
}

/// A board definition, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Board {
    /// Its name: the file stem.
    pub name: String,
    /// The file it came from.
    pub path: PathBuf,
    /// One line about the board.
    pub description: String,
    /// Whether a run on this board has ever passed.
    pub status: Status,
    /// The console.
    pub serial: Serial,
    /// Time limit for reaching the console (socket not there yet...).
    pub connect_timeout: Duration,
    /// U-Boot.
    pub uboot: UBoot,
    /// File delivery.
    pub delivery: Delivery,
    /// Load addresses.
    pub load: Load,
    /// The device tree.
    pub dtb: Dtb,
    /// Power control.
    pub power: Power,
    /// Checks after `booti`.
    pub after_boot: AfterBoot,
    /// Host prerequisites.
    pub requires: Requires,
}

impl Board {
    /// Reads and checks a board file.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let raw: raw::RawBoard = file::read_toml(path)?;
        raw.check(path)
    }

    /// Parses and checks board text (`path` names it in errors and gives its name).
    pub fn parse(path: &Path, text: &str) -> Result<Self, LoadError> {
        let raw: raw::RawBoard = file::parse_toml(path, text)?;
        raw.check(path)
    }

    /// Finds `name_or_path` in `dir` (see [`file::locate`]) and loads it.
    pub fn find(dir: &Path, name_or_path: &str) -> Result<Self, LoadError> {
        Self::load(&file::locate(dir, name_or_path, "board")?)
    }

    /// The placeholders used anywhere in the definition that the runner
    /// must supply (all of them are in [`template::KNOWN`]).
    pub fn placeholders(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .expandable()
            .iter()
            .flat_map(|text| template::placeholders(text))
            .map(|(_, name)| name.to_owned())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Every string field that may hold placeholders.
    fn expandable(&self) -> Vec<&str> {
        let mut fields = vec![
            self.delivery.dir.as_str(),
            self.power.cycle.as_str(),
            self.power.spawn.as_str(),
            self.power.off.as_str(),
        ];
        match &self.serial {
            Serial::Device { path, .. } => fields.push(path),
            Serial::Unix(path) => fields.push(path),
            Serial::Tcp(addr) => fields.push(addr),
        }
        if let Dtb::File { path, .. } = &self.dtb {
            fields.push(path);
        }
        fields.extend(self.requires.files.iter().map(String::as_str));
        fields
    }
}

#[cfg(test)]
mod tests;
