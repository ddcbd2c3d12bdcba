//! Just enough of a flattened device tree reader: nodes with their parent's
//! `#address-cells` and `#size-cells`, a node's properties, and what the
//! guests need from them (the PSCI conduit, the command line, a node by
//! `compatible` and its `reg`, the virtio-iommu a PCIe host's `iommu-map`
//! names (on virtio-mmio or virtio-pci), the host's ECAM and memory
//! windows).
//! Byte-wise reads only (MMU off).

use core::ptr::read_volatile;
use virtio_pci_probe::Window;

const FDT_MAGIC: u32 = 0xd00d_feed;
const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const NOP: u32 = 4;
const END: u32 = 9;
/// Deepest node nesting followed (QEMU's and partita's trees use 3).
const MAX_DEPTH: usize = 16;

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

fn eq(a: usize, len: usize, s: &[u8]) -> bool {
    len == s.len() && s.iter().enumerate().all(|(i, &c)| byte(a + i) == c)
}

fn starts_with(a: usize, len: usize, prefix: &[u8]) -> bool {
    len >= prefix.len() && prefix.iter().enumerate().all(|(i, &c)| byte(a + i) == c)
}

/// Bytes of the blob, for printing (e.g. a node name).
#[derive(Clone, Copy)]
pub struct Bytes {
    /// Address of the first byte.
    pub addr: usize,
    /// Length in bytes.
    pub len: usize,
}

impl Bytes {
    /// Byte `i`.
    pub fn at(self, i: usize) -> u8 {
        byte(self.addr + i)
    }
    /// Big-endian cell `i`.
    pub fn cell(self, i: usize) -> u32 {
        be32(self.addr + 4 * i)
    }
    /// Number of whole cells.
    pub fn cells(self) -> usize {
        self.len / 4
    }
    /// A value of `n` cells starting at cell `i` (n = 1 or 2).
    pub fn cells_at(self, i: usize, n: usize) -> u64 {
        (0..n).fold(0, |v, k| v << 32 | self.cell(i + k) as u64)
    }
    /// Whether these bytes start with `prefix`.
    pub fn starts(self, prefix: &[u8]) -> bool {
        starts_with(self.addr, self.len, prefix)
    }
    /// Whether this NUL-separated string list holds `s`.
    pub fn has_string(self, s: &[u8]) -> bool {
        let mut start = 0;
        while start < self.len {
            let mut end = start;
            while end < self.len && self.at(end) != 0 {
                end += 1;
            }
            if eq(self.addr + start, end - start, s) {
                return true;
            }
            start = end + 1;
        }
        false
    }
}

/// A node: where its properties start, its name and its parent's cells.
#[derive(Clone, Copy)]
pub struct Node {
    /// The token after the node's name.
    body: usize,
    /// The name (`name@unit`; empty for the root).
    pub name: Bytes,
    /// Nesting depth (0 = root).
    pub depth: usize,
    /// The parent's `#address-cells` (for this node's `reg`).
    pub addr_cells: u32,
    /// The parent's `#size-cells` (for this node's `reg`).
    pub size_cells: u32,
}

/// A flattened device tree in memory.
#[derive(Clone, Copy)]
pub struct Fdt {
    base: usize,
    structs: usize,
    strings: usize,
}

impl Fdt {
    /// The DTB at `addr`, if it carries the FDT magic.
    pub fn new(addr: usize) -> Option<Self> {
        if addr == 0 || addr & 3 != 0 || be32(addr) != FDT_MAGIC {
            return None;
        }
        Some(Self {
            base: addr,
            structs: addr + be32(addr + 8) as usize,
            strings: addr + be32(addr + 12) as usize,
        })
    }

    fn end(self) -> usize {
        self.base + be32(self.base + 4) as usize
    }

    /// Calls `f` for every node in document order; stops at the first Some.
    pub fn nodes<T>(self, mut f: impl FnMut(Node) -> Option<T>) -> Option<T> {
        // cells[d] = #address-cells of the open node at depth d (what its
        // children's `reg` use); the spec's default 2 until a property says.
        // sizes[d]: the same for #size-cells (default 1).
        let mut cells = [2u32; MAX_DEPTH + 1];
        let mut sizes = [1u32; MAX_DEPTH + 1];
        let mut depth = 0usize; // nodes currently open
        let mut p = self.structs;
        while p < self.end() {
            match be32(p) {
                BEGIN_NODE => {
                    if depth > MAX_DEPTH {
                        return None;
                    }
                    let name = Bytes {
                        addr: p + 4,
                        len: strlen(p + 4),
                    };
                    let body = (p + 4 + name.len + 1 + 3) & !3;
                    let node = Node {
                        body,
                        name,
                        depth,
                        addr_cells: if depth == 0 { 2 } else { cells[depth - 1] },
                        size_cells: if depth == 0 { 1 } else { sizes[depth - 1] },
                    };
                    // Its own cells (its properties precede its subnodes).
                    cells[depth] = self.prop(node, b"#address-cells").map_or(2, |v| v.cell(0));
                    sizes[depth] = self.prop(node, b"#size-cells").map_or(1, |v| v.cell(0));
                    if let Some(r) = f(node) {
                        return Some(r);
                    }
                    depth += 1;
                    p = body;
                }
                PROP => p = (p + 12 + be32(p + 4) as usize + 3) & !3,
                END_NODE => {
                    depth = depth.checked_sub(1)?;
                    p += 4;
                }
                NOP => p += 4,
                END => return None,
                _ => return None,
            }
        }
        None
    }

    /// The value of `node`'s property `name`.
    pub fn prop(self, node: Node, name: &[u8]) -> Option<Bytes> {
        let mut p = node.body;
        loop {
            match be32(p) {
                PROP => {
                    let len = be32(p + 4) as usize;
                    let pname = self.strings + be32(p + 8) as usize;
                    if eq(pname, strlen(pname), name) {
                        return Some(Bytes { addr: p + 12, len });
                    }
                    p = (p + 12 + len + 3) & !3;
                }
                NOP => p += 4,
                _ => return None,
            }
        }
    }

    /// The node whose `phandle` (or `linux,phandle`) is `phandle`.
    pub fn by_phandle(self, phandle: u32) -> Option<Node> {
        self.nodes(|n| {
            let v = self
                .prop(n, b"phandle")
                .or_else(|| self.prop(n, b"linux,phandle"))?;
            (v.len == 4 && v.cell(0) == phandle).then_some(n)
        })
    }

    /// The first node whose `compatible` list holds `compatible`.
    pub fn compatible(self, compatible: &[u8]) -> Option<Node> {
        self.nodes(|n| {
            self.prop(n, b"compatible")
                .filter(|c| c.has_string(compatible))
                .map(|_| n)
        })
    }

    /// Entry `i` of `node`'s `reg`: (address, size), read with its parent's
    /// `#address-cells` and `#size-cells` (1 or 2 each).
    pub fn reg(self, node: Node, i: usize) -> Option<(u64, u64)> {
        let (a, s) = (node.addr_cells as usize, node.size_cells as usize);
        if !(1..=2).contains(&a) || s > 2 {
            return None;
        }
        let reg = self.prop(node, b"reg")?;
        let at = i * (a + s);
        if reg.cells() < at + a + s {
            return None;
        }
        let size = if s == 0 { 0 } else { reg.cells_at(at + a, s) };
        Some((reg.cells_at(at, a), size))
    }

    /// `/chosen/bootargs` (without its NUL), if any.
    pub fn bootargs(self) -> Option<Bytes> {
        self.nodes(|n| {
            if n.depth != 1 || !eq(n.name.addr, n.name.len, b"chosen") {
                return None;
            }
            let b = self.prop(n, b"bootargs")?;
            Some(Bytes {
                addr: b.addr,
                len: strlen(b.addr).min(b.len),
            })
        })
    }

    /// Whether the /psci node's `method` is "smc" (None: no such property).
    pub fn psci_method_is_smc(self) -> Option<bool> {
        self.nodes(|n| {
            if n.depth != 1 || !starts_with(n.name.addr, n.name.len, b"psci") {
                return None;
            }
            let m = self.prop(n, b"method")?;
            Some(m.len >= 3 && m.at(0) == b's')
        })
    }
}

/// Where the DT puts a virtio-iommu.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IommuAt {
    /// A `virtio,mmio` node: its window's base (its first `reg`).
    Mmio(u64),
    /// A `virtio,pci-iommu` child of the PCIe host: its requester ID
    /// (bus << 8 | device << 3 | function, from its `reg`).
    Pci(u32),
}

/// The virtio-iommu in front of a PCI function, as the DT describes it.
#[derive(Clone, Copy)]
pub struct Viommu {
    /// The PCIe host node whose `iommu-map` was used.
    pub pci: Node,
    /// The virtio-iommu node (with `#iommu-cells = <1>`).
    pub node: Node,
    /// Where the device is.
    pub at: IommuAt,
    /// The endpoint ID of the requester ID asked for.
    pub endpoint: u32,
}

/// Finds the IOMMU of PCI requester ID `rid` through the first PCIe host
/// (`device_type = "pci"`) with an `iommu-map` (after `iommu-map-mask`), and
/// checks that it is a virtio-iommu with `#iommu-cells = <1>`: a
/// virtio-mmio node, or a `virtio,pci-iommu` child of that host (the
/// binding of a virtio-iommu on virtio-pci, which QEMU and partita write).
pub fn viommu_of_rid(fdt: Fdt, rid: u32) -> Result<Viommu, &'static str> {
    let (pci, map) = fdt
        .nodes(|n| {
            let t = fdt.prop(n, b"device_type")?;
            if !t.has_string(b"pci") {
                return None;
            }
            Some((n, fdt.prop(n, b"iommu-map")?))
        })
        .ok_or("the DT has no PCIe host (device_type \"pci\") with an iommu-map")?;
    let mask = fdt
        .prop(pci, b"iommu-map-mask")
        .map_or(u32::MAX, |m| m.cell(0));
    let id = rid & mask;
    if map.cells() == 0 || map.cells() % 4 != 0 {
        return Err("the PCIe host's iommu-map is not <rid-base phandle iommu-base length>...");
    }
    let (phandle, endpoint) = (0..map.cells() / 4)
        .map(|e| {
            (
                map.cell(4 * e),
                map.cell(4 * e + 1),
                map.cell(4 * e + 2),
                map.cell(4 * e + 3),
            )
        })
        .find(|&(base, _, _, len)| id >= base && id - base < len)
        .map(|(base, ph, ibase, _)| (ph, ibase + (id - base)))
        .ok_or("the PCIe host's iommu-map does not cover the requester ID")?;
    let node = fdt
        .by_phandle(phandle)
        .ok_or("no DT node has the phandle the iommu-map names")?;
    let compatible = fdt
        .prop(node, b"compatible")
        .ok_or("the iommu-map's IOMMU node has no compatible")?;
    match fdt.prop(node, b"#iommu-cells") {
        Some(c) if c.len == 4 && c.cell(0) == 1 => {}
        _ => return Err("the iommu-map's IOMMU node has no #iommu-cells = <1>"),
    }
    let at = if compatible.has_string(b"virtio,mmio") {
        let reg = fdt
            .prop(node, b"reg")
            .filter(|r| {
                node.addr_cells as usize >= 1
                    && node.addr_cells <= 2
                    && r.cells() >= node.addr_cells as usize
            })
            .ok_or("the virtio-iommu node has no usable reg")?;
        IommuAt::Mmio(reg.cells_at(0, node.addr_cells as usize))
    } else if compatible.has_string(b"virtio,pci-iommu") {
        // reg: <phys.hi phys.mid phys.lo size.hi size.lo>, the function's
        // bus, device and function in phys.hi bits 23:8.
        let reg = fdt
            .prop(node, b"reg")
            .filter(|r| node.addr_cells == 3 && r.cells() >= 3)
            .ok_or("the virtio,pci-iommu node has no PCI reg")?;
        IommuAt::Pci((reg.cell(0) >> 8) & 0xffff)
    } else {
        return Err(
            "the iommu-map's IOMMU node is neither \"virtio,mmio\" nor \"virtio,pci-iommu\"",
        );
    };
    Ok(Viommu {
        pci,
        node,
        at,
        endpoint,
    })
}

/// The value of `key=` in a command line of space-separated words, if present.
pub fn arg(cmdline: Bytes, key: &[u8]) -> Option<Bytes> {
    let mut start = 0;
    while start < cmdline.len {
        let mut end = start;
        while end < cmdline.len && cmdline.at(end) != b' ' {
            end += 1;
        }
        let word = Bytes {
            addr: cmdline.addr + start,
            len: end - start,
        };
        if word.len > key.len()
            && starts_with(word.addr, word.len, key)
            && word.at(key.len()) == b'='
        {
            return Some(Bytes {
                addr: word.addr + key.len() + 1,
                len: word.len - key.len() - 1,
            });
        }
        start = end + 1;
    }
    None
}

impl Bytes {
    /// Whether this comma-separated list holds `item`.
    pub fn has_item(self, item: &[u8]) -> bool {
        let mut start = 0;
        while start <= self.len {
            let mut end = start;
            while end < self.len && self.at(end) != b',' {
                end += 1;
            }
            if eq(self.addr + start, end - start, item) {
                return true;
            }
            start = end + 1;
        }
        false
    }

    /// The decimal number these bytes spell, if they do.
    pub fn decimal(self) -> Option<u64> {
        if self.len == 0 || self.len > 19 {
            return None;
        }
        (0..self.len).try_fold(0u64, |v, i| {
            let c = self.at(i);
            c.is_ascii_digit().then(|| v * 10 + u64::from(c - b'0'))
        })
    }
}

/// A PCIe host bridge (`pci-host-ecam-generic`) as the DT describes it.
#[derive(Clone, Copy)]
pub struct PciHost {
    /// The node.
    pub node: Node,
    /// The ECAM window: base and size.
    pub ecam: (u64, u64),
    /// First and last bus number (`bus-range`; 0..=255 without one).
    pub buses: (u32, u32),
    /// The (first) 32-bit memory window (size 0 if none).
    pub mem32: Window,
    /// The (first) 64-bit memory window (size 0 if none).
    pub mem64: Window,
}

impl PciHost {
    /// Both memory windows, for placing BARs.
    pub fn windows(&self) -> [Window; 2] {
        [self.mem32, self.mem64]
    }
}

/// The first node with `device_type = "pci"` and a two-cell `reg`.
pub fn pci_host(fdt: Fdt) -> Option<PciHost> {
    let node = fdt.nodes(|n| {
        fdt.prop(n, b"device_type")
            .filter(|t| t.has_string(b"pci"))
            .map(|_| n)
    })?;
    if node.addr_cells != 2 {
        return None;
    }
    let reg = fdt.prop(node, b"reg").filter(|r| r.cells() >= 4)?;
    let buses = fdt
        .prop(node, b"bus-range")
        .filter(|b| b.cells() >= 2)
        .map_or((0, 255), |b| (b.cell(0), b.cell(1)));
    let none = |mem64| Window {
        cpu: 0,
        pci: 0,
        size: 0,
        mem64,
    };
    let (mut mem32, mut mem64) = (none(false), none(true));
    // ranges: <phys.hi phys.mid phys.lo> <cpu (2 cells)> <size (2 cells)>.
    if let Some(r) = fdt.prop(node, b"ranges") {
        for e in 0..r.cells() / 7 {
            let space = (r.cell(7 * e) >> 24) & 3;
            let w = Window {
                cpu: r.cells_at(7 * e + 3, 2),
                pci: r.cells_at(7 * e + 1, 2),
                size: r.cells_at(7 * e + 5, 2),
                mem64: space == 3,
            };
            match space {
                2 if mem32.size == 0 => mem32 = w,
                3 if mem64.size == 0 => mem64 = w,
                _ => {}
            }
        }
    }
    Some(PciHost {
        node,
        ecam: (reg.cells_at(0, 2), reg.cells_at(2, 2)),
        buses,
        mem32,
        mem64,
    })
}
