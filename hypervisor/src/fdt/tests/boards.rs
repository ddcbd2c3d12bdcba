//! Golden hardware summaries of real boards' upstream device trees
//! (`testdata/boards/`, from Debian's arm64 kernel package): what the
//! hypervisor would print for each, as far as the tree alone says
//! ([`Summary::from_dt`]: no register read, no CPU started). A change of the
//! parsing or of the summary shows here as a diff; regenerate the files
//! with `PARTITA_UPDATE_GOLDEN=1 cargo test -p hypervisor golden` and
//! review them.

use alloc::string::{String, ToString};

use std::path::Path;

use crate::fdt::HostDt;
use crate::summary::Summary;

/// Each board's DTB and its golden summary file.
const BOARDS: &[&str] = &[
    "imx8mp-evk",
    "imx95-19x19-evk",
    "rk3588-rock-5b-8g",
    "fvp-base-revc",
];

fn dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/fdt/testdata/boards")
}

/// The summary of `board`'s DTB, with the parser's warnings after it.
fn summary_of(board: &str) -> String {
    let blob = std::fs::read(dir().join(format!("{board}.dtb"))).expect("board DTB");
    let hw = HostDt::parse(&blob).expect("the board's DTB parses");
    let mut text = Summary::from_dt(&hw).to_string();
    for w in &hw.warnings {
        text.push_str(&alloc::format!("warning: {w}\n"));
    }
    text
}

#[test]
fn golden_summaries_of_the_boards_dtbs() {
    let update = std::env::var_os("PARTITA_UPDATE_GOLDEN").is_some();
    let mut stale = alloc::vec::Vec::new();
    for board in BOARDS {
        let text = summary_of(board);
        let golden = dir().join(format!("{board}.summary"));
        if update {
            std::fs::write(&golden, &text).expect("write golden");
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        if want != text {
            stale.push(alloc::format!(
                "{board}: summary differs from {}:\n--- golden\n{want}--- now\n{text}",
                golden.display()
            ));
        }
    }
    assert!(stale.is_empty(), "{}", stale.join("\n"));
}

#[test]
fn the_boards_consoles_have_drivers_and_their_smmus_are_found() {
    use platform::uart::{IoWidth, Layout, UartKind};
    let uart = |board: &str| {
        let blob = std::fs::read(dir().join(format!("{board}.dtb"))).expect("DTB");
        let hw = HostDt::parse(&blob).expect("parses");
        let early = crate::fdt::early::console(&blob).map(|u| (u.base, u.driver));
        let stdout = hw.stdout.clone().expect("a console");
        assert_eq!(
            early,
            Some((stdout.base, stdout.driver)),
            "{board}: early and late agree"
        );
        (
            stdout.base,
            stdout.driver,
            hw.smmus.len(),
            hw.gic.map(|g| g.its.len()),
        )
    };
    assert_eq!(
        uart("imx8mp-evk"),
        (0x3089_0000, Ok(UartKind::Imx), 0, Some(0))
    );
    let (base, driver, smmus, _) = uart("imx95-19x19-evk");
    assert_eq!((base, driver), (0x4438_0000, Ok(UartKind::Lpuart)));
    assert_eq!(
        smmus, 0,
        "i.MX 95: its MMU-700 node is disabled in Linux 6.12"
    );
    let (base, driver, ..) = uart("rk3588-rock-5b-8g");
    assert_eq!(
        (base, driver),
        (
            0xfeb5_0000,
            Ok(UartKind::Ns16550(Layout {
                reg_shift: 2,
                io_width: IoWidth::Word
            }))
        )
    );
    let (base, driver, ..) = uart("fvp-base-revc");
    assert_eq!((base, driver), (0x1c09_0000, Ok(UartKind::Pl011)));
    // Every summary names its console's driver.
    for board in BOARDS {
        assert!(summary_of(board).contains(" driver\n"), "{board}");
    }
}
