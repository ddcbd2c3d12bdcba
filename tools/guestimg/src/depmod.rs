//! Writing `modules.dep` for an unpacked kernel package. Debian's package
//! does not ship it (its postinst runs `depmod`), and `depmod` may not be on
//! the host, so the dependencies are read from each module's `.modinfo`
//! section (`depends=a,b`, written by modpost at build time).

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use object::{Object, ObjectSection};

use crate::error::GuestImgError;
use crate::modules::{module_name, normalize};

/// Reads a module file, decompressing `.ko.xz`.
pub(crate) fn read_module(path: &Path) -> Result<Vec<u8>, GuestImgError> {
    let raw = fs::read(path).map_err(GuestImgError::io("read", path))?;
    let name = path.to_string_lossy();
    if name.ends_with(".ko") {
        Ok(raw)
    } else if name.ends_with(".ko.xz") {
        let mut out = Vec::with_capacity(raw.len() * 4);
        xz2::read::XzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| GuestImgError::invalid(path, format!("xz: {e}")))?;
        Ok(out)
    } else {
        Err(GuestImgError::invalid(
            path,
            "unsupported module compression (only .ko and .ko.xz)",
        ))
    }
}

/// The module names in the `depends=` entry of an ELF module's `.modinfo`.
pub(crate) fn elf_depends(elf: &[u8]) -> Result<Vec<String>, String> {
    let file = object::File::parse(elf).map_err(|e| format!("not an ELF module: {e}"))?;
    let section = file
        .section_by_name(".modinfo")
        .ok_or("no .modinfo section")?;
    let data = section.data().map_err(|e| e.to_string())?;
    Ok(modinfo_depends(data))
}

/// The `depends=` list of a `.modinfo` section (NUL-separated `key=value`).
pub(crate) fn modinfo_depends(modinfo: &[u8]) -> Vec<String> {
    modinfo
        .split(|&b| b == 0)
        .filter_map(|entry| entry.strip_prefix(b"depends="))
        .flat_map(|list| list.split(|&b| b == b','))
        .filter(|name| !name.is_empty())
        .map(|name| normalize(&String::from_utf8_lossy(name)))
        .collect()
}

/// Module files under `dir` (relative paths, sorted).
fn module_files(dir: &Path) -> Result<Vec<String>, GuestImgError> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::from("kernel")];
    while let Some(rel) = stack.pop() {
        let abs = dir.join(&rel);
        for entry in fs::read_dir(&abs).map_err(GuestImgError::io("read", &abs))? {
            let entry = entry.map_err(GuestImgError::io("read", &abs))?;
            let rel = rel.join(entry.file_name());
            let ty = entry.file_type().map_err(GuestImgError::io("stat", &abs))?;
            if ty.is_dir() {
                stack.push(rel);
            } else if entry.file_name().to_string_lossy().contains(".ko") {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Reads every module's dependencies, on all cores.
fn read_all_depends(dir: &Path, files: &[String]) -> Result<Vec<Vec<String>>, GuestImgError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = files.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let workers: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|rel| {
                            let path = dir.join(rel);
                            let elf = read_module(&path)?;
                            elf_depends(&elf).map_err(|e| GuestImgError::invalid(&path, e))
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(files.len());
        for w in workers {
            all.extend(w.join().expect("modules.dep worker panicked")?);
        }
        Ok(all)
    })
}

/// Writes `modules.dep` into `dir` (a `/lib/modules/RELEASE` directory) from
/// the modules' own dependency lists. Returns the number of modules.
pub(crate) fn generate(dir: &Path) -> Result<usize, GuestImgError> {
    let files = module_files(dir)?;
    let depends = read_all_depends(dir, &files)?;
    let direct: BTreeMap<String, (&str, &[String])> = files
        .iter()
        .zip(&depends)
        .map(|(f, d)| (module_name(f), (f.as_str(), d.as_slice())))
        .collect();
    let text = render(&files, &direct);
    let path = dir.join("modules.dep");
    fs::write(&path, text).map_err(GuestImgError::io("write", &path))?;
    Ok(files.len())
}

/// The modules.dep text: for each module its whole closure, deepest
/// dependency last (as depmod writes it).
fn render(files: &[String], direct: &BTreeMap<String, (&str, &[String])>) -> String {
    let mut text = String::new();
    for file in files {
        let mut order = Vec::new();
        closure(&module_name(file), direct, &mut HashSet::new(), &mut order);
        order.pop(); // the module itself
        text.push_str(file);
        text.push(':');
        for dep in order.iter().rev() {
            text.push(' ');
            text.push_str(dep);
        }
        text.push('\n');
    }
    text
}

/// Post-order walk: the paths `name` needs, dependencies first, then its own.
fn closure<'a>(
    name: &str,
    direct: &BTreeMap<String, (&'a str, &[String])>,
    seen: &mut HashSet<String>,
    out: &mut Vec<&'a str>,
) {
    if !seen.insert(name.to_owned()) {
        return;
    }
    if let Some((path, deps)) = direct.get(name) {
        for dep in deps.iter() {
            closure(dep, direct, seen, out);
        }
        out.push(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::ModulesDep;

    #[test]
    fn modinfo_parsing() {
        let info = b"license=GPL\0depends=nvme-core,nvme-auth\0name=nvme\0";
        assert_eq!(modinfo_depends(info), ["nvme_core", "nvme_auth"]);
        assert!(modinfo_depends(b"depends=\0name=x\0").is_empty());
    }

    #[test]
    fn rendered_file_round_trips() {
        let files: Vec<String> = ["k/a.ko", "k/b-x.ko", "k/c.ko", "k/d.ko"]
            .map(String::from)
            .to_vec();
        let deps = [
            vec!["b_x".to_owned(), "c".to_owned()],
            vec!["c".to_owned()],
            vec![],
            vec!["builtin_thing".to_owned()],
        ];
        let direct = files
            .iter()
            .zip(&deps)
            .map(|(f, d)| (module_name(f), (f.as_str(), d.as_slice())))
            .collect();
        let text = render(&files, &direct);
        assert_eq!(
            text,
            "k/a.ko: k/b-x.ko k/c.ko\nk/b-x.ko: k/c.ko\nk/c.ko:\nk/d.ko:\n"
        );
        let plan = ModulesDep::parse(&text)
            .load_order(&["a".to_owned()], &HashSet::new())
            .unwrap();
        assert_eq!(plan.paths, ["k/c.ko", "k/b-x.ko", "k/a.ko"]);
    }
}
