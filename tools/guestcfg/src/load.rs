//! Reading a TOML file into a [`ConfigFile`]: serde does the schema (known
//! keys, types), this module gives the values meaning (sizes, kernel and
//! initrd sources) and runs the board-independent rules of
//! [`hypervisor::config::check_guests`], locating every error in the file.

use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};

use hypervisor::config::limits::{DEFAULT_MEMORY_BASE, DEFAULT_VIOMMU_BASE, DEFAULT_VIOMMU_SPI};
use hypervisor::config::{
    ConsoleConfig, Field, GuestConfig, GuestLimits, ValidationError, ViommuConfig, check_guests,
};

use crate::locate::{key_path_at, position};
use crate::raw::{RawFile, RawGuest};
use crate::source::{Image, source};
use crate::spans::{GuestSpans, Locator};
use crate::{ConfigError, ErrorKind, Source};

/// One guest of a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestSpec {
    /// The decoded configuration, as the hypervisor will receive it.
    pub config: GuestConfig,
    /// Where the kernel Image comes from.
    pub kernel: Source,
    /// Where the initrd comes from, if there is one.
    pub initrd: Option<Source>,
}

/// A parsed, self-consistent configuration file (not yet checked against a
/// board: see [`crate::check_against_board`]).
#[derive(Clone, Debug)]
pub struct ConfigFile {
    /// The file it was read from.
    pub path: PathBuf,
    /// The optional `board` name.
    pub board: Option<String>,
    /// The guests, in file order.
    pub guests: Vec<GuestSpec>,
    /// Where each guest's values are, for later errors.
    pub(crate) spans: Vec<GuestSpans>,
}

impl ConfigFile {
    /// The guests' decoded configurations.
    pub fn configs(&self) -> Vec<GuestConfig> {
        self.guests.iter().map(|g| g.config.clone()).collect()
    }

    /// Locates a validation error in this file.
    pub(crate) fn locate(&self, error: ValidationError) -> ConfigError {
        Locator {
            file: &self.path,
            spans: &self.spans,
        }
        .error(error)
    }
}

/// Reads and checks the configuration file at `path`. Every problem found
/// is returned, each with its file, line, column and key path.
pub fn load(path: &Path) -> Result<ConfigFile, Vec<ConfigError>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError {
            file: path.to_owned(),
            position: None,
            key: None,
            kind: ErrorKind::Read(e),
        }]
    })?;
    load_str(&text, path)
}

/// Like [`load`], for `text` read from `path` (which names the file in
/// errors and is the base of relative kernel and initrd paths).
pub fn load_str(text: &str, path: &Path) -> Result<ConfigFile, Vec<ConfigError>> {
    let at = |span: Range<usize>| position(text, span.start);
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let span = e.span();
        vec![ConfigError {
            file: path.to_owned(),
            position: span.clone().map(at),
            key: span.and_then(|s| key_path_at(text, s.start)),
            kind: ErrorKind::Toml(e.message().trim_end().to_owned()),
        }]
    })?;
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut errors = Vec::new();
    let mut guests = Vec::new();
    let mut spans = Vec::new();
    // Fields whose value could not be read, per guest: their rule checks
    // would only repeat the error.
    let mut unreadable: HashSet<(usize, Field)> = HashSet::new();
    for (index, guest) in raw.guest.iter().enumerate() {
        let s = GuestSpans::new(guest, &at);
        let mut fail = |span: Range<usize>, key: &str, kind: ErrorKind| {
            errors.push(ConfigError {
                file: path.to_owned(),
                position: Some(at(span)),
                key: Some(format!("guest[{index}].{key}")),
                kind,
            });
        };
        let g: &RawGuest = guest.get_ref();
        let memory_size = g
            .memory
            .get_ref()
            .size
            .get_ref()
            .bytes()
            .unwrap_or_else(|kind| {
                fail(g.memory.get_ref().size.span(), "memory.size", kind);
                unreadable.insert((index, Field::MemorySize));
                0
            });
        let memory_base = match &g.memory.get_ref().base {
            None => DEFAULT_MEMORY_BASE,
            Some(base) => u64::try_from(*base.get_ref()).unwrap_or_else(|_| {
                fail(
                    base.span(),
                    "memory.base",
                    ErrorKind::Negative(*base.get_ref()),
                );
                unreadable.insert((index, Field::MemoryBase));
                DEFAULT_MEMORY_BASE
            }),
        };
        let viommu = g.viommu.as_ref().map(|v| v.get_ref()).and_then(|v| {
            let base = match &v.base {
                None => DEFAULT_VIOMMU_BASE,
                Some(base) => u64::try_from(*base.get_ref()).unwrap_or_else(|_| {
                    fail(
                        base.span(),
                        "viommu.base",
                        ErrorKind::Negative(*base.get_ref()),
                    );
                    unreadable.insert((index, Field::ViommuBase));
                    DEFAULT_VIOMMU_BASE
                }),
            };
            v.enabled.unwrap_or(true).then(|| ViommuConfig {
                transport: v.transport.unwrap_or_default(),
                base,
                spi: v.spi.as_ref().map_or(DEFAULT_VIOMMU_SPI, |s| *s.get_ref()),
            })
        });
        let mut limits = GuestLimits::default();
        if let Some(l) = g.limits.as_ref().map(|l| l.get_ref()) {
            if let Some(v) = &l.io_table_memory {
                match v.get_ref().bytes() {
                    Ok(bytes) => limits.io_table_memory = bytes,
                    Err(kind) => fail(v.span(), "limits.io_table_memory", kind),
                }
            }
            if let Some(v) = &l.io_mappings {
                limits.io_mappings = *v.get_ref();
            }
            if let Some(v) = &l.domains {
                limits.domains = *v.get_ref();
            }
        }
        let mut console = ConsoleConfig::default();
        if let Some(c) = g.console.as_ref().map(|c| c.get_ref()) {
            console.enabled = c.enabled.unwrap_or(true);
            console.spi = c.spi.as_ref().map(|s| *s.get_ref());
            console.base = c.base.as_ref().and_then(|base| {
                u64::try_from(*base.get_ref())
                    .map_err(|_| {
                        fail(
                            base.span(),
                            "console.base",
                            ErrorKind::Negative(*base.get_ref()),
                        );
                        unreadable.insert((index, Field::Console));
                    })
                    .ok()
            });
        }
        let kernel = source(g.kernel.get_ref(), dir, Image::Kernel)
            .map_err(|kind| fail(g.kernel.span(), "kernel", kind))
            .ok();
        let initrd = match &g.initrd {
            None => Some(None),
            Some(v) => source(v.get_ref(), dir, Image::Initrd)
                .map(Some)
                .map_err(|kind| fail(v.span(), "initrd", kind))
                .ok(),
        };
        let config = GuestConfig {
            name: g.name.get_ref().clone(),
            cpus: g.cpus.get_ref().iter().map(|c| *c.get_ref()).collect(),
            memory_size,
            memory_base,
            cmdline: g
                .cmdline
                .as_ref()
                .map(|c| c.get_ref().clone())
                .unwrap_or_default(),
            devices: g
                .devices
                .iter()
                .flat_map(|d| d.get_ref().iter().map(|p| p.get_ref().clone()))
                .collect(),
            on_reset: g.on_reset.unwrap_or_default(),
            viommu,
            allow_untranslated_dma: g
                .allow_untranslated_dma
                .iter()
                .flat_map(|d| d.get_ref().iter().map(|p| p.get_ref().clone()))
                .collect(),
            limits,
            console,
            pci: g
                .pci
                .iter()
                .flat_map(|p| p.get_ref().iter().map(|i| i.get_ref().clone()))
                .collect(),
            origin: s.origin(path, index),
        };
        // On a bad source the placeholder is never used: errors is not empty.
        let (kernel, initrd) = (
            kernel.unwrap_or(Source::DebianKernel),
            initrd.unwrap_or(None),
        );
        guests.push(GuestSpec {
            config,
            kernel,
            initrd,
        });
        spans.push(s);
    }
    let file = ConfigFile {
        path: path.to_owned(),
        board: raw.board,
        guests,
        spans,
    };
    for error in check_guests(&file.configs()) {
        let key = error
            .guest
            .as_ref()
            .map(|g| (g.index, error.problem.field()));
        if key.is_some_and(|k| unreadable.contains(&k)) {
            continue;
        }
        errors.push(file.locate(error));
    }
    if errors.is_empty() {
        Ok(file)
    } else {
        errors.sort_by_key(|e| e.position);
        Err(errors)
    }
}
