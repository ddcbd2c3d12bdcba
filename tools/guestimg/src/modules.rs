//! Kernel module dependency resolution from `modules.dep`: which module
//! files a set of requested modules needs, in an order `insmod` can load them.
//!
//! `modules.dep` has one line per module, `path: dep dep ...`, with paths
//! relative to `/lib/modules/RELEASE` and every (transitive) dependency
//! listed. Module names compare with `-` and `_` as the same character, as
//! the kernel does.

use std::collections::{BTreeMap, HashSet};

/// The name a module file defines: its file name without `.ko[.xz]`, with
/// `-` turned into `_`.
pub(crate) fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    normalize(stem)
}

/// A module name with `-` turned into `_`.
pub(crate) fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// A parsed `modules.dep`.
#[derive(Debug, Default)]
pub(crate) struct ModulesDep {
    /// Module name -> (its path, paths of its dependencies as listed).
    modules: BTreeMap<String, (String, Vec<String>)>,
}

/// What [`ModulesDep::load_order`] found for a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct LoadPlan {
    /// Module paths in load order (dependencies first).
    pub paths: Vec<String>,
    /// Requested modules that are built into the kernel.
    pub builtin: Vec<String>,
}

impl ModulesDep {
    /// Parses the text of `modules.dep`.
    pub(crate) fn parse(text: &str) -> Self {
        let mut modules = BTreeMap::new();
        for line in text.lines() {
            let Some((path, deps)) = line.split_once(':') else {
                continue;
            };
            let path = path.trim();
            if path.is_empty() {
                continue;
            }
            let deps = deps.split_whitespace().map(str::to_owned).collect();
            modules.insert(module_name(path), (path.to_owned(), deps));
        }
        Self { modules }
    }

    /// Resolves `requested` (module names) against this file and the names
    /// in `builtin` (from `modules.builtin`). Returns the module paths to
    /// load, dependencies first, each once; or the first name that is
    /// neither a module nor built in.
    pub(crate) fn load_order<'a>(
        &self,
        requested: &'a [String],
        builtin: &HashSet<String>,
    ) -> Result<LoadPlan, &'a str> {
        let mut plan = LoadPlan {
            paths: Vec::new(),
            builtin: Vec::new(),
        };
        let mut seen = HashSet::new();
        for name in requested {
            let key = normalize(name);
            if self.modules.contains_key(&key) {
                self.visit(&key, &mut seen, &mut plan.paths);
            } else if builtin.contains(&key) {
                plan.builtin.push(name.clone());
            } else {
                return Err(name);
            }
        }
        Ok(plan)
    }

    /// A `modules.dep` for just `paths` (some of this file's modules), with
    /// `.xz` dropped from every path, for modules stored uncompressed.
    pub(crate) fn subset(&self, paths: &[String]) -> String {
        let strip = |p: &str| p.strip_suffix(".xz").unwrap_or(p).to_owned();
        let mut text = String::new();
        for path in paths {
            let Some((own, deps)) = self.modules.get(&module_name(path)) else {
                continue;
            };
            text.push_str(&strip(own));
            text.push(':');
            for dep in deps {
                text.push(' ');
                text.push_str(&strip(dep));
            }
            text.push('\n');
        }
        text
    }

    /// Depth-first: dependencies of `name`, then `name` itself. A module's
    /// list holds its whole closure, so following each entry's own line
    /// gives a valid order whatever order the lists are in. depmod lists
    /// the deepest dependency last, so the list is walked from the end.
    fn visit(&self, name: &str, seen: &mut HashSet<String>, out: &mut Vec<String>) {
        if !seen.insert(name.to_owned()) {
            return;
        }
        let Some((path, deps)) = self.modules.get(name) else {
            return;
        };
        for dep in deps.iter().rev() {
            self.visit(&module_name(dep), seen, out);
        }
        out.push(path.clone());
    }
}

/// The module names in the text of `modules.builtin`.
pub(crate) fn parse_builtin(text: &str) -> HashSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(module_name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like the real file: closure on every line, deepest last.
    const DEP: &str = "\
kernel/drivers/nvme/common/nvme-auth.ko.xz:
kernel/drivers/nvme/common/nvme-keyring.ko.xz:
kernel/drivers/nvme/host/nvme-core.ko.xz: kernel/drivers/nvme/common/nvme-keyring.ko.xz kernel/drivers/nvme/common/nvme-auth.ko.xz
kernel/drivers/nvme/host/nvme.ko.xz: kernel/drivers/nvme/host/nvme-core.ko.xz kernel/drivers/nvme/common/nvme-keyring.ko.xz kernel/drivers/nvme/common/nvme-auth.ko.xz
kernel/drivers/iommu/virtio-iommu.ko.xz:
kernel/drivers/virtio/virtio_mmio.ko.xz:
kernel/lib/a.ko.xz: kernel/lib/b.ko.xz kernel/lib/c.ko.xz
kernel/lib/b.ko.xz: kernel/lib/c.ko.xz
kernel/lib/c.ko.xz:
";

    fn builtin() -> HashSet<String> {
        parse_builtin(
            "kernel/drivers/virtio/virtio_pci.ko\nkernel/drivers/tty/serial/amba-pl011.ko\n",
        )
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn nvme_closure_in_order() {
        let dep = ModulesDep::parse(DEP);
        let plan = dep.load_order(&names(&["nvme"]), &builtin()).unwrap();
        assert_eq!(
            plan.paths,
            [
                "kernel/drivers/nvme/common/nvme-auth.ko.xz",
                "kernel/drivers/nvme/common/nvme-keyring.ko.xz",
                "kernel/drivers/nvme/host/nvme-core.ko.xz",
                "kernel/drivers/nvme/host/nvme.ko.xz",
            ]
        );
        assert!(plan.builtin.is_empty());
        let sub = dep.subset(&plan.paths[2..]);
        assert_eq!(
            sub,
            "kernel/drivers/nvme/host/nvme-core.ko: kernel/drivers/nvme/common/nvme-keyring.ko kernel/drivers/nvme/common/nvme-auth.ko\n\
             kernel/drivers/nvme/host/nvme.ko: kernel/drivers/nvme/host/nvme-core.ko kernel/drivers/nvme/common/nvme-keyring.ko kernel/drivers/nvme/common/nvme-auth.ko\n"
        );
    }

    #[test]
    fn order_holds_whatever_the_list_order() {
        // b needs c; a's list names b before c or after: c always first.
        for a_line in [
            "kernel/lib/a.ko: kernel/lib/b.ko kernel/lib/c.ko",
            "kernel/lib/a.ko: kernel/lib/c.ko kernel/lib/b.ko",
        ] {
            let text = format!("{a_line}\nkernel/lib/b.ko: kernel/lib/c.ko\nkernel/lib/c.ko:\n");
            let plan = ModulesDep::parse(&text)
                .load_order(&names(&["a"]), &HashSet::new())
                .unwrap();
            assert_eq!(
                plan.paths,
                ["kernel/lib/c.ko", "kernel/lib/b.ko", "kernel/lib/a.ko"]
            );
        }
    }

    #[test]
    fn several_requests_share_dependencies() {
        let dep = ModulesDep::parse(DEP);
        let req = names(&["virtio_mmio", "virtio-iommu", "nvme", "nvme_core", "b", "a"]);
        let plan = dep.load_order(&req, &builtin()).unwrap();
        assert_eq!(
            plan.paths,
            [
                "kernel/drivers/virtio/virtio_mmio.ko.xz",
                "kernel/drivers/iommu/virtio-iommu.ko.xz",
                "kernel/drivers/nvme/common/nvme-auth.ko.xz",
                "kernel/drivers/nvme/common/nvme-keyring.ko.xz",
                "kernel/drivers/nvme/host/nvme-core.ko.xz",
                "kernel/drivers/nvme/host/nvme.ko.xz",
                "kernel/lib/c.ko.xz",
                "kernel/lib/b.ko.xz",
                "kernel/lib/a.ko.xz",
            ]
        );
    }

    #[test]
    fn builtin_and_unknown() {
        let dep = ModulesDep::parse(DEP);
        let plan = dep
            .load_order(
                &names(&["virtio_pci", "amba_pl011", "nvme_auth"]),
                &builtin(),
            )
            .unwrap();
        assert_eq!(plan.builtin, ["virtio_pci", "amba_pl011"]);
        assert_eq!(plan.paths, ["kernel/drivers/nvme/common/nvme-auth.ko.xz"]);
        let req = names(&["nvme", "no_such"]);
        assert_eq!(dep.load_order(&req, &builtin()), Err("no_such"));
    }

    #[test]
    fn name_normalization() {
        assert_eq!(
            module_name("kernel/drivers/iommu/virtio-iommu.ko.xz"),
            "virtio_iommu"
        );
        assert_eq!(module_name("x.ko"), "x");
        assert_eq!(
            module_name("kernel/drivers/nvme/host/nvme-core.ko"),
            "nvme_core"
        );
    }
}
