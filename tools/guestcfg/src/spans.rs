//! Where each guest's values are in the TOML file, and how a
//! [`ValidationError`] from the shared rules is turned into a located
//! [`ConfigError`] (`guest[0].cpus[1]`, line, column).

use std::ops::Range;
use std::path::Path;

use hypervisor::config::limits::MAX_GUESTS;
use hypervisor::config::{Field, Problem, ValidationError};
use toml::Spanned;

use crate::raw::RawGuest;
use crate::{ConfigError, ErrorKind, Position};

/// The positions of one guest's values.
#[derive(Clone, Debug)]
pub(crate) struct GuestSpans {
    guest: Position,
    name: Position,
    cpus: Position,
    cpu_items: Vec<Position>,
    memory: Position,
    size: Position,
    base: Option<Position>,
    cmdline: Option<Position>,
    devices: Option<Position>,
    device_items: Vec<Position>,
    viommu: Option<Position>,
    viommu_base: Option<Position>,
    viommu_spi: Option<Position>,
    allow: Option<Position>,
    allow_items: Vec<Position>,
    limits: Option<Position>,
    console: Option<Position>,
    limits_domains: Option<Position>,
    io_table_memory: Option<Position>,
    io_mappings: Option<Position>,
    pci: Option<Position>,
    pci_items: Vec<Position>,
}

impl GuestSpans {
    /// The positions of `guest`'s values, with `at` mapping spans to
    /// positions.
    pub(crate) fn new(guest: &Spanned<RawGuest>, at: &impl Fn(Range<usize>) -> Position) -> Self {
        let g = guest.get_ref();
        let memory = g.memory.get_ref();
        let viommu = g.viommu.as_ref().map(|v| v.get_ref());
        let limits = g.limits.as_ref().map(|l| l.get_ref());
        Self {
            guest: at(guest.span()),
            name: at(g.name.span()),
            cpus: at(g.cpus.span()),
            cpu_items: g.cpus.get_ref().iter().map(|c| at(c.span())).collect(),
            memory: at(g.memory.span()),
            size: at(memory.size.span()),
            base: memory.base.as_ref().map(|b| at(b.span())),
            cmdline: g.cmdline.as_ref().map(|c| at(c.span())),
            devices: g.devices.as_ref().map(|d| at(d.span())),
            device_items: g
                .devices
                .iter()
                .flat_map(|d| d.get_ref().iter().map(|p| at(p.span())))
                .collect(),
            viommu: g.viommu.as_ref().map(|v| at(v.span())),
            console: g.console.as_ref().map(|c| at(c.span())),
            viommu_base: viommu.and_then(|v| v.base.as_ref()).map(|b| at(b.span())),
            viommu_spi: viommu.and_then(|v| v.spi.as_ref()).map(|b| at(b.span())),
            allow: g.allow_untranslated_dma.as_ref().map(|a| at(a.span())),
            allow_items: g
                .allow_untranslated_dma
                .iter()
                .flat_map(|a| a.get_ref().iter().map(|p| at(p.span())))
                .collect(),
            limits: g.limits.as_ref().map(|l| at(l.span())),
            limits_domains: g
                .limits
                .as_ref()
                .and_then(|l| l.get_ref().domains.as_ref())
                .map(|d| at(d.span())),
            io_table_memory: limits
                .and_then(|l| l.io_table_memory.as_ref())
                .map(|v| at(v.span())),
            io_mappings: limits
                .and_then(|l| l.io_mappings.as_ref())
                .map(|v| at(v.span())),
            pci: g.pci.as_ref().map(|p| at(p.span())),
            pci_items: g
                .pci
                .iter()
                .flat_map(|p| p.get_ref().iter().map(|i| at(i.span())))
                .collect(),
        }
    }
}

/// Locates validation errors in one file.
pub(crate) struct Locator<'a> {
    /// The file.
    pub file: &'a Path,
    /// Each guest's positions, in file order.
    pub spans: &'a [GuestSpans],
}

impl Locator<'_> {
    /// `error` with the file, line, column and key path of what it is about.
    pub(crate) fn error(&self, error: ValidationError) -> ConfigError {
        let (key, position) = match &error.guest {
            None => self.global(&error.problem),
            Some(guest) => self.in_guest(guest.index, &error.problem),
        };
        ConfigError {
            file: self.file.to_owned(),
            position,
            key: Some(key),
            kind: ErrorKind::Invalid(error.problem),
        }
    }

    fn global(&self, problem: &Problem) -> (String, Option<Position>) {
        match problem {
            Problem::TooManyGuests { .. } => (
                format!("guest[{MAX_GUESTS}]"),
                self.spans.get(MAX_GUESTS).map(|s| s.guest),
            ),
            _ => ("guest".into(), None),
        }
    }

    fn in_guest(&self, index: usize, problem: &Problem) -> (String, Option<Position>) {
        let prefix = format!("guest[{index}]");
        let Some(s) = self.spans.get(index) else {
            return (prefix, None);
        };
        let item = problem.item();
        let (key, position) = match (problem.field(), item) {
            (Field::Guests, _) => (String::new(), s.guest),
            (Field::Name, _) => (".name".into(), s.name),
            (Field::Cpus, Some(i)) => (
                format!(".cpus[{i}]"),
                s.cpu_items.get(i).copied().unwrap_or(s.cpus),
            ),
            (Field::Cpus, None) => (".cpus".into(), s.cpus),
            (Field::MemorySize, _) => (".memory.size".into(), s.size),
            (Field::MemoryBase, _) => match s.base {
                Some(base) => (".memory.base".into(), base),
                None => (".memory".into(), s.memory),
            },
            (Field::Cmdline, _) => (".cmdline".into(), s.cmdline.unwrap_or(s.guest)),
            (Field::Devices, Some(i)) => {
                let at = s
                    .device_items
                    .get(i)
                    .copied()
                    .or(s.devices)
                    .unwrap_or(s.guest);
                (format!(".devices[{i}]"), at)
            }
            (Field::Devices, None) => (".devices".into(), s.devices.unwrap_or(s.guest)),
            (Field::ViommuBase, _) => match s.viommu_base {
                Some(base) => (".viommu.base".into(), base),
                None => (".viommu".into(), s.viommu.unwrap_or(s.guest)),
            },
            (Field::AllowUntranslatedDma, Some(i)) => {
                let at = s.allow_items.get(i).copied().or(s.allow).unwrap_or(s.guest);
                (format!(".allow_untranslated_dma[{i}]"), at)
            }
            (Field::AllowUntranslatedDma, None) => {
                (".allow_untranslated_dma".into(), s.allow.unwrap_or(s.guest))
            }
            (Field::ViommuSpi, _) => match s.viommu_spi {
                Some(spi) => (".viommu.spi".into(), spi),
                None => (".viommu".into(), s.viommu.unwrap_or(s.guest)),
            },
            (Field::Pci, Some(i)) => {
                let at = s.pci_items.get(i).copied().or(s.pci).unwrap_or(s.guest);
                (format!(".pci[{i}]"), at)
            }
            (Field::Pci, None) => (".pci".into(), s.pci.unwrap_or(s.guest)),
            (Field::Console, _) => (".console".into(), s.console.unwrap_or(s.guest)),
            (Field::LimitsDomains, _) => (
                ".limits.domains".into(),
                s.limits_domains.or(s.limits).unwrap_or(s.guest),
            ),
            (Field::Limits, _) => match problem {
                Problem::IoTableMemory { .. } if s.io_table_memory.is_some() => (
                    ".limits.io_table_memory".into(),
                    s.io_table_memory.unwrap_or(s.guest),
                ),
                Problem::IoMappings { .. } if s.io_mappings.is_some() => (
                    ".limits.io_mappings".into(),
                    s.io_mappings.unwrap_or(s.guest),
                ),
                _ => (".limits".into(), s.limits.unwrap_or(s.guest)),
            },
        };
        (prefix + &key, Some(position))
    }
}
