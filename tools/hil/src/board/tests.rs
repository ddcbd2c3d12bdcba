//! Board parsing and validation: the shipped boards, defaults, and every
//! rule producing a readable problem.

use super::*;

/// A minimal valid board; tests replace lines of it.
const MINIMAL: &str = r#"
description = "a board"
status = "untested"
[serial]
device = "/dev/ttyUSB0"
[delivery]
method = "tftp"
dir = "/srv/tftp"
ip = "dhcp"
[load]
image = 0x40200000
bundle = 0x48000000
[dtb]
source = "u-boot"
"#;

fn parse(text: &str) -> Result<Board, LoadError> {
    Board::parse(Path::new("boards/b.toml"), text)
}

fn problems(text: &str) -> String {
    match parse(text) {
        Err(LoadError::Invalid { problems, .. }) => problems.join("\n"),
        other => panic!("expected validation problems, got {other:?}"),
    }
}

fn boards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("boards")
}

#[test]
fn minimal_board_gets_the_defaults() {
    let b = parse(MINIMAL).expect("valid");
    assert_eq!(b.name, "b");
    assert_eq!(b.status, Status::Untested);
    assert_eq!(
        b.serial,
        Serial::Device {
            path: "/dev/ttyUSB0".into(),
            baud: 115_200
        }
    );
    assert_eq!(b.uboot.prompt, "=> ");
    assert_eq!(b.uboot.autoboot, "Hit any key to stop autoboot");
    assert_eq!(b.uboot.booti, DEFAULT_BOOTI);
    assert_eq!(b.uboot.prompt_timeout, Duration::from_secs(60));
    assert_eq!(b.delivery.via, Via::Tftp(Network::Dhcp { server_ip: None }));
    assert_eq!(b.dtb, Dtb::UBootInPlace);
    assert_eq!(
        b.power,
        Power {
            hook_timeout: Duration::from_secs(60),
            ..Power::default()
        }
    );
    assert!(b.after_boot.expect.is_empty());
    assert!(b.placeholders().is_empty());
}

#[test]
fn shipped_qemu_board() {
    let b = Board::find(&boards_dir(), "qemu-uboot").expect("valid");
    assert_eq!(b.status, Status::Tested);
    assert_eq!(b.serial, Serial::Unix("{run_dir}/console.sock".into()));
    assert!(
        b.power
            .spawn
            .starts_with("exec {qemu} -M virt,virtualization=on")
    );
    assert!(
        b.power
            .spawn
            .contains("-smp 4 -m 1G -bios /usr/lib/u-boot/qemu_arm64/u-boot.bin")
    );
    assert!(!b.power.spawn.contains('\\'), "{}", b.power.spawn);
    assert_eq!(
        b.delivery.via,
        Via::Tftp(Network::Static {
            ip: Ipv4Addr::new(10, 0, 2, 15),
            server_ip: Ipv4Addr::new(10, 0, 2, 2),
            netmask: None
        })
    );
    assert_eq!(
        b.dtb,
        Dtb::UBootCopy {
            addr: 0x4000_0000,
            size: 0x10_0000
        }
    );
    assert_eq!(b.load.ram, Some((0x4000_0000, 0x4000_0000)));
    assert_eq!(b.placeholders(), ["qemu", "run_dir"]);
    assert_eq!(b.requires.debian_packages, ["u-boot-qemu"]);
}

#[test]
fn shipped_real_board_is_marked_untested() {
    let b = Board::find(&boards_dir(), "imx95-evk").expect("valid");
    assert_eq!(b.status, Status::Untested);
    assert_eq!(b.uboot.prompt, "u-boot=> ");
    assert!(matches!(
        b.dtb,
        Dtb::File {
            addr: 0x9300_0000,
            ..
        }
    ));
    assert!(matches!(b.serial, Serial::Device { baud: 115_200, .. }));
}

#[test]
fn serial_rules() {
    let text = MINIMAL.replace(
        "device = \"/dev/ttyUSB0\"",
        "device = \"/dev/ttyUSB0\"\nunix = \"/tmp/s\"",
    );
    assert!(problems(&text).contains("serial: give exactly one of"));
    let text = MINIMAL.replace(
        "device = \"/dev/ttyUSB0\"",
        "tcp = \"localhost\"\nbaud = 9600",
    );
    let p = problems(&text);
    assert!(
        p.contains("serial.tcp: \"localhost\" is not HOST:PORT"),
        "{p}"
    );
    assert!(
        p.contains("serial.baud: only a `device` has a baud rate"),
        "{p}"
    );
    let text = MINIMAL.replace("device = \"/dev/ttyUSB0\"", "tcp = \"localhost:5000\"");
    assert_eq!(
        parse(&text).expect("valid").serial,
        Serial::Tcp("localhost:5000".into())
    );
}

#[test]
fn delivery_rules() {
    let text = MINIMAL.replace("ip = \"dhcp\"", "ip = \"10.0.0.300\"");
    let p = problems(&text);
    assert!(
        p.contains("delivery.ip: \"10.0.0.300\" is not an IPv4 address"),
        "{p}"
    );
    assert!(p.contains("delivery.server_ip: a fixed `ip` needs"), "{p}");
    let text = MINIMAL.replace("ip = \"dhcp\"\n", "");
    assert!(problems(&text).contains("delivery.ip: TFTP needs the board's address"));
    let text = MINIMAL.replace("method = \"tftp\"", "method = \"disk\"");
    let p = problems(&text);
    assert!(p.contains("delivery.ip: only for method = \"tftp\""), "{p}");
    assert!(
        p.contains("delivery.load_command: method = \"disk\" needs it"),
        "{p}"
    );
    let text = MINIMAL
        .replace(
            "method = \"tftp\"",
            "method = \"disk\"\nload_command = \"load mmc 0:1\"",
        )
        .replace("ip = \"dhcp\"\n", "");
    assert_eq!(
        parse(&text).expect("valid").delivery.via,
        Via::Disk {
            load_command: "load mmc 0:1".into()
        }
    );
    let text = MINIMAL.replace("method = \"tftp\"", "method = \"nfs\"");
    let err = parse(&text).expect_err("unknown method").to_string();
    assert!(err.contains("unknown variant `nfs`"), "{err}");
}

#[test]
fn load_and_dtb_rules() {
    let text = MINIMAL
        .replace(
            "image = 0x40200000",
            "image = 0x40201000\nram_start = 0x40000000",
        )
        .replace("source = \"u-boot\"", "source = \"file\"\nsize = 0x1000");
    let p = problems(&text);
    for needle in [
        "load.image: 0x40201000 is not 2 MiB aligned",
        "load: give both `ram_start` and `ram_size`",
        "dtb.size: only for source = \"u-boot\"",
        "dtb.file: source = \"file\" needs the DTB's path",
        "dtb.addr: source = \"file\" needs a load address",
    ] {
        assert!(p.contains(needle), "missing {needle:?} in:\n{p}");
    }
    let text = MINIMAL
        .replace(
            "bundle = 0x48000000",
            "bundle = 0x90000000\nram_start = 0x40000000\nram_size = 0x40000000",
        )
        .replace(
            "source = \"u-boot\"",
            "source = \"u-boot\"\naddr = 0x40000004",
        );
    let p = problems(&text);
    assert!(
        p.contains("load.bundle: 0x90000000 is outside RAM 0x40000000..0x80000000"),
        "{p}"
    );
    assert!(
        p.contains("dtb.addr: 0x40000004 is not 8-byte aligned"),
        "{p}"
    );
}

#[test]
fn power_and_placeholder_rules() {
    let text = format!(
        "{MINIMAL}[power]\ncycle = \"relay {{board_port}}\"\nspawn = \"x\"\n[uboot]\nbootargs = \"a\\nb\"\nchar_delay_ms = 500\n"
    );
    let p = problems(&text);
    for needle in [
        "power: give `cycle` (a real board) or `spawn` (an emulator), not both",
        "unknown placeholder {board_port}",
        "write ${board_port} for a U-Boot or shell variable",
        "uboot.bootargs: must be a single line",
        "uboot.char_delay_ms: 500 is more than 100 ms",
    ] {
        assert!(p.contains(needle), "missing {needle:?} in:\n{p}");
    }
}

#[test]
fn schema_errors() {
    let err = parse(&MINIMAL.replace("status = \"untested\"", "status = \"works\""))
        .expect_err("bad status")
        .to_string();
    assert!(err.contains("unknown variant `works`"), "{err}");
    assert!(err.starts_with("boards/b.toml: "), "{err}");
    let err = parse(&format!("{MINIMAL}[uboot]\npromt = \"=> \"\n"))
        .expect_err("typo")
        .to_string();
    assert!(err.contains("unknown field `promt`"), "{err}");
}
