//! Early device-tree queries, usable before the heap and the MMU exist: no
//! allocation, no locks, bounded stack. They answer the few questions the
//! boot path needs first (where is RAM, where is the console) straight from
//! the blob. Everything else comes later from [`super::HostDt`].

use core::ops::ControlFlow;

use heapless::Vec;

use super::DtError;
use super::cells::{first_str, reg_entries};
use super::header::{FDT_MAGIC, HEADER_SIZE, Header, MAX_DTB_SIZE, be32};
use super::path::{PathRef, components, name_matches};
use super::walk::{Event, Frame, first_reg, walk};
use crate::mm::layout::Region;

/// Most memory regions [`memory_regions`] can return.
pub const MAX_EARLY_REGIONS: usize = 16;

/// The blob at physical (identity-mapped) address `addr`, as handed over
/// by the boot loader in x0, after checking its header: magic, a total
/// size of at most [`MAX_DTB_SIZE`], block offsets inside the blob.
///
/// # Safety
///
/// If `addr` is non-null and 4-byte aligned, the caller guarantees that the
/// 40 header bytes at `addr` are readable and, when they hold a valid FDT
/// header, that the header's `totalsize` bytes (at most 2 MiB) are readable,
/// not written by anyone, and stay so for the rest of the program.
pub unsafe fn from_ptr(addr: usize) -> Result<&'static [u8], DtError> {
    if addr == 0 || addr.checked_add(MAX_DTB_SIZE).is_none() {
        return Err(DtError::BadPointer);
    }
    if !addr.is_multiple_of(4) {
        return Err(DtError::Unaligned);
    }
    // SAFETY: `addr` is non-null and aligned, and the caller guarantees the
    // header bytes are readable and immutable for the program's lifetime.
    let head: &'static [u8] =
        unsafe { core::slice::from_raw_parts(addr as *const u8, HEADER_SIZE) };
    let magic = be32(head, 0).unwrap_or(0);
    if magic != FDT_MAGIC {
        return Err(DtError::BadMagic { found: magic });
    }
    let total = be32(head, 4).unwrap_or(0);
    if !(HEADER_SIZE..=MAX_DTB_SIZE).contains(&(total as usize)) {
        return Err(DtError::BadTotalSize { size: total });
    }
    // SAFETY: the header is valid and `totalsize` is at most MAX_DTB_SIZE,
    // so by the caller's guarantee these bytes are readable and immutable;
    // `addr + total` does not wrap (checked above against MAX_DTB_SIZE).
    let blob: &'static [u8] =
        unsafe { core::slice::from_raw_parts(addr as *const u8, total as usize) };
    Header::read(blob)?;
    Ok(blob)
}

/// The blob's `totalsize` after checking its header (see [`Header::read`]).
pub fn total_size(dtb: &[u8]) -> Result<usize, DtError> {
    Header::read(dtb).map(|h| h.total_size)
}

/// The RAM described by all enabled `device_type = "memory"` nodes directly
/// below the root, decoded with the root's `#address-cells`/`#size-cells`,
/// in tree order. Nodes with a malformed `reg` are skipped whole; entries of
/// size 0 or wrapping past the top of the address space are skipped (the
/// same rules as [`super::HostDt`], which also reports them).
///
/// Errors: the blob is malformed, more than [`MAX_EARLY_REGIONS`] regions,
/// or no region at all ([`DtError::NoMemory`]).
pub fn memory_regions(dtb: &[u8]) -> Result<Vec<Region, MAX_EARLY_REGIONS>, DtError> {
    let mut regions: Vec<Region, MAX_EARLY_REGIONS> = Vec::new();
    let mut overflow = false;
    walk(dtb, |event| {
        let Event::Node([root, node]) = event else {
            return ControlFlow::Continue(());
        };
        if !is_memory(node) {
            return ControlFlow::Continue(());
        }
        let entries = match (
            node.reg,
            root.child_address_cells(),
            root.child_size_cells(),
        ) {
            (Some(reg), Some(ac), Some(sc)) => reg_entries(reg, ac, sc),
            _ => None,
        };
        for region in entries.into_iter().flatten() {
            if region.size == 0 || region.checked_end().is_none() {
                continue;
            }
            if regions.push(region).is_err() {
                overflow = true;
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    })?;
    if overflow {
        Err(DtError::TooManyRegions)
    } else if regions.is_empty() {
        Err(DtError::NoMemory)
    } else {
        Ok(regions)
    }
}

/// An enabled memory node.
fn is_memory(node: &Frame<'_>) -> bool {
    node.device_type.and_then(first_str) == Some("memory") && node.available()
}

/// The base address of the console UART: the node named by
/// `/chosen/stdout-path` (or `linux,stdout-path`), with aliases resolved
/// and `:options` stripped, if it is enabled and has a translatable `reg`;
/// otherwise the first enabled `arm,pl011` node. `None` if neither exists
/// or the blob is malformed.
pub fn stdout_uart(dtb: &[u8]) -> Option<u64> {
    stdout_path(dtb)
        .and_then(|path| node_base(dtb, path))
        .or_else(|| first_compatible_base(dtb, "arm,pl011"))
}

/// The path named by `/chosen`'s stdout-path, with an alias resolved.
fn stdout_path(dtb: &[u8]) -> Option<(&str, &str)> {
    let mut value = None;
    walk(dtb, |event| match event {
        Event::Prop {
            stack: [_, chosen],
            name,
            value: v,
        } if chosen.name == "chosen" => {
            if name == "stdout-path" || (name == "linux,stdout-path" && value.is_none()) {
                value = first_str(v);
            }
            ControlFlow::Continue(())
        }
        _ => ControlFlow::Continue(()),
    })
    .ok()?;
    match PathRef::parse(value?)? {
        PathRef::Absolute(path) => Some((path, "")),
        PathRef::Alias { alias, rest } => Some((alias_target(dtb, alias)?, rest)),
    }
}

/// The path that `/aliases/<alias>` names.
fn alias_target<'dt>(dtb: &'dt [u8], alias: &str) -> Option<&'dt str> {
    let mut target = None;
    walk(dtb, |event| match event {
        Event::Prop {
            stack: [_, aliases],
            name,
            value,
        } if aliases.name == "aliases" && name == alias => {
            target = first_str(value).filter(|t| t.starts_with('/'));
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    })
    .ok()?;
    target
}

/// The translated base of the enabled node at `path` followed by `rest`.
fn node_base(dtb: &[u8], (path, rest): (&str, &str)) -> Option<u64> {
    let wanted = components(path).chain(components(rest));
    let mut base = None;
    walk(dtb, |event| {
        let Event::Node(stack) = event else {
            return ControlFlow::Continue(());
        };
        let names = stack.iter().skip(1).map(|f| f.name);
        let same_len = names.clone().count() == wanted.clone().count();
        if same_len && names.zip(wanted.clone()).all(|(n, w)| name_matches(n, w)) {
            let usable = stack.last().is_some_and(Frame::available);
            base = if usable {
                first_reg(stack).map(|(b, _)| b)
            } else {
                None
            };
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    })
    .ok()?;
    base
}

/// The translated base of the first enabled node compatible with `compat`.
fn first_compatible_base(dtb: &[u8], compat: &str) -> Option<u64> {
    let mut base = None;
    walk(dtb, |event| {
        let Event::Node(stack) = event else {
            return ControlFlow::Continue(());
        };
        let wanted = stack
            .last()
            .is_some_and(|n| n.is_compatible(compat) && n.available());
        match first_reg(stack).filter(|_| wanted) {
            Some((b, _)) => {
                base = Some(b);
                ControlFlow::Break(())
            }
            None => ControlFlow::Continue(()),
        }
    })
    .ok()?;
    base
}
