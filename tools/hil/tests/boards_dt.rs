//! The real boards' definitions checked against the boards' own upstream
//! device trees (hypervisor/src/fdt/testdata/boards/), parsed by the
//! hypervisor's code: the CPUs and PSCI conduit the after-boot checks
//! expect exist, the console line expected is the one the hypervisor
//! prints for that tree, the load addresses lie in the tree's RAM outside
//! its reserved memory, and the serial rate is the `stdout-path` one.

use std::path::Path;

use hil::Board;
use hil::board::{Dtb, Serial};
use hypervisor::fdt::{Conduit, HostDt};
use hypervisor::summary::Summary;

/// Board file and the DTB it is checked against.
const BOARDS: &[(&str, &str)] = &[
    ("imx95-evk", "imx95-19x19-evk.dtb"),
    ("rock-5b", "rk3588-rock-5b-8g.dtb"),
    ("fvp-base-revc", "fvp-base-revc.dtb"),
];

fn root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every problem of board file `name` against `dtb`.
fn problems(name: &str, dtb: &str) -> Vec<String> {
    let board = Board::find(&root().join("tools/hil/boards"), name).expect("board loads");
    let blob =
        std::fs::read(root().join("hypervisor/src/fdt/testdata/boards").join(dtb)).expect("DTB");
    let hw = HostDt::parse(&blob).expect("DTB parses");
    let summary = Summary::from_dt(&hw).to_string();
    let mut out = Vec::new();
    for text in &board.after_boot.expect {
        if let Some(n) = text
            .strip_prefix("cpu ")
            .and_then(|r| r.strip_suffix(" online"))
            .and_then(|n| n.parse::<usize>().ok())
            && n >= hw.cpus.len()
        {
            out.push(format!(
                "expects {text:?}: the tree has {} CPUs",
                hw.cpus.len()
            ));
        }
        if let Some(via) = text
            .strip_prefix("psci: ")
            .and_then(|t| t.split(" via ").nth(1))
        {
            let conduit = hw.psci.as_ref().map(|p| match p.conduit {
                Conduit::Smc => "smc",
                Conduit::Hvc => "hvc",
            });
            if conduit != Some(via) {
                out.push(format!(
                    "expects {text:?}: the tree's PSCI conduit is {conduit:?}"
                ));
            }
        }
        if text.starts_with("console: ") && !summary.contains(&format!("  {text}\n")) {
            out.push(format!(
                "expects {text:?}, not what the hypervisor prints for this tree:\n{summary}"
            ));
        }
    }
    if !board
        .after_boot
        .expect
        .iter()
        .any(|t| t.starts_with("console: "))
    {
        out.push("no after-boot check of the console line".into());
    }
    let mut loads = vec![("image", board.load.image), ("bundle", board.load.bundle)];
    match board.dtb {
        Dtb::UBootCopy { addr, .. } | Dtb::File { addr, .. } => loads.push(("dtb", addr)),
        Dtb::UBootInPlace => {}
    }
    for (what, addr) in loads {
        if !hw.memory.iter().any(|r| r.base <= addr && addr < r.end()) {
            out.push(format!("{what} at {addr:#x} is outside the tree's RAM"));
        }
        if let Some(r) = hw
            .reserved
            .iter()
            .find(|r| r.base <= addr && addr < r.end())
        {
            out.push(format!(
                "{what} at {addr:#x} is in reserved memory {:#x}..{:#x}",
                r.base,
                r.end()
            ));
        }
    }
    let baud = hw
        .chosen
        .stdout_path
        .as_deref()
        .and_then(|p| p.split_once(':'))
        .and_then(|(_, opts)| {
            let digits: String = opts.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        });
    if let (Serial::Device { baud: b, .. }, Some(want)) = (&board.serial, baud)
        && *b != want
    {
        out.push(format!(
            "serial at {b} baud, the tree's console runs at {want}"
        ));
    }
    out
}

#[test]
fn real_board_files_agree_with_their_device_trees() {
    let mut all = Vec::new();
    for (name, dtb) in BOARDS {
        all.extend(
            problems(name, dtb)
                .into_iter()
                .map(|p| format!("{name}: {p}")),
        );
    }
    assert!(all.is_empty(), "{}", all.join("\n"));
}

#[test]
fn the_check_catches_a_wrong_board_file() {
    // The ROCK 5B's file against the i.MX 95's tree: wrong CPUs, console
    // and RAM.
    let p = problems("rock-5b", "imx95-19x19-evk.dtb");
    for want in [
        "cpu 7 online",
        "console: /serial@feb50000",
        "outside the tree's RAM",
    ] {
        assert!(p.iter().any(|x| x.contains(want)), "{want}: {p:#?}");
    }
}
