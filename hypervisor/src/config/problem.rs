//! [`ValidationError`]: one broken rule of a configuration, naming the guest
//! and the reason; [`Problem`] says which rule, with what it needs to be
//! located in the TOML source ([`Problem::field`], [`Problem::item`]).

use alloc::string::String;
use core::fmt;

use super::limits::{
    MAX_CMDLINE_LEN, MAX_CPUS_PER_GUEST, MAX_DEVICE_PATH_LEN, MAX_DEVICES_PER_GUEST,
    MAX_GUEST_PHYS, MAX_GUESTS, MAX_IO_MAPPINGS, MAX_IO_TABLE_MEMORY, MAX_NAME_LEN,
    MAX_PCI_PER_GUEST, MEMORY_ALIGN, MIN_IO_TABLE_MEMORY, MIN_MEMORY, VIOMMU_PAGE,
};
use super::{GuestRef, PciAddr};
use crate::mm::layout::Region;

/// The part of a guest's configuration a problem is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// The list of guests as a whole.
    Guests,
    /// `name`.
    Name,
    /// `cpus` (the entry [`Problem::item`] when there is one).
    Cpus,
    /// `memory.size`.
    MemorySize,
    /// `memory.base`.
    MemoryBase,
    /// `cmdline`.
    Cmdline,
    /// `devices` (the entry [`Problem::item`] when there is one).
    Devices,
    /// `viommu.base` (the `[guest.viommu]` table when the base is the
    /// default).
    ViommuBase,
    /// `viommu.spi` (the `[guest.viommu]` table when the SPI is the
    /// default).
    ViommuSpi,
    /// `allow_untranslated_dma` (the entry [`Problem::item`] when there is
    /// one).
    AllowUntranslatedDma,
    /// `limits.domains`.
    LimitsDomains,
    /// A key of `[guest.limits]` (the table when the key is absent).
    Limits,
    /// `console.base` or `console.spi` (the `[guest.console]` table).
    Console,
    /// `pci` (the entry [`Problem::item`] when there is one).
    Pci,
}

/// One broken rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// No guest at all.
    NoGuests,
    /// More than [`MAX_GUESTS`] guests.
    TooManyGuests {
        /// How many.
        count: usize,
    },
    /// The name is empty.
    EmptyName,
    /// The name is longer than [`MAX_NAME_LEN`].
    NameTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The name has a character outside `[A-Za-z0-9._-]`.
    NameBadChar {
        /// The first such character.
        c: char,
    },
    /// An earlier guest has the same name.
    DuplicateName {
        /// Index of that guest.
        first: usize,
    },
    /// `cpus` is empty.
    NoCpus,
    /// More than [`MAX_CPUS_PER_GUEST`] CPUs.
    TooManyCpus {
        /// How many.
        count: usize,
    },
    /// The guest lists a CPU twice.
    DuplicateCpu {
        /// The CPU index.
        cpu: u32,
        /// Position of the repeat in `cpus`.
        at: usize,
    },
    /// An earlier guest already owns the CPU.
    CpuTaken {
        /// The CPU index.
        cpu: u32,
        /// Position in `cpus`.
        at: usize,
        /// The guest that owns it.
        owner: GuestRef,
    },
    /// The host has no such CPU.
    CpuAbsent {
        /// The CPU index.
        cpu: u32,
        /// Position in `cpus`.
        at: usize,
        /// How many usable CPUs the host has.
        host_cpus: usize,
    },
    /// Memory size below [`MIN_MEMORY`].
    MemoryTooSmall {
        /// The size.
        size: u64,
    },
    /// Memory size not a multiple of [`MEMORY_ALIGN`].
    MemorySizeUnaligned {
        /// The size.
        size: u64,
    },
    /// Memory base not [`MEMORY_ALIGN`] aligned.
    MemoryBaseUnaligned {
        /// The base.
        base: u64,
    },
    /// Guest RAM ends above [`MAX_GUEST_PHYS`] (or wraps).
    MemoryTooHigh {
        /// The base.
        base: u64,
        /// The size.
        size: u64,
    },
    /// With this guest, the guests' RAM exceeds the host's usable RAM.
    TotalMemory {
        /// RAM of this guest and the ones before it.
        total: u64,
        /// Usable host RAM (RAM less reserved ranges, in 2 MiB blocks).
        available: u64,
    },
    /// Guest RAM overlaps the MMIO range of one of its own devices, which
    /// keeps its host address in the guest.
    RamOverlapsDevice {
        /// The device path as configured.
        path: String,
        /// Position in `devices`.
        at: usize,
        /// The guest's RAM.
        ram: Region,
        /// The device range it overlaps.
        mmio: Region,
    },
    /// Command line longer than [`MAX_CMDLINE_LEN`].
    CmdlineTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// Command line with a NUL byte.
    CmdlineNul,
    /// More than [`MAX_DEVICES_PER_GUEST`] devices.
    TooManyDevices {
        /// How many.
        count: usize,
    },
    /// Not an absolute node path (or `/` itself, a NUL byte, longer than
    /// [`MAX_DEVICE_PATH_LEN`]).
    DevicePathBad {
        /// The path.
        path: String,
        /// Position in `devices`.
        at: usize,
    },
    /// The guest lists one node twice (perhaps spelled differently).
    DuplicateDevice {
        /// The path as configured.
        path: String,
        /// Position of the repeat in `devices`.
        at: usize,
    },
    /// No such node in the host device tree.
    DeviceAbsent {
        /// The path.
        path: String,
        /// Position in `devices`.
        at: usize,
    },
    /// Another guest already has this node, an ancestor or a descendant.
    DeviceTaken {
        /// The path as configured.
        path: String,
        /// Position in `devices`.
        at: usize,
        /// The guest that has it.
        owner: GuestRef,
        /// The node path that guest claimed.
        owner_path: String,
    },
    /// The node (or an ancestor) belongs to the hypervisor.
    DeviceReserved {
        /// The path as configured.
        path: String,
        /// Position in `devices`.
        at: usize,
        /// What the node is ("the interrupt controller", ...).
        what: &'static str,
    },
    /// A node inside the device belongs to the hypervisor (passing a node
    /// passes its whole subtree).
    DeviceContainsReserved {
        /// The device path as configured.
        path: String,
        /// Position in `devices`.
        at: usize,
        /// The reserved node inside it.
        node: String,
        /// What that node is ("the interrupt controller", ...).
        what: &'static str,
    },
    /// The device's MMIO, in whole pages as stage 2 maps it, overlaps a
    /// host-physical range the hypervisor keeps: the GIC, an SMMUv3, its
    /// console UART, host RAM.
    DeviceOverlapsHypervisor {
        /// The device path as configured.
        path: String,
        /// Position in `devices`.
        at: usize,
        /// The device's pages that overlap.
        mmio: Region,
        /// What the hypervisor keeps there ("an SMMUv3", ...).
        what: &'static str,
        /// The hypervisor's range.
        region: Region,
    },
    /// The device's MMIO pages overlap a window the hypervisor emulates for
    /// this guest at the same address (its GIC frames).
    DeviceOverlapsEmulated {
        /// The device path as configured.
        path: String,
        /// Position in `devices`.
        at: usize,
        /// The device's pages that overlap.
        mmio: Region,
        /// Which window ("the GIC distributor", ...).
        what: &'static str,
        /// The emulated window.
        window: Region,
    },
    /// The device's MMIO pages overlap those of another guest's device
    /// (two nodes in one 4 KiB page).
    DevicePageShared {
        /// The device path as configured.
        path: String,
        /// Position in `devices`.
        at: usize,
        /// The device's pages that overlap.
        mmio: Region,
        /// The guest that has the other device.
        owner: GuestRef,
        /// The other device's node path.
        owner_path: String,
        /// The other device's pages.
        owner_mmio: Region,
    },
    /// The device raises an SPI another guest's device raises too.
    SpiTaken {
        /// The device path as configured.
        path: String,
        /// Position in `devices`.
        at: usize,
        /// The SPI number (INTID - 32).
        spi: u32,
        /// The guest that has the other device.
        owner: GuestRef,
        /// The other device's node path.
        owner_path: String,
    },
    /// The device raises an SPI the hypervisor uses itself.
    SpiReserved {
        /// The device path as configured.
        path: String,
        /// Position in `devices`.
        at: usize,
        /// The SPI number (INTID - 32).
        spi: u32,
        /// Whose interrupt it is ("an SMMUv3", ...).
        what: &'static str,
    },
    /// A DMA master inside the device sits behind no SMMU the hypervisor
    /// runs, and `allow_untranslated_dma` does not name it.
    UntranslatedDma {
        /// The device path as configured.
        path: String,
        /// Position in `devices`.
        at: usize,
        /// The DMA master's node path.
        node: String,
        /// Why it counts as a DMA master.
        why: &'static str,
    },
    /// More than [`MAX_DEVICES_PER_GUEST`] `allow_untranslated_dma` entries.
    TooManyAllowed {
        /// How many.
        count: usize,
    },
    /// An `allow_untranslated_dma` entry that is not a node path (as for
    /// [`Problem::DevicePathBad`]).
    AllowPathBad {
        /// The path.
        path: String,
        /// Position in `allow_untranslated_dma`.
        at: usize,
    },
    /// An `allow_untranslated_dma` entry naming no node of the host tree.
    AllowAbsent {
        /// The path.
        path: String,
        /// Position in `allow_untranslated_dma`.
        at: usize,
    },
    /// An `allow_untranslated_dma` entry naming a node that is neither one
    /// of the guest's devices nor inside one.
    AllowNotDevice {
        /// The path.
        path: String,
        /// Position in `allow_untranslated_dma`.
        at: usize,
    },
    /// The virtio-iommu base is not [`VIOMMU_PAGE`] aligned.
    ViommuBaseUnaligned {
        /// The base.
        base: u64,
    },
    /// The virtio-iommu page ends above [`MAX_GUEST_PHYS`] (or wraps).
    ViommuTooHigh {
        /// The base.
        base: u64,
    },
    /// The virtio-iommu page overlaps the guest's RAM.
    ViommuOverlapsRam {
        /// The page holding the window.
        window: Region,
        /// The guest's RAM.
        ram: Region,
    },
    /// The virtio-iommu page overlaps the MMIO of one of the guest's
    /// devices (which keep their host addresses).
    ViommuOverlapsDevice {
        /// The device path as configured.
        path: String,
        /// The page holding the window.
        window: Region,
        /// The device range it overlaps.
        mmio: Region,
    },
    /// The virtio-iommu page overlaps the GIC frames the guest sees at
    /// the host's addresses.
    ViommuOverlapsGic {
        /// The page holding the window.
        window: Region,
        /// The GIC frame.
        gic: Region,
        /// Which frame ("the GIC distributor", ...).
        what: &'static str,
    },
    /// `limits.io_table_memory` is not a multiple of 4 KiB or outside
    /// [`MIN_IO_TABLE_MEMORY`, `MAX_IO_TABLE_MEMORY`].
    IoTableMemory {
        /// The value in bytes.
        bytes: u64,
    },
    /// `limits.io_mappings` is 0 or above [`MAX_IO_MAPPINGS`].
    IoMappings {
        /// The value.
        count: u32,
    },
    /// The virtio-iommu SPI is above the highest SPI the GIC has.
    ViommuSpiTooHigh {
        /// The SPI number.
        spi: u32,
        /// The highest usable SPI number.
        max: u32,
    },
    /// The virtio-iommu SPI is raised by one of the guest's own devices.
    ViommuSpiTaken {
        /// The SPI number.
        spi: u32,
        /// The device path as configured.
        path: String,
    },
    /// The emulated console's base is not 4 KiB aligned or its page
    /// ends above [`MAX_GUEST_PHYS`].
    ConsoleBaseBad {
        /// The base.
        base: u64,
    },
    /// The emulated console's page overlaps the guest's RAM.
    ConsoleOverlapsRam {
        /// The console's page.
        window: Region,
        /// The guest's RAM.
        ram: Region,
    },
    /// The emulated console's page overlaps the guest's virtio-iommu page.
    ConsoleOverlapsViommu {
        /// The console's page.
        window: Region,
    },
    /// The emulated console's SPI is the virtio-iommu's, or above the
    /// highest SPI a GIC can have.
    ConsoleSpiBad {
        /// The SPI number.
        spi: u32,
    },
    /// `limits.domains` is above the most domains a virtio-iommu names.
    TooManyDomains {
        /// The configured budget.
        domains: u32,
        /// The largest allowed.
        max: u32,
    },
    /// More than [`MAX_PCI_PER_GUEST`] PCI functions.
    TooManyPci {
        /// How many.
        count: usize,
    },
    /// A `pci` entry that is not `BB:DD.F` or `SSSS:BB:DD.F`.
    PciBad {
        /// The entry as configured.
        item: String,
        /// Position in `pci`.
        at: usize,
    },
    /// The guest lists one function twice (perhaps spelled with and
    /// without its segment).
    DuplicatePci {
        /// The function.
        addr: PciAddr,
        /// Position of the repeat in `pci`.
        at: usize,
    },
    /// `[guest.viommu] transport = "pci"` without `pci` functions.
    ViommuPciWithoutPci,
    /// The segment names no host bridge: the host DT has fewer
    /// `pci-host-ecam-generic` nodes.
    PciNoBridge {
        /// The function.
        addr: PciAddr,
        /// Position in `pci`.
        at: usize,
        /// How many host bridges the host has.
        bridges: usize,
    },
    /// The bus is outside the host bridge's `bus-range`.
    PciBusOutOfRange {
        /// The function.
        addr: PciAddr,
        /// Position in `pci`.
        at: usize,
        /// The bridge's node path.
        bridge: String,
        /// Its first and last bus.
        range: (u32, u32),
    },
    /// An earlier guest lists the same function.
    PciTaken {
        /// The function.
        addr: PciAddr,
        /// Position in `pci`.
        at: usize,
        /// The guest that has it.
        owner: GuestRef,
    },
    /// The function's host bridge is given whole, through `devices`, to
    /// this guest or another (which enumerates it itself).
    PciBridgeTaken {
        /// The function.
        addr: PciAddr,
        /// Position in `pci`.
        at: usize,
        /// The bridge's node path.
        bridge: String,
        /// The guest whose `devices` gives it.
        owner: GuestRef,
        /// The `devices` entry that gives it (the bridge or a node
        /// containing it), as configured.
        owner_path: String,
    },
    /// The host bridge's enumeration found no such function, or found a
    /// PCI bridge there (found at boot: device trees do not list
    /// functions).
    PciAbsent {
        /// The function.
        addr: PciAddr,
        /// Position in `pci`.
        at: usize,
        /// The host bridge's node path.
        bridge: String,
    },
    /// The function's INTx line is also the line of a function an earlier
    /// guest was given (found at boot, from the function's interrupt pin
    /// and the bridge's `interrupt-map`): guests cannot share a level line
    /// until they have MSIs.
    PciIntxShared {
        /// The function.
        addr: PciAddr,
        /// Position in `pci`.
        at: usize,
        /// The line's INTID.
        intid: u32,
        /// The guest holding the line.
        holder: GuestRef,
        /// Its function on that line.
        holder_addr: PciAddr,
    },
}

impl Problem {
    /// The part of the configuration the problem is about.
    pub fn field(&self) -> Field {
        match self {
            Self::NoGuests | Self::TooManyGuests { .. } => Field::Guests,
            Self::EmptyName
            | Self::NameTooLong { .. }
            | Self::NameBadChar { .. }
            | Self::DuplicateName { .. } => Field::Name,
            Self::NoCpus
            | Self::TooManyCpus { .. }
            | Self::DuplicateCpu { .. }
            | Self::CpuTaken { .. }
            | Self::CpuAbsent { .. } => Field::Cpus,
            Self::MemoryTooSmall { .. }
            | Self::MemorySizeUnaligned { .. }
            | Self::TotalMemory { .. } => Field::MemorySize,
            Self::MemoryBaseUnaligned { .. } | Self::MemoryTooHigh { .. } => Field::MemoryBase,
            Self::CmdlineTooLong { .. } | Self::CmdlineNul => Field::Cmdline,
            Self::TooManyDevices { .. }
            | Self::RamOverlapsDevice { .. }
            | Self::DevicePathBad { .. }
            | Self::DuplicateDevice { .. }
            | Self::DeviceAbsent { .. }
            | Self::DeviceTaken { .. }
            | Self::DeviceReserved { .. }
            | Self::DeviceContainsReserved { .. }
            | Self::DeviceOverlapsHypervisor { .. }
            | Self::DeviceOverlapsEmulated { .. }
            | Self::DevicePageShared { .. }
            | Self::SpiTaken { .. }
            | Self::SpiReserved { .. }
            | Self::UntranslatedDma { .. } => Field::Devices,
            Self::TooManyAllowed { .. }
            | Self::AllowPathBad { .. }
            | Self::AllowAbsent { .. }
            | Self::AllowNotDevice { .. } => Field::AllowUntranslatedDma,
            Self::ViommuBaseUnaligned { .. }
            | Self::ViommuTooHigh { .. }
            | Self::ViommuOverlapsRam { .. }
            | Self::ViommuOverlapsDevice { .. }
            | Self::ViommuOverlapsGic { .. } => Field::ViommuBase,
            Self::ViommuSpiTooHigh { .. } | Self::ViommuSpiTaken { .. } => Field::ViommuSpi,
            Self::TooManyDomains { .. } => Field::LimitsDomains,
            Self::ConsoleBaseBad { .. }
            | Self::ConsoleOverlapsRam { .. }
            | Self::ConsoleOverlapsViommu { .. }
            | Self::ConsoleSpiBad { .. } => Field::Console,
            Self::IoTableMemory { .. } | Self::IoMappings { .. } => Field::Limits,
            Self::TooManyPci { .. }
            | Self::PciBad { .. }
            | Self::DuplicatePci { .. }
            | Self::ViommuPciWithoutPci
            | Self::PciNoBridge { .. }
            | Self::PciBusOutOfRange { .. }
            | Self::PciTaken { .. }
            | Self::PciBridgeTaken { .. }
            | Self::PciAbsent { .. }
            | Self::PciIntxShared { .. } => Field::Pci,
        }
    }

    /// The position in `cpus`, `devices`, `allow_untranslated_dma` or `pci`
    /// the problem is about, if one.
    pub fn item(&self) -> Option<usize> {
        match self {
            Self::DuplicateCpu { at, .. }
            | Self::CpuTaken { at, .. }
            | Self::CpuAbsent { at, .. }
            | Self::RamOverlapsDevice { at, .. }
            | Self::DevicePathBad { at, .. }
            | Self::DuplicateDevice { at, .. }
            | Self::DeviceAbsent { at, .. }
            | Self::DeviceTaken { at, .. }
            | Self::DeviceReserved { at, .. }
            | Self::DeviceContainsReserved { at, .. }
            | Self::DeviceOverlapsHypervisor { at, .. }
            | Self::DeviceOverlapsEmulated { at, .. }
            | Self::DevicePageShared { at, .. }
            | Self::SpiTaken { at, .. }
            | Self::SpiReserved { at, .. }
            | Self::UntranslatedDma { at, .. }
            | Self::AllowPathBad { at, .. }
            | Self::AllowAbsent { at, .. }
            | Self::AllowNotDevice { at, .. }
            | Self::PciBad { at, .. }
            | Self::DuplicatePci { at, .. }
            | Self::PciNoBridge { at, .. }
            | Self::PciBusOutOfRange { at, .. }
            | Self::PciTaken { at, .. }
            | Self::PciBridgeTaken { at, .. }
            | Self::PciAbsent { at, .. }
            | Self::PciIntxShared { at, .. } => Some(*at),
            _ => None,
        }
    }
}

/// A byte count, shown in the largest binary unit that divides it.
struct Size(u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 4] = [
            (1 << 40, "TiB"),
            (1 << 30, "GiB"),
            (1 << 20, "MiB"),
            (1 << 10, "KiB"),
        ];
        for (unit, name) in UNITS {
            if self.0 >= unit && self.0.is_multiple_of(unit) {
                return write!(f, "{} {name}", self.0 / unit);
            }
        }
        write!(f, "{} bytes", self.0)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoGuests => f.write_str("no guest is defined"),
            Self::TooManyGuests { count } => {
                write!(f, "{count} guests, at most {MAX_GUESTS} allowed")
            }
            Self::EmptyName => f.write_str("the name is empty"),
            Self::NameTooLong { len } => write!(
                f,
                "the name is {len} bytes long, at most {MAX_NAME_LEN} allowed"
            ),
            Self::NameBadChar { c } => {
                write!(
                    f,
                    "the name contains {c:?}; use letters, digits, '.', '_' and '-'"
                )
            }
            Self::DuplicateName { first } => write!(f, "the name is already used by guest {first}"),
            Self::NoCpus => f.write_str("no CPU is given"),
            Self::TooManyCpus { count } => {
                write!(f, "{count} CPUs, at most {MAX_CPUS_PER_GUEST} per guest")
            }
            Self::DuplicateCpu { cpu, .. } => write!(f, "CPU {cpu} is listed twice"),
            Self::CpuTaken { cpu, owner, .. } => {
                write!(f, "CPU {cpu} is already claimed by {owner}")
            }
            Self::CpuAbsent { cpu, host_cpus, .. } => write!(
                f,
                "CPU {cpu} is not present (the host has {host_cpus} usable CPUs, numbered from 0 as the \
                 hypervisor prints them)"
            ),
            Self::MemoryTooSmall { size } => {
                write!(
                    f,
                    "memory size {} is below the minimum of {}",
                    Size(*size),
                    Size(MIN_MEMORY)
                )
            }
            Self::MemorySizeUnaligned { size } => {
                write!(
                    f,
                    "memory size {} is not a multiple of {}",
                    Size(*size),
                    Size(MEMORY_ALIGN)
                )
            }
            Self::MemoryBaseUnaligned { base } => {
                write!(
                    f,
                    "memory base {base:#x} is not aligned to {}",
                    Size(MEMORY_ALIGN)
                )
            }
            Self::MemoryTooHigh { base, size } => write!(
                f,
                "guest RAM ({} at {base:#x}) ends above the guest-physical limit {MAX_GUEST_PHYS:#x}",
                Size(*size)
            ),
            Self::TotalMemory { total, available } => write!(
                f,
                "this guest brings the guests' RAM to {}, more than the host's {} of usable RAM",
                Size(*total),
                Size(*available)
            ),
            Self::RamOverlapsDevice {
                path, ram, mmio, ..
            } => write!(
                f,
                "guest RAM {ram} overlaps {mmio} of device {path} (devices keep their host addresses); \
                 move memory.base"
            ),
            Self::CmdlineTooLong { len } => {
                write!(
                    f,
                    "the command line is {len} bytes long, at most {MAX_CMDLINE_LEN} allowed"
                )
            }
            Self::CmdlineNul => f.write_str("the command line contains a NUL character"),
            Self::TooManyDevices { count } => {
                write!(
                    f,
                    "{count} devices, at most {MAX_DEVICES_PER_GUEST} per guest"
                )
            }
            Self::DevicePathBad { path, .. } => write!(
                f,
                "{path:?} is not a device-tree node path (absolute, not `/`, at most {MAX_DEVICE_PATH_LEN} bytes)"
            ),
            Self::DuplicateDevice { path, .. } => write!(f, "device {path} is listed twice"),
            Self::DeviceAbsent { path, .. } => {
                write!(f, "device {path} is not in the host device tree")
            }
            Self::DeviceTaken {
                path,
                owner,
                owner_path,
                ..
            } => {
                write!(
                    f,
                    "device {path} is already claimed by {owner} (as {owner_path})"
                )
            }
            Self::DeviceReserved { path, what, .. } => {
                write!(
                    f,
                    "device {path} is {what}, which the hypervisor keeps for itself"
                )
            }
            Self::DeviceContainsReserved {
                path, node, what, ..
            } => write!(
                f,
                "device {path} contains {node}, {what}, which the hypervisor keeps for itself (passing a \
                 node passes its whole subtree); give the nodes beside it instead"
            ),
            Self::DeviceOverlapsHypervisor {
                path,
                mmio,
                what,
                region,
                ..
            } => write!(
                f,
                "device {path} needs pages {mmio}, which overlap {what} {region} that the hypervisor keeps \
                 for itself (stage 2 maps whole 4 KiB pages)"
            ),
            Self::DeviceOverlapsEmulated {
                path,
                mmio,
                what,
                window,
                ..
            } => write!(
                f,
                "device {path} needs pages {mmio}, which overlap {what} {window} that the hypervisor \
                 emulates for this guest at the same address"
            ),
            Self::DevicePageShared {
                path,
                mmio,
                owner,
                owner_path,
                owner_mmio,
                ..
            } => write!(
                f,
                "device {path} needs pages {mmio}, which overlap pages {owner_mmio} of device \
                 {owner_path} of {owner} (stage 2 maps whole 4 KiB pages, so each would reach the \
                 other's registers)"
            ),
            Self::SpiTaken {
                path,
                spi,
                owner,
                owner_path,
                ..
            } => write!(
                f,
                "device {path} raises SPI {spi} (INTID {}), which device {owner_path} of {owner} raises \
                 too (an SPI belongs to one guest)",
                spi.saturating_add(32)
            ),
            Self::SpiReserved {
                path, spi, what, ..
            } => write!(
                f,
                "device {path} raises SPI {spi} (INTID {}), which is {what}'s interrupt, handled by the \
                 hypervisor",
                spi.saturating_add(32)
            ),
            Self::UntranslatedDma {
                path, node, why, ..
            } => write!(
                f,
                "device {path}: {node} can master DMA ({why}) and no SMMU the hypervisor runs translates \
                 it, so its DMA could reach any memory; list it in allow_untranslated_dma to accept that"
            ),
            Self::TooManyAllowed { count } => write!(
                f,
                "{count} allow_untranslated_dma entries, at most {MAX_DEVICES_PER_GUEST} per guest"
            ),
            Self::AllowPathBad { path, .. } => write!(
                f,
                "{path:?} is not a device-tree node path (absolute, not `/`, at most {MAX_DEVICE_PATH_LEN} bytes)"
            ),
            Self::AllowAbsent { path, .. } => {
                write!(f, "{path} is not in the host device tree")
            }
            Self::AllowNotDevice { path, .. } => write!(
                f,
                "{path} is neither one of the guest's devices nor inside one"
            ),
            Self::ViommuBaseUnaligned { base } => write!(
                f,
                "virtio-iommu base {base:#x} is not aligned to {} (its page is trapped whole)",
                Size(VIOMMU_PAGE)
            ),
            Self::ViommuTooHigh { base } => write!(
                f,
                "the virtio-iommu page at {base:#x} ends above the guest-physical limit {MAX_GUEST_PHYS:#x}"
            ),
            Self::ViommuOverlapsRam { window, ram } => write!(
                f,
                "the virtio-iommu page {window} overlaps guest RAM {ram}; move viommu.base"
            ),
            Self::ViommuOverlapsDevice { path, window, mmio } => write!(
                f,
                "the virtio-iommu page {window} overlaps {mmio} of device {path} (devices keep their host \
                 addresses); move viommu.base"
            ),
            Self::ViommuOverlapsGic { window, gic, what } => write!(
                f,
                "the virtio-iommu page {window} overlaps {what} {gic} (the guest sees the GIC at the host's \
                 addresses); move viommu.base"
            ),
            Self::IoTableMemory { bytes } => write!(
                f,
                "limits.io_table_memory {bytes:#x} must be a multiple of 4 KiB from \
                 {MIN_IO_TABLE_MEMORY:#x} to {MAX_IO_TABLE_MEMORY:#x}"
            ),
            Self::IoMappings { count } => write!(
                f,
                "limits.io_mappings {count} must be from 1 to {MAX_IO_MAPPINGS}"
            ),
            Self::ViommuSpiTooHigh { spi, max } => write!(
                f,
                "virtio-iommu SPI {spi} is above the GIC's highest SPI {max}"
            ),
            Self::ViommuSpiTaken { spi, path } => write!(
                f,
                "virtio-iommu SPI {spi} (INTID {}) is already raised by device {path}",
                spi.saturating_add(32)
            ),
            Self::ConsoleBaseBad { base } => write!(
                f,
                "console.base {base:#x} must be 4 KiB aligned and its page below {MAX_GUEST_PHYS:#x}"
            ),
            Self::ConsoleOverlapsRam { window, ram } => write!(
                f,
                "the emulated console's page {window} overlaps guest RAM {ram}; move console.base"
            ),
            Self::ConsoleOverlapsViommu { window } => write!(
                f,
                "the emulated console's page {window} overlaps the virtio-iommu page; move console.base"
            ),
            Self::ConsoleSpiBad { spi } => write!(
                f,
                "console.spi {spi} is the virtio-iommu's SPI or above the highest SPI a GIC has (987)"
            ),
            Self::TooManyDomains { domains, max } => write!(
                f,
                "a budget of {domains} virtio-iommu domains is above the {max} a guest can name"
            ),
            Self::TooManyPci { count } => write!(
                f,
                "{count} PCI functions, at most {MAX_PCI_PER_GUEST} per guest (the virtual bus has 32 \
                 slots and keeps one)"
            ),
            Self::PciBad { item, .. } => write!(
                f,
                "{item:?} is not a PCI function address (BB:DD.F or SSSS:BB:DD.F, hexadecimal as lspci \
                 prints them)"
            ),
            Self::DuplicatePci { addr, .. } => write!(f, "PCI function {addr} is listed twice"),
            Self::ViommuPciWithoutPci => f.write_str(
                "a virtio-iommu on virtio-pci sits on the guest's virtual PCI bus beside its pci functions; give the guest pci functions or use transport = \"mmio\"",
            ),
            Self::PciNoBridge { addr, bridges, .. } => write!(
                f,
                "PCI function {addr}: segment {:04x} names no host bridge (the host device tree has \
                 {bridges} pci-host-ecam-generic bridges, numbered from 0000)",
                addr.segment
            ),
            Self::PciBusOutOfRange {
                addr,
                bridge,
                range,
                ..
            } => write!(
                f,
                "PCI function {addr}: bus {:02x} is outside the bus-range {:02x}-{:02x} of host bridge \
                 {bridge}",
                addr.bus, range.0, range.1
            ),
            Self::PciTaken { addr, owner, .. } => {
                write!(f, "PCI function {addr} is already given to {owner}")
            }
            Self::PciBridgeTaken {
                addr,
                bridge,
                owner,
                owner_path,
                ..
            } => write!(
                f,
                "PCI function {addr} is on host bridge {bridge}, which {owner} is given whole (devices \
                 entry {owner_path}); a bridge is given either whole or function by function"
            ),
            Self::PciAbsent { addr, bridge, .. } => write!(
                f,
                "PCI function {addr}: host bridge {bridge} has no such function (or a PCI bridge \
                 there); the hardware summary lists what it has"
            ),
            Self::PciIntxShared {
                addr,
                intid,
                holder,
                holder_addr,
                ..
            } => write!(
                f,
                "PCI function {addr}: its INTx line (INTID {intid}) is also the line of {holder_addr}, \
                 given to {holder}; functions of different guests may not share an INTx line (give \
                 both to one guest, or move one to a slot whose line is free)"
            ),
        }
    }
}

/// A broken rule, with the guest it concerns (`None` for rules about the
/// configuration as a whole).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationError {
    /// The guest concerned.
    pub guest: Option<GuestRef>,
    /// What is wrong.
    pub problem: Problem,
}

impl ValidationError {
    /// An error about guest `index` called `name`.
    pub fn guest(index: usize, name: &str, problem: Problem) -> Self {
        Self {
            guest: Some(GuestRef::named(index, name)),
            problem,
        }
    }

    /// An error about the configuration as a whole.
    pub fn global(problem: Problem) -> Self {
        Self {
            guest: None,
            problem,
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.guest {
            Some(guest) => write!(f, "{guest}: {}", self.problem),
            None => write!(f, "configuration: {}", self.problem),
        }
    }
}

impl core::error::Error for ValidationError {}
