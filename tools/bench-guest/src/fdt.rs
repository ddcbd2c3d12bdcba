//! Just enough of a flattened device tree walker: the unit address of a node
//! by name prefix, and the PSCI conduit. Byte-wise reads only (MMU off).

use core::ptr::read_volatile;

const FDT_MAGIC: u32 = 0xd00d_feed;
const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const NOP: u32 = 4;
const END: u32 = 9;

fn byte(a: usize) -> u8 {
    // SAFETY: the caller walks inside the DTB the loader handed over.
    unsafe { read_volatile(a as *const u8) }
}

fn be32(a: usize) -> u32 {
    u32::from_be_bytes([byte(a), byte(a + 1), byte(a + 2), byte(a + 3)])
}

fn strlen(a: usize) -> usize {
    let mut n = 0;
    while byte(a + n) != 0 {
        n += 1;
    }
    n
}

fn starts_with(a: usize, len: usize, prefix: &[u8]) -> bool {
    len >= prefix.len() && prefix.iter().enumerate().all(|(i, &c)| byte(a + i) == c)
}

/// Walks the structure block, calling `f(token, node_name_addr, node_name_len,
/// prop_name_addr, value_addr, value_len)` for nodes and properties; stops
/// when `f` returns Some.
fn walk<T>(
    dtb: usize,
    mut f: impl FnMut(u32, usize, usize, usize, usize, usize) -> Option<T>,
) -> Option<T> {
    if dtb == 0 || dtb & 3 != 0 || be32(dtb) != FDT_MAGIC {
        return None;
    }
    let total = be32(dtb + 4) as usize;
    let mut p = dtb + be32(dtb + 8) as usize;
    let strings = dtb + be32(dtb + 12) as usize;
    let (mut name, mut name_len) = (0usize, 0usize);
    while p < dtb + total {
        match be32(p) {
            BEGIN_NODE => {
                name = p + 4;
                name_len = strlen(name);
                if let Some(r) = f(BEGIN_NODE, name, name_len, 0, 0, 0) {
                    return Some(r);
                }
                p = (p + 4 + name_len + 1 + 3) & !3;
            }
            PROP => {
                let len = be32(p + 4) as usize;
                let pname = strings + be32(p + 8) as usize;
                if let Some(r) = f(PROP, name, name_len, pname, p + 12, len) {
                    return Some(r);
                }
                p = (p + 12 + len + 3) & !3;
            }
            END_NODE | NOP => p += 4,
            END => return None,
            _ => return None,
        }
    }
    None
}

/// The unit address (hex after `@`) of the first node whose name starts
/// with `prefix` (which includes the `@`).
pub fn node_unit_address(dtb: usize, prefix: &[u8]) -> Option<u64> {
    walk(dtb, |tok, name, len, _, _, _| {
        if tok != BEGIN_NODE || !starts_with(name, len, prefix) {
            return None;
        }
        let mut v = 0u64;
        for i in prefix.len()..len {
            let d = match byte(name + i) {
                c @ b'0'..=b'9' => c - b'0',
                c @ b'a'..=b'f' => c - b'a' + 10,
                c @ b'A'..=b'F' => c - b'A' + 10,
                _ => return None,
            };
            v = v << 4 | d as u64;
        }
        Some(v)
    })
}

/// Whether the /psci node's `method` is "smc" (None: no such property).
pub fn psci_method_is_smc(dtb: usize) -> Option<bool> {
    walk(dtb, |tok, name, len, pname, val, vlen| {
        if tok == PROP
            && starts_with(name, len, b"psci")
            && strlen(pname) == 6
            && starts_with(pname, 6, b"method")
        {
            Some(vlen >= 3 && byte(val) == b's')
        } else {
            None
        }
    })
}
