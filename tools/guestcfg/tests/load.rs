//! Loading TOML files: one test per error case, plus the defaults and the
//! repository's own configurations.

mod common;

use common::{BASE, Fixture, edit, guests};
use guestcfg::{ErrorKind, Source};
use hypervisor::config::{Problem, ResetAction};

#[test]
fn base_file_loads_with_defaults() {
    let fx = Fixture::new();
    let file = fx.load(BASE).unwrap();
    assert_eq!(file.board, None);
    let g = &file.guests[0];
    assert_eq!(g.config.name, "linux");
    assert_eq!(g.config.cpus, [0, 1]);
    assert_eq!(g.config.memory_size, 64 << 20);
    assert_eq!(g.config.memory_base, 0x4000_0000, "default base");
    assert_eq!(g.config.on_reset, ResetAction::Restart, "default on_reset");
    assert_eq!(g.config.cmdline, "console=ttyAMA0");
    assert_eq!(g.config.devices, ["/pl011@9000000"]);
    assert_eq!(g.kernel, Source::File(fx.dir.path().join("Image")));
    assert_eq!(
        g.initrd,
        Some(Source::File(fx.dir.path().join("initrd.img")))
    );
}

#[test]
fn optional_keys_and_other_spellings() {
    let fx = Fixture::new();
    let text = "board = \"b\"\n[[guest]]\nname = \"x\"\ncpus = [3]\nkernel = \"@debian-kernel\"\n\
                on_reset = \"poweroff\"\nmemory = { size = 33554432, base = 0x8000_0000 }\n";
    let file = fx.load(text).unwrap();
    assert_eq!(file.board.as_deref(), Some("b"));
    let g = &file.guests[0];
    assert_eq!(
        (g.config.memory_size, g.config.memory_base),
        (32 << 20, 0x8000_0000)
    );
    assert_eq!(g.config.on_reset, ResetAction::PowerOff);
    assert_eq!(g.kernel, Source::DebianKernel);
    assert_eq!(g.initrd, None);
    assert!(g.config.cmdline.is_empty() && g.config.devices.is_empty());
    let text = edit("initrd = \"initrd.img\"", "initrd = \"@default-initramfs\"");
    assert_eq!(
        fx.load(&text).unwrap().guests[0].initrd,
        Some(Source::DefaultInitramfs)
    );
}

#[test]
fn repository_configurations_load() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest-configs");
    let file = guestcfg::load(&dir.join("qemu-virt-linux.toml")).unwrap();
    assert_eq!(file.board.as_deref(), Some("qemu-virt"));
    let g = &file.guests[0];
    assert_eq!(g.config.name, "linux");
    assert_eq!(g.config.cpus, [0, 1]);
    assert_eq!(g.config.memory_size, 512 << 20);
    assert_eq!(g.config.memory_base, 0x4000_0000);
    assert_eq!(g.config.on_reset, ResetAction::Restart);
    assert!(
        g.config.cmdline.contains("console=ttyAMA0") && g.config.cmdline.contains("rdinit=/init")
    );
    assert_eq!(g.config.devices, ["/pl011@9000000", "/pcie@10000000"]);
    assert_eq!(
        (&g.kernel, &g.initrd),
        (&Source::DebianKernel, &Some(Source::DefaultInitramfs))
    );
    // Every configuration in the directory loads.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            guestcfg::load(&path).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        }
    }
    let off = guestcfg::load(&dir.join("qemu-virt-linux-reset-poweroff.toml")).unwrap();
    assert_eq!(off.guests[0].config.on_reset, ResetAction::PowerOff);
}

#[test]
fn unreadable_file() {
    let fx = Fixture::new();
    let path = fx.dir.path().join("absent.toml");
    let errors = guestcfg::load(&path).unwrap_err();
    assert!(matches!(
        errors[..],
        [guestcfg::ConfigError {
            kind: ErrorKind::Read(_),
            position: None,
            ..
        }]
    ));
    assert!(
        errors[0]
            .to_string()
            .starts_with(&format!("{}: cannot read the file: ", path.display()))
    );
}

#[test]
fn syntax_error() {
    let errors = Fixture::new().errors(&edit("name = \"linux\"", "name = \"linux"));
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("2:"), "{errors:?}");
}

#[test]
fn unknown_top_level_key() {
    let errors = Fixture::new().errors(&format!("bord = \"x\"\n{BASE}"));
    assert_eq!(
        errors,
        ["1:1: bord: unknown field `bord`, expected `board` or `guest`"]
    );
}

#[test]
fn unknown_guest_key() {
    let errors = Fixture::new().errors(&edit("cpus = [0, 1]", "cpus = [0, 1]\ncpu = [2]"));
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("4:1: guest[0].cpu: unknown field `cpu`, expected one of"),
        "{errors:?}"
    );
}

#[test]
fn unknown_memory_key() {
    let errors = Fixture::new().errors(&edit("size = \"64M\"", "size = \"64M\"\nsise = 1"));
    assert_eq!(
        errors,
        ["10:1: guest[0].memory.sise: unknown field `sise`, expected `size` or `base`"]
    );
}

#[test]
fn missing_key() {
    let errors = Fixture::new().errors(&edit("kernel = \"Image\"\n", ""));
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].contains("guest[0]: missing field `kernel`"),
        "{errors:?}"
    );
}

#[test]
fn wrong_type() {
    let errors = Fixture::new().errors(&edit("cpus = [0, 1]", "cpus = [0, \"1\"]"));
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("3:12: guest[0].cpus[1]: invalid type: string \"1\", expected u32"),
        "{errors:?}"
    );
}

#[test]
fn negative_cpu() {
    let errors = Fixture::new().errors(&edit("cpus = [0, 1]", "cpus = [-1]"));
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("3:9: guest[0].cpus[0]: invalid value: integer `-1`"),
        "{errors:?}"
    );
}

#[test]
fn bad_size_string() {
    let errors = Fixture::new().errors(&edit("\"64M\"", "\"512X\""));
    assert_eq!(
        errors,
        ["9:8: guest[0].memory.size: \"512X\" is not a size (use a number of bytes or K/M/G)"]
    );
}

#[test]
fn size_overflow_and_negative_size() {
    let fx = Fixture::new();
    assert_eq!(
        fx.errors(&edit("\"64M\"", "\"99999999999G\"")),
        ["9:8: guest[0].memory.size: \"99999999999G\" is too large"]
    );
    assert_eq!(
        fx.errors(&edit("\"64M\"", "-4")),
        ["9:8: guest[0].memory.size: -4 is negative"]
    );
}

#[test]
fn size_not_multiple_of_2_mib() {
    let errors = Fixture::new().errors(&edit("\"64M\"", "\"17M\""));
    assert_eq!(
        errors,
        ["9:8: guest[0].memory.size: memory size 17 MiB is not a multiple of 2 MiB"]
    );
}

#[test]
fn size_too_small() {
    let errors = Fixture::new().errors(&edit("\"64M\"", "\"8M\""));
    assert_eq!(
        errors,
        ["9:8: guest[0].memory.size: memory size 8 MiB is below the minimum of 16 MiB"]
    );
}

#[test]
fn base_not_aligned() {
    let errors =
        Fixture::new().errors(&edit("size = \"64M\"", "size = \"64M\"\nbase = 0x40100000"));
    assert_eq!(
        errors,
        ["10:8: guest[0].memory.base: memory base 0x40100000 is not aligned to 2 MiB"]
    );
}

#[test]
fn base_negative() {
    let errors = Fixture::new().errors(&edit("size = \"64M\"", "size = \"64M\"\nbase = -2097152"));
    assert_eq!(errors, ["10:8: guest[0].memory.base: -2097152 is negative"]);
}

#[test]
fn memory_too_high() {
    let errors = Fixture::new().errors(&edit(
        "size = \"64M\"",
        "size = \"64M\"\nbase = 0xfffe000000",
    ));
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with(
            "10:8: guest[0].memory.base: guest RAM (64 MiB at 0xfffe000000) ends above"
        ),
        "{errors:?}"
    );
}

#[test]
fn cpu_given_twice() {
    let errors = Fixture::new().errors(&edit("cpus = [0, 1]", "cpus = [0, 0]"));
    assert_eq!(errors, ["3:12: guest[0].cpus[1]: CPU 0 is listed twice"]);
}

#[test]
fn cpu_claimed_by_two_guests() {
    let text = guests(2).replace("cpus = [1]", "cpus = [2, 0]");
    let errors = Fixture::new().errors(&text);
    assert_eq!(
        errors,
        ["11:12: guest[1].cpus[1]: CPU 0 is already claimed by guest 0 (\"g0\")"]
    );
}

#[test]
fn no_cpus() {
    let errors = Fixture::new().errors(&edit("cpus = [0, 1]", "cpus = []"));
    assert_eq!(errors, ["3:8: guest[0].cpus: no CPU is given"]);
}

#[test]
fn duplicate_names() {
    let text = guests(2).replace("\"g1\"", "\"g0\"");
    let errors = Fixture::new().errors(&text);
    assert_eq!(
        errors,
        ["10:8: guest[1].name: the name is already used by guest 0"]
    );
}

#[test]
fn bad_name() {
    let errors = Fixture::new().errors(&edit("\"linux\"", "\"my linux\""));
    assert_eq!(
        errors,
        ["2:8: guest[0].name: the name contains ' '; use letters, digits, '.', '_' and '-'"]
    );
}

#[test]
fn too_many_guests() {
    let errors = Fixture::new().errors(&guests(9));
    assert_eq!(errors, ["65:1: guest[8]: 9 guests, at most 8 allowed"]);
}

#[test]
fn no_guests() {
    let errors = Fixture::new().errors("board = \"qemu-virt\"\n");
    assert_eq!(errors, ["guest: no guest is defined"]);
}

#[test]
fn cmdline_too_long() {
    let long = "x".repeat(2048);
    let errors = Fixture::new().errors(&edit("\"console=ttyAMA0\"", &format!("\"{long}\"")));
    assert_eq!(
        errors,
        ["6:11: guest[0].cmdline: the command line is 2048 bytes long, at most 2047 allowed"]
    );
}

#[test]
fn missing_kernel_file() {
    let fx = Fixture::new();
    let errors = fx.errors(&edit("\"Image\"", "\"boot/Image\""));
    let expected = format!(
        "4:10: guest[0].kernel: file {} does not exist (paths are relative to the TOML file)",
        fx.dir.path().join("boot/Image").display()
    );
    assert_eq!(errors, [expected]);
}

#[test]
fn missing_initrd_file() {
    let errors = Fixture::new().errors(&edit("\"initrd.img\"", "\"rootfs.cpio\""));
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("5:10: guest[0].initrd: file "),
        "{errors:?}"
    );
}

#[test]
fn empty_kernel_path() {
    let errors = Fixture::new().errors(&edit("\"Image\"", "\"\""));
    assert_eq!(errors, ["4:10: guest[0].kernel: the path is empty"]);
}

#[test]
fn unknown_token() {
    let errors = Fixture::new().errors(&edit("\"Image\"", "\"@ubuntu-kernel\""));
    assert_eq!(
        errors,
        [
            "4:10: guest[0].kernel: unknown token \"@ubuntu-kernel\"; use a path or \"@debian-kernel\""
        ]
    );
}

#[test]
fn token_in_the_wrong_place() {
    let errors = Fixture::new().errors(&edit("\"initrd.img\"", "\"@debian-kernel\""));
    assert_eq!(
        errors,
        [
            "5:10: guest[0].initrd: \"@debian-kernel\" cannot be used here; use a path or \"@default-initramfs\""
        ]
    );
}

#[test]
fn bad_on_reset() {
    let errors = Fixture::new().errors(&edit("cmdline", "on_reset = \"reboot\"\ncmdline"));
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with(
            "6:12: guest[0].on_reset: unknown variant `reboot`, expected `restart` or `poweroff`"
        ),
        "{errors:?}"
    );
}

#[test]
fn bad_device_path() {
    let errors = Fixture::new().errors(&edit("\"/pl011@9000000\"", "\"/pl011@9000000\", \"pcie\""));
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("7:30: guest[0].devices[1]: \"pcie\" is not a device-tree node path"),
        "{errors:?}"
    );
}

#[test]
fn device_listed_twice() {
    let errors = Fixture::new().errors(&edit(
        "\"/pl011@9000000\"",
        "\"/pl011@9000000\", \"/pl011@9000000\"",
    ));
    assert_eq!(
        errors,
        ["7:30: guest[0].devices[1]: device /pl011@9000000 is listed twice"]
    );
}

#[test]
fn every_error_is_reported_in_file_order() {
    let text = edit("cpus = [0, 1]", "cpus = [0, 0]")
        .replace("\"64M\"", "\"17M\"")
        .replace("\"Image\"", "\"nope\"");
    let errors = Fixture::new().errors(&text);
    let lines: Vec<&str> = errors
        .iter()
        .map(|e| e.split(':').next().unwrap())
        .collect();
    assert_eq!(lines, ["3", "4", "9"], "{errors:?}");
}

#[test]
fn error_kinds_are_typed() {
    let fx = Fixture::new();
    let errors = guestcfg::load(&fx.write(&edit("\"64M\"", "\"17M\""))).unwrap_err();
    assert!(
        matches!(errors[0].kind, ErrorKind::Invalid(Problem::MemorySizeUnaligned { size }) if size == 17 << 20)
    );
    assert_eq!(errors[0].key.as_deref(), Some("guest[0].memory.size"));
    assert_eq!(errors[0].position.map(|p| (p.line, p.column)), Some((9, 8)));
}
