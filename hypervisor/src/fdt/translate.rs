//! Address translation through a bus node's `ranges`: a child-bus address
//! is mapped to the parent bus, one level at a time, until it is a CPU
//! physical address. No allocation.

use super::cells::{MAX_CELLS, entries, read_cells};

/// Maps `addr`, an address on the bus below a node, to the bus above it
/// using that node's `ranges` value. `child_ac`/`child_sc` are the node's own
/// `#address-cells`/`#size-cells`, `parent_ac` its parent's
/// `#address-cells`. An empty `ranges` is the identity; `None` when no entry
/// covers `addr` or the value is malformed.
pub fn through_ranges(
    ranges: &[u8],
    child_ac: u32,
    parent_ac: u32,
    child_sc: u32,
    addr: u64,
) -> Option<u64> {
    if ranges.is_empty() {
        return Some(addr);
    }
    if child_ac > MAX_CELLS || parent_ac > MAX_CELLS || child_sc > MAX_CELLS {
        return None;
    }
    let stride = child_ac + parent_ac + child_sc;
    for entry in entries(ranges, stride)? {
        let (Some(child), Some(parent), Some(size)) = (
            read_cells(entry, 0, child_ac),
            read_cells(entry, child_ac as usize, parent_ac),
            read_cells(entry, (child_ac + parent_ac) as usize, child_sc),
        ) else {
            continue;
        };
        let offset = addr.wrapping_sub(child);
        if addr >= child && offset < size {
            return parent.checked_add(offset);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        // <child 1 cell> <parent 2 cells> <size 1 cell>
        let r = [0, 0, 0, 0, 0, 0, 0, 0, 0x0c, 0, 0, 0, 0x02, 0, 0, 0];
        assert_eq!(through_ranges(&r, 1, 2, 1, 0x1000), Some(0x0c00_1000));
        assert_eq!(through_ranges(&r, 1, 2, 1, 0x0200_0000), None);
        assert_eq!(through_ranges(&[], 1, 2, 1, 0x1234), Some(0x1234));
        assert_eq!(through_ranges(&r[..12], 1, 2, 1, 0), None);
        assert_eq!(
            through_ranges(&r, 1, 1, 1, 0),
            None,
            "length does not match cells"
        );
        let top = [
            0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 0x20,
        ];
        assert_eq!(
            through_ranges(&top, 1, 2, 1, 0x10),
            None,
            "overflow is refused"
        );
    }
}
