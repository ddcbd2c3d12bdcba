//! The emulated PL011: registers as Linux's driver uses them, output as
//! lines, input through the FIFO, and random accesses (guest-controlled:
//! no panic, bounded state).

use super::model::{FIFO_DEPTH, int, reg};
use super::*;
use crate::gic::recorder::RecordingGic;
use crate::virtio::memory::VecMemory;

fn with_ctx<R>(f: impl FnOnce(&AccessCtx<'_>) -> R) -> R {
    let gic = RecordingGic::default();
    let mem = VecMemory::new(0, 0);
    let ctx = AccessCtx {
        vcpu: 0,
        mem: &mem,
        gic: &crate::vgic::hw::NoVcpu(&gic),
    };
    f(&ctx)
}

fn rd(d: &EmulatedPl011, off: u64) -> u32 {
    with_ctx(|c| d.read(c, off, 4).unwrap() as u32)
}

fn wr(d: &EmulatedPl011, off: u64, v: u32) -> Effect {
    with_ctx(|c| d.write(c, off, 4, u64::from(v)).unwrap())
}

/// As Linux's `pl011_startup` leaves it: FIFOs on, 8 bits, RX interrupts.
fn linux_setup(d: &EmulatedPl011) {
    wr(d, reg::CR, 0x301);
    wr(d, reg::LCR_H, 0x70);
    wr(d, reg::IFLS, 0x12);
}

#[test]
fn identifies_as_a_pl011_and_resets_to_known_values() {
    let d = EmulatedPl011::new(7, "g", 33);
    let ids: alloc::vec::Vec<u32> = (0..8).map(|i| rd(&d, 0xfe0 + 4 * i)).collect();
    assert_eq!(ids, [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1]);
    assert_eq!(rd(&d, reg::FR), 0x90, "TXFE | RXFE");
    assert_eq!(rd(&d, reg::CR), 0x300);
    assert_eq!(rd(&d, reg::IFLS), 0x12);
    assert_eq!(rd(&d, reg::RIS), int::TX);
    assert_eq!(rd(&d, reg::MIS), 0);
    // Stored registers read back.
    for (off, v) in [(reg::IBRD, 0x1a), (reg::FBRD, 3), (reg::DMACR, 0)] {
        wr(&d, off, v);
        assert_eq!(rd(&d, off), v);
    }
    // 16-bit accesses, as Linux's amba-pl011 makes them.
    assert_eq!(with_ctx(|c| d.read(c, reg::FR, 2)), Some(0x90));
    assert_eq!(with_ctx(|c| d.read(c, reg::FR, 8)), None);
    assert_eq!(with_ctx(|c| d.read(c, 0x1000, 4)), None);
}

#[test]
fn output_goes_out_in_whole_tagged_lines() {
    crate::console::set_focus(u16::MAX - 1);
    crate::console::set_tags(true);
    let _ = crate::console::lines::take_captured();
    let d = EmulatedPl011::new(3, "guest3", 33);
    // Disabled: nothing is sent.
    for b in b"lost" {
        wr(&d, reg::DR, u32::from(*b));
    }
    linux_setup(&d);
    for b in b"hello\r\nwor" {
        wr(&d, reg::DR, u32::from(*b));
    }
    assert_eq!(crate::console::lines::take_captured(), "[guest3] hello\r\n");
    for b in b"ld\n" {
        wr(&d, reg::DR, u32::from(*b));
    }
    assert_eq!(crate::console::lines::take_captured(), "[guest3] world\n");
    // A line longer than LINE_MAX comes out in pieces, nothing lost.
    for _ in 0..LINE_MAX + 10 {
        wr(&d, reg::DR, u32::from(b'x'));
    }
    wr(&d, reg::DR, u32::from(b'\n'));
    let out = crate::console::lines::take_captured();
    assert_eq!(out.matches('x').count(), LINE_MAX + 10);
    assert_eq!(
        d.counters().tx_bytes.load(Ordering::Relaxed),
        (10 + 3 + LINE_MAX + 11) as u64
    );
    // With the focus, every byte goes out at once (prompts, echo).
    crate::console::set_focus(3);
    wr(&d, reg::DR, u32::from(b'#'));
    assert_eq!(crate::console::lines::take_captured(), "[guest3] #");
    crate::console::set_focus(u16::MAX - 1);
    crate::console::set_tags(false);
}

#[test]
fn input_reaches_the_fifo_and_raises_the_level_interrupt() {
    let d = EmulatedPl011::new(1, "g", 40);
    // Input before the driver is up waits.
    assert_eq!(d.queue_input(b"ab"), 2);
    assert!(d.input_pending());
    assert_eq!(d.deliver_input(), Effect::None, "receiver off");
    linux_setup(&d);
    // Enabling the receiver let it in; unmasking raises the line.
    assert_eq!(rd(&d, reg::FR) & 0x10, 0, "RXFE clear");
    assert_eq!(wr(&d, reg::IMSC, int::RX | int::RT), Effect::RaiseSpi(40));
    assert_eq!(rd(&d, reg::MIS), int::RT, "below the trigger: timeout");
    assert_eq!(rd(&d, reg::DR), u32::from(b'a'));
    assert_eq!(rd(&d, reg::DR), u32::from(b'b'));
    assert_eq!(rd(&d, reg::FR) & 0x10, 0x10);
    assert_eq!(rd(&d, reg::MIS), 0, "the line falls when the FIFO is empty");
    // More input than the FIFO holds: the rest follows as it is read.
    let text: alloc::vec::Vec<u8> = (0..100u8).collect();
    assert_eq!(d.queue_input(&text), 100);
    assert_eq!(d.deliver_input(), Effect::RaiseSpi(40));
    assert_eq!(rd(&d, reg::MIS), int::RX | int::RT);
    let mut got = alloc::vec::Vec::new();
    while rd(&d, reg::FR) & 0x10 == 0 {
        got.push(rd(&d, reg::DR) as u8);
    }
    assert_eq!(got, text);
    assert!(!d.input_pending());
    // A full input queue drops and counts.
    let big = alloc::vec![b'z'; INPUT_MAX + 5];
    assert_eq!(d.queue_input(&big), INPUT_MAX);
    assert_eq!(d.counters().rx_dropped.load(Ordering::Relaxed), 5);
    // Reset empties the FIFO.
    with_ctx(|c| d.reset(c));
    assert_eq!(rd(&d, reg::IMSC), 0);
    const { assert!(FIFO_DEPTH >= 16) };
}

#[test]
fn random_accesses_and_input_never_panic_and_stay_bounded() {
    crate::console::set_focus(u16::MAX - 1);
    let d = EmulatedPl011::new(9, "fuzz", 41);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..200_000 {
        let r = next();
        let off = match r % 4 {
            0 => (r >> 8) % 0x1100,
            _ => ((r >> 8) % 0x13) * 4,
        };
        let width = [1, 2, 4, 8][((r >> 40) % 4) as usize];
        match (r >> 50) % 5 {
            0 => {
                let _ = with_ctx(|c| d.read(c, off, width));
            }
            1 | 2 => {
                let _ = with_ctx(|c| d.write(c, off, width, next()));
            }
            3 => {
                let n = (next() % 64) as usize;
                let bytes = alloc::vec![(r >> 3) as u8; n];
                d.queue_input(&bytes);
            }
            _ => {
                let _ = d.deliver_input();
            }
        }
        assert!(d.state.lock().line.len() <= LINE_MAX);
        assert!(d.input.lock().len() <= INPUT_MAX);
    }
    let _ = crate::console::lines::take_captured();
}
