//! The EL2 map on host memory, and the self-check against the fake CPU.

use super::*;
use crate::arch::fake::{self, Op};
use crate::cmdline::WxTest;
use crate::mm::pagetable::MemType::{self, Device, Normal};
use alloc::boxed::Box;
use alloc::vec;

const RAM: Region = Region::new(0x4000_0000, 1 << 30);
const IMG: ImageLayout = ImageLayout {
    start: 0x4020_0000,
    text_end: 0x4026_2000,
    rodata_end: 0x4026_c000,
    end: 0x403c_7000,
};
const UART: u64 = 0x0900_0000;

fn tables(pages: usize) -> El2Tables {
    let pool = Box::leak(vec![Page::ZERO; pages].into_boxed_slice());
    // SAFETY: freshly zeroed pages.
    unsafe { El2Tables::new(pool) }
}

fn boot_map() -> El2Map {
    El2Map::build(&[RAM], &IMG, Some(UART), tables(16)).expect("the plan fits")
}

fn perms(m: &El2Map, va: u64) -> Option<(&'static str, MemType)> {
    m.attrs(va).map(|a| (a.perms(), a.mem))
}

#[test]
fn the_boot_map_has_the_plans_permissions() {
    let m = boot_map();
    assert_eq!(m.plan().len(), 6);
    assert_eq!(perms(&m, 0x4000_0000), Some(("rw-", Normal)));
    assert_eq!(perms(&m, IMG.start), Some(("r-x", Normal)));
    assert_eq!(perms(&m, IMG.text_end - 8), Some(("r-x", Normal)));
    assert_eq!(perms(&m, IMG.text_end), Some(("r--", Normal)));
    assert_eq!(perms(&m, IMG.rodata_end), Some(("rw-", Normal)));
    assert_eq!(perms(&m, IMG.end), Some(("rw-", Normal)));
    assert_eq!(perms(&m, 0x7fff_fff8), Some(("rw-", Normal)));
    assert_eq!(perms(&m, UART + 0x18), Some(("rw-", Device)));
    assert_eq!(perms(&m, UART + 0x1000), None);
    assert_eq!(perms(&m, 0x8000_0000), None);
    assert_eq!(m.first_ram(), Some(0x4000_0000));
    // The root is the pool's first page.
    assert_eq!(m.root() % PAGE_SIZE, 0);
}

#[test]
fn a_plan_the_layout_refuses_is_an_error() {
    let bad = ImageLayout {
        text_end: IMG.text_end + 8,
        ..IMG
    };
    assert!(matches!(
        El2Map::build(&[RAM], &bad, None, tables(16)),
        Err(BootMapError::Plan(el2layout::PlanError::ImageLayout))
    ));
    // No pool at all: no root table.
    assert!(matches!(
        El2Map::build(&[RAM], &IMG, None, tables(0)),
        Err(BootMapError::Map(MapError::NoMemory))
    ));
}

#[test]
fn map_device_rounds_out_to_pages_and_keeps_what_is_mapped() {
    let mut m = boot_map();
    m.map_device(0x0800_0800, 0x1000).unwrap();
    assert_eq!(perms(&m, 0x0800_0000), Some(("rw-", Device)));
    assert_eq!(perms(&m, 0x0800_1fff), Some(("rw-", Device)));
    assert_eq!(perms(&m, 0x0800_2000), None);
    assert_eq!(perms(&m, 0x07ff_f000), None);
    // Over the UART page and the next: the UART stays, the next is added.
    m.map_device(UART, 0x2000).unwrap();
    assert_eq!(perms(&m, UART + 0x1000), Some(("rw-", Device)));
    // Over the end of RAM: RAM stays normal memory, the rest is device.
    m.map_device(0x7fff_f000, 0x2000).unwrap();
    assert_eq!(perms(&m, 0x7fff_f000), Some(("rw-", Normal)));
    assert_eq!(perms(&m, 0x8000_0000), Some(("rw-", Device)));
    // The image is never remapped.
    m.map_device(IMG.start, 0x1000).unwrap();
    assert_eq!(perms(&m, IMG.start), Some(("r-x", Normal)));
    // Nothing to map.
    m.map_device(0x0a00_0000, 0).unwrap();
    assert_eq!(perms(&m, 0x0a00_0000), None);
}

#[test]
fn map_device_refuses_ranges_outside_the_address_space() {
    let mut m = boot_map();
    assert_eq!(
        m.map_device(u64::MAX - 0x800, 0x1000),
        Err(MapError::OutOfRange)
    );
    assert_eq!(
        m.map_device(u64::MAX - 0xfff, 0x800),
        Err(MapError::OutOfRange),
        "rounding up overflows"
    );
    assert_eq!(
        m.map_device(1 << EL2_VA_BITS, 0x1000),
        Err(MapError::OutOfRange)
    );
    assert_eq!(perms(&m, (1 << EL2_VA_BITS) - 0x1000), None);
}

#[test]
fn tables_come_from_the_heap_only_once_it_is_ready() {
    let mut m = boot_map();
    // Each 512 GiB slot needs three new tables: the pool runs out.
    let slot = |i: u64| i << 39;
    let mut refused = None;
    for i in 1..16 {
        if let Err(e) = m.map_device(slot(i), 0x1000) {
            refused = Some((i, e));
            break;
        }
    }
    let (i, e) = refused.expect("a 16-page pool runs out");
    assert_eq!(e, MapError::NoMemory);
    m.grow_from_heap();
    m.map_device(slot(i), 0x1000).unwrap();
    m.map_device(slot(i + 1), 0x1000).unwrap();
    assert_eq!(perms(&m, slot(i + 1)), Some(("rw-", Device)));
    assert_eq!(perms(&m, IMG.start), Some(("r-x", Normal)));
}

#[test]
fn the_global_map_device_needs_an_installed_map() {
    fake::reset();
    assert_eq!(map_device(UART, 0x1000), Err(MapError::NoMemory));
    assert!(!fake::take_ops().contains(&Op::El2Publish));
}

/// One probe in each part of the boot map.
const PROBES: [Probe; 6] = [
    ("text", Some(IMG.start + 0x40), Part::Text),
    ("rodata", Some(IMG.text_end), Part::Rodata),
    ("data", Some(IMG.rodata_end + 8), Part::Data),
    ("skipped", None, Part::Data),
    ("heap", Some(0x5000_0000), Part::Ram),
    ("ram", Some(0x4000_0000), Part::Ram),
];

/// Makes the fake MMU answer as the boot map says.
fn answer_as_planned() {
    let ro = El2Access {
        read: true,
        write: false,
    };
    let rw = El2Access {
        read: true,
        write: true,
    };
    fake::reset();
    fake::with(|s| {
        s.el2_access = vec![
            (0x4000_0000, IMG.start, rw),
            (IMG.start, IMG.rodata_end, ro),
            (IMG.rodata_end, 0x8000_0000, rw),
        ]
    });
}

#[test]
fn the_check_passes_when_the_cpu_allows_what_the_plan_says() {
    let m = boot_map();
    answer_as_planned();
    let c = check(Some(&m), &PROBES);
    assert!(c.passed(), "{c}");
    assert_eq!(c.len(), 5);
    assert_eq!(
        alloc::format!("{c}"),
        "text r-x, rodata r--, data rw-, heap rw-, ram rw-"
    );
}

#[test]
fn the_check_fails_on_any_difference() {
    let m = boot_map();
    // The MMU lets the code be written.
    answer_as_planned();
    fake::with(|s| {
        s.el2_access.insert(
            0,
            (
                IMG.start,
                IMG.text_end,
                El2Access {
                    read: true,
                    write: true,
                },
            ),
        )
    });
    let c = check(Some(&m), &PROBES);
    assert!(!c.passed());
    assert_eq!(
        alloc::format!("{c}"),
        "text rwx (expected r-x), rodata r--, data rw-, heap rw-, ram rw-"
    );
    // RAM the MMU does not translate.
    answer_as_planned();
    fake::with(|s| s.el2_access.pop());
    let c = check(Some(&m), &PROBES);
    assert!(!c.passed());
    assert!(
        alloc::format!("{c}")
            .ends_with("data --- (expected rw-), heap --- (expected rw-), ram rw-"),
        "{c}"
    );
}

#[test]
fn execution_follows_the_descriptor_and_wxn() {
    let m = boot_map();
    let rw = El2Access {
        read: true,
        write: true,
    };
    // Code: executable by its descriptor, even if the MMU allowed writes,
    // unless WXN is on and the descriptor is writable (it is not).
    assert_eq!(m.effective(IMG.start, rw, true).perms(), "rwx");
    // Data: never executable.
    assert_eq!(m.effective(IMG.rodata_end, rw, false).perms(), "rw-");
    // Unmapped: only what the MMU says.
    assert_eq!(
        m.effective(0x8000_0000, El2Access::default(), true).perms(),
        "---"
    );
    // Without a map nothing is executable.
    answer_as_planned();
    let c = check(None, &PROBES[..1]);
    assert_eq!(alloc::format!("{c}"), "text r-- (expected r-x)");
}

#[test]
fn the_host_self_check_probes_without_a_map() {
    fake::reset();
    // No map installed on the host and a fake MMU that translates
    // nothing: every probe but the RAM one (no RAM known) is made, none
    // passes.
    let c = self_check();
    assert_eq!(c.len(), MAX_PROBES - 1);
    assert!(!c.passed());
}

#[test]
fn the_fault_targets() {
    let t = fault_target(WxTest::WriteText);
    assert_eq!((t.kind, t.addr % 4), (FaultKind::Write, 0));
    let t = fault_target(WxTest::WriteRelro);
    assert_eq!(t.kind, FaultKind::Write);
    for test in [WxTest::ExecData, WxTest::ExecHeap] {
        let t = fault_target(test);
        assert_eq!(t.kind, FaultKind::Exec);
        // SAFETY: the target is a live `ret` word.
        assert_eq!(unsafe { (t.addr as *const u32).read() }, 0xd65f_03c0);
    }
}
