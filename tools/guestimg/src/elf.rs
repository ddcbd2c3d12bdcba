//! Which files a dynamically linked program needs, read from the ELF files
//! themselves (an arm64 binary cannot run on the host to ask `ldd`): its
//! interpreter (`PT_INTERP`) and the `DT_NEEDED` libraries, transitively,
//! found in the library directories of an unpacked Debian root the way the
//! dynamic loader searches them.
//!
//! Paths are relative to the root; symbolic links inside the root (absolute
//! ones are taken relative to it) are followed to the file that holds the
//! bytes, but each library keeps the name it is asked for.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Component, Path, PathBuf};

use object::Endianness;
use object::elf::{DT_NEEDED, FileHeader64};
use object::read::elf::{Dyn, FileHeader, ProgramHeader};

use crate::error::GuestImgError;

/// The arm64 Debian library directories, in the loader's order.
pub const ARM64_LIB_DIRS: &[&str] = &[
    "lib/aarch64-linux-gnu",
    "usr/lib/aarch64-linux-gnu",
    "lib",
    "usr/lib",
];

/// How many symbolic links a lookup follows before giving up.
const MAX_LINKS: usize = 40;

/// One file of a closure.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Needed {
    /// Where the program expects it, relative to the root
    /// (`lib/ld-linux-aarch64.so.1`, `lib/aarch64-linux-gnu/libz.so.1`).
    pub path: PathBuf,
    /// The file with its bytes, on the host (symbolic links followed).
    pub file: PathBuf,
}

/// What one ELF file names: its interpreter (absolute, as written) and its
/// `DT_NEEDED` entries.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Links {
    /// `PT_INTERP`, e.g. `/lib/ld-linux-aarch64.so.1`.
    pub interpreter: Option<String>,
    /// The `DT_NEEDED` names, in file order.
    pub needed: Vec<String>,
}

/// Reads the interpreter and `DT_NEEDED` names of a 64-bit ELF file.
pub(crate) fn links(data: &[u8]) -> Result<Links, String> {
    let header = FileHeader64::<Endianness>::parse(data).map_err(|e| format!("not ELF64: {e}"))?;
    let endian = header.endian().map_err(|e| e.to_string())?;
    let mut out = Links::default();
    for ph in header
        .program_headers(endian, data)
        .map_err(|e| e.to_string())?
    {
        if let Some(interp) = ph.interpreter(endian, data).map_err(|e| e.to_string())? {
            out.interpreter = Some(String::from_utf8_lossy(interp).into_owned());
        }
    }
    let sections = header.sections(endian, data).map_err(|e| e.to_string())?;
    if let Some((dynamic, link)) = sections.dynamic(endian, data).map_err(|e| e.to_string())? {
        let strings = sections
            .strings(endian, data, link)
            .map_err(|e| e.to_string())?;
        for d in dynamic {
            if d.tag32(endian) == Some(DT_NEEDED) {
                let name = d.string(endian, strings).map_err(|e| e.to_string())?;
                out.needed.push(String::from_utf8_lossy(name).into_owned());
            }
        }
    }
    Ok(out)
}

/// Resolves `rel` (relative to `root`) to the file holding its bytes,
/// following symbolic links inside `root`; `None` if it does not exist.
pub(crate) fn resolve_in_root(root: &Path, rel: &Path) -> Option<PathBuf> {
    let mut pending: Vec<PathBuf> = vec![rel.to_owned()];
    let mut links = 0;
    'again: while let Some(path) = pending.pop() {
        // Walk component by component so that links in directories are
        // followed inside the root too.
        let mut done = PathBuf::new();
        let comps: Vec<Component<'_>> = path.components().collect();
        for (i, c) in comps.iter().enumerate() {
            match c {
                Component::Normal(n) => done.push(n),
                Component::ParentDir => {
                    done.pop();
                }
                _ => continue,
            }
            let host = root.join(&done);
            let meta = fs::symlink_metadata(&host).ok()?;
            if meta.file_type().is_symlink() {
                links += 1;
                if links > MAX_LINKS {
                    return None;
                }
                let target = fs::read_link(&host).ok()?;
                let mut next = if target.is_absolute() {
                    target.strip_prefix("/").ok()?.to_owned()
                } else {
                    done.parent().unwrap_or(Path::new("")).join(target)
                };
                for rest in &comps[i + 1..] {
                    next.push(rest);
                }
                pending.push(next);
                continue 'again;
            }
        }
        let host = root.join(&done);
        return host.is_file().then_some(host);
    }
    None
}

/// The files `programs` (paths relative to `root`) need to run from a copy
/// of the root: each interpreter and every library, transitively, looked up
/// by name in `lib_dirs`. The programs themselves are not listed. A library
/// no directory has is an error naming who needs it.
pub fn closure(
    root: &Path,
    programs: &[&str],
    lib_dirs: &[&str],
) -> Result<Vec<Needed>, GuestImgError> {
    let mut found = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut todo: Vec<PathBuf> = programs.iter().map(PathBuf::from).collect();
    while let Some(rel) = todo.pop() {
        if !seen.insert(rel.clone()) {
            continue;
        }
        let file = resolve_in_root(root, &rel)
            .ok_or_else(|| GuestImgError::invalid(root.join(&rel), "not in the unpacked root"))?;
        let data = fs::read(&file).map_err(GuestImgError::io("read", &file))?;
        let l = links(&data).map_err(|e| GuestImgError::invalid(&file, e))?;
        let mut add = |path: PathBuf, todo: &mut Vec<PathBuf>| -> Result<(), GuestImgError> {
            let file = resolve_in_root(root, &path).ok_or_else(|| {
                GuestImgError::invalid(root.join(&path), format!("needed by {}", rel.display()))
            })?;
            todo.push(path.clone());
            found.insert(Needed { path, file });
            Ok(())
        };
        if let Some(interp) = &l.interpreter {
            add(PathBuf::from(interp.trim_start_matches('/')), &mut todo)?;
        }
        for name in &l.needed {
            let path = lib_dirs
                .iter()
                .map(|d| Path::new(d).join(name))
                .find(|p| resolve_in_root(root, p).is_some())
                .ok_or_else(|| {
                    GuestImgError::invalid(
                        root.join(&rel),
                        format!("needs {name}, which none of {} has", lib_dirs.join(", ")),
                    )
                })?;
            add(path, &mut todo)?;
        }
    }
    Ok(found.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::temp_dir;
    use std::os::unix::fs::symlink;

    /// The host's own `ls`: an ELF64 with an interpreter and libc.
    #[test]
    fn reads_a_real_program() {
        let data = fs::read("/bin/ls").unwrap();
        let l = links(&data).unwrap();
        assert!(l.interpreter.unwrap().starts_with("/lib"));
        assert!(l.needed.iter().any(|n| n == "libc.so.6"), "{:?}", l.needed);
        assert!(links(b"not an elf").is_err());
    }

    #[test]
    fn links_followed_inside_the_root() {
        let root = temp_dir("elf-root");
        fs::create_dir_all(root.join("usr/lib/x")).unwrap();
        fs::write(root.join("usr/lib/x/libz.so.1.2.13"), b"z").unwrap();
        symlink("libz.so.1.2.13", root.join("usr/lib/x/libz.so.1")).unwrap();
        // Absolute: taken inside the root; and a directory link.
        symlink("/usr/lib/x/libz.so.1", root.join("abs")).unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        let want = Some(root.join("usr/lib/x/libz.so.1.2.13"));
        assert_eq!(
            resolve_in_root(&root, Path::new("usr/lib/x/libz.so.1")),
            want
        );
        assert_eq!(resolve_in_root(&root, Path::new("abs")), want);
        assert_eq!(resolve_in_root(&root, Path::new("lib/x/libz.so.1")), want);
        assert_eq!(resolve_in_root(&root, Path::new("lib/x/nothing")), None);
        symlink("loop", root.join("loop")).unwrap();
        assert_eq!(resolve_in_root(&root, Path::new("loop")), None);
        fs::remove_dir_all(&root).unwrap();
    }

    /// The closure of the host's `ls`, with the host as the root: the
    /// loader and libc, found through the host's multiarch directories.
    #[test]
    fn closure_of_a_host_program() {
        let arch = std::env::consts::ARCH;
        let dirs = [
            format!("lib/{arch}-linux-gnu"),
            format!("usr/lib/{arch}-linux-gnu"),
            "lib".into(),
            "usr/lib".into(),
            "lib64".into(),
        ];
        let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
        let needed = closure(Path::new("/"), &["bin/ls"], &dirs).unwrap();
        let names: Vec<String> = needed
            .iter()
            .map(|n| n.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().any(|n| n == "libc.so.6"), "{names:?}");
        assert!(names.iter().any(|n| n.starts_with("ld-linux")), "{names:?}");
        assert!(needed.iter().all(|n| n.file.is_file()));
        let err = closure(Path::new("/"), &["bin/ls"], &["no/such/dir"]).unwrap_err();
        assert!(
            err.to_string().contains("which none of no/such/dir has"),
            "{err}"
        );
    }
}
