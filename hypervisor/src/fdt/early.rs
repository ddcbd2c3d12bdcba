//! Early device-tree queries, usable before the heap and the MMU exist: no
//! allocation, no locks, bounded stack. They answer the few questions the
//! boot path needs first (where is RAM, where is the console) straight from
//! the blob. Everything else comes later from [`super::HostDt`].

use core::ops::ControlFlow;

use heapless::Vec;

use super::DtError;
use platform::uart::{self, UartError, UartKind, UartProps};

use super::cells::{first_str, reg_entries, single_u32, str_list};
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

/// The console UART as the early boot code sees it: the node
/// `/chosen/stdout-path` names (or the first enabled `arm,pl011` when no
/// path is given), and the driver its `compatible` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EarlyUart<'dt> {
    /// The node's name (last path component, with its unit address).
    pub name: &'dt str,
    /// The CPU physical base of its registers.
    pub base: u64,
    /// Its first `compatible` string (empty if it has none).
    pub compatible: &'dt str,
    /// The driver for it, or why there is none.
    pub driver: Result<UartKind, UartError>,
}

/// The console UART: the node named by `/chosen/stdout-path` (or
/// `linux,stdout-path`), with aliases resolved and `:options` stripped, if
/// it is enabled and has a translatable `reg`; otherwise the first enabled
/// `arm,pl011` node. `None` if neither exists or the blob is malformed.
pub fn console(dtb: &[u8]) -> Option<EarlyUart<'_>> {
    stdout_path(dtb)
        .and_then(|path| uart_at(dtb, path))
        .or_else(|| first_pl011(dtb))
}

/// The base address of [`console`]'s UART, whether it has a driver or not.
pub fn stdout_uart(dtb: &[u8]) -> Option<u64> {
    console(dtb).map(|u| u.base)
}

/// Where to say that the console has no driver: the UART of the lowest
/// `/aliases/serialN` that is enabled, has a driver and is not at
/// `console_base`. Returns its base and kind.
pub fn other_output(dtb: &[u8], console_base: u64) -> Option<(u64, UartKind)> {
    let mut aliases: Vec<(u32, &str), 16> = Vec::new();
    walk(dtb, |event| match event {
        Event::Prop {
            stack: [_, node],
            name,
            value,
        } if node.name == "aliases" => {
            let n = name
                .strip_prefix("serial")
                .and_then(|n| n.parse::<u32>().ok());
            if let (Some(n), Some(path)) = (n, first_str(value).filter(|t| t.starts_with('/'))) {
                // More than 16 serial aliases: the rest are not tried.
                let _ = aliases.push((n, path));
            }
            ControlFlow::Continue(())
        }
        _ => ControlFlow::Continue(()),
    })
    .ok()?;
    aliases.sort_unstable_by_key(|(n, _)| *n);
    aliases.iter().find_map(|(_, path)| {
        let u = uart_at(dtb, (path, ""))?;
        (u.base != console_base).then_some((u.base, u.driver.ok()?))
    })
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

/// The UART at the enabled node at `path` followed by `rest`, if it has a
/// translatable `reg`.
fn uart_at<'dt>(dtb: &'dt [u8], (path, rest): (&str, &str)) -> Option<EarlyUart<'dt>> {
    let wanted = components(path).chain(components(rest));
    let at_wanted = |stack: &[Frame<'_>]| {
        let names = stack.iter().skip(1).map(|f| f.name);
        names.clone().count() == wanted.clone().count()
            && names.zip(wanted.clone()).all(|(n, w)| name_matches(n, w))
    };
    let mut props = UartProps::default();
    let mut found = None;
    walk(dtb, |event| match event {
        Event::Prop { stack, name, value } if at_wanted(stack) => {
            match name {
                "reg-shift" => props.reg_shift = single_u32(value),
                "reg-io-width" => props.reg_io_width = single_u32(value),
                _ => {}
            }
            ControlFlow::Continue(())
        }
        Event::Node(stack) if at_wanted(stack) => {
            found = stack
                .last()
                .filter(|n| n.available())
                .and_then(|_| early_uart(stack, props));
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    })
    .ok()?;
    found
}

/// The UART of the last node of `stack` (its properties `props`).
fn early_uart<'dt>(stack: &[Frame<'dt>], props: UartProps) -> Option<EarlyUart<'dt>> {
    let node = stack.last()?;
    let (base, _) = first_reg(stack)?;
    let compatible = node.compatible.and_then(str_list);
    Some(EarlyUart {
        name: node.name,
        base,
        compatible: node.compatible.and_then(first_str).unwrap_or(""),
        driver: uart::select(compatible.into_iter().flatten(), props),
    })
}

/// The first enabled `arm,pl011` node with a translatable `reg`.
fn first_pl011(dtb: &[u8]) -> Option<EarlyUart<'_>> {
    let mut found = None;
    walk(dtb, |event| {
        let Event::Node(stack) = event else {
            return ControlFlow::Continue(());
        };
        let wanted = stack
            .last()
            .is_some_and(|n| n.is_compatible("arm,pl011") && n.available());
        match early_uart(stack, UartProps::default()).filter(|_| wanted) {
            Some(u) => {
                found = Some(u);
                ControlFlow::Break(())
            }
            None => ControlFlow::Continue(()),
        }
    })
    .ok()?;
    found
}
