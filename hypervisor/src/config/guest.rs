//! [`GuestConfig`]: one guest, decoded. The host tool builds it from TOML
//! and encodes it with postcard; the hypervisor decodes it from the bundle.
//! The field order is part of the bundle format (postcard is not
//! self-describing): changing it needs a new [`super::bundle::VERSION`].

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use serde::{Deserialize, Serialize};

use super::origin::Origin;

use super::limits::{
    DEFAULT_IO_MAPPINGS, DEFAULT_IO_TABLE_MEMORY, DEFAULT_MEMORY_BASE, DEFAULT_VIOMMU_BASE,
    DEFAULT_VIOMMU_DOMAINS, DEFAULT_VIOMMU_SPI, HEAP_PER_DOMAIN, HEAP_PER_IO_MAPPING,
    HEAP_PER_VIOMMU,
};

/// What a guest's PSCI `SYSTEM_RESET` does. (`SYSTEM_OFF` always stops the
/// guest.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResetAction {
    /// Reload the guest's kernel and initrd and boot it again.
    #[default]
    Restart,
    /// Stop the guest, as `SYSTEM_OFF` does.
    PowerOff,
}

/// One guest: its physical CPUs, its RAM, its command line and the host
/// devices passed through to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestConfig {
    /// Name used in messages and in the guest's device tree (`[A-Za-z0-9._-]`,
    /// see [`super::limits::MAX_NAME_LEN`]).
    pub name: String,
    /// Physical CPUs: indices into the host device tree's usable `/cpus`
    /// (the `N` of the hypervisor's "cpu N online"). One vCPU each, in this
    /// order: vCPU 0 runs on `cpus[0]`.
    pub cpus: Vec<u32>,
    /// RAM size in bytes (a multiple of 2 MiB).
    pub memory_size: u64,
    /// Guest-physical base of the RAM (2 MiB aligned).
    pub memory_base: u64,
    /// Kernel command line (`/chosen/bootargs`).
    pub cmdline: String,
    /// Host device-tree node paths passed through (MMIO identity-mapped:
    /// guest-physical address = host physical address).
    pub devices: Vec<String>,
    /// What `SYSTEM_RESET` does.
    pub on_reset: ResetAction,
    /// The guest's virtio-iommu, when it has one (`[guest.viommu]` present
    /// and not `enabled = false`).
    #[serde(default)]
    pub viommu: Option<ViommuConfig>,
    /// Host device-tree node paths, each one of [`Self::devices`] or a node
    /// inside one, whose DMA the guest may do without an SMMU the
    /// hypervisor runs (`allow_untranslated_dma`): a DMA master inside one
    /// of them is accepted although nothing confines its DMA. Bundle
    /// version 3: see the module doc.
    #[serde(default)]
    pub allow_untranslated_dma: Vec<String>,
    /// What the guest may make the hypervisor hold (`[guest.limits]`).
    #[serde(default)]
    pub limits: GuestLimits,
    /// Its emulated console (`[guest.console]`). Bundle version 4.
    #[serde(default)]
    pub console: ConsoleConfig,
    /// Single PCI functions of the host's bridges given to the guest
    /// (`pci = ["00:02.0"]`, or `"SSSS:BB:DD.F"` naming the host bridge by
    /// its position among the DT's `pci-host-ecam-generic` nodes), served
    /// to it behind a virtual host bridge (docs/pci.md). Bundle version 5;
    /// see the module doc.
    #[serde(default)]
    pub pci: Vec<String>,
    /// Where the configuration came from (file, line and column of each
    /// key), so a problem found at boot names them. Bundle version 6; last
    /// field: see the module doc.
    #[serde(default)]
    pub origin: Origin,
}

/// A PCI function as a guest configuration names it: the host bridge's
/// position among the host DT's bridges (the PCI segment) and the
/// function's bus, device and function numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddr {
    /// Which host bridge (0: the first in the device tree).
    pub segment: u16,
    /// Bus number.
    pub bus: u8,
    /// Device number (0-31).
    pub dev: u8,
    /// Function number (0-7).
    pub func: u8,
}

impl PciAddr {
    /// Parses `BB:DD.F` or `SSSS:BB:DD.F` (hexadecimal, as `lspci` prints
    /// them); None for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        let hex = |t: &str, max: u32, len: usize| {
            (t.len() == len && t.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u32::from_str_radix(t, 16).ok())
                .flatten()
                .filter(|&v| v <= max)
        };
        let (seg, rest) = match s.split(':').count() {
            3 => {
                let (seg, rest) = s.split_once(':')?;
                (hex(seg, 0xffff, 4)?, rest)
            }
            2 => (0, s),
            _ => return None,
        };
        let (bus, devfn) = rest.split_once(':')?;
        let (dev, func) = devfn.split_once('.')?;
        Some(PciAddr {
            segment: seg as u16,
            bus: hex(bus, 0xff, 2)? as u8,
            dev: hex(dev, 0x1f, 2)? as u8,
            func: hex(func, 7, 1)? as u8,
        })
    }
}

impl fmt::Display for PciAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{}",
            self.segment, self.bus, self.dev, self.func
        )
    }
}

/// A guest's emulated PL011 console (`[guest.console]`): given to every
/// guest that is not given the board's console UART itself, unless
/// `enabled = false`. Its output goes to the hypervisor's serial line (one
/// whole line at a time, tagged `[name] ` when several guests run), its
/// input is what is typed while the guest has the focus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleConfig {
    /// Whether the guest gets the emulated console (when it does not have
    /// the console UART passed through).
    pub enabled: bool,
    /// Guest-physical base of its 4 KiB register window; `None`: the
    /// board's console UART's address (so `console=ttyAMA0` and `earlycon`
    /// work unchanged).
    pub base: Option<u64>,
    /// SPI number of its (virtual, level) interrupt; `None`: the board's
    /// console UART's.
    pub spi: Option<u32>,
}

impl Default for ConsoleConfig {
    /// Enabled, at the board console's address and interrupt.
    fn default() -> Self {
        Self {
            enabled: true,
            base: None,
            spi: None,
        }
    }
}

/// Per-guest budgets (`[guest.limits]`): bounds on what a guest can make
/// the hypervisor allocate or hold for it (docs/viommu.md, "Budgets and
/// bounds"). Over a budget, the request that would exceed it fails (a
/// virtio-iommu request with NOMEM) and changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestLimits {
    /// Most virtio-iommu domains the guest holds at once (each translating
    /// one takes a VMID and an IO page table); at most
    /// [`MAX_VIOMMU_DOMAINS`](super::limits::MAX_VIOMMU_DOMAINS).
    pub domains: u32,
    /// Bytes of IO page tables its virtio-iommu domains may hold (a
    /// multiple of 4 KiB, from
    /// [`MIN_IO_TABLE_MEMORY`](super::limits::MIN_IO_TABLE_MEMORY) to
    /// [`MAX_IO_TABLE_MEMORY`](super::limits::MAX_IO_TABLE_MEMORY)).
    pub io_table_memory: u64,
    /// Most virtio-iommu mappings, all domains together (1 to
    /// [`MAX_IO_MAPPINGS`](super::limits::MAX_IO_MAPPINGS)).
    pub io_mappings: u32,
}

impl GuestLimits {
    /// The IO page-table budget in 4 KiB pages.
    pub const fn io_table_pages(&self) -> usize {
        (self.io_table_memory / 4096) as usize
    }

    /// The most hypervisor heap a virtio-iommu within these limits can
    /// make the hypervisor hold at run time: its IO page tables, its
    /// mappings and domains ([`HEAP_PER_IO_MAPPING`],
    /// [`HEAP_PER_DOMAIN`]) and its fixed state ([`HEAP_PER_VIOMMU`]).
    /// The boot plan commits this much of the heap to the guest, so that
    /// what the guest drives never finds the heap exhausted by another.
    pub const fn viommu_heap(&self) -> u64 {
        self.io_table_memory
            + self.io_mappings as u64 * HEAP_PER_IO_MAPPING
            + self.domains as u64 * HEAP_PER_DOMAIN
            + HEAP_PER_VIOMMU
    }
}

impl Default for GuestLimits {
    /// [`DEFAULT_VIOMMU_DOMAINS`], [`DEFAULT_IO_TABLE_MEMORY`] and
    /// [`DEFAULT_IO_MAPPINGS`].
    fn default() -> Self {
        Self {
            domains: DEFAULT_VIOMMU_DOMAINS,
            io_table_memory: DEFAULT_IO_TABLE_MEMORY,
            io_mappings: DEFAULT_IO_MAPPINGS,
        }
    }
}

impl GuestConfig {
    /// A guest with the given name, CPUs and memory size, at the default
    /// base, with an empty command line, no devices and `on_reset =
    /// restart`, no virtio-iommu and no DMA allowed untranslated.
    pub fn new(name: &str, cpus: &[u32], memory_size: u64) -> Self {
        Self {
            name: name.into(),
            cpus: cpus.into(),
            memory_size,
            memory_base: DEFAULT_MEMORY_BASE,
            cmdline: String::new(),
            devices: Vec::new(),
            on_reset: ResetAction::Restart,
            viommu: None,
            allow_untranslated_dma: Vec::new(),
            limits: GuestLimits::default(),
            console: ConsoleConfig::default(),
            pci: Vec::new(),
            origin: Origin::default(),
        }
    }
}

/// How a guest's virtio-iommu is presented to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ViommuTransport {
    /// A virtio-mmio (version 2) device: a [`VIOMMU_MMIO_SIZE`] register
    /// window and one SPI, described by a `virtio,mmio` node in the guest's
    /// device tree.
    ///
    /// [`VIOMMU_MMIO_SIZE`]: super::limits::VIOMMU_MMIO_SIZE
    #[default]
    Mmio,
    /// A virtio-pci (modern) function on the guest's virtual PCI bus (the
    /// last slot, beside the functions of `pci`), its INTx line the SPI
    /// `spi`; `base` is unused (its BAR is placed by the hypervisor).
    Pci,
}

/// A guest's virtio-iommu, emulated by the hypervisor: it translates the
/// DMA of the guest's passed-through devices that sit behind an SMMU the
/// hypervisor runs (a PCIe host bridge with `iommu-map`, a platform device
/// with `iommus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViommuConfig {
    /// The transport: virtio-mmio, or virtio-pci on the guest's virtual
    /// PCI bus.
    pub transport: ViommuTransport,
    /// Guest-physical base of the [`VIOMMU_MMIO_SIZE`]-byte register
    /// window, [`VIOMMU_PAGE`] aligned.
    ///
    /// [`VIOMMU_MMIO_SIZE`]: super::limits::VIOMMU_MMIO_SIZE
    /// [`VIOMMU_PAGE`]: super::limits::VIOMMU_PAGE
    pub base: u64,
    /// SPI number of its (virtual, edge-triggered) interrupt: GIC INTID
    /// `spi + 32`.
    pub spi: u32,
}

impl ViommuConfig {
    /// The GIC INTID of its interrupt (`spi + 32`, saturating).
    pub const fn intid(&self) -> u32 {
        self.spi.saturating_add(32)
    }
}

impl Default for ViommuConfig {
    /// virtio-mmio at [`DEFAULT_VIOMMU_BASE`] with SPI
    /// [`DEFAULT_VIOMMU_SPI`].
    fn default() -> Self {
        Self {
            transport: ViommuTransport::Mmio,
            base: DEFAULT_VIOMMU_BASE,
            spi: DEFAULT_VIOMMU_SPI,
        }
    }
}

/// A guest named in an error: its index (in the configuration or the
/// bundle's entry table) and its name, when known (a bundle's guest is
/// nameless until its config is decoded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestRef {
    /// Index in the configuration or the bundle.
    pub index: usize,
    /// The guest's name, when known.
    pub name: Option<String>,
}

impl GuestRef {
    /// A guest with a known name.
    pub fn named(index: usize, name: &str) -> Self {
        Self {
            index,
            name: Some(name.into()),
        }
    }

    /// A guest whose name is not known.
    pub fn unnamed(index: usize) -> Self {
        Self { index, name: None }
    }
}

impl fmt::Display for GuestRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "guest {} ({name:?})", self.index),
            None => write!(f, "guest {}", self.index),
        }
    }
}

#[cfg(test)]
mod pci_addr_tests {
    use super::PciAddr;
    use alloc::string::ToString;

    #[test]
    fn parses_lspci_forms_and_refuses_the_rest() {
        let a = PciAddr::parse("00:02.0").unwrap();
        assert_eq!((a.segment, a.bus, a.dev, a.func), (0, 0, 2, 0));
        let b = PciAddr::parse("0001:1f:1f.7").unwrap();
        assert_eq!((b.segment, b.bus, b.dev, b.func), (1, 0x1f, 0x1f, 7));
        assert_eq!(b.to_string(), "0001:1f:1f.7");
        for bad in [
            "",
            "0:02.0",
            "00:20.0",
            "00:02.8",
            "00:02",
            "00.02.0",
            "x0:02.0",
            "00000:00:02.0",
            "00:02.0:1",
            "00:02.00",
        ] {
            assert_eq!(PciAddr::parse(bad), None, "{bad}");
        }
    }
}
