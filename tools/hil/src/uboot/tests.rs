//! The boot script for the shipped and variant boards, and the dialogue
//! with a scripted U-Boot.

use super::*;
use crate::console::fake::FakeConsole;
use std::path::Path;

const SHORT: Duration = Duration::from_millis(200);

fn qemu_board() -> Board {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("boards");
    Board::find(&dir, "qemu-uboot").expect("valid")
}

fn files() -> Files {
    Files {
        image: "partita.bin".into(),
        bundle: "qemu-virt-linux.bundle".into(),
        dtb: None,
    }
}

fn texts(cmds: &[Command]) -> Vec<&str> {
    cmds.iter().map(|c| c.text.as_str()).collect()
}

#[test]
fn qemu_uboot_script() {
    let board = qemu_board();
    let cmds = script(&board, &files());
    assert_eq!(
        texts(&cmds),
        [
            "setenv netretry no",
            "setenv ipaddr 10.0.2.15",
            "setenv serverip 10.0.2.2",
            "setenv hv_image_addr 0x40200000",
            "setenv hv_bundle_addr 0x48000000",
            "setenv hv_dtb_addr 0x40000000",
            "setenv fdt_high 0xffffffffffffffff",
            "setenv initrd_high 0xffffffffffffffff",
            "setenv bootargs",
            "tftpboot ${hv_image_addr} partita.bin",
            "tftpboot ${hv_bundle_addr} qemu-virt-linux.bundle",
            "setenv hv_bundle_size ${filesize}",
            "fdt addr ${fdtcontroladdr}",
            "fdt move ${fdtcontroladdr} ${hv_dtb_addr} 0x100000",
        ]
    );
    assert_eq!(cmds[9].timeout, board.uboot.load_timeout);
    assert_eq!(cmds[0].timeout, board.uboot.command_timeout);
    assert_eq!(
        board.uboot.booti,
        "booti ${hv_image_addr} ${hv_bundle_addr}:${hv_bundle_size} ${hv_dtb_addr}"
    );
}

#[test]
fn dhcp_disk_and_dtb_file_variants() {
    let mut board = qemu_board();
    board.delivery.via = Via::Tftp(Network::Dhcp {
        server_ip: Some("192.168.1.1".parse().expect("ip")),
    });
    board.delivery.prefix = "partita/".into();
    board.dtb = Dtb::File {
        path: "/x/board.dtb".into(),
        addr: 0x4300_0000,
    };
    board.uboot.bootargs = "partita.log=debug".into();
    board.uboot.pre_boot = vec!["fdt print /chosen".into()];
    let mut f = files();
    f.dtb = Some("board.dtb".into());
    let cmds = script(&board, &f);
    let t = texts(&cmds);
    assert_eq!(
        t[..4],
        [
            "setenv netretry no",
            "setenv autoload no",
            "dhcp",
            "setenv serverip 192.168.1.1"
        ]
    );
    assert!(t.contains(&"setenv hv_dtb_addr 0x43000000"), "{t:?}");
    assert!(t.contains(&"setenv bootargs partita.log=debug"), "{t:?}");
    assert!(
        t.contains(&"tftpboot ${hv_image_addr} partita/partita.bin"),
        "{t:?}"
    );
    assert_eq!(
        t[t.len() - 2..],
        [
            "tftpboot ${hv_dtb_addr} partita/board.dtb",
            "fdt print /chosen"
        ]
    );

    board.delivery.via = Via::Disk {
        load_command: "load mmc 0:1".into(),
    };
    board.dtb = Dtb::UBootInPlace;
    let t2 = script(&board, &files());
    let t2 = texts(&t2);
    assert!(
        !t2.iter()
            .any(|c| c.contains("netretry") || c.contains("serverip")),
        "{t2:?}"
    );
    assert!(
        t2.contains(&"load mmc 0:1 ${hv_bundle_addr} partita/qemu-virt-linux.bundle"),
        "{t2:?}"
    );
    assert!(
        t2.contains(&"setenv hv_dtb_addr ${fdtcontroladdr}"),
        "{t2:?}"
    );
    assert!(!t2.iter().any(|c| c.starts_with("fdt move")), "{t2:?}");
}

fn uboot() -> UBoot {
    let mut u = qemu_board().uboot;
    u.prompt_timeout = SHORT;
    u.command_timeout = SHORT;
    u.boot_timeout = SHORT;
    u
}

#[test]
fn stops_autoboot_or_takes_the_prompt() {
    let fake = FakeConsole::new("U-Boot 2023.01\r\nHit any key to stop autoboot:  2 ")
        .reply(" ", "\x08\x08\x08 0 \r\n=> ");
    let mut s = Session::new(Box::new(fake));
    enter_prompt(&mut s, &uboot()).expect("autoboot stopped");

    let mut s = Session::new(Box::new(FakeConsole::new("\r\n=> ")));
    enter_prompt(&mut s, &uboot()).expect("already at the prompt");

    let mut s = Session::new(Box::new(FakeConsole::new("DDR training failed\r\n")));
    let err = enter_prompt(&mut s, &uboot()).expect_err("no prompt");
    assert_eq!(
        err.to_string(),
        "no U-Boot prompt within 1 s (waited for \"Hit any key to stop autoboot\" or \"=> \")"
    );
}

#[test]
fn command_status_is_checked() {
    let u = uboot();
    let ok = "setenv ipaddr 10.0.2.15; echo hil-rc=$?\n";
    let bad = "tftpboot ${hv_image_addr} partita.bin; echo hil-rc=$?\n";
    let fake = FakeConsole::new("=> ")
        .reply(ok, "setenv ipaddr 10.0.2.15; echo hil-rc=$?\r\nhil-rc=0\r\n=> ")
        .reply(
            bad,
            "tftpboot ${hv_image_addr} partita.bin; echo hil-rc=$?\r\nUsing virtio-net#32 device\r\nTFTP error: 'File not found' (1)\r\nNot retrying...\r\nhil-rc=1\r\n=> ",
        );
    let mut s = Session::new(Box::new(fake));
    s.expect("=> ", SHORT).expect("prompt");
    let cmd = |text: &str| Command {
        text: text.into(),
        timeout: SHORT,
    };
    run(&mut s, &u, &cmd("setenv ipaddr 10.0.2.15")).expect("status 0");
    let err = run(&mut s, &u, &cmd("tftpboot ${hv_image_addr} partita.bin")).expect_err("status 1");
    assert_eq!(
        err.to_string(),
        "U-Boot command `tftpboot ${hv_image_addr} partita.bin` failed (status 1): Using virtio-net#32 device | TFTP error: 'File not found' (1) | Not retrying..."
    );
    let err = run(&mut s, &u, &cmd("sleep 100")).expect_err("no answer");
    assert_eq!(
        err.to_string(),
        "U-Boot command `sleep 100` did not finish within 1 s"
    );
}

#[test]
fn the_echo_of_the_marker_is_not_a_status() {
    assert_eq!(status_then_prompt(b"x; echo hil-rc=$?\r\n", b"=> "), None);
    assert_eq!(
        status_then_prompt(b"x; echo hil-rc=$?\r\nhil-rc=0\r\n", b"=> "),
        None
    );
    assert_eq!(
        status_then_prompt(b"x; echo hil-rc=$?\r\nhil-rc=12\r\n=> ", b"=> "),
        Some((12, 33))
    );
}

#[test]
fn boot_hands_over_or_fails_readably() {
    let u = uboot();
    let booti = format!("{}\n", u.booti);
    let fake = FakeConsole::new("").reply(
        &booti,
        "## Flattened Device Tree blob at 40000000\r\nStarting kernel ...\r\n\r\npartita 0.1.0",
    );
    let mut s = Session::new(Box::new(fake));
    boot(&mut s, &u).expect("started");
    s.expect("partita 0.1.0", SHORT)
        .expect("the cursor is after Starting kernel");

    let fake = FakeConsole::new("").reply(&booti, "Bad Linux ARM64 Image magic!\r\n=> ");
    let mut s = Session::new(Box::new(fake));
    let err = boot(&mut s, &u).expect_err("bad image");
    assert!(err.to_string().starts_with("`booti ${hv_image_addr} ${hv_bundle_addr}:${hv_bundle_size} ${hv_dtb_addr}` did not start the image: Bad Linux ARM64 Image magic!"), "{err}");

    let mut s = Session::new(Box::new(FakeConsole::new("")));
    let err = boot(&mut s, &u).expect_err("silence");
    assert_eq!(
        err.to_string(),
        "timeout at booti (expected \"Starting kernel\" within 0.2 s)"
    );
}
