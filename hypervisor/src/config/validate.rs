//! The rules a set of guest configurations must follow.
//!
//! - [`check_guests`]: rules that need no board (limits, names, a CPU
//!   given twice or to two guests, memory size and alignment, command line,
//!   device and `allow_untranslated_dma` path syntax, the virtio-iommu's
//!   alignment, its place outside guest RAM and its SPI below the
//!   architectural maximum; `pci` entries well formed, not repeated, at
//!   most [`MAX_PCI_PER_GUEST`], not with a virtio-iommu yet).
//! - [`check_board`]: rules against the host device tree (CPU present,
//!   device present, neither the hypervisor's own nor containing a node it
//!   keeps, not claimed twice, total RAM, guest RAM and the virtio-iommu
//!   page clear of the guest's device MMIO, the virtio-iommu page clear of
//!   the GIC frames, its SPI not one of the guest's devices'), and
//!   ownership by host-physical address: a device's MMIO pages clear of the
//!   hypervisor's (GIC, SMMUs, console UART, host RAM), of the GIC frames
//!   the guest sees and of every other guest's device pages; an SPI raised
//!   by one guest's devices only, never one the hypervisor uses; no DMA
//!   master outside an SMMU the hypervisor runs unless
//!   `allow_untranslated_dma` names it; a `pci` function on an existing
//!   host bridge and within its bus range, given to one guest only, on a
//!   bridge no guest takes whole through `devices`. (Whether the function
//!   exists, and its INTx line, are for the enumeration at boot.)
//! - [`validate`]: both; what the hypervisor runs at boot against the live
//!   device tree.
//! - [`check_spi_count`]: the virtio-iommu SPI against the SPI count of the
//!   GIC (which the device tree does not give: the hypervisor reads it from
//!   `GICD_TYPER` at boot).
//!
//! Every error names the guest and the reason; nothing here panics.

use alloc::string::String;
use alloc::vec::Vec;

use super::devices::{
    console_pages, hypervisor_regions, is_ancestor, mmio_regions, pages, path_is_valid,
    reserved_descendant, reserved_use, untranslated_dma,
};
use super::limits::{
    MAX_CMDLINE_LEN, MAX_CPUS_PER_GUEST, MAX_DEVICES_PER_GUEST, MAX_GUEST_PHYS, MAX_GUESTS,
    MAX_IO_MAPPINGS, MAX_IO_TABLE_MEMORY, MAX_NAME_LEN, MAX_PCI_PER_GUEST, MAX_VIOMMU_DOMAINS,
    MAX_VIOMMU_SPI, MEMORY_ALIGN, MIN_IO_TABLE_MEMORY, MIN_MEMORY, VIOMMU_PAGE,
};
use super::{GuestConfig, GuestRef, PciAddr, Problem, ValidationError, ViommuTransport};
use crate::fdt::HostDt;
use crate::mm::layout::{Region, free_ranges};
use crate::vgic::{DIST_SIZE, REDIST_STRIDE};
use crate::vm::resources::device_resources;

/// Every rule, board-independent and board-dependent.
pub fn validate(guests: &[GuestConfig], host: &HostDt) -> Vec<ValidationError> {
    let mut errors = check_guests(guests);
    errors.extend(check_board(guests, host));
    errors
}

/// The rules that need no board.
pub fn check_guests(guests: &[GuestConfig]) -> Vec<ValidationError> {
    let mut errors = Vec::new();
    if guests.is_empty() {
        errors.push(ValidationError::global(Problem::NoGuests));
    }
    if guests.len() > MAX_GUESTS {
        errors.push(ValidationError::global(Problem::TooManyGuests {
            count: guests.len(),
        }));
    }
    for (index, guest) in guests.iter().enumerate() {
        let mut report = |problem| errors.push(ValidationError::guest(index, &guest.name, problem));
        check_name(guests, index, &mut report);
        check_cpus(guests, index, &mut report);
        check_memory(guest, &mut report);
        check_cmdline(guest, &mut report);
        check_device_paths(guest, &mut report);
        check_allow_paths(guest, &mut report);
        check_viommu(guest, &mut report);
        check_console(guest, &mut report);
        check_limits(guest, &mut report);
        check_pci(guest, &mut report);
    }
    errors
}

/// The virtio-iommu SPI of every guest against `nr_spis`, the number of
/// SPIs the GIC implements (from `GICD_TYPER`; the emulated GIC has as many):
/// what [`validate`] cannot check from the device tree alone.
pub fn check_spi_count(guests: &[GuestConfig], nr_spis: u32) -> Vec<ValidationError> {
    guests
        .iter()
        .enumerate()
        .filter_map(|(index, guest)| {
            let spi = guest.viommu?.spi;
            (spi >= nr_spis).then(|| {
                ValidationError::guest(
                    index,
                    &guest.name,
                    Problem::ViommuSpiTooHigh {
                        spi,
                        max: nr_spis.saturating_sub(1),
                    },
                )
            })
        })
        .collect()
}

/// The page holding the virtio-iommu window of `guest`, when it has one
/// with a usable base (aligned, not too high: [`check_viommu`] reports the
/// others).
fn viommu_page(guest: &GuestConfig) -> Option<Region> {
    let base = guest.viommu?.base;
    let fits = base
        .checked_add(VIOMMU_PAGE)
        .is_some_and(|end| end <= MAX_GUEST_PHYS);
    (base.is_multiple_of(VIOMMU_PAGE) && fits).then(|| Region::new(base, VIOMMU_PAGE))
}

fn check_limits(guest: &GuestConfig, report: &mut impl FnMut(Problem)) {
    let l = guest.limits;
    let bytes = l.io_table_memory;
    if !bytes.is_multiple_of(4096) || !(MIN_IO_TABLE_MEMORY..=MAX_IO_TABLE_MEMORY).contains(&bytes)
    {
        report(Problem::IoTableMemory { bytes });
    }
    if l.io_mappings == 0 || l.io_mappings > MAX_IO_MAPPINGS {
        report(Problem::IoMappings {
            count: l.io_mappings,
        });
    }
}

fn check_viommu(guest: &GuestConfig, report: &mut impl FnMut(Problem)) {
    if guest.limits.domains > MAX_VIOMMU_DOMAINS {
        report(Problem::TooManyDomains {
            domains: guest.limits.domains,
            max: MAX_VIOMMU_DOMAINS,
        });
    }
    let Some(viommu) = guest.viommu else {
        return;
    };
    let base = viommu.base;
    if !base.is_multiple_of(VIOMMU_PAGE) {
        report(Problem::ViommuBaseUnaligned { base });
    } else if viommu_page(guest).is_none() {
        report(Problem::ViommuTooHigh { base });
    }
    let ram = Region::new(guest.memory_base, guest.memory_size);
    if let Some(window) = viommu_page(guest)
        && window.overlaps(&ram)
    {
        report(Problem::ViommuOverlapsRam { window, ram });
    }
    if viommu.spi > MAX_VIOMMU_SPI {
        report(Problem::ViommuSpiTooHigh {
            spi: viommu.spi,
            max: MAX_VIOMMU_SPI,
        });
    }
}

/// The emulated console's own settings (where they are given; the board's
/// console address and SPI, the defaults, are the board's).
fn check_console(guest: &GuestConfig, report: &mut impl FnMut(Problem)) {
    let c = guest.console;
    if !c.enabled {
        return;
    }
    if let Some(base) = c.base {
        let window = Region::new(base, 0x1000);
        if base % 0x1000 != 0 || base > MAX_GUEST_PHYS.saturating_sub(0x1000) {
            report(Problem::ConsoleBaseBad { base });
        } else {
            let ram = Region::new(guest.memory_base, guest.memory_size);
            if ram.overlaps(&window) {
                report(Problem::ConsoleOverlapsRam { window, ram });
            }
            if viommu_page(guest).is_some_and(|v| v.overlaps(&window)) {
                report(Problem::ConsoleOverlapsViommu { window });
            }
        }
    }
    if let Some(spi) = c.spi
        && (spi > 987 || guest.viommu.is_some_and(|v| v.spi == spi))
    {
        report(Problem::ConsoleSpiBad { spi });
    }
}

/// The `pci` entries of `guest` that parse, with their positions.
fn pci_addrs(guest: &GuestConfig) -> impl Iterator<Item = (usize, PciAddr)> + '_ {
    guest
        .pci
        .iter()
        .enumerate()
        .filter_map(|(at, item)| Some((at, PciAddr::parse(item)?)))
}

/// The `pci` entries by themselves: how many, their form, no repeat (by
/// address: `00:02.0` and `0000:00:02.0` are one function), and not with a
/// virtio-iommu (the virtual host bridge has no `iommu-map` yet).
fn check_pci(guest: &GuestConfig, report: &mut impl FnMut(Problem)) {
    if guest.pci.len() > MAX_PCI_PER_GUEST {
        report(Problem::TooManyPci {
            count: guest.pci.len(),
        });
    }
    let mut seen: Vec<PciAddr> = Vec::new();
    for (at, item) in guest.pci.iter().enumerate() {
        match PciAddr::parse(item) {
            None => report(Problem::PciBad {
                item: item.clone(),
                at,
            }),
            Some(addr) if seen.contains(&addr) => report(Problem::DuplicatePci { addr, at }),
            Some(addr) => seen.push(addr),
        }
    }
    // A virtio-iommu on PCI sits on the virtual bus of the functions given
    // singly: without any it would have nothing to translate.
    if guest.viommu.map(|v| v.transport) == Some(ViommuTransport::Pci) && guest.pci.is_empty() {
        report(Problem::ViommuPciWithoutPci);
    }
}

fn check_name(guests: &[GuestConfig], index: usize, report: &mut impl FnMut(Problem)) {
    let Some(name) = guests.get(index).map(|g| g.name.as_str()) else {
        return;
    };
    if name.is_empty() {
        report(Problem::EmptyName);
    } else if name.len() > MAX_NAME_LEN {
        report(Problem::NameTooLong { len: name.len() });
    } else if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        report(Problem::NameBadChar { c });
    }
    if let Some(first) = guests.iter().take(index).position(|g| g.name == name) {
        report(Problem::DuplicateName { first });
    }
}

fn check_cpus(guests: &[GuestConfig], index: usize, report: &mut impl FnMut(Problem)) {
    let Some(guest) = guests.get(index) else {
        return;
    };
    if guest.cpus.is_empty() {
        report(Problem::NoCpus);
    }
    if guest.cpus.len() > MAX_CPUS_PER_GUEST {
        report(Problem::TooManyCpus {
            count: guest.cpus.len(),
        });
    }
    for (at, &cpu) in guest.cpus.iter().enumerate() {
        if guest.cpus.iter().take(at).any(|&c| c == cpu) {
            report(Problem::DuplicateCpu { cpu, at });
            continue;
        }
        let owner = guests
            .iter()
            .take(index)
            .enumerate()
            .find(|(_, g)| g.cpus.contains(&cpu));
        if let Some((i, g)) = owner {
            report(Problem::CpuTaken {
                cpu,
                at,
                owner: GuestRef::named(i, &g.name),
            });
        }
    }
}

fn check_memory(guest: &GuestConfig, report: &mut impl FnMut(Problem)) {
    let (base, size) = (guest.memory_base, guest.memory_size);
    if size < MIN_MEMORY {
        report(Problem::MemoryTooSmall { size });
    }
    if !size.is_multiple_of(MEMORY_ALIGN) {
        report(Problem::MemorySizeUnaligned { size });
    }
    if !base.is_multiple_of(MEMORY_ALIGN) {
        report(Problem::MemoryBaseUnaligned { base });
    }
    if base
        .checked_add(size)
        .is_none_or(|end| end > MAX_GUEST_PHYS)
    {
        report(Problem::MemoryTooHigh { base, size });
    }
}

fn check_cmdline(guest: &GuestConfig, report: &mut impl FnMut(Problem)) {
    if guest.cmdline.len() > MAX_CMDLINE_LEN {
        report(Problem::CmdlineTooLong {
            len: guest.cmdline.len(),
        });
    }
    if guest.cmdline.contains('\0') {
        report(Problem::CmdlineNul);
    }
}

fn check_device_paths(guest: &GuestConfig, report: &mut impl FnMut(Problem)) {
    if guest.devices.len() > MAX_DEVICES_PER_GUEST {
        report(Problem::TooManyDevices {
            count: guest.devices.len(),
        });
    }
    for (at, path) in guest.devices.iter().enumerate() {
        if !path_is_valid(path) {
            report(Problem::DevicePathBad {
                path: path.clone(),
                at,
            });
        } else if guest.devices.iter().take(at).any(|p| p == path) {
            report(Problem::DuplicateDevice {
                path: path.clone(),
                at,
            });
        }
    }
}

fn check_allow_paths(guest: &GuestConfig, report: &mut impl FnMut(Problem)) {
    let allow = &guest.allow_untranslated_dma;
    if allow.len() > MAX_DEVICES_PER_GUEST {
        report(Problem::TooManyAllowed { count: allow.len() });
    }
    for (at, path) in allow.iter().enumerate() {
        if !path_is_valid(path) {
            report(Problem::AllowPathBad {
                path: path.clone(),
                at,
            });
        }
    }
}

/// The rules that depend on the host device tree. Usable RAM is
/// `host.memory` less `host.reserved` in 2 MiB blocks: at boot, add the
/// hypervisor's own image and heap to `host.reserved` first.
pub fn check_board(guests: &[GuestConfig], host: &HostDt) -> Vec<ValidationError> {
    let mut errors = Vec::new();
    let available: u64 = free_ranges(&host.memory, &host.reserved, MEMORY_ALIGN)
        .iter()
        .map(|r| r.size)
        .sum();
    let mut total: u64 = 0;
    let mut total_reported = false;
    let mut claims: Vec<Claim> = Vec::new();
    for (index, guest) in guests.iter().enumerate() {
        let mut report = |problem| errors.push(ValidationError::guest(index, &guest.name, problem));
        for (at, &cpu) in guest.cpus.iter().enumerate() {
            if cpu as usize >= host.cpus.len() {
                report(Problem::CpuAbsent {
                    cpu,
                    at,
                    host_cpus: host.cpus.len(),
                });
            }
        }
        total = total.saturating_add(guest.memory_size);
        if total > available && !total_reported {
            total_reported = true;
            report(Problem::TotalMemory { total, available });
        }
        check_devices(guests, index, host, &mut claims, &mut report);
        check_allowed(guest, host, &mut report);
        check_viommu_gic(guest, host, &mut report);
        check_pci_board(guests, index, host, &mut report);
    }
    errors
}

/// The `pci` functions of guest `index` against the host's bridges: the
/// segment names one, the bus is in its `bus-range`, no earlier guest has
/// the function, and no guest (this one included) is given the bridge
/// whole through `devices`. Entries that do not parse or repeat one of the
/// guest's own are left to [`check_guests`].
fn check_pci_board(
    guests: &[GuestConfig],
    index: usize,
    host: &HostDt,
    report: &mut impl FnMut(Problem),
) {
    let Some(guest) = guests.get(index) else {
        return;
    };
    // Who takes each host bridge whole: (guest, devices entry), by segment.
    let whole: Vec<Option<(usize, &str)>> = host
        .pcie
        .iter()
        .map(|bridge| {
            guests.iter().enumerate().find_map(|(i, g)| {
                g.devices
                    .iter()
                    .filter(|p| path_is_valid(p))
                    .find(|p| {
                        host.tree().find(p).is_some_and(|n| {
                            let node = n.path();
                            node == bridge.path || is_ancestor(&node, &bridge.path)
                        })
                    })
                    .map(|p| (i, p.as_str()))
            })
        })
        .collect();
    let mut seen: Vec<PciAddr> = Vec::new();
    for (at, addr) in pci_addrs(guest) {
        if seen.contains(&addr) {
            continue; // reported by check_guests
        }
        seen.push(addr);
        let Some(bridge) = host.pcie.get(usize::from(addr.segment)) else {
            report(Problem::PciNoBridge {
                addr,
                at,
                bridges: host.pcie.len(),
            });
            continue;
        };
        let (first, last) = bridge.bus_range;
        if !(first..=last).contains(&u32::from(addr.bus)) {
            report(Problem::PciBusOutOfRange {
                addr,
                at,
                bridge: bridge.path.clone(),
                range: bridge.bus_range,
            });
        }
        if let Some(Some((owner, owner_path))) = whole.get(usize::from(addr.segment)) {
            report(Problem::PciBridgeTaken {
                addr,
                at,
                bridge: bridge.path.clone(),
                owner: GuestRef::named(*owner, guest_name(guests, *owner)),
                owner_path: (*owner_path).into(),
            });
        }
        let earlier = guests
            .iter()
            .take(index)
            .position(|g| pci_addrs(g).any(|(_, a)| a == addr));
        if let Some(owner) = earlier {
            report(Problem::PciTaken {
                addr,
                at,
                owner: GuestRef::named(owner, guest_name(guests, owner)),
            });
        }
    }
}

/// The GIC frames a guest sees at the host's addresses, as
/// `vm::guest::Guest::create` places them: the distributor (at least
/// [`DIST_SIZE`]), the host's redistributor regions, and where the host
/// has none (GICv2) one [`REDIST_STRIDE`] frame per vCPU after the
/// distributor frame.
fn guest_gic_frames(host: &HostDt, vcpus: usize) -> Vec<(&'static str, Region)> {
    let Some(gic) = &host.gic else {
        return Vec::new();
    };
    let mut frames = alloc::vec![(
        "the GIC distributor",
        Region::new(gic.dist.base, gic.dist.size.max(DIST_SIZE)),
    )];
    frames.extend(
        gic.redists
            .iter()
            .map(|r| ("a GIC redistributor region", *r)),
    );
    if gic.redists.is_empty() {
        let size = REDIST_STRIDE.saturating_mul(vcpus as u64);
        frames.push((
            "the GIC redistributor region",
            Region::new(gic.dist.base.saturating_add(DIST_SIZE), size),
        ));
    }
    frames
}

fn check_viommu_gic(guest: &GuestConfig, host: &HostDt, report: &mut impl FnMut(Problem)) {
    let Some(window) = viommu_page(guest) else {
        return;
    };
    let frames = guest_gic_frames(host, guest.cpus.len());
    if let Some(&(what, gic)) = frames.iter().find(|(_, r)| r.overlaps(&window)) {
        report(Problem::ViommuOverlapsGic { window, gic, what });
    }
}

/// A device some guest has claimed.
struct Claim {
    guest: usize,
    /// The path as configured.
    path: String,
    /// The node's canonical path.
    node: String,
    /// Its MMIO, in whole pages.
    pages: Vec<Region>,
    /// The SPIs it raises (INTIDs).
    intids: Vec<u32>,
}

/// The canonical paths of the nodes a guest is given (paths that name no
/// node are left out).
fn given_nodes(guest: &GuestConfig, host: &HostDt) -> Vec<String> {
    guest
        .devices
        .iter()
        .filter(|p| path_is_valid(p))
        .filter_map(|p| host.tree().find(p))
        .map(|n| n.path())
        .collect()
}

/// True when `node` is one of `given` or inside one.
fn within(given: &[String], node: &str) -> bool {
    given.iter().any(|g| g == node || is_ancestor(g, node))
}

/// The first region of `a` that overlaps one of `b`, with that one and
/// what it is.
fn first_overlap<T: Copy>(a: &[Region], b: &[(T, Region)]) -> Option<(Region, T, Region)> {
    a.iter().find_map(|r| {
        b.iter()
            .find(|(_, o)| o.overlaps(r))
            .map(|&(what, o)| (*r, what, o))
    })
}

fn check_allowed(guest: &GuestConfig, host: &HostDt, report: &mut impl FnMut(Problem)) {
    let given = given_nodes(guest, host);
    for (at, path) in guest.allow_untranslated_dma.iter().enumerate() {
        if !path_is_valid(path) {
            continue; // reported by check_guests
        }
        match host.tree().find(path) {
            None => report(Problem::AllowAbsent {
                path: path.clone(),
                at,
            }),
            Some(node) if !within(&given, &node.path()) => report(Problem::AllowNotDevice {
                path: path.clone(),
                at,
            }),
            Some(_) => {}
        }
    }
}

fn check_devices(
    guests: &[GuestConfig],
    index: usize,
    host: &HostDt,
    claims: &mut Vec<Claim>,
    report: &mut impl FnMut(Problem),
) {
    let Some(guest) = guests.get(index) else {
        return;
    };
    let ram = Region::new(guest.memory_base, guest.memory_size);
    let given = given_nodes(guest, host);
    let allowed: Vec<String> = guest
        .allow_untranslated_dma
        .iter()
        .filter(|p| path_is_valid(p))
        .filter_map(|p| host.tree().find(p))
        .map(|n| n.path())
        .collect();
    // What the hypervisor keeps: its own devices and RAM, the console unless
    // this guest is given the console UART, the GIC frames this guest sees.
    let mut kept = hypervisor_regions(host);
    if let Some((uart, regions)) = console_pages(host)
        && !within(&given, uart)
    {
        kept.extend(regions.into_iter().map(|r| ("the console UART", r)));
    }
    let emulated: Vec<(&'static str, Region)> = guest_gic_frames(host, guest.cpus.len())
        .into_iter()
        .filter(|(_, r)| !r.is_empty())
        .map(|(what, r)| (what, pages(r)))
        .collect();
    let hypervisor_spis: Vec<u32> = host
        .smmus
        .iter()
        .flat_map(|s| s.interrupts.iter().map(|(_, i)| i.intid()))
        .filter(|&intid| intid >= 32)
        .collect();
    for (at, path) in guest.devices.iter().enumerate() {
        if !path_is_valid(path) {
            continue; // reported by check_guests
        }
        let Some(node) = host.tree().find(path) else {
            report(Problem::DeviceAbsent {
                path: path.clone(),
                at,
            });
            continue;
        };
        if let Some(what) = reserved_use(&node, host) {
            report(Problem::DeviceReserved {
                path: path.clone(),
                at,
                what,
            });
            continue;
        }
        if let Some((inner, what)) = reserved_descendant(&node, host) {
            report(Problem::DeviceContainsReserved {
                path: path.clone(),
                at,
                node: inner,
                what,
            });
            continue;
        }
        let canonical = node.path();
        let clash = claims.iter().find(|c| {
            c.node == canonical
                || is_ancestor(&c.node, &canonical)
                || is_ancestor(&canonical, &c.node)
        });
        match clash {
            // The very same string twice in one guest: check_guests said so.
            Some(c) if c.guest == index && c.path == *path => {}
            Some(c) if c.guest == index => report(Problem::DuplicateDevice {
                path: path.clone(),
                at,
            }),
            Some(c) => {
                let owner = GuestRef::named(c.guest, guest_name(guests, c.guest));
                report(Problem::DeviceTaken {
                    path: path.clone(),
                    at,
                    owner,
                    owner_path: c.node.clone(),
                });
            }
            None => {}
        }
        let mut regions = mmio_regions(&node);
        let resources = device_resources(host, &canonical).ok();
        if let Some(res) = &resources {
            regions.extend(res.mmio.iter().copied());
        }
        if let Some(mmio) = regions.iter().copied().find(|r| r.overlaps(&ram)) {
            report(Problem::RamOverlapsDevice {
                path: path.clone(),
                at,
                ram,
                mmio,
            });
        }
        if let Some(window) = viommu_page(guest)
            && let Some(mmio) = regions.iter().copied().find(|r| r.overlaps(&window))
        {
            report(Problem::ViommuOverlapsDevice {
                path: path.clone(),
                window,
                mmio,
            });
        }
        let intids = resources.map(|r| r.intids).unwrap_or_default();
        if let Some(viommu) = guest.viommu
            && intids.contains(&viommu.intid())
        {
            report(Problem::ViommuSpiTaken {
                spi: viommu.spi,
                path: path.clone(),
            });
        }
        let mut device_pages: Vec<Region> = regions.into_iter().map(pages).collect();
        device_pages.sort();
        device_pages.dedup();
        let mut page_reported = clash.is_some();
        if let Some((mmio, what, region)) = first_overlap(&device_pages, &kept) {
            page_reported = true;
            report(Problem::DeviceOverlapsHypervisor {
                path: path.clone(),
                at,
                mmio,
                what,
                region,
            });
        } else if let Some((mmio, what, window)) = first_overlap(&device_pages, &emulated) {
            page_reported = true;
            report(Problem::DeviceOverlapsEmulated {
                path: path.clone(),
                at,
                mmio,
                what,
                window,
            });
        }
        let others = || claims.iter().filter(|c| c.guest != index);
        if !page_reported {
            let shared = others().find_map(|c| {
                let (mine, theirs) = device_pages
                    .iter()
                    .find_map(|p| c.pages.iter().find(|o| o.overlaps(p)).map(|o| (*p, *o)))?;
                Some((c, mine, theirs))
            });
            if let Some((c, mmio, owner_mmio)) = shared {
                report(Problem::DevicePageShared {
                    path: path.clone(),
                    at,
                    mmio,
                    owner: GuestRef::named(c.guest, guest_name(guests, c.guest)),
                    owner_path: c.node.clone(),
                    owner_mmio,
                });
            }
        }
        if clash.is_none() {
            for &intid in &intids {
                let spi = intid - 32;
                if hypervisor_spis.contains(&intid) {
                    report(Problem::SpiReserved {
                        path: path.clone(),
                        at,
                        spi,
                        what: "an SMMUv3",
                    });
                } else if let Some(c) = others().find(|c| c.intids.contains(&intid)) {
                    report(Problem::SpiTaken {
                        path: path.clone(),
                        at,
                        spi,
                        owner: GuestRef::named(c.guest, guest_name(guests, c.guest)),
                        owner_path: c.node.clone(),
                    });
                }
            }
        }
        for master in untranslated_dma(&node, host) {
            if !within(&allowed, &master.node) {
                report(Problem::UntranslatedDma {
                    path: path.clone(),
                    at,
                    node: master.node,
                    why: master.why,
                });
            }
        }
        claims.push(Claim {
            guest: index,
            path: path.clone(),
            node: canonical,
            pages: device_pages,
            intids,
        });
    }
}

/// The name of guest `index`, or `""`.
fn guest_name(guests: &[GuestConfig], index: usize) -> &str {
    guests.get(index).map_or("", |g| g.name.as_str())
}
