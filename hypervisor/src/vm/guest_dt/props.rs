//! Building property values for generated nodes: cells, `reg` lists with
//! the root's cell counts, strings and string lists.

use alloc::vec::Vec;

use super::GuestDtError;
use crate::fdt::Prop;
use crate::fdt::cells::MAX_CELLS;
use crate::mm::layout::Region;

/// A one-cell property.
pub fn u32_prop(name: &str, value: u32) -> Prop {
    Prop::new(name, &value.to_be_bytes())
}

/// A two-cell (64-bit) property.
pub fn u64_prop(name: &str, value: u64) -> Prop {
    Prop::new(name, &value.to_be_bytes())
}

/// An empty (boolean) property.
pub fn flag_prop(name: &str) -> Prop {
    Prop::new(name, &[])
}

/// A string-list property (one string gives a plain string property).
/// `what` names the value in the error when a string holds a NUL byte.
pub fn strs_prop(name: &str, strings: &[&str], what: &'static str) -> Result<Prop, GuestDtError> {
    let mut value = Vec::new();
    for s in strings {
        if s.contains('\0') {
            return Err(GuestDtError::BadString { what });
        }
        value.extend_from_slice(s.as_bytes());
        value.push(0);
    }
    Ok(Prop::new(name, &value))
}

/// Appends `value` as `cells` big-endian cells; `None` when it does not
/// fit (or `cells` exceeds [`MAX_CELLS`]).
pub fn push_cells(out: &mut Vec<u8>, value: u64, cells: u32) -> Option<()> {
    if cells > MAX_CELLS || (cells < 2 && value >> (32 * cells) != 0) {
        return None;
    }
    for i in (0..cells).rev() {
        let cell = if i >= 2 {
            0
        } else {
            (value >> (32 * i)) as u32
        };
        out.extend_from_slice(&cell.to_be_bytes());
    }
    Some(())
}

/// A `reg` property for `regions` with the given cell counts; `what` names
/// the regions in the error when a value does not fit.
pub fn reg_prop(
    regions: &[Region],
    address_cells: u32,
    size_cells: u32,
    what: &'static str,
) -> Result<Prop, GuestDtError> {
    let mut value = Vec::new();
    for r in regions {
        push_cells(&mut value, r.base, address_cells).ok_or(GuestDtError::TooWide {
            what,
            value: r.base,
        })?;
        push_cells(&mut value, r.size, size_cells).ok_or(GuestDtError::TooWide {
            what,
            value: r.size,
        })?;
    }
    Ok(Prop::new("reg", &value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells() {
        let mut v = Vec::new();
        assert_eq!(push_cells(&mut v, 0x1_0000_0002, 2), Some(()));
        assert_eq!(v, [0, 0, 0, 1, 0, 0, 0, 2]);
        assert_eq!(push_cells(&mut v, 0x1_0000_0000, 1), None);
        assert_eq!(push_cells(&mut v, 1, 0), None);
        assert_eq!(push_cells(&mut v, 0, 5), None);
        let mut w = Vec::new();
        assert_eq!(push_cells(&mut w, 7, 3), Some(()));
        assert_eq!(w, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]);
        let reg = reg_prop(&[Region::new(0x4000_0000, 0x2000_0000)], 1, 1, "memory");
        assert_eq!(
            reg.map(|p| p.value),
            Ok(alloc::vec![0x40, 0, 0, 0, 0x20, 0, 0, 0])
        );
        let wide = reg_prop(&[Region::new(0x1_0000_0000, 1)], 1, 1, "memory");
        assert_eq!(
            wide,
            Err(GuestDtError::TooWide {
                what: "memory",
                value: 0x1_0000_0000
            })
        );
    }

    #[test]
    fn strings() {
        let p = strs_prop("compatible", &["a", "bc"], "compatible");
        assert_eq!(p.map(|p| p.value), Ok(b"a\0bc\0".to_vec()));
        let bad = strs_prop("bootargs", &["a\0b"], "bootargs");
        assert_eq!(bad, Err(GuestDtError::BadString { what: "bootargs" }));
    }
}
