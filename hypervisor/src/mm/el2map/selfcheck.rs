//! The W^X self-check: what this CPU's MMU allows at one address of each
//! kind, against what the plan says; and the addresses the boot's W^X
//! fault test breaks the rules at.

use super::{EL2_MAP, El2Map};
use crate::arch::{Arch, Cpu};
use crate::cmdline::WxTest;
use crate::mm::el2layout::Part;
use core::fmt;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use log::{error, info};

// Probes of the self-check, one of each kind of image data. The linker
// places them by their kind: no interior mutability and no pointer ->
// .rodata; a pointer -> .data.rel.ro (written by the relocation code);
// non-zero atomic -> .data; zero atomic -> .bss.
static PROBE_RODATA: [u64; 2] = [0x7061_7274_6974_6121, 2];
static PROBE_RELRO: &[u64; 2] = &PROBE_RODATA;
static PROBE_DATA: AtomicU64 = AtomicU64::new(0x7061_7274_6974_6121);
static PROBE_BSS: AtomicU64 = AtomicU64::new(0);
/// `ret`, in .data: what the fault test tries to execute.
static RET_IN_DATA: AtomicU32 = AtomicU32::new(RET);
/// The A64 `ret` instruction.
const RET: u32 = 0xd65f_03c0;

/// Most probes of a [`Check`].
pub const MAX_PROBES: usize = 8;

/// An address to check: a name, the address (none: skipped) and the part
/// of the plan it lies in.
pub type Probe = (&'static str, Option<u64>, Part);

/// One probe's result: what the CPU allows and what the plan says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Found {
    name: &'static str,
    found: &'static str,
    expected: &'static str,
}

/// The result of a check on one CPU.
#[derive(Debug, Clone)]
pub struct Check {
    probes: heapless::Vec<Found, MAX_PROBES>,
}

impl Check {
    /// True when every probe found the planned permissions.
    pub fn passed(&self) -> bool {
        self.probes.iter().all(|p| p.found == p.expected)
    }

    /// How many probes were made.
    pub fn len(&self) -> usize {
        self.probes.len()
    }

    /// True when no probe was made.
    pub fn is_empty(&self) -> bool {
        self.probes.is_empty()
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.probes.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{} {}", p.name, p.found)?;
            if p.found != p.expected {
                write!(f, " (expected {})", p.expected)?;
            }
        }
        Ok(())
    }
}

/// Compares what this CPU allows at each probe (reads and writes from the
/// MMU, [`Arch::el2_access`]; execution from `map`'s descriptor and
/// [`Arch::el2_wxn`]; never executable without a map) with the
/// permissions of the probe's part of the plan. Probes beyond
/// [`MAX_PROBES`] are ignored.
pub fn check(map: Option<&El2Map>, probes: &[Probe]) -> Check {
    let wxn = Cpu::el2_wxn();
    let mut check = Check {
        probes: heapless::Vec::new(),
    };
    for &(name, addr, part) in probes {
        let Some(addr) = addr else { continue };
        let access = Cpu::el2_access(addr);
        let found = match map {
            Some(m) => m.effective(addr, access, wxn),
            None => crate::mm::pagetable::Attrs {
                read: access.read,
                write: access.write,
                exec: false,
                ..crate::mm::pagetable::Attrs::RW
            },
        };
        let _ = check.probes.push(Found {
            name,
            found: found.perms(),
            expected: part.attrs().perms(),
        });
    }
    check
}

/// Checks this CPU's view of the live EL2 map at one address of each kind:
/// the code, the constants, the relocated pointers, .data, .bss, the
/// stack, the heap and RAM outside the image.
pub fn self_check() -> Check {
    let ram = EL2_MAP.lock().as_ref().and_then(El2Map::first_ram);
    let stack = 0u64;
    let heap = alloc::boxed::Box::new(0u64);
    let probes: [Probe; MAX_PROBES] = [
        ("text", Some(self_check as *const () as u64), Part::Text),
        ("rodata", Some(&raw const PROBE_RODATA as u64), Part::Rodata),
        ("relro", Some(&raw const PROBE_RELRO as u64), Part::Rodata),
        ("data", Some(PROBE_DATA.as_ptr() as u64), Part::Data),
        ("bss", Some(PROBE_BSS.as_ptr() as u64), Part::Data),
        (
            "stack",
            Some(core::hint::black_box(&stack) as *const u64 as u64),
            Part::Ram,
        ),
        ("heap", Some(&*heap as *const u64 as u64), Part::Ram),
        ("ram", ram, Part::Ram),
    ];
    check(EL2_MAP.lock().as_ref(), &probes)
}

/// CPUs whose [`self_check`] passed.
static CHECKS_PASSED: AtomicU64 = AtomicU64::new(0);

/// Runs [`self_check`] on this CPU and logs it: the whole result on the
/// boot CPU (`verbose`), only a failure elsewhere.
pub fn check_and_log(cpu: usize, verbose: bool) {
    let check = self_check();
    if check.passed() {
        CHECKS_PASSED.fetch_add(1, Ordering::AcqRel);
        if verbose {
            info!("EL2 map check (AT S1E2R/W): {check}");
        }
    } else {
        error!("cpu {cpu}: EL2 map check FAILED: {check}");
    }
}

/// How many CPUs passed [`check_and_log`].
pub fn checks_passed() -> u64 {
    CHECKS_PASSED.load(Ordering::Acquire)
}

/// How the fault test breaks W^X at its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Writes the 32-bit word that is there back.
    Write,
    /// Branches to it (the word there is `ret`).
    Exec,
}

/// Where and how the W^X fault test breaks the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultTarget {
    /// What the test does, for the log.
    pub what: &'static str,
    /// The address, 4-byte aligned.
    pub addr: u64,
    /// The access.
    pub kind: FaultKind,
}

/// The target of fault test `test`: the code or the relocated constants to
/// write to, or a `ret` in .data or in a heap block larger than the boot
/// heap (RAM outside the image; leaked) to execute.
pub fn fault_target(test: WxTest) -> FaultTarget {
    let (what, addr, kind) = match test {
        WxTest::WriteText => (
            "writing to image text",
            fault_target as *const () as u64,
            FaultKind::Write,
        ),
        WxTest::WriteRelro => (
            "writing to image relro",
            &raw const PROBE_RELRO as u64,
            FaultKind::Write,
        ),
        WxTest::ExecData => (
            "executing image data",
            RET_IN_DATA.as_ptr() as u64,
            FaultKind::Exec,
        ),
        WxTest::ExecHeap => {
            let block = alloc::vec![0u32; (2 << 20) / 4].leak();
            block[0] = RET;
            (
                "executing heap (RAM outside the image)",
                block.as_ptr() as u64,
                FaultKind::Exec,
            )
        }
    };
    FaultTarget { what, addr, kind }
}
