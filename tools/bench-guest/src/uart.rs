//! PL011 output at 0x0900_0000 (QEMU virt; passed through under partita).

use core::ptr::{read_volatile, write_volatile};

const BASE: usize = 0x0900_0000;

fn putc(c: u8) {
    // SAFETY: the PL011 registers DR (0x00) and FR (0x18); TXFF is bit 5.
    unsafe {
        while read_volatile((BASE + 0x18) as *const u32) & (1 << 5) != 0 {}
        write_volatile(BASE as *mut u32, c as u32);
    }
}

/// Writes a string.
pub fn puts(s: &str) {
    for b in s.bytes() {
        putc(b);
    }
}

/// Writes an unsigned decimal number.
pub fn dec(mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for &b in &buf[i..] {
        putc(b);
    }
}

/// Writes `0x` and a hexadecimal number.
pub fn hex(v: u64) {
    puts("0x");
    let mut started = false;
    for k in (0..16).rev() {
        let d = ((v >> (4 * k)) & 0xf) as u8;
        if d != 0 || started || k == 0 {
            started = true;
            putc(if d < 10 { b'0' + d } else { b'a' + d - 10 });
        }
    }
}

/// Writes raw bytes (e.g. a DT node name), one character each.
pub fn bytes(b: impl Iterator<Item = u8>) {
    for c in b {
        putc(c);
    }
}

/// The PL011 as a `core::fmt::Write` sink (for `Display` values such as
/// typed errors).
pub struct Uart;

impl core::fmt::Write for Uart {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        puts(s);
        Ok(())
    }
}
