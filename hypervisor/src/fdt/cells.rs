//! Decoding of property values: big-endian cells, multi-cell numbers,
//! `reg`-style entry lists and NUL-separated string lists. Every function
//! checks lengths and returns `None` on malformed input. No allocation.

use super::header::be32;
use crate::mm::layout::Region;

/// Largest `#address-cells` / `#size-cells` accepted (PCI uses 3).
pub const MAX_CELLS: u32 = 4;

/// Cell `index` (a big-endian `u32`) of `bytes`.
pub fn cell(bytes: &[u8], index: usize) -> Option<u32> {
    be32(bytes, index.checked_mul(4)?)
}

/// A number spread over `n` cells starting at cell `index`; `n = 0` gives 0.
/// Up to [`MAX_CELLS`] cells are accepted as long as the value fits in 64
/// bits (the cells above the low two are zero).
pub fn read_cells(bytes: &[u8], index: usize, n: u32) -> Option<u64> {
    if n > MAX_CELLS {
        return None;
    }
    let mut value: u64 = 0;
    for i in 0..n as usize {
        let c = cell(bytes, index.checked_add(i)?)?;
        if value >> 32 != 0 {
            return None;
        }
        value = (value << 32) | c as u64;
    }
    Some(value)
}

/// A property holding exactly one cell.
pub fn single_u32(bytes: &[u8]) -> Option<u32> {
    if bytes.len() == 4 {
        cell(bytes, 0)
    } else {
        None
    }
}

/// A `#address-cells`-style property: exactly one cell, at most [`MAX_CELLS`].
pub fn cell_count(bytes: &[u8]) -> Option<u32> {
    single_u32(bytes).filter(|&n| n <= MAX_CELLS)
}

/// Splits a value into entries of `stride` cells; `None` when the length is
/// not a whole, non-zero number of entries (an empty value has no entries).
pub fn entries(bytes: &[u8], stride: u32) -> Option<core::slice::ChunksExact<'_, u8>> {
    let stride_bytes = (stride as usize).checked_mul(4).filter(|&s| s > 0)?;
    if !bytes.len().is_multiple_of(stride_bytes) {
        return None;
    }
    Some(bytes.chunks_exact(stride_bytes))
}

/// Decodes a `reg`-style list of `(address, size)` pairs with the given cell
/// counts. `None` if the length is not a multiple of the entry size or a
/// number does not fit in 64 bits. Entries may be empty or wrap; callers
/// decide what to do with them.
pub fn reg_entries(bytes: &[u8], address_cells: u32, size_cells: u32) -> Option<RegIter<'_>> {
    if address_cells > MAX_CELLS || size_cells > MAX_CELLS {
        return None;
    }
    let chunks = entries(bytes, address_cells + size_cells)?;
    let expected = chunks.len();
    let iter = RegIter {
        chunks,
        address_cells,
        size_cells,
    };
    // Decode every entry once up front (the iterator stops at the first bad
    // one), so that a returned iterator yields all entries.
    (iter.clone().count() == expected).then_some(iter)
}

/// Iterator over decoded `reg` entries (see [`reg_entries`]).
#[derive(Clone, Debug)]
pub struct RegIter<'a> {
    chunks: core::slice::ChunksExact<'a, u8>,
    address_cells: u32,
    size_cells: u32,
}

impl Iterator for RegIter<'_> {
    type Item = Region;

    fn next(&mut self) -> Option<Region> {
        let chunk = self.chunks.next()?;
        let base = read_cells(chunk, 0, self.address_cells)?;
        let size = read_cells(chunk, self.address_cells as usize, self.size_cells)?;
        Some(Region::new(base, size))
    }
}

/// The strings of a NUL-separated string list (`compatible`, `*-names`).
/// `None` unless the value is non-empty, NUL-terminated and UTF-8.
pub fn str_list(bytes: &[u8]) -> Option<core::str::Split<'_, char>> {
    let body = bytes.strip_suffix(&[0])?;
    Some(core::str::from_utf8(body).ok()?.split('\0'))
}

/// The first string of a string property.
pub fn first_str(bytes: &[u8]) -> Option<&str> {
    str_list(bytes)?.next()
}

/// True when the string list `bytes` contains `wanted`.
pub fn list_contains(bytes: &[u8], wanted: &str) -> bool {
    str_list(bytes).is_some_and(|mut list| list.any(|s| s == wanted))
}

/// True for a `status` value meaning "usable": absent, `"okay"` or `"ok"`.
pub fn status_okay(status: Option<&[u8]>) -> bool {
    match status {
        None => true,
        Some(value) => matches!(first_str(value), Some("okay" | "ok")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        let b = [0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        assert_eq!(cell(&b, 2), Some(3));
        assert_eq!(cell(&b, 3), None);
        assert_eq!(cell(&b, usize::MAX), None);
        assert_eq!(read_cells(&b, 0, 2), Some(0x1_0000_0002));
        assert_eq!(read_cells(&b, 1, 0), Some(0));
        assert_eq!(read_cells(&b, 0, 3), None, "does not fit in 64 bits");
        assert_eq!(read_cells(&[0; 12], 0, 3), Some(0));
        assert_eq!(read_cells(&b, 2, 2), None);
        assert_eq!(read_cells(&b, 0, 5), None);
        assert_eq!(single_u32(&b[..4]), Some(1));
        assert_eq!(single_u32(&b), None);
        assert_eq!(cell_count(&[0, 0, 0, 5]), None);
    }

    #[test]
    fn regs() {
        let b = [0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0];
        let v: heapless::Vec<Region, 4> = reg_entries(&b, 2, 2).into_iter().flatten().collect();
        assert_eq!(v.as_slice(), &[Region::new(0x4000_0000, 0x1000_0000)]);
        assert_eq!(reg_entries(&b, 1, 1).map(|i| i.count()), Some(2));
        assert!(reg_entries(&b[..12], 2, 2).is_none());
        assert!(reg_entries(&b, 0, 0).is_none());
        assert!(reg_entries(&b, 5, 0).is_none());
        assert!(reg_entries(&[1; 16], 3, 1).is_none(), "address too wide");
        assert_eq!(reg_entries(&[], 2, 2).map(|i| i.count()), Some(0));
    }

    #[test]
    fn strings() {
        let v = b"arm,pl011\0arm,primecell\0";
        assert_eq!(str_list(v).map(|l| l.count()), Some(2));
        assert!(list_contains(v, "arm,primecell"));
        assert!(!list_contains(v, "arm,pl01"));
        assert_eq!(first_str(b"okay\0"), Some("okay"));
        assert_eq!(first_str(b"okay"), None);
        assert_eq!(first_str(b""), None);
        assert_eq!(first_str(b"\xff\0"), None);
        assert!(status_okay(None));
        assert!(status_okay(Some(b"ok\0")));
        assert!(!status_okay(Some(b"disabled\0")));
        assert!(!status_okay(Some(b"okay")));
    }
}
