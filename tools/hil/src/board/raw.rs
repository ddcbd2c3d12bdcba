//! The board file as written (serde types with defaults) and the checks
//! that turn it into a [`Board`].

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::{
    AfterBoot, Board, DEFAULT_BOOTI, Delivery, Dtb, Load, Network, Power, Requires, Serial, UBoot,
    Via,
};
use crate::error::LoadError;
use crate::file::{self, check_secs};
use crate::template;

/// Whether the definition has been tried on the real thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// A run has passed on this board.
    Tested,
    /// Written from documentation only: expect to adjust it.
    Untested,
}

/// `delivery.method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Files go to a TFTP server's directory; U-Boot fetches them.
    Tftp,
    /// Files go to a mounted partition U-Boot reads.
    Disk,
}

/// `dtb.source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DtbSource {
    /// The DT U-Boot itself runs with.
    UBoot,
    /// A DTB file from the host.
    File,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBoard {
    description: String,
    status: Status,
    serial: RawSerial,
    #[serde(default)]
    uboot: RawUBoot,
    delivery: RawDelivery,
    load: RawLoad,
    dtb: RawDtb,
    #[serde(default)]
    power: RawPower,
    #[serde(default)]
    after_boot: RawAfterBoot,
    #[serde(default)]
    requires: RawRequires,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSerial {
    device: Option<String>,
    baud: Option<u32>,
    unix: Option<String>,
    tcp: Option<String>,
    #[serde(default = "ten")]
    connect_timeout: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawUBoot {
    prompt: String,
    autoboot: String,
    interrupt: String,
    prompt_timeout: f64,
    command_timeout: f64,
    load_timeout: f64,
    boot_timeout: f64,
    char_delay_ms: u64,
    bootargs: String,
    pre_boot: Vec<String>,
    booti: String,
}

impl Default for RawUBoot {
    fn default() -> Self {
        Self {
            prompt: "=> ".into(),
            autoboot: "Hit any key to stop autoboot".into(),
            interrupt: " ".into(),
            prompt_timeout: 60.0,
            command_timeout: 10.0,
            load_timeout: 120.0,
            boot_timeout: 30.0,
            char_delay_ms: 0,
            bootargs: String::new(),
            pre_boot: Vec::new(),
            booti: DEFAULT_BOOTI.into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDelivery {
    method: Method,
    dir: String,
    #[serde(default)]
    prefix: String,
    ip: Option<String>,
    server_ip: Option<String>,
    netmask: Option<String>,
    load_command: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLoad {
    image: u64,
    bundle: u64,
    ram_start: Option<u64>,
    ram_size: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDtb {
    source: DtbSource,
    addr: Option<u64>,
    size: Option<u64>,
    file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPower {
    cycle: String,
    spawn: String,
    off: String,
    hook_timeout: f64,
}

impl Default for RawPower {
    fn default() -> Self {
        Self {
            cycle: String::new(),
            spawn: String::new(),
            off: String::new(),
            hook_timeout: 60.0,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAfterBoot {
    expect: Vec<String>,
    timeout: f64,
}

impl Default for RawAfterBoot {
    fn default() -> Self {
        Self {
            expect: Vec::new(),
            timeout: 30.0,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRequires {
    files: Vec<String>,
    debian_packages: Vec<String>,
}

fn ten() -> f64 {
    10.0
}

/// The default copy size of U-Boot's DT (QEMU's DT has a 1 MiB totalsize).
const DEFAULT_DTB_COPY: u64 = 0x10_0000;

const MIB2: u64 = 2 << 20;

/// Collects problems while converting.
struct Checker {
    problems: Vec<String>,
}

impl Checker {
    fn problem(&mut self, text: String) {
        self.problems.push(text);
    }

    fn secs(&mut self, key: &str, secs: f64, max: f64) -> Duration {
        check_secs(&mut self.problems, key, secs, max);
        file::duration(secs, max)
    }

    fn nonempty(&mut self, key: &str, text: &str) {
        if text.is_empty() {
            self.problem(format!("{key}: must not be empty"));
        }
    }

    fn ip(&mut self, key: &str, text: &str) -> Option<Ipv4Addr> {
        match text.parse() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.problem(format!("{key}: {text:?} is not an IPv4 address"));
                None
            }
        }
    }
}

impl RawBoard {
    pub(super) fn check(self, path: &Path) -> Result<Board, LoadError> {
        let mut c = Checker {
            problems: Vec::new(),
        };
        if self.description.trim().is_empty() {
            c.problem("description: must say what the board is".into());
        }
        let serial = serial(&mut c, &self.serial);
        let connect_timeout = c.secs("serial.connect_timeout", self.serial.connect_timeout, 600.0);
        let uboot = uboot(&mut c, self.uboot);
        let delivery = delivery(&mut c, self.delivery);
        let load = load(&mut c, &self.load);
        let dtb = dtb(&mut c, self.dtb, &load);
        if self.power.cycle.trim().is_empty() && self.power.spawn.trim().is_empty() {
            // Fine: the user resets the board by hand when the runner says so.
        } else if !self.power.cycle.trim().is_empty() && !self.power.spawn.trim().is_empty() {
            c.problem(
                "power: give `cycle` (a real board) or `spawn` (an emulator), not both".into(),
            );
        }
        let power = Power {
            hook_timeout: c.secs("power.hook_timeout", self.power.hook_timeout, 600.0),
            cycle: self.power.cycle,
            spawn: self.power.spawn,
            off: self.power.off,
        };
        for (i, text) in self.after_boot.expect.iter().enumerate() {
            c.nonempty(&format!("after_boot.expect[{i}]"), text);
        }
        let after_boot = AfterBoot {
            timeout: c.secs("after_boot.timeout", self.after_boot.timeout, 600.0),
            expect: self.after_boot.expect,
        };
        let requires = Requires {
            files: self.requires.files,
            debian_packages: self.requires.debian_packages,
        };
        let board = Board {
            name: file::stem(path),
            path: path.to_path_buf(),
            description: self.description,
            status: self.status,
            serial,
            connect_timeout,
            uboot,
            delivery,
            load,
            dtb,
            power,
            after_boot,
            requires,
        };
        for text in board.expandable() {
            for name in template::unknown_names(text) {
                c.problem(format!(
                    "{text:?}: unknown placeholder {{{name}}} (known: {{run_dir}}, {{workspace}}, \
                     {{qemu}}; write ${{{name}}} for a U-Boot or shell variable)"
                ));
            }
        }
        if c.problems.is_empty() {
            Ok(board)
        } else {
            Err(LoadError::Invalid {
                path: path.to_path_buf(),
                problems: c.problems,
            })
        }
    }
}

fn serial(c: &mut Checker, raw: &RawSerial) -> Serial {
    let given = [&raw.device, &raw.unix, &raw.tcp]
        .iter()
        .filter(|v| v.is_some())
        .count();
    if given != 1 {
        c.problem("serial: give exactly one of `device`, `unix`, `tcp`".into());
    }
    if raw.baud.is_some() && raw.device.is_none() {
        c.problem("serial.baud: only a `device` has a baud rate".into());
    }
    if let Some(tcp) = &raw.tcp {
        let port_ok = tcp
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            c.problem(format!("serial.tcp: {tcp:?} is not HOST:PORT"));
        }
        return Serial::Tcp(tcp.clone());
    }
    if let Some(unix) = &raw.unix {
        c.nonempty("serial.unix", unix);
        return Serial::Unix(unix.clone());
    }
    let path = raw.device.clone().unwrap_or_default();
    c.nonempty("serial.device", &path);
    let baud = raw.baud.unwrap_or(115_200);
    if baud == 0 {
        c.problem("serial.baud: must be more than 0".into());
    }
    Serial::Device { path, baud }
}

fn uboot(c: &mut Checker, raw: RawUBoot) -> UBoot {
    c.nonempty("uboot.prompt", &raw.prompt);
    c.nonempty("uboot.autoboot", &raw.autoboot);
    c.nonempty("uboot.interrupt", &raw.interrupt);
    c.nonempty("uboot.booti", raw.booti.trim());
    if raw.char_delay_ms > 100 {
        c.problem(format!(
            "uboot.char_delay_ms: {} is more than 100 ms per character",
            raw.char_delay_ms
        ));
    }
    for (i, cmd) in raw.pre_boot.iter().enumerate() {
        c.nonempty(&format!("uboot.pre_boot[{i}]"), cmd.trim());
    }
    for (key, text) in [
        ("uboot.bootargs", &raw.bootargs),
        ("uboot.booti", &raw.booti),
    ]
    .into_iter()
    .chain(raw.pre_boot.iter().map(|cmd| ("uboot.pre_boot", cmd)))
    {
        if text.contains('\n') {
            c.problem(format!("{key}: must be a single line"));
        }
    }
    UBoot {
        prompt_timeout: c.secs("uboot.prompt_timeout", raw.prompt_timeout, 600.0),
        command_timeout: c.secs("uboot.command_timeout", raw.command_timeout, 600.0),
        load_timeout: c.secs("uboot.load_timeout", raw.load_timeout, 3600.0),
        boot_timeout: c.secs("uboot.boot_timeout", raw.boot_timeout, 600.0),
        char_delay: Duration::from_millis(raw.char_delay_ms),
        prompt: raw.prompt,
        autoboot: raw.autoboot,
        interrupt: raw.interrupt,
        bootargs: raw.bootargs,
        pre_boot: raw.pre_boot,
        booti: raw.booti,
    }
}

fn delivery(c: &mut Checker, raw: RawDelivery) -> Delivery {
    c.nonempty("delivery.dir", &raw.dir);
    if raw.prefix.contains(char::is_whitespace) {
        c.problem("delivery.prefix: must not contain spaces".into());
    }
    let via = match raw.method {
        Method::Tftp => {
            if raw.load_command.is_some() {
                c.problem("delivery.load_command: only for method = \"disk\"".into());
            }
            let server_ip = raw
                .server_ip
                .as_deref()
                .and_then(|s| c.ip("delivery.server_ip", s));
            let netmask = raw
                .netmask
                .as_deref()
                .and_then(|s| c.ip("delivery.netmask", s));
            match raw.ip.as_deref() {
                None => {
                    c.problem(
                        "delivery.ip: TFTP needs the board's address, or \"dhcp\"".to_owned(),
                    );
                    Via::Tftp(Network::Dhcp { server_ip })
                }
                Some("dhcp") => Via::Tftp(Network::Dhcp { server_ip }),
                Some(ip) => {
                    let ip = c.ip("delivery.ip", ip);
                    if raw.server_ip.is_none() {
                        c.problem(
                            "delivery.server_ip: a fixed `ip` needs the TFTP server's address"
                                .into(),
                        );
                    }
                    Via::Tftp(Network::Static {
                        ip: ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
                        server_ip: server_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
                        netmask,
                    })
                }
            }
        }
        Method::Disk => {
            for (key, given) in [
                ("ip", raw.ip.is_some()),
                ("server_ip", raw.server_ip.is_some()),
                ("netmask", raw.netmask.is_some()),
            ] {
                if given {
                    c.problem(format!("delivery.{key}: only for method = \"tftp\""));
                }
            }
            let load_command = raw.load_command.unwrap_or_default();
            if load_command.trim().is_empty() {
                c.problem(
                    "delivery.load_command: method = \"disk\" needs it, e.g. \"load mmc 0:1\""
                        .into(),
                );
            }
            Via::Disk { load_command }
        }
    };
    Delivery {
        dir: raw.dir,
        prefix: raw.prefix,
        via,
    }
}

fn load(c: &mut Checker, raw: &RawLoad) -> Load {
    if !raw.image.is_multiple_of(MIB2) {
        c.problem(format!(
            "load.image: {:#x} is not 2 MiB aligned (booti would move the image)",
            raw.image
        ));
    }
    if !raw.bundle.is_multiple_of(0x1000) {
        c.problem(format!(
            "load.bundle: {:#x} is not 4 KiB aligned",
            raw.bundle
        ));
    }
    if raw.image == raw.bundle {
        c.problem("load: `image` and `bundle` are the same address".into());
    }
    let ram = match (raw.ram_start, raw.ram_size) {
        (Some(start), Some(size)) if size > 0 => Some((start, size)),
        (Some(_), Some(_)) => {
            c.problem("load.ram_size: must be more than 0".into());
            None
        }
        (None, None) => None,
        _ => {
            c.problem("load: give both `ram_start` and `ram_size`, or neither".into());
            None
        }
    };
    let load = Load {
        image: raw.image,
        bundle: raw.bundle,
        ram,
    };
    for (key, addr) in [("load.image", raw.image), ("load.bundle", raw.bundle)] {
        check_in_ram(c, key, addr, &load);
    }
    load
}

fn check_in_ram(c: &mut Checker, key: &str, addr: u64, load: &Load) {
    if let Some((start, size)) = load.ram
        && (addr < start || addr - start >= size)
    {
        c.problem(format!(
            "{key}: {addr:#x} is outside RAM {start:#x}..{:#x}",
            start.saturating_add(size)
        ));
    }
}

fn dtb(c: &mut Checker, raw: RawDtb, load: &Load) -> Dtb {
    if let Some(addr) = raw.addr {
        if addr % 8 != 0 {
            c.problem(format!("dtb.addr: {addr:#x} is not 8-byte aligned"));
        }
        check_in_ram(c, "dtb.addr", addr, load);
    }
    match raw.source {
        DtbSource::UBoot => {
            if raw.file.is_some() {
                c.problem("dtb.file: only for source = \"file\"".into());
            }
            match (raw.addr, raw.size) {
                (None, Some(_)) => {
                    c.problem("dtb.size: only with `addr` (the size of the copy)".into());
                    Dtb::UBootInPlace
                }
                (None, None) => Dtb::UBootInPlace,
                (Some(addr), size) => {
                    let size = size.unwrap_or(DEFAULT_DTB_COPY);
                    if size < 0x1000 {
                        c.problem(format!("dtb.size: {size:#x} is too small for a DT"));
                    }
                    Dtb::UBootCopy { addr, size }
                }
            }
        }
        DtbSource::File => {
            if raw.size.is_some() {
                c.problem("dtb.size: only for source = \"u-boot\"".into());
            }
            let path = raw.file.unwrap_or_default();
            if path.is_empty() {
                c.problem("dtb.file: source = \"file\" needs the DTB's path".into());
            }
            if raw.addr.is_none() {
                c.problem("dtb.addr: source = \"file\" needs a load address".into());
            }
            Dtb::File {
                path,
                addr: raw.addr.unwrap_or_default(),
            }
        }
    }
}
