//! Where a guest's configuration came from: the TOML file's name and the
//! line and column of each of the guest's keys ([`Origin`], written into
//! the bundle by the host tool), and the key path a [`Problem`] is about
//! ([`Problem::keys`]). With them a problem found at boot, when only the
//! bundle is left, is reported as the host tool reports it at load:
//! `qemu-virt-x.toml:14:7: guest[1].pci[0]: ...` ([`Located`]).

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

use super::problem::{Field, Problem, ValidationError};

/// The source of one guest's configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The TOML file's name (no directory: the bundle stays the same
    /// wherever it was built).
    pub file: String,
    /// The guest's index among the file's `[[guest]]` tables.
    pub index: u32,
    /// Each key of the guest's table present in the file, with its place.
    pub keys: Vec<KeyAt>,
}

/// A key of a guest's table (relative to it: `name`, `cpus[1]`,
/// `memory.base`; `""` is the `[[guest]]` table itself) and its place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAt {
    /// The key path.
    pub key: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column (in characters).
    pub column: u32,
}

impl Origin {
    /// The key a problem is reported at, and its place: the first of
    /// `keys` (most precise first) present in the file; when none is, the
    /// first of them at the guest table's place.
    pub fn locate(&self, keys: &[String]) -> (String, Option<&KeyAt>) {
        let found = keys
            .iter()
            .filter(|k| !k.is_empty())
            .find_map(|k| self.keys.iter().find(|at| at.key == *k));
        let key = match found {
            Some(at) => at.key.clone(),
            None => keys.first().cloned().unwrap_or_default(),
        };
        let place = found.or_else(|| self.keys.iter().find(|at| at.key.is_empty()));
        (key, place)
    }
}

impl Problem {
    /// The keys of the guest's table this problem is about, most precise
    /// first (`pci[1]`, then `pci`); the guest table (`""`) is always last.
    pub fn keys(&self) -> Vec<String> {
        let listed = |name: &str| match self.item() {
            Some(i) => vec![format!("{name}[{i}]"), name.into()],
            None => vec![name.into()],
        };
        let mut keys = match self.field() {
            Field::Guests => Vec::new(),
            Field::Name => vec!["name".into()],
            Field::Cpus => listed("cpus"),
            Field::MemorySize => vec!["memory.size".into()],
            Field::MemoryBase => vec!["memory.base".into(), "memory".into()],
            Field::Cmdline => vec!["cmdline".into()],
            Field::Devices => listed("devices"),
            Field::ViommuBase => vec!["viommu.base".into(), "viommu".into()],
            Field::ViommuSpi => vec!["viommu.spi".into(), "viommu".into()],
            Field::AllowUntranslatedDma => listed("allow_untranslated_dma"),
            Field::LimitsDomains => vec!["limits.domains".into(), "limits".into()],
            Field::Limits => match self {
                Problem::IoTableMemory { .. } => {
                    vec!["limits.io_table_memory".into(), "limits".into()]
                }
                Problem::IoMappings { .. } => vec!["limits.io_mappings".into(), "limits".into()],
                _ => vec!["limits".into()],
            },
            Field::Console => vec!["console".into()],
            Field::Pci => listed("pci"),
        };
        keys.push(String::new());
        keys
    }
}

/// A validation error with the file, line, column and key of what it is
/// about when the guest's [`Origin`] is known:
/// `two.toml:14:7: guest[1].pci[0]: guest 'beta': ...`.
pub struct Located<'a> {
    /// The error.
    pub error: &'a ValidationError,
    /// The guest's origin, if the bundle carries one.
    pub origin: Option<&'a Origin>,
}

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let origin = self.origin.filter(|o| !o.file.is_empty());
        if let (Some(origin), Some(_)) = (origin, &self.error.guest) {
            let (key, place) = origin.locate(&self.error.problem.keys());
            write!(f, "{}", origin.file)?;
            if let Some(at) = place {
                write!(f, ":{}:{}", at.line, at.column)?;
            }
            write!(f, ": guest[{}]", origin.index)?;
            if !key.is_empty() {
                write!(f, ".{key}")?;
            }
            f.write_str(": ")?;
        }
        write!(f, "{}", self.error)
    }
}
