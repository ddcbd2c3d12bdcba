//! The W^X check of the hypervisor's ELF: the image is three page-aligned
//! pieces (linker script symbols `_image_start`, `_text_end`, `_rodata_end`,
//! `_image_end`) that the hypervisor maps `r-x`, `r--` and `rw-`, so every
//! allocated section must lie in the piece its flags allow:
//!
//! - executable sections in the code piece, and nothing else there;
//! - writable sections in the data piece, except the ones the relocation
//!   code alone writes before the MMU is on (inside `PT_GNU_RELRO`:
//!   .data.rel.ro, .got, .dynamic), which belong to the read-only piece;
//! - every dynamic relocation is an `R_AARCH64_RELATIVE` (all the entry code
//!   applies) aimed at the relro part or at the data piece, never at code or
//!   constants.
//!
//! A section that breaks a rule (an orphan section the linker script does
//! not place, a text relocation) would otherwise be found only by a
//! permission fault at run time.

use object::elf::{FileHeader64, PT_GNU_RELRO, SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE, SHT_SYMTAB};
use object::read::elf::{FileHeader, ProgramHeader, Rela, SectionHeader, Sym};
use object::{Endianness, FileKind};

use crate::image::ImageError;

/// `R_AARCH64_RELATIVE`.
const R_AARCH64_RELATIVE: u32 = 1027;
/// The granule the hypervisor maps the image with.
const PAGE: u64 = 4096;

/// The image's pieces, from the linker script's symbols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pieces {
    /// `_image_start`.
    pub start: u64,
    /// `_text_end`.
    pub text_end: u64,
    /// `_rodata_end`.
    pub rodata_end: u64,
    /// `_image_end`.
    pub end: u64,
}

/// An allocated section, as the check sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Its name.
    pub name: String,
    /// Link address.
    pub addr: u64,
    /// Size in memory.
    pub size: u64,
    /// `SHF_WRITE`.
    pub write: bool,
    /// `SHF_EXECINSTR`.
    pub exec: bool,
}

/// Everything the check needs from the ELF.
#[derive(Debug, Clone, Default)]
pub struct ElfFacts {
    /// Allocated sections with a size.
    pub sections: Vec<Section>,
    /// The four boundary symbols, when present.
    pub symbols: [Option<u64>; 4],
    /// `PT_GNU_RELRO`: `[start, end)`.
    pub relro: Option<(u64, u64)>,
    /// Dynamic relocations: (offset, type).
    pub relocations: Vec<(u64, u32)>,
}

/// The boundary symbols, in [`ElfFacts::symbols`] order.
const SYMBOLS: [&str; 4] = ["_image_start", "_text_end", "_rodata_end", "_image_end"];

/// Reads the facts of a 64-bit ELF.
pub fn facts(data: &[u8]) -> Result<ElfFacts, ImageError> {
    let malformed = |e: object::read::Error| ImageError::Malformed(e.to_string());
    match FileKind::parse(data) {
        Ok(FileKind::Elf64) => {}
        Ok(kind) => return Err(ImageError::NotElf64(format!("{kind:?}"))),
        Err(e) => return Err(ImageError::NotElf64(e.to_string())),
    }
    let header = FileHeader64::<Endianness>::parse(data).map_err(malformed)?;
    let endian = header.endian().map_err(malformed)?;
    let sections = header.sections(endian, data).map_err(malformed)?;
    let mut facts = ElfFacts::default();
    for s in sections.iter() {
        let flags = s.sh_flags(endian);
        if flags & u64::from(SHF_ALLOC) != 0 && s.sh_size(endian) > 0 {
            let name = sections.section_name(endian, s).map_err(malformed)?;
            facts.sections.push(Section {
                name: String::from_utf8_lossy(name).into_owned(),
                addr: s.sh_addr(endian),
                size: s.sh_size(endian),
                write: flags & u64::from(SHF_WRITE) != 0,
                exec: flags & u64::from(SHF_EXECINSTR) != 0,
            });
        }
        if let Some((relas, _)) = s.rela(endian, data).map_err(malformed)?
            && flags & u64::from(SHF_ALLOC) != 0
        {
            for r in relas {
                facts
                    .relocations
                    .push((r.r_offset(endian), r.r_type(endian, false)));
            }
        }
    }
    let symtab = sections
        .symbols(endian, data, SHT_SYMTAB)
        .map_err(malformed)?;
    for sym in symtab.iter() {
        let name = symtab.symbol_name(endian, sym).map_err(malformed)?;
        if let Some(i) = SYMBOLS.iter().position(|s| s.as_bytes() == name) {
            facts.symbols[i] = Some(sym.st_value(endian));
        }
    }
    for p in header.program_headers(endian, data).map_err(malformed)? {
        if p.p_type(endian) == PT_GNU_RELRO {
            let start = p.p_vaddr(endian);
            facts.relro = Some((start, start + p.p_memsz(endian)));
        }
    }
    Ok(facts)
}

/// Checks the facts against the W^X rules; returns the pieces, or every
/// problem found.
pub fn check(f: &ElfFacts) -> Result<Pieces, Vec<String>> {
    let mut problems = Vec::new();
    let [Some(start), Some(text_end), Some(rodata_end), Some(end)] = f.symbols else {
        let missing: Vec<&str> = SYMBOLS
            .iter()
            .zip(f.symbols)
            .filter(|(_, v)| v.is_none())
            .map(|(n, _)| *n)
            .collect();
        return Err(vec![format!(
            "the linker script defines no {}",
            missing.join(", ")
        )]);
    };
    let p = Pieces {
        start,
        text_end,
        rodata_end,
        end,
    };
    for (name, v) in SYMBOLS.iter().zip([start, text_end, rodata_end, end]) {
        if v % PAGE != 0 {
            problems.push(format!("{name} = {v:#x} is not 4 KiB aligned"));
        }
    }
    if !(start < text_end && text_end <= rodata_end && rodata_end < end) {
        problems.push(format!(
            "the pieces are out of order: {start:#x}, {text_end:#x}, {rodata_end:#x}, {end:#x}"
        ));
    }
    let in_relro = |a: u64, e: u64| f.relro.is_some_and(|(rs, re)| a >= rs && e <= re);
    for s in &f.sections {
        let (a, e) = (s.addr, s.addr.saturating_add(s.size));
        let piece = if a >= start && e <= text_end {
            "text"
        } else if a >= text_end && e <= rodata_end {
            "rodata"
        } else if a >= rodata_end && e <= end {
            "data"
        } else {
            problems.push(format!(
                "section {} at {a:#x}..{e:#x} is not inside one piece of the image",
                s.name
            ));
            continue;
        };
        let rule = match (piece, s.write, s.exec) {
            (_, true, true) => Some("is writable and executable"),
            ("text", _, false) => Some("is not code but lies in the executable piece"),
            ("rodata" | "data", _, true) => Some("is code outside the executable piece"),
            ("rodata", true, false) if !in_relro(a, e) => {
                Some("is writable but lies in the read-only piece (outside PT_GNU_RELRO)")
            }
            _ => None,
        };
        if let Some(rule) = rule {
            problems.push(format!("section {} at {a:#x}..{e:#x} {rule}", s.name));
        }
    }
    for &(off, ty) in &f.relocations {
        if ty != R_AARCH64_RELATIVE {
            problems.push(format!(
                "dynamic relocation of type {ty} at {off:#x}: the entry code applies only R_AARCH64_RELATIVE"
            ));
        } else if !(in_relro(off, off + 8) || (off >= rodata_end && off + 8 <= end)) {
            problems.push(format!(
                "dynamic relocation at {off:#x} writes into code or constants (outside PT_GNU_RELRO and .data)"
            ));
        }
    }
    if problems.is_empty() {
        Ok(p)
    } else {
        Err(problems)
    }
}

/// Reads and checks the hypervisor ELF `data`.
pub fn check_elf(data: &[u8]) -> Result<Pieces, ImageError> {
    check(&facts(data)?).map_err(|p| ImageError::NotWx(p.join("\n  ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sect(name: &str, addr: u64, size: u64, write: bool, exec: bool) -> Section {
        Section {
            name: name.into(),
            addr,
            size,
            write,
            exec,
        }
    }

    /// The hypervisor's layout as the linker script makes it.
    fn good() -> ElfFacts {
        ElfFacts {
            sections: vec![
                sect(".text", 0, 0x64000, false, true),
                sect(".rodata", 0x65000, 0x7000, false, false),
                sect(".data.rel.ro", 0x6c440, 0x1000, true, false),
                sect(".got", 0x6d478, 0x28, true, false),
                sect(".rela.dyn", 0x6d5c0, 0x1428, false, false),
                sect(".data", 0x6f000, 0x298, true, false),
                sect(".bss", 0x70000, 0x15b000, true, false),
            ],
            symbols: [Some(0), Some(0x65000), Some(0x6f000), Some(0x1cb000)],
            relro: Some((0x6c440, 0x6d570)),
            relocations: vec![(0x6c440, R_AARCH64_RELATIVE), (0x6f010, R_AARCH64_RELATIVE)],
        }
    }

    #[test]
    fn the_linker_scripts_layout_passes() {
        assert_eq!(
            check(&good()),
            Ok(Pieces {
                start: 0,
                text_end: 0x65000,
                rodata_end: 0x6f000,
                end: 0x1cb000
            })
        );
    }

    fn problems(f: &ElfFacts) -> String {
        check(f).expect_err("should fail").join("\n")
    }

    #[test]
    fn finds_misplaced_sections() {
        let mut f = good();
        f.sections
            .push(sect(".data.orphan", 0x66000, 0x10, true, false));
        assert!(problems(&f).contains(
            "section .data.orphan at 0x66000..0x66010 is writable but lies in the read-only piece"
        ));

        let mut f = good();
        f.sections
            .push(sect(".text.late", 0x6f300, 0x40, false, true));
        assert!(
            problems(&f)
                .contains(".text.late at 0x6f300..0x6f340 is code outside the executable piece")
        );

        let mut f = good();
        f.sections
            .push(sect(".rodata.early", 0x1000, 0x40, false, false));
        assert!(problems(&f).contains("is not code but lies in the executable piece"));

        let mut f = good();
        f.sections.push(sect(".wx", 0x6f400, 0x40, true, true));
        assert!(problems(&f).contains(".wx at 0x6f400..0x6f440 is writable and executable"));

        let mut f = good();
        f.sections[1].size = 0xa000; // .rodata up to the data piece: fine
        assert!(check(&f).is_ok());
        f.sections[1].size = 0xa001; // one byte into it
        assert!(problems(&f).contains("is not inside one piece of the image"));
    }

    #[test]
    fn finds_bad_boundaries() {
        let mut f = good();
        f.symbols[1] = None;
        assert_eq!(
            check(&f),
            Err(vec!["the linker script defines no _text_end".to_string()])
        );
        let mut f = good();
        f.symbols[2] = Some(0x6f008);
        assert!(problems(&f).contains("_rodata_end = 0x6f008 is not 4 KiB aligned"));
        let mut f = good();
        f.symbols[1] = Some(0);
        assert!(problems(&f).contains("out of order"));
    }

    #[test]
    fn finds_text_relocations_and_unknown_types() {
        let mut f = good();
        f.relocations.push((0x1230, R_AARCH64_RELATIVE));
        f.relocations.push((0x65010, R_AARCH64_RELATIVE));
        f.relocations.push((0x6f020, 257)); // R_AARCH64_ABS64
        let p = problems(&f);
        assert!(p.contains("dynamic relocation at 0x1230 writes into code or constants"));
        assert!(p.contains("dynamic relocation at 0x65010 writes into code or constants"));
        assert!(p.contains("dynamic relocation of type 257 at 0x6f020"));
    }
}
