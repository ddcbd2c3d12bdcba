//! `/chosen` (boot arguments, console path, initrd) and the console UART
//! it names.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use platform::uart::{self, UartError, UartKind, UartProps};

use super::irq::{Interrupt, interrupts};
use super::{to_strings, warn};
use crate::fdt::noderef::NodeRef;
use crate::fdt::tree::Tree;
use crate::mm::layout::Region;

/// What `/chosen` says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chosen {
    /// `bootargs`.
    pub bootargs: Option<String>,
    /// `stdout-path` (or legacy `linux,stdout-path`), verbatim.
    pub stdout_path: Option<String>,
    /// `[linux,initrd-start, linux,initrd-end)`, each 32 or 64 bits.
    pub initrd: Option<Region>,
}

/// The console UART.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uart {
    /// Absolute node path.
    pub path: String,
    /// CPU physical base of its registers (`reg[0]`, translated).
    pub base: u64,
    /// Size of the register frame.
    pub size: u64,
    /// The `compatible` strings (`arm,pl011`, `ns16550a`, ...).
    pub compatible: Vec<String>,
    /// Its interrupt, when decodable.
    pub interrupt: Option<Interrupt>,
    /// The driver its `compatible` (and `reg-shift`, `reg-io-width`)
    /// selects, or why there is none (the hypervisor then never writes to
    /// it).
    pub driver: Result<UartKind, UartError>,
}

/// Reads `/chosen`; malformed values are dropped with a warning.
pub fn chosen(tree: &Tree, warnings: &mut Vec<String>) -> Chosen {
    let Some(node) = tree.find("/chosen") else {
        return Chosen::default();
    };
    let string = |name: &str, warnings: &mut Vec<String>| -> Option<String> {
        let prop = node.prop(name)?;
        let value = prop.as_str().map(ToString::to_string);
        if value.is_none() {
            warn(
                warnings,
                &node,
                format!("`{name}` is not a string; ignored"),
            );
        }
        value
    };
    let bootargs = string("bootargs", warnings);
    let stdout_path =
        string("stdout-path", warnings).or_else(|| string("linux,stdout-path", warnings));
    let initrd = initrd(&node, warnings);
    Chosen {
        bootargs,
        stdout_path,
        initrd,
    }
}

fn initrd(node: &NodeRef<'_>, warnings: &mut Vec<String>) -> Option<Region> {
    let start = node.prop("linux,initrd-start");
    let end = node.prop("linux,initrd-end");
    let (start, end) = match (start, end) {
        (None, None) => return None,
        (Some(s), Some(e)) => (s.as_u64(), e.as_u64()),
        _ => {
            warn(
                warnings,
                node,
                "only one of linux,initrd-start/end; initrd ignored",
            );
            return None;
        }
    };
    let (Some(start), Some(end)) = (start, end) else {
        warn(
            warnings,
            node,
            "linux,initrd-start/end are not 32- or 64-bit values; initrd ignored",
        );
        return None;
    };
    if end < start {
        warn(
            warnings,
            node,
            format!("initrd end {end:#x} below start {start:#x}; initrd ignored"),
        );
        return None;
    }
    (end > start).then(|| Region::new(start, end - start))
}

/// The console: the enabled node `stdout-path` names, else (with a warning
/// if a path was given) the first enabled `arm,pl011`.
pub fn stdout(tree: &Tree, chosen: &Chosen, warnings: &mut Vec<String>) -> Option<Uart> {
    if let Some(path) = &chosen.stdout_path {
        match tree.resolve(path) {
            Some(node) if node.is_available() => {
                if let Some(uart) = uart(tree, &node, warnings) {
                    return Some(uart);
                }
            }
            Some(node) => warn(warnings, &node, "stdout-path names a disabled node"),
            None => warnings.push(format!("/chosen: stdout-path {path:?} names no node")),
        }
    }
    tree.nodes()
        .into_iter()
        .filter(|n| n.is_compatible("arm,pl011") && n.is_available())
        .find_map(|n| uart(tree, &n, warnings))
}

/// A UART description of `node`; `None` (with a warning) without a usable
/// `reg`.
fn uart(tree: &Tree, node: &NodeRef<'_>, warnings: &mut Vec<String>) -> Option<Uart> {
    let region = match node.reg_cpu().map(|r| r.first().copied()) {
        Ok(Some(region)) => region,
        Ok(None) => {
            warn(warnings, node, "empty `reg`; UART ignored");
            return None;
        }
        Err(e) => {
            warn(warnings, node, format!("{e}; UART ignored"));
            return None;
        }
    };
    let interrupt = match interrupts(tree, node) {
        Ok(list) => list.first().copied(),
        Err(e) => {
            warn(warnings, node, format!("UART interrupt: {e}"));
            None
        }
    };
    let props = UartProps {
        reg_shift: node.prop("reg-shift").and_then(|p| p.as_u32()),
        reg_io_width: node.prop("reg-io-width").and_then(|p| p.as_u32()),
    };
    let compatible = to_strings(node.compatible());
    let driver = uart::select(compatible.iter().map(String::as_str), props);
    Some(Uart {
        path: node.path(),
        base: region.base,
        size: region.size,
        compatible,
        interrupt,
        driver,
    })
}
