//! The TOML schema as serde reads it: every key known (`deny_unknown_fields`),
//! values kept with their byte spans for error messages. Meaning (sizes,
//! paths, tokens) is given in `load`.

use hypervisor::config::{ResetAction, ViommuTransport};
use serde::Deserialize;
use toml::Spanned;

use crate::size::SizeValue;

/// A whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    /// A name for the board, for messages and documentation.
    pub board: Option<String>,
    /// The `[[guest]]` tables.
    #[serde(default)]
    pub guest: Vec<Spanned<RawGuest>>,
}

/// One `[[guest]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGuest {
    pub name: Spanned<String>,
    pub cpus: Spanned<Vec<Spanned<u32>>>,
    pub kernel: Spanned<String>,
    pub initrd: Option<Spanned<String>>,
    pub cmdline: Option<Spanned<String>>,
    pub on_reset: Option<ResetAction>,
    pub devices: Option<Spanned<Vec<Spanned<String>>>>,
    pub memory: Spanned<RawMemory>,
    pub viommu: Option<Spanned<RawViommu>>,
    pub allow_untranslated_dma: Option<Spanned<Vec<Spanned<String>>>>,
    pub limits: Option<Spanned<RawLimits>>,
    pub console: Option<Spanned<RawConsole>>,
    pub pci: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `[guest.console]`: the emulated console, each key optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConsole {
    pub enabled: Option<bool>,
    pub base: Option<Spanned<i64>>,
    pub spi: Option<Spanned<u32>>,
}

/// `[guest.limits]`: per-guest budgets, each key optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub domains: Option<Spanned<u32>>,
    pub io_table_memory: Option<Spanned<SizeValue>>,
    pub io_mappings: Option<Spanned<u32>>,
}

/// `[guest.memory]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMemory {
    pub size: Spanned<SizeValue>,
    pub base: Option<Spanned<i64>>,
}

/// `[guest.viommu]`: present means enabled unless `enabled = false`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawViommu {
    pub enabled: Option<bool>,
    pub transport: Option<ViommuTransport>,
    pub base: Option<Spanned<i64>>,
    pub spi: Option<Spanned<u32>>,
}
