//! Where each guest's values are in the TOML file, and how a
//! [`ValidationError`] from the shared rules is turned into a located
//! [`ConfigError`] (`guest[0].cpus[1]`, line, column).

use std::ops::Range;
use std::path::Path;

use hypervisor::config::limits::MAX_GUESTS;
use hypervisor::config::{KeyAt, Origin, Problem, ValidationError};
use toml::Spanned;

use crate::raw::RawGuest;
use crate::{ConfigError, ErrorKind, Position};

/// The positions of one guest's keys, each by its path in the guest's
/// table (`name`, `cpus[1]`, `memory.base`; `""` is the table itself).
#[derive(Clone, Debug)]
pub(crate) struct GuestSpans {
    keys: Vec<(String, Position)>,
}

impl GuestSpans {
    /// The positions of `guest`'s keys, with `at` mapping spans to
    /// positions.
    pub(crate) fn new(guest: &Spanned<RawGuest>, at: &impl Fn(Range<usize>) -> Position) -> Self {
        let g = guest.get_ref();
        let mut keys = Vec::new();
        let mut key = |k: &str, span: Range<usize>| keys.push((k.to_owned(), at(span)));
        key("", guest.span());
        key("name", g.name.span());
        key("cpus", g.cpus.span());
        for (i, c) in g.cpus.get_ref().iter().enumerate() {
            key(&format!("cpus[{i}]"), c.span());
        }
        key("memory", g.memory.span());
        let memory = g.memory.get_ref();
        key("memory.size", memory.size.span());
        if let Some(b) = &memory.base {
            key("memory.base", b.span());
        }
        if let Some(c) = &g.cmdline {
            key("cmdline", c.span());
        }
        let mut list = |name: &str, l: &Option<Spanned<Vec<Spanned<String>>>>| {
            if let Some(l) = l {
                key(name, l.span());
                for (i, item) in l.get_ref().iter().enumerate() {
                    key(&format!("{name}[{i}]"), item.span());
                }
            }
        };
        list("devices", &g.devices);
        list("allow_untranslated_dma", &g.allow_untranslated_dma);
        list("pci", &g.pci);
        if let Some(v) = &g.viommu {
            key("viommu", v.span());
            if let Some(b) = &v.get_ref().base {
                key("viommu.base", b.span());
            }
            if let Some(spi) = &v.get_ref().spi {
                key("viommu.spi", spi.span());
            }
        }
        if let Some(c) = &g.console {
            key("console", c.span());
        }
        if let Some(l) = &g.limits {
            key("limits", l.span());
            let l = l.get_ref();
            if let Some(d) = &l.domains {
                key("limits.domains", d.span());
            }
            if let Some(m) = &l.io_table_memory {
                key("limits.io_table_memory", m.span());
            }
            if let Some(m) = &l.io_mappings {
                key("limits.io_mappings", m.span());
            }
        }
        Self { keys }
    }

    /// The guest's origin as the bundle carries it: `file`'s name, the
    /// guest's `index` and each key's place.
    pub(crate) fn origin(&self, file: &Path, index: usize) -> Origin {
        let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        Origin {
            file: file
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            index: n(index),
            keys: self
                .keys
                .iter()
                .map(|(key, p)| KeyAt {
                    key: key.clone(),
                    line: n(p.line),
                    column: n(p.column),
                })
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
                self.spans.get(MAX_GUESTS).and_then(|s| s.place("")),
            ),
            _ => ("guest".into(), None),
        }
    }

    /// The key and place the rules shared with the hypervisor give the
    /// problem ([`Problem::keys`], [`Origin::locate`]): the boot reports
    /// a problem it finds at the same place.
    fn in_guest(&self, index: usize, problem: &Problem) -> (String, Option<Position>) {
        let prefix = format!("guest[{index}]");
        let Some(s) = self.spans.get(index) else {
            return (prefix, None);
        };
        let origin = s.origin(self.file, index);
        let (key, at) = origin.locate(&problem.keys());
        let position = at.map(|at| Position {
            line: at.line as usize,
            column: at.column as usize,
        });
        match key.is_empty() {
            true => (prefix, position),
            false => (format!("{prefix}.{key}"), position),
        }
    }
}

impl GuestSpans {
    /// The place of `key`, if the guest has it.
    fn place(&self, key: &str) -> Option<Position> {
        self.keys.iter().find(|(k, _)| k == key).map(|(_, p)| *p)
    }
}
