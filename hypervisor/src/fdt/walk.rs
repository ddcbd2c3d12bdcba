//! A no-allocation depth-first walk of the structure block that keeps, for
//! every open node, the few properties needed to interpret it (cells,
//! `ranges`, `reg`, `status`, `device_type`, `compatible`). Used by the
//! early (pre-heap) queries.

use core::ops::ControlFlow;

use super::cells::{cell_count, list_contains, read_cells, status_okay};
use super::cursor::{Cursor, Token};
use super::translate::through_ranges;
use super::{DtError, MAX_DEPTH};

/// What the walker remembers about one open node.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Frame<'dt> {
    /// Node name with unit address (empty for the root).
    pub name: &'dt str,
    /// This node's `#address-cells` value, if present.
    pub address_cells: Option<&'dt [u8]>,
    /// This node's `#size-cells` value, if present.
    pub size_cells: Option<&'dt [u8]>,
    /// This node's `ranges` value, if present.
    pub ranges: Option<&'dt [u8]>,
    /// This node's `reg` value, if present.
    pub reg: Option<&'dt [u8]>,
    /// This node's `status` value, if present.
    pub status: Option<&'dt [u8]>,
    /// This node's `device_type` value, if present.
    pub device_type: Option<&'dt [u8]>,
    /// This node's `compatible` value, if present.
    pub compatible: Option<&'dt [u8]>,
    /// All properties have been seen and [`Event::Node`] was sent.
    announced: bool,
}

impl Frame<'_> {
    /// `#address-cells` for this node's children (default 2); `None` if
    /// malformed.
    pub fn child_address_cells(&self) -> Option<u32> {
        self.address_cells.map_or(Some(2), cell_count)
    }

    /// `#size-cells` for this node's children (default 1); `None` if
    /// malformed.
    pub fn child_size_cells(&self) -> Option<u32> {
        self.size_cells.map_or(Some(1), cell_count)
    }

    /// `status` is absent or okay.
    pub fn available(&self) -> bool {
        status_okay(self.status)
    }

    /// `compatible` contains `wanted`.
    pub fn is_compatible(&self, wanted: &str) -> bool {
        self.compatible.is_some_and(|c| list_contains(c, wanted))
    }
}

/// What the walker reports. `stack` holds the open nodes, root first; the
/// node concerned is the last one.
pub(crate) enum Event<'s, 'dt> {
    /// A property of the last node of `stack`.
    Prop {
        /// Open nodes, root first.
        stack: &'s [Frame<'dt>],
        /// Property name.
        name: &'dt str,
        /// Property value.
        value: &'dt [u8],
    },
    /// All properties of the last node of `stack` have been seen.
    Node(&'s [Frame<'dt>]),
}

/// Walks the whole tree of `dtb`, calling `visit` for every property and
/// node, until the end or until `visit` breaks. Fails on any structural
/// problem met before that point.
pub(crate) fn walk<'dt>(
    dtb: &'dt [u8],
    mut visit: impl FnMut(Event<'_, 'dt>) -> ControlFlow<()>,
) -> Result<(), DtError> {
    let (mut cursor, _) = Cursor::new(dtb)?;
    let mut stack = [Frame::default(); MAX_DEPTH];
    let mut depth = 0usize;
    let mut finished = false;
    loop {
        let offset = cursor.offset();
        let bad = DtError::BadStructure { offset };
        let token = cursor.next_token()?;
        if finished {
            // Nothing may follow the root node but FDT_END.
            return if token.is_none() { Ok(()) } else { Err(bad) };
        }
        match token {
            None => return Err(bad),
            Some(Token::Begin(name)) => {
                // The parent's properties are complete once a child starts.
                let parent = depth.checked_sub(1).and_then(|i| stack.get_mut(i));
                if parent.is_some_and(|p| !core::mem::replace(&mut p.announced, true))
                    && announce(&stack, depth, &mut visit).is_break()
                {
                    return Ok(());
                }
                let slot = stack.get_mut(depth).ok_or(DtError::TooDeep)?;
                *slot = Frame {
                    name,
                    ..Frame::default()
                };
                depth += 1;
            }
            Some(Token::Prop { name, value }) => {
                let frame = depth
                    .checked_sub(1)
                    .and_then(|i| stack.get_mut(i))
                    .ok_or(bad)?;
                match name {
                    "#address-cells" => frame.address_cells = Some(value),
                    "#size-cells" => frame.size_cells = Some(value),
                    "ranges" => frame.ranges = Some(value),
                    "reg" => frame.reg = Some(value),
                    "status" => frame.status = Some(value),
                    "device_type" => frame.device_type = Some(value),
                    "compatible" => frame.compatible = Some(value),
                    _ => {}
                }
                let open = stack.get(..depth).ok_or(bad)?;
                if visit(Event::Prop {
                    stack: open,
                    name,
                    value,
                })
                .is_break()
                {
                    return Ok(());
                }
            }
            Some(Token::End) => {
                let frame = depth
                    .checked_sub(1)
                    .and_then(|i| stack.get_mut(i))
                    .ok_or(bad)?;
                if !frame.announced {
                    frame.announced = true;
                    if announce(&stack, depth, &mut visit).is_break() {
                        return Ok(());
                    }
                }
                depth -= 1;
                finished = depth == 0;
            }
        }
    }
}

/// Sends [`Event::Node`] for the node at `depth - 1`.
fn announce<'dt>(
    stack: &[Frame<'dt>],
    depth: usize,
    visit: &mut impl FnMut(Event<'_, 'dt>) -> ControlFlow<()>,
) -> ControlFlow<()> {
    match stack.get(..depth) {
        Some(open) => visit(Event::Node(open)),
        None => ControlFlow::Continue(()),
    }
}

/// The CPU address of `addr`, a `reg` address of the last node of `stack`,
/// translated through the `ranges` of every ancestor bus below the root.
/// `None` when an ancestor has no `ranges` (not memory-mapped), a value is
/// malformed, or no range covers the address.
pub(crate) fn translate(stack: &[Frame<'_>], addr: u64) -> Option<u64> {
    let mut addr = addr;
    // stack[i] is a bus whose children use its cells; stack[i - 1] its parent.
    let last = stack.len().checked_sub(1)?;
    for i in (1..last).rev() {
        let bus = stack.get(i)?;
        let parent = stack.get(i - 1)?;
        let ranges = bus.ranges?;
        addr = through_ranges(
            ranges,
            bus.child_address_cells()?,
            parent.child_address_cells()?,
            bus.child_size_cells()?,
            addr,
        )?;
    }
    Some(addr)
}

/// The first `reg` entry of the last node of `stack`, base translated to a
/// CPU address: `(base, size)`.
pub(crate) fn first_reg(stack: &[Frame<'_>]) -> Option<(u64, u64)> {
    let node = stack.last()?;
    let parent = stack.get(stack.len().checked_sub(2)?)?;
    let ac = parent.child_address_cells()?;
    let sc = parent.child_size_cells()?;
    let reg = node.reg?;
    let base = read_cells(reg, 0, ac)?;
    let size = read_cells(reg, ac as usize, sc)?;
    Some((translate(stack, base)?, size))
}
