//! The allocation-free early queries.

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::builder::{AlignedBuf, Builder, minimal};
use super::{dtb, handwritten_blobs, qemu_blobs, r};
use crate::fdt::early::{MAX_EARLY_REGIONS, from_ptr, memory_regions, stdout_uart, total_size};
use crate::fdt::{DtError, HostDt};

#[test]
fn qemu_virt() {
    let blob = dtb!("qemu-virt-smmu.dtb");
    assert_eq!(
        memory_regions(blob).expect("memory").as_slice(),
        &[r(0x4000_0000, 0x4000_0000)]
    );
    assert_eq!(stdout_uart(blob), Some(0x900_0000));
    assert_eq!(total_size(blob), Ok(blob.len()));
}

#[test]
fn agrees_with_hostdt_on_every_blob() {
    for (name, blob) in qemu_blobs().into_iter().chain(handwritten_blobs()) {
        let early = memory_regions(blob);
        match HostDt::parse(blob) {
            Ok(hw) => {
                assert_eq!(
                    early.as_ref().map(|v| v.as_slice()),
                    Ok(hw.memory.as_slice()),
                    "{name}"
                );
                assert_eq!(
                    stdout_uart(blob),
                    hw.stdout.as_ref().map(|u| u.base),
                    "{name}"
                );
            }
            Err(DtError::NoMemory) => assert_eq!(early, Err(DtError::NoMemory), "{name}"),
            Err(_) => assert!(early.is_ok(), "{name}: only HostDt checks cpus"),
        }
    }
}

#[test]
fn aliases_options_and_translation() {
    let blob = dtb!("features.dtb");
    // stdout-path = "serial0:115200n8" -> /soc/serial@1000, bus offset 0x1c000000.
    assert_eq!(stdout_uart(blob), Some(0x1c00_1000));
    let mem = memory_regions(blob).expect("memory");
    assert_eq!(
        mem.as_slice(),
        &[r(0x8000_0000, 0x4000_0000), r(0x8_8000_0000, 0x4000_0000)]
    );
}

#[test]
fn one_cell_roots_and_pl011_fallback() {
    let blob = dtb!("cells32.dtb");
    let mem = memory_regions(blob).expect("memory");
    assert_eq!(
        mem.as_slice(),
        &[
            r(0, 0x1000_0000),
            r(0x2000_0000, 0x1000_0000),
            r(0x8000_0000, 0x800_0000)
        ]
    );
    assert_eq!(stdout_uart(blob), Some(0xfe00_2000));
}

#[test]
fn malformed_memory() {
    let mem = memory_regions(dtb!("bad-memory-reg.dtb")).expect("memory");
    assert_eq!(mem.as_slice(), &[r(0x4000_0000, 0x2000_0000)]);
    assert_eq!(
        memory_regions(dtb!("no-memory.dtb")),
        Err(DtError::NoMemory)
    );
    let mem = memory_regions(dtb!("bad-optional.dtb")).expect("memory");
    assert_eq!(
        mem.as_slice(),
        &[r(0x4000_0000, 0x1000_0000)],
        "the wrapping entry is dropped"
    );
    // Neither the stdout-path target nor any enabled pl011 with reg exists.
    assert_eq!(stdout_uart(dtb!("bad-optional.dtb")), None);
}

#[test]
fn stdout_path_variants() {
    let with = |path: &str| {
        minimal(|b| {
            b.begin("aliases").string("uart", "/bus/uart@10").end();
            b.begin("chosen").string("stdout-path", path).end();
            b.begin("bus")
                .cells("#address-cells", &[1])
                .cells("#size-cells", &[1]);
            b.cells("ranges", &[0, 0, 0x2000_0000, 0x1000]);
            b.begin("uart@10").cells("reg", &[0x10, 0x10]).end();
            b.begin("off@20")
                .cells("reg", &[0x20, 0x10])
                .string("status", "disabled")
                .end();
            b.end();
            b.begin("pl011@9000000")
                .string("compatible", "arm,pl011")
                .cells("reg", &[0, 0x900_0000, 0, 0x1000]);
            b.end();
        })
    };
    for (path, expected) in [
        ("/bus/uart@10", 0x2000_0010),
        ("/bus/uart", 0x2000_0010),
        ("/bus/uart@10:115200n8", 0x2000_0010),
        ("uart", 0x2000_0010),
        ("uart:9600", 0x2000_0010),
        ("/bus/off@20", 0x900_0000),
        ("/bus/none", 0x900_0000),
        ("nosuchalias", 0x900_0000),
        ("", 0x900_0000),
    ] {
        let buf = AlignedBuf::new(&with(path));
        assert_eq!(stdout_uart(buf.bytes()), Some(expected), "{path:?}");
        let hw = HostDt::parse(buf.bytes()).expect("parse");
        assert_eq!(hw.stdout.map(|u| u.base), Some(expected), "{path:?}");
    }
}

#[test]
fn untranslatable_uart_is_not_returned() {
    // A bus without `ranges` is not memory-mapped.
    let blob = minimal(|b| {
        b.begin("chosen").string("stdout-path", "/i2c/uart@1").end();
        b.begin("i2c")
            .cells("#address-cells", &[1])
            .cells("#size-cells", &[0]);
        b.begin("uart@1").cells("reg", &[1]).end();
        b.end();
    });
    let buf = AlignedBuf::new(&blob);
    assert_eq!(stdout_uart(buf.bytes()), None);
}

#[test]
fn too_many_regions() {
    let blob = minimal(|b| {
        b.begin("memory@100000000").string("device_type", "memory");
        let cells: Vec<u32> = (0..MAX_EARLY_REGIONS as u32)
            .flat_map(|i| [1 + i, 0, 0, 0x1000])
            .collect();
        b.cells("reg", &cells).end();
    });
    let buf = AlignedBuf::new(&blob);
    assert_eq!(memory_regions(buf.bytes()), Err(DtError::TooManyRegions));
    let hw = HostDt::parse(buf.bytes()).expect("the owned tree has no such limit");
    assert_eq!(hw.memory.len(), MAX_EARLY_REGIONS + 1);
}

#[test]
fn unaligned_blob_is_refused_early_but_parsed_later() {
    let blob = dtb!("qemu-virt-smmu.dtb");
    let mut shifted = alloc::vec![0u8; blob.len() + 8];
    let off = shifted.as_ptr().align_offset(8) + 1;
    shifted[off..off + blob.len()].copy_from_slice(blob);
    let unaligned = &shifted[off..off + blob.len()];
    assert_eq!(memory_regions(unaligned), Err(DtError::Unaligned));
    assert_eq!(stdout_uart(unaligned), None);
    assert_eq!(total_size(unaligned), Ok(blob.len()));
    let hw = HostDt::parse(unaligned).expect("copied to an aligned buffer");
    assert_eq!(hw.cpus.len(), 4);
}

#[test]
fn from_pointer() {
    let blob = dtb!("qemu-virt-smmu.dtb");
    // SAFETY: `blob` is a static, readable, immutable FDT.
    let got = unsafe { from_ptr(blob.as_ptr() as usize) };
    assert_eq!(got, Ok(blob));
    // SAFETY: a null pointer is rejected before any access.
    let got = unsafe { from_ptr(0) };
    assert_eq!(got, Err(DtError::BadPointer));
    // SAFETY: a misaligned pointer is rejected before any access.
    let got = unsafe { from_ptr(blob.as_ptr() as usize + 2) };
    assert_eq!(got, Err(DtError::Unaligned));
    // SAFETY: a pointer whose blob would wrap is rejected before any access.
    let got = unsafe { from_ptr(usize::MAX - 3) };
    assert_eq!(got, Err(DtError::BadPointer));

    // Larger than the blob is fine: from_ptr cuts it to `totalsize`.
    let mut padded = Vec::from(blob);
    padded.resize(blob.len() + 4096, 0xa5);
    let padded: &'static AlignedBuf = Box::leak(Box::new(AlignedBuf::new(&padded)));
    // SAFETY: a leaked (hence 'static), readable, immutable buffer.
    let got = unsafe { from_ptr(padded.bytes().as_ptr() as usize) };
    assert_eq!(got, Ok(blob));

    let mut garbage = AlignedBuf::new(&[0u8; 64]);
    garbage.bytes_mut()[..4].copy_from_slice(&0xd00d_feedu32.to_be_bytes());
    garbage.bytes_mut()[4..8].copy_from_slice(&(3u32 << 20).to_be_bytes());
    let garbage: &'static AlignedBuf = Box::leak(Box::new(garbage));
    // SAFETY: 64 readable bytes; the oversized total is refused before use.
    let got = unsafe { from_ptr(garbage.bytes().as_ptr() as usize) };
    assert_eq!(got, Err(DtError::BadTotalSize { size: 3 << 20 }));
    let zeros: &'static AlignedBuf = Box::leak(Box::new(AlignedBuf::new(&[0u8; 64])));
    // SAFETY: 64 readable bytes; the missing magic is refused.
    let got = unsafe { from_ptr(zeros.bytes().as_ptr() as usize) };
    assert_eq!(got, Err(DtError::BadMagic { found: 0 }));
}

#[test]
fn no_properties_at_all() {
    // FDT_END is then the very last word of the blob.
    let mut b = Builder::default();
    b.begin("").end();
    let buf = AlignedBuf::new(&b.finish());
    assert_eq!(memory_regions(buf.bytes()), Err(DtError::NoMemory));
    assert_eq!(stdout_uart(buf.bytes()), None);
    assert!(crate::fdt::Tree::parse(buf.bytes()).is_ok());
}

/// A tree whose `stdout-path` names `/soc/serial@1000` with `compatible`
/// (NUL-separated) and optional reg-shift / reg-io-width, beside a PL011
/// aliased as serial1 and a disabled ns16550a as serial0.
fn console_tree(compatible: &[u8], shift: Option<u32>, width: Option<u32>) -> Vec<u8> {
    minimal(|b| {
        b.begin("aliases")
            .string("serial0", "/soc/off@3000")
            .string("serial1", "/pl011@9000000")
            .string("serial2", "/soc/serial@1000")
            .end();
        b.begin("chosen")
            .string("stdout-path", "serial2:115200n8")
            .end();
        b.begin("soc")
            .cells("#address-cells", &[1])
            .cells("#size-cells", &[1])
            .cells("ranges", &[0, 0, 0xfe00_0000, 0x10_0000]);
        b.begin("serial@1000")
            .prop("compatible", compatible)
            .cells("reg", &[0x1000, 0x100]);
        if let Some(s) = shift {
            b.cells("reg-shift", &[s]);
        }
        if let Some(w) = width {
            b.cells("reg-io-width", &[w]);
        }
        b.end();
        b.begin("off@3000")
            .string("compatible", "ns16550a")
            .string("status", "disabled")
            .cells("reg", &[0x3000, 0x100])
            .end();
        b.end();
        b.begin("pl011@9000000")
            .string("compatible", "arm,pl011")
            .cells("reg", &[0, 0x900_0000, 0, 0x1000])
            .end();
    })
}

#[test]
fn the_console_driver_follows_the_nodes_compatible() {
    use crate::fdt::early::{console, other_output};
    use platform::uart::{IoWidth, Layout, UartError, UartKind};
    let dw = UartKind::Ns16550(Layout {
        reg_shift: 2,
        io_width: IoWidth::Word,
    });
    for (compat, shift, width, expected) in [
        (
            &b"rockchip,rk3588-uart\0snps,dw-apb-uart\0"[..],
            Some(2),
            Some(4),
            Ok(dw),
        ),
        (
            b"fsl,imx95-lpuart\0fsl,imx8ulp-lpuart\0fsl,imx7ulp-lpuart\0",
            None,
            None,
            Ok(UartKind::Lpuart),
        ),
        (
            b"fsl,imx8mp-uart\0fsl,imx6q-uart\0",
            None,
            None,
            Ok(UartKind::Imx),
        ),
        (b"arm,sbsa-uart\0", None, None, Ok(UartKind::SbsaUart)),
        (b"acme,mystery-uart\0", None, None, Err(UartError::NoDriver)),
        (b"ns16550a\0", Some(5), None, Err(UartError::BadRegShift(5))),
    ] {
        let buf = AlignedBuf::new(&console_tree(compat, shift, width));
        let early = console(buf.bytes()).expect("console");
        assert_eq!(early.name, "serial@1000");
        assert_eq!(early.base, 0xfe00_1000);
        assert_eq!(early.driver, expected, "{compat:?}");
        let hw = HostDt::parse(buf.bytes()).expect("parse");
        let uart = hw.stdout.expect("stdout");
        assert_eq!(uart.driver, expected, "{compat:?}");
        // Without a driver, the message goes to the lowest enabled serialN
        // alias with one: the PL011 (serial0 is disabled).
        let other = other_output(buf.bytes(), early.base);
        match expected {
            Ok(_) => assert_eq!(early.compatible, uart.compatible[0]),
            Err(_) => assert_eq!(other, Some((0x900_0000, UartKind::Pl011))),
        }
    }
}

#[test]
fn a_console_without_driver_is_not_replaced_by_a_pl011() {
    use crate::fdt::early::{console, other_output};
    // The console is the only UART: nothing else to speak on.
    let blob = minimal(|b| {
        b.begin("aliases").string("serial0", "/pl011@9000000").end();
        b.begin("chosen").string("stdout-path", "serial0").end();
        b.begin("pl011@9000000")
            .string("compatible", "acme,mystery-uart")
            .cells("reg", &[0, 0x900_0000, 0, 0x1000])
            .end();
    });
    let buf = AlignedBuf::new(&blob);
    let uart = console(buf.bytes()).expect("the node is still the console");
    assert_eq!(uart.compatible, "acme,mystery-uart");
    assert!(uart.driver.is_err());
    assert_eq!(other_output(buf.bytes(), uart.base), None);
}
