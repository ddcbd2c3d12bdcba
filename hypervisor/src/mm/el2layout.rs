//! The plan of the hypervisor's own EL2 address space: which physical
//! ranges the identity map covers and with which permissions. It is W^X:
//! no range is both writable and executable, and only the image's code is
//! executable.
//!
//! | range | permissions |
//! |---|---|
//! | image code, `[_image_start, _text_end)` (header, entry, vectors) | `r-x` |
//! | image constants, `[_text_end, _rodata_end)` (.rodata, .data.rel.ro, .got, .dynamic, relocation tables) | `r--` |
//! | image data, `[_rodata_end, _image_end)` (.data, .bss: boot stack, boot heap, table pool) | `rw-` |
//! | all other RAM (DTB, initrd, heap, stacks, page tables, guest RAM) | `rw-` |
//! | the console UART page | `rw-`, device |
//!
//! The boundaries are symbols of the linker script (`hypervisor/linker.ld`),
//! page aligned. The relocated part of the constants (.data.rel.ro, .got) is
//! written by the entry code with the MMU off, before this plan becomes a
//! page table, so it can be read-only in the map.
//!
//! Pure logic, host tested; [`super::el2map`] turns the plan into the page
//! table before the MMU is switched on.

use super::layout::Region;
use super::pagetable::{Attrs, PAGE_SIZE};
use crate::fdt::early::MAX_EARLY_REGIONS;
use core::fmt;
use heapless::Vec;

/// The image's page-aligned pieces, from the linker script's symbols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLayout {
    /// `_image_start`: the image header, first byte of the code.
    pub start: u64,
    /// `_text_end`: end of the code, start of the read-only data.
    pub text_end: u64,
    /// `_rodata_end`: end of the read-only data, start of .data.
    pub rodata_end: u64,
    /// `_image_end`: end of .bss, rounded up to a page.
    pub end: u64,
}

impl ImageLayout {
    /// The whole image, .bss included.
    pub const fn whole(&self) -> Region {
        Region::new(self.start, self.end - self.start)
    }

    /// The pieces in address order with what they are.
    fn pieces(&self) -> [(Part, Region); 3] {
        [
            (
                Part::Text,
                Region::new(self.start, self.text_end - self.start),
            ),
            (
                Part::Rodata,
                Region::new(self.text_end, self.rodata_end - self.text_end),
            ),
            (
                Part::Data,
                Region::new(self.rodata_end, self.end - self.rodata_end),
            ),
        ]
    }
}

/// What a range of the map is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// RAM outside the image.
    Ram,
    /// The image's code.
    Text,
    /// The image's constants and relocated pointers.
    Rodata,
    /// The image's .data and .bss.
    Data,
    /// The console UART's register page.
    Uart,
}

impl Part {
    /// The permissions and memory type this part is mapped with.
    pub const fn attrs(self) -> Attrs {
        match self {
            Part::Text => Attrs::RX,
            Part::Rodata => Attrs::RO,
            Part::Ram | Part::Data => Attrs::RW,
            Part::Uart => Attrs::DEVICE,
        }
    }

    /// A name for the boot log.
    pub const fn name(self) -> &'static str {
        match self {
            Part::Ram => "RAM",
            Part::Text => "image text",
            Part::Rodata => "image rodata, relro",
            Part::Data => "image data, bss",
            Part::Uart => "console UART (device)",
        }
    }
}

/// One range of the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapRange {
    /// Page-aligned physical (= virtual) range.
    pub region: Region,
    /// What it is.
    pub part: Part,
}

impl MapRange {
    /// Its permissions and memory type.
    pub const fn attrs(&self) -> Attrs {
        self.part.attrs()
    }
}

impl fmt::Display for MapRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:#x}..{:#x} {} {}",
            self.region.base,
            self.region.end(),
            self.attrs().perms(),
            self.part.name()
        )
    }
}

/// Most ranges of a plan: every RAM bank, two more pieces and the image's
/// three when the image splits a bank, the UART.
pub const MAX_RANGES: usize = MAX_EARLY_REGIONS + 5;

/// The ranges of the map, in address order, disjoint.
pub type Plan = Vec<MapRange, MAX_RANGES>;

/// Why no plan could be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanError {
    /// A section boundary is not page aligned or the boundaries are out of
    /// order (a linker-script mistake).
    ImageLayout,
    /// The image does not lie inside one RAM bank.
    ImageOutsideRam,
    /// A RAM bank wraps around the end of the address space.
    BadRam,
    /// More RAM banks than [`MAX_EARLY_REGIONS`].
    TooManyBanks,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PlanError::ImageLayout => {
                "the image's section boundaries are not page aligned and in order"
            }
            PlanError::ImageOutsideRam => "the image is not inside one /memory range",
            PlanError::BadRam => "a /memory range wraps around the address space",
            PlanError::TooManyBanks => "too many /memory ranges",
        })
    }
}

impl core::error::Error for PlanError {}

/// The W^X plan for RAM banks `ram` (as the DT gives them, rounded out to
/// pages and merged where they touch), the image `image` (inside one bank)
/// and the console UART at `uart` (its page, unless RAM covers it).
pub fn plan(ram: &[Region], image: &ImageLayout, uart: Option<u64>) -> Result<Plan, PlanError> {
    let aligned = |a: u64| a.is_multiple_of(PAGE_SIZE);
    let ImageLayout {
        start,
        text_end,
        rodata_end,
        end,
    } = *image;
    if !(aligned(start) && aligned(text_end) && aligned(rodata_end) && aligned(end))
        || !(start < text_end && text_end <= rodata_end && rodata_end < end)
    {
        return Err(PlanError::ImageLayout);
    }

    // RAM banks rounded out to pages, sorted and merged.
    let mut banks: Vec<Region, MAX_EARLY_REGIONS> = Vec::new();
    for r in ram.iter().filter(|r| !r.is_empty()) {
        let e = r.checked_end().ok_or(PlanError::BadRam)?;
        let base = r.base / PAGE_SIZE * PAGE_SIZE;
        let e = e
            .checked_next_multiple_of(PAGE_SIZE)
            .ok_or(PlanError::BadRam)?;
        banks
            .push(Region::new(base, e - base))
            .map_err(|_| PlanError::TooManyBanks)?;
    }
    banks.sort_unstable_by_key(|r| r.base);
    let mut merged: Vec<Region, MAX_EARLY_REGIONS> = Vec::new();
    for b in banks {
        match merged.last_mut() {
            Some(last) if b.base <= last.end() => {
                let e = last.end().max(b.end());
                last.size = e - last.base;
            }
            _ => {
                let _ = merged.push(b);
            }
        }
    }

    let img = image.whole();
    if !merged.iter().any(|b| b.contains_region(&img)) {
        return Err(PlanError::ImageOutsideRam);
    }
    let mut out = Plan::new();
    // Capacity: at most MAX_EARLY_REGIONS banks, one of them split in
    // five, plus the UART: MAX_RANGES.
    let mut push = |region: Region, part: Part| {
        if !region.is_empty() {
            let _ = out.push(MapRange { region, part });
        }
    };
    for b in &merged {
        if b.contains_region(&img) {
            push(Region::new(b.base, img.base - b.base), Part::Ram);
            for (part, r) in image.pieces() {
                push(r, part);
            }
            push(Region::new(img.end(), b.end() - img.end()), Part::Ram);
        } else {
            push(*b, Part::Ram);
        }
    }
    if let Some(u) = uart {
        let page = Region::new(u / PAGE_SIZE * PAGE_SIZE, PAGE_SIZE);
        if !merged.iter().any(|b| b.overlaps(&page)) {
            push(page, Part::Uart);
        }
    }
    out.sort_unstable_by_key(|r| r.region.base);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec as StdVec;

    const MIB: u64 = 1 << 20;
    const RAM: Region = Region::new(0x4000_0000, 1 << 30);
    const IMG: ImageLayout = ImageLayout {
        start: 0x4020_0000,
        text_end: 0x4026_2000,
        rodata_end: 0x4026_c000,
        end: 0x403c_7000,
    };

    fn ranges(p: &Plan) -> StdVec<(u64, u64, &'static str, Part)> {
        p.iter()
            .map(|r| (r.region.base, r.region.end(), r.attrs().perms(), r.part))
            .collect()
    }

    /// The invariants every plan must keep, whatever its input.
    fn check_invariants(p: &Plan, ram: &[Region], image: &ImageLayout) {
        for w in p.windows(2) {
            assert!(
                w[0].region.end() <= w[1].region.base,
                "overlap or order: {w:?}"
            );
        }
        for r in p {
            let a = r.attrs();
            assert!(!a.writable_and_executable(), "W+X range {r}");
            assert!(
                r.region.base.is_multiple_of(PAGE_SIZE) && r.region.size.is_multiple_of(PAGE_SIZE)
            );
            assert!(!r.region.is_empty());
            if a.exec {
                assert_eq!(r.part, Part::Text, "only the code may be executable: {r}");
            }
        }
        // The image's pieces, exactly.
        let text = p
            .iter()
            .find(|r| r.part == Part::Text)
            .expect("text mapped");
        assert_eq!(
            text.region,
            Region::new(image.start, image.text_end - image.start)
        );
        assert_eq!(text.attrs().perms(), "r-x");
        let data = p
            .iter()
            .find(|r| r.part == Part::Data)
            .expect("data mapped");
        assert_eq!(
            data.region,
            Region::new(image.rodata_end, image.end - image.rodata_end)
        );
        assert_eq!(data.attrs().perms(), "rw-");
        if image.rodata_end > image.text_end {
            let ro = p
                .iter()
                .find(|r| r.part == Part::Rodata)
                .expect("rodata mapped");
            assert_eq!(
                ro.region,
                Region::new(image.text_end, image.rodata_end - image.text_end)
            );
            assert_eq!(ro.attrs().perms(), "r--");
        }
        // Every byte of RAM is mapped, as normal memory.
        for bank in ram.iter().filter(|b| !b.is_empty()) {
            let mut a = bank.base / PAGE_SIZE * PAGE_SIZE;
            while a < bank.end() {
                let r = p
                    .iter()
                    .find(|r| r.region.contains(a))
                    .expect("RAM byte unmapped");
                assert_ne!(r.part, Part::Uart);
                a = r.region.end();
            }
        }
    }

    #[test]
    fn one_bank_with_the_image_inside() {
        let p = plan(&[RAM], &IMG, Some(0x0900_0000)).unwrap();
        assert_eq!(
            ranges(&p),
            [
                (0x0900_0000, 0x0900_1000, "rw-", Part::Uart),
                (0x4000_0000, 0x4020_0000, "rw-", Part::Ram),
                (0x4020_0000, 0x4026_2000, "r-x", Part::Text),
                (0x4026_2000, 0x4026_c000, "r--", Part::Rodata),
                (0x4026_c000, 0x403c_7000, "rw-", Part::Data),
                (0x403c_7000, 0x8000_0000, "rw-", Part::Ram),
            ]
        );
        assert!(!p[0].attrs().exec, "device memory is never executable");
        check_invariants(&p, &[RAM], &IMG);
        assert_eq!(
            alloc::format!("{}", p[2]),
            "0x40200000..0x40262000 r-x image text"
        );
    }

    #[test]
    fn image_at_the_edges_of_its_bank_and_other_banks() {
        let at_start = ImageLayout {
            start: 0x4000_0000,
            text_end: 0x4000_1000,
            rodata_end: 0x4000_2000,
            end: 0x4000_3000,
        };
        let banks = [Region::new(0x8_8000_0000, 4 * MIB), RAM, Region::new(0, 0)];
        let p = plan(&banks, &at_start, None).unwrap();
        assert_eq!(
            ranges(&p),
            [
                (0x4000_0000, 0x4000_1000, "r-x", Part::Text),
                (0x4000_1000, 0x4000_2000, "r--", Part::Rodata),
                (0x4000_2000, 0x4000_3000, "rw-", Part::Data),
                (0x4000_3000, 0x8000_0000, "rw-", Part::Ram),
                (0x8_8000_0000, 0x8_8040_0000, "rw-", Part::Ram),
            ]
        );
        check_invariants(&p, &banks, &at_start);

        let at_end = ImageLayout {
            start: 0x7ff0_0000,
            text_end: 0x7ff8_0000,
            rodata_end: 0x7ff8_0000, // no read-only data at all
            end: 0x8000_0000,
        };
        let p = plan(&[RAM], &at_end, None).unwrap();
        assert_eq!(
            ranges(&p),
            [
                (0x4000_0000, 0x7ff0_0000, "rw-", Part::Ram),
                (0x7ff0_0000, 0x7ff8_0000, "r-x", Part::Text),
                (0x7ff8_0000, 0x8000_0000, "rw-", Part::Data),
            ]
        );
        check_invariants(&p, &[RAM], &at_end);
    }

    #[test]
    fn banks_are_rounded_out_and_merged() {
        // Two banks sharing a page once rounded, given out of order.
        let banks = [
            Region::new(0x4010_0800, 0x3ff0_0000 - 0x800),
            Region::new(0x4000_0000, 0x10_0800),
        ];
        let p = plan(&banks, &IMG, Some(0x4000_0010)).unwrap();
        assert_eq!(p.first().unwrap().region.base, 0x4000_0000);
        assert_eq!(p.last().unwrap().region.end(), 0x8000_0000);
        assert!(
            p.iter().all(|r| r.part != Part::Uart),
            "RAM covers the UART page"
        );
        check_invariants(&p, &banks, &IMG);
    }

    #[test]
    fn refuses_bad_layouts() {
        let misaligned = ImageLayout {
            text_end: IMG.text_end + 8,
            ..IMG
        };
        assert_eq!(plan(&[RAM], &misaligned, None), Err(PlanError::ImageLayout));
        let unordered = ImageLayout {
            rodata_end: IMG.text_end - PAGE_SIZE,
            ..IMG
        };
        assert_eq!(plan(&[RAM], &unordered, None), Err(PlanError::ImageLayout));
        let no_text = ImageLayout {
            text_end: IMG.start,
            ..IMG
        };
        assert_eq!(plan(&[RAM], &no_text, None), Err(PlanError::ImageLayout));
        // Straddling two banks that do not touch, or outside RAM.
        let split = [
            Region::new(0x4000_0000, 0x20_1000),
            Region::new(0x4030_0000, 0x1000_0000),
        ];
        assert_eq!(plan(&split, &IMG, None), Err(PlanError::ImageOutsideRam));
        assert_eq!(plan(&[], &IMG, None), Err(PlanError::ImageOutsideRam));
        assert_eq!(
            plan(&[Region::new(u64::MAX - 0xfff, 0x2000)], &IMG, None),
            Err(PlanError::BadRam)
        );
        let too_many = [RAM; MAX_EARLY_REGIONS + 1];
        assert_eq!(plan(&too_many, &IMG, None), Err(PlanError::TooManyBanks));
    }

    #[test]
    fn many_banks_fit() {
        let mut banks: StdVec<Region> = (0..MAX_EARLY_REGIONS as u64)
            .map(|i| Region::new(0x1_0000_0000 + i * 0x1000_0000, 0x100_0000))
            .collect();
        banks[3] = RAM;
        let p = plan(&banks, &IMG, Some(0x0900_0000)).unwrap();
        assert_eq!(p.len(), MAX_RANGES);
        check_invariants(&p, &banks, &IMG);
    }

    #[test]
    fn random_layouts_keep_the_invariants() {
        // A small xorshift: deterministic, no dependency.
        let mut rng = crate::test_rng::Rng(0x9e37_79b9_7f4a_7c15u64);
        let mut next = move |n: u64| rng.below(n);
        for _ in 0..2000 {
            let nbanks = 1 + next(4);
            let mut banks = StdVec::new();
            for i in 0..nbanks {
                let base = 0x4000_0000 * (i + 1) + next(0x1000) * 0x800;
                banks.push(Region::new(base, 0x100_0000 + next(0x1000) * 0x900));
            }
            let host = banks[next(nbanks) as usize];
            let start = (host.base + 4 * MIB).next_multiple_of(PAGE_SIZE);
            let text_end = start + (1 + next(64)) * PAGE_SIZE;
            let rodata_end = text_end + next(16) * PAGE_SIZE;
            let end = rodata_end + (1 + next(256)) * PAGE_SIZE;
            let img = ImageLayout {
                start,
                text_end,
                rodata_end,
                end,
            };
            let uart = Some(next(2) * 0x900_0123);
            let p = plan(&banks, &img, uart).unwrap();
            check_invariants(&p, &banks, &img);
        }
    }
}
