//! Malformed and hostile input: truncations, garbage, random mutations and
//! structural corner cases must give `Err` (or a partial result), never a
//! panic.

use alloc::vec::Vec;

use super::builder::{AlignedBuf, Builder, minimal};
use super::{dtb, handwritten_blobs, qemu_blobs};
use crate::fdt::early::{memory_regions, stdout_uart, total_size};
use crate::fdt::header::Header;
use crate::fdt::{DtError, HostDt, MAX_DEPTH, Tree};

use crate::test_rng::Rng;

/// Runs every entry point on `bytes`; returns whether the full parse
/// succeeded.
fn exercise(bytes: &[u8]) -> bool {
    let _ = total_size(bytes);
    let _ = memory_regions(bytes);
    let _ = stdout_uart(bytes);
    let _ = Tree::parse(bytes);
    HostDt::parse(bytes).is_ok()
}

fn put32(bytes: &mut [u8], off: usize, value: u32) {
    if let Some(dst) = bytes.get_mut(off..off + 4) {
        dst.copy_from_slice(&value.to_be_bytes());
    }
}

#[test]
fn every_prefix_is_refused() {
    for (name, blob) in qemu_blobs().into_iter().take(1).chain(handwritten_blobs()) {
        for len in 0..blob.len() {
            let prefix = &blob[..len];
            assert!(Tree::parse(prefix).is_err(), "{name}: prefix {len}");
            assert!(memory_regions(prefix).is_err(), "{name}: prefix {len}");
            assert!(stdout_uart(prefix).is_none(), "{name}: prefix {len}");
            assert!(HostDt::parse(prefix).is_err(), "{name}: prefix {len}");
        }
    }
}

#[test]
fn every_prefix_with_a_consistent_header_is_refused() {
    // Rewrite the header so the prefix looks complete: the structure block
    // is then cut at every possible token boundary and mid-token.
    for (name, blob) in [
        ("qemu-virt-smmu", dtb!("qemu-virt-smmu.dtb")),
        ("features", dtb!("features.dtb")),
    ] {
        let header = Header::read(blob).expect("valid");
        let strings = &blob[header.off_dt_strings..header.off_dt_strings + header.size_dt_strings];
        for cut in header.off_dt_struct..header.off_dt_struct + header.size_dt_struct - 4 {
            // Layout: header + reservation block, struct[..cut], strings.
            let mut bytes = Vec::from(&blob[..cut]);
            while !bytes.len().is_multiple_of(4) {
                bytes.push(0);
            }
            let strings_off = bytes.len();
            bytes.extend_from_slice(strings);
            let total = bytes.len() as u32;
            put32(&mut bytes, 4, total);
            put32(&mut bytes, 12, strings_off as u32);
            put32(&mut bytes, 36, (strings_off - header.off_dt_struct) as u32);
            let buf = AlignedBuf::new(&bytes);
            assert!(Tree::parse(buf.bytes()).is_err(), "{name}: cut at {cut}");
            exercise(buf.bytes());
        }
    }
}

#[test]
fn random_bytes_are_refused() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let len = rng.index(600);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Half the time, give it a plausible header so parsing goes deeper.
        if rng.next().is_multiple_of(2) && len >= 40 {
            put32(&mut bytes, 0, 0xd00d_feed);
            put32(&mut bytes, 4, len as u32);
            let struct_off = 40 + 4 * rng.index(8);
            put32(&mut bytes, 8, struct_off as u32);
            put32(&mut bytes, 12, rng.index(len) as u32);
            put32(&mut bytes, 16, 40);
            put32(&mut bytes, 20, 17);
            put32(&mut bytes, 24, 16);
            put32(&mut bytes, 32, rng.index(len) as u32);
            put32(
                &mut bytes,
                36,
                (4 * rng.index(len.saturating_sub(struct_off) / 4)) as u32,
            );
        }
        let buf = AlignedBuf::new(&bytes);
        assert!(!exercise(buf.bytes()));
    }
}

#[test]
fn random_mutations_never_panic() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let interesting = [
        0u32,
        1,
        2,
        3,
        4,
        9,
        0xffff_ffff,
        0x7fff_ffff,
        0x8000_0000,
        0x10,
        0x1000,
    ];
    let blobs: Vec<&[u8]> = qemu_blobs()
        .into_iter()
        .chain(handwritten_blobs())
        .map(|(_, b)| b)
        .collect();
    let mut parsed = 0;
    for round in 0..4000 {
        let blob = blobs[round % blobs.len()];
        let mut buf = AlignedBuf::new(blob);
        let bytes = buf.bytes_mut();
        for _ in 0..1 + rng.index(4) {
            let at = rng.index(bytes.len());
            match rng.index(3) {
                0 => bytes[at] ^= 1 << rng.index(8),
                1 => bytes[at] = rng.next() as u8,
                _ => {
                    let word = (at / 4) * 4;
                    put32(bytes, word, interesting[rng.index(interesting.len())]);
                }
            }
        }
        if exercise(buf.bytes()) {
            parsed += 1;
        }
    }
    // Changes to property data still parse: the mutations do not all stop
    // at the header.
    assert!(parsed > 400, "{parsed}");
}

#[test]
fn header_corruptions() {
    let blob = dtb!("qemu-virt-smmu.dtb");
    let cases: [(usize, u32, DtError); 8] = [
        (0, 0xfeed_d00d, DtError::BadMagic { found: 0xfeed_d00d }),
        (4, 39, DtError::BadTotalSize { size: 39 }),
        (
            4,
            (2 << 20) + 4,
            DtError::BadTotalSize {
                size: (2 << 20) + 4,
            },
        ),
        (
            4,
            blob.len() as u32 + 4,
            DtError::Truncated {
                total: blob.len() + 4,
                available: blob.len(),
            },
        ),
        (
            20,
            16,
            DtError::BadVersion {
                version: 16,
                last_comp: 16,
            },
        ),
        (8, 2, DtError::BadLayout),
        (8, 0x7fff_fffc, DtError::BadLayout),
        (36, 0xffff_fff0, DtError::BadLayout),
    ];
    for (off, value, expected) in cases {
        let mut buf = AlignedBuf::new(blob);
        put32(buf.bytes_mut(), off, value);
        assert_eq!(
            Tree::parse(buf.bytes()).err(),
            Some(expected),
            "word at {off} = {value:#x}"
        );
        assert_eq!(memory_regions(buf.bytes()).err(), Some(expected));
    }
    assert_eq!(
        Tree::parse(&blob[..10]).err(),
        Some(DtError::TooShort { len: 10 })
    );
}

#[test]
fn trailing_bytes_after_totalsize_are_ignored() {
    let blob = dtb!("qemu-virt-smmu.dtb");
    let mut padded = Vec::from(blob);
    padded.resize(1 << 20, 0xff);
    let buf = AlignedBuf::new(&padded);
    let hw = HostDt::parse(buf.bytes()).expect("parse");
    assert_eq!(hw.cpus.len(), 4);
    assert_eq!(memory_regions(buf.bytes()).map(|m| m.len()), Ok(1));
}

#[test]
fn nesting_limit() {
    let nested = |depth: usize| {
        let mut b = Builder::default();
        b.begin("");
        for i in 1..depth {
            b.begin(&alloc::format!("n{i}"));
        }
        for _ in 0..depth {
            b.end();
        }
        AlignedBuf::new(&b.finish())
    };
    assert!(Tree::parse(nested(MAX_DEPTH).bytes()).is_ok());
    assert_eq!(
        Tree::parse(nested(MAX_DEPTH + 1).bytes()).err(),
        Some(DtError::TooDeep)
    );
    assert_eq!(
        memory_regions(nested(MAX_DEPTH + 1).bytes()).err(),
        Some(DtError::TooDeep)
    );
    assert_eq!(
        Tree::parse(nested(1000).bytes()).err(),
        Some(DtError::TooDeep)
    );
}

#[test]
fn structural_errors() {
    let parse = |b: &mut Builder| Tree::parse(AlignedBuf::new(&b.finish()).bytes()).err();
    let structure = |e: Option<DtError>| matches!(e, Some(DtError::BadStructure { .. }));
    // Unclosed root.
    assert!(structure(parse(Builder::default().begin(""))));
    // Extra end.
    assert!(structure(parse(Builder::default().begin("").end().end())));
    // A second root.
    assert!(structure(parse(
        Builder::default().begin("").end().begin("").end()
    )));
    // A property before any node.
    assert!(structure(parse(
        Builder::default().cells("x", &[1]).begin("").end()
    )));
    // An unknown token.
    assert!(structure(parse(Builder::default().begin("").word(7).end())));
    // A property longer than the blob.
    assert!(structure(parse(
        Builder::default()
            .begin("")
            .word(3)
            .word(0x7fff_ffff)
            .word(0)
            .end()
    )));
    // A property name offset outside the strings block.
    let e = parse(Builder::default().begin("").word(3).word(0).word(8).end());
    assert!(matches!(e, Some(DtError::BadName { .. })), "{e:?}");
    // Long node names (fdt-rs alone stops at 29 bytes) up to 255 bytes;
    // longer, unterminated and non-UTF-8 names are refused.
    let long = "external-memory-controller@2c60000";
    let named = |name: &str| parse(Builder::default().begin("").begin(name).end().end());
    assert_eq!(named(long), None);
    assert_eq!(named(&"n".repeat(255)), None);
    assert!(matches!(
        named(&"n".repeat(256)),
        Some(DtError::BadName { .. })
    ));
    let tree = Tree::parse(
        AlignedBuf::new(
            &Builder::default()
                .begin("")
                .begin(long)
                .end()
                .end()
                .finish(),
        )
        .bytes(),
    );
    assert_eq!(
        tree.ok()
            .and_then(|t| t.find("/external-memory-controller").map(|n| n.path())),
        Some(alloc::format!("/{long}"))
    );
    // A name whose NUL lies past the end of the structure block.
    let mut b = Builder::default();
    b.word(1).word(0x6161_6161);
    let mut blob = b.finish();
    let struct_size = u32::from_be_bytes([blob[36], blob[37], blob[38], blob[39]]);
    put32(&mut blob, 36, struct_size - 4);
    let e = Tree::parse(AlignedBuf::new(&blob).bytes()).err();
    assert!(matches!(e, Some(DtError::BadName { .. })), "{e:?}");
    let mut b = Builder::default();
    b.word(1).word(0xff00_0000).begin("").end();
    assert!(matches!(parse(&mut b), Some(DtError::BadName { .. })));
    // Nops are skipped anywhere.
    assert!(
        parse(
            Builder::default()
                .word(4)
                .begin("")
                .word(4)
                .cells("x", &[1])
                .word(4)
                .end()
                .word(4)
        )
        .is_none()
    );
}

#[test]
fn unterminated_memreserve() {
    let mut blob = minimal(|_| {});
    // Point the reservation block at the strings block: text never holds
    // a 16-byte zero entry, so the list runs off the end of the blob.
    let strings_off = u32::from_be_bytes([blob[12], blob[13], blob[14], blob[15]]);
    put32(&mut blob, 16, strings_off);
    let buf = AlignedBuf::new(&blob);
    assert_eq!(Tree::parse(buf.bytes()).err(), Some(DtError::BadMemReserve));
}

#[test]
fn hostile_property_shapes() {
    // Cells counts out of range, zero-length and odd-length values: all
    // degrade to warnings or skipped nodes.
    let blob = minimal(|b| {
        b.cells("interrupt-parent", &[0xffff_ffff]);
        b.begin("bus")
            .cells("#address-cells", &[0xffff_ffff])
            .cells("#size-cells", &[5]);
        b.cells("ranges", &[1, 2, 3]);
        b.begin("smmu@0")
            .string("compatible", "arm,smmu-v3")
            .cells("reg", &[0, 0])
            .end();
        b.end();
        b.begin("smmu@1")
            .prop("compatible", b"arm,smmu-v3")
            .prop("reg", &[1, 2, 3])
            .end();
        b.begin("pcie@0")
            .string("compatible", "pci-host-ecam-generic")
            .cells("#address-cells", &[3]);
        b.cells("reg", &[0, 0, 0, 0x1000_0000])
            .prop("ranges", &[0; 7])
            .end();
        b.begin("timer")
            .string("compatible", "arm,armv8-timer")
            .cells("interrupts", &[1, 2])
            .end();
        b.begin("chosen")
            .prop("bootargs", b"no-nul")
            .prop("linux,initrd-start", &[1, 2, 3]);
        b.cells("linux,initrd-end", &[5]).end();
    });
    let buf = AlignedBuf::new(&blob);
    let hw = HostDt::parse(buf.bytes()).expect("required parts are fine");
    assert!(hw.smmus.is_empty() && hw.pcie.is_empty() && hw.timer.is_none());
    assert_eq!(hw.chosen.bootargs, None);
    assert_eq!(hw.chosen.initrd, None);
    assert!(hw.warnings.len() >= 5, "{:?}", hw.warnings);
}
