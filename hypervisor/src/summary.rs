//! The hardware summary printed after boot: board, RAM, CPUs, GIC, timer,
//! console UART and its driver, each SMMUv3 with the features it
//! advertises, and the PCIe host bridges with their `iommu-map`.
//! Formatting is plain logic over the parsed DT and register values, so it
//! is tested on the host; the SMMUs' features come from the
//! [`SmmuManager`] that probed them ([`smmu_statuses`]); [`probe`] reads
//! the other registers on the target. [`Summary::from_dt`] is the part a
//! device tree alone gives: what the host tests compare with the golden
//! summaries of the boards' own DTBs.

use crate::fdt::{Conduit, HostDt, IommuMapEntry, PciSpace};
use crate::pci::enumerate::Topology;
use crate::smmu::SmmuManager;
use crate::smmu::idregs::Features;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// What the summary reports about one SMMUv3.
#[derive(Debug, Clone)]
pub enum SmmuStatus {
    /// Its ID registers were read.
    Probed(Features),
    /// It could not be read (the reason).
    Unreachable(String),
    /// Its registers were not read: a summary of the device tree alone.
    NotRead,
}

/// Everything the summary prints.
pub struct Summary<'a> {
    /// The parsed host DT.
    pub hw: &'a HostDt,
    /// Board name (from the platform crate).
    pub board: &'static str,
    /// CPUs online (`None`: a summary of the device tree alone).
    pub online: Option<usize>,
    /// PSCI version reported by the firmware, if asked.
    pub psci_version: Option<(u16, u16)>,
    /// Counter frequency in Hz (CNTFRQ_EL0, or the DT's when that is 0;
    /// `None` when neither is known).
    pub counter_hz: Option<u64>,
    /// Number of SPIs the distributor implements (from GICD_TYPER).
    pub gic_spis: Option<u32>,
    /// One entry per `hw.smmus` element, same order.
    pub smmus: Vec<SmmuStatus>,
    /// The enumerated PCIe host bridges (by DT path).
    pub pci: Vec<&'a Topology>,
}

fn mib(bytes: u64) -> u64 {
    bytes >> 20
}

impl<'a> Summary<'a> {
    /// What the device tree alone says: no register read, no CPU started,
    /// the board named from the root `compatible`.
    pub fn from_dt(hw: &'a HostDt) -> Summary<'a> {
        Summary {
            hw,
            board: platform::identify(hw.compatible.iter().map(String::as_str)).name,
            online: None,
            psci_version: None,
            counter_hz: hw.timer.as_ref().and_then(|t| t.frequency).map(u64::from),
            gic_spis: None,
            smmus: hw.smmus.iter().map(|_| SmmuStatus::NotRead).collect(),
            pci: Vec::new(),
        }
    }

    /// Where an `iommu-map` entry's phandle leads.
    fn iommu_target(&self, phandle: u32) -> String {
        let hw = self.hw;
        if let Some(s) = hw.smmus.iter().find(|s| s.phandle == Some(phandle)) {
            return alloc::format!("smmuv3 at {:#x}", s.base);
        }
        match hw.tree().by_phandle(phandle) {
            Some(n) if !n.is_available() => alloc::format!("{} (disabled)", n.path()),
            Some(n) => alloc::format!("{} (not an SMMUv3 in use)", n.path()),
            None => alloc::format!("phandle {phandle:#x}"),
        }
    }

    fn fmt_iommu_map(&self, f: &mut fmt::Formatter<'_>, map: &[IommuMapEntry]) -> fmt::Result {
        for m in map {
            write!(
                f,
                ", rid {:#x}..{:#x} -> {} sid {:#x}",
                m.rid_base,
                m.rid_base as u64 + m.length as u64,
                self.iommu_target(m.iommu_phandle),
                m.iommu_base
            )?;
        }
        if map.is_empty() {
            write!(f, ", no iommu-map (DMA not translated)")?;
        }
        Ok(())
    }
}

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hw = self.hw;
        writeln!(f, "hardware summary ({}):", self.board)?;
        let total: u64 = hw.memory.iter().map(|r| r.size).sum();
        write!(f, "  ram: {} MiB:", mib(total))?;
        for r in &hw.memory {
            write!(f, " {:#x}..{:#x}", r.base, r.end())?;
        }
        writeln!(f)?;
        write!(f, "  cpus: {} in the DT", hw.cpus.len())?;
        if let Some(online) = self.online {
            write!(f, ", {online} online")?;
        }
        write!(f, "; mpidr")?;
        for c in &hw.cpus {
            write!(f, " {:#x}", c.mpidr)?;
        }
        writeln!(f)?;
        match &hw.psci {
            Some(p) => {
                let conduit = match p.conduit {
                    Conduit::Smc => "smc",
                    Conduit::Hvc => "hvc",
                };
                match self.psci_version {
                    Some((maj, min)) => writeln!(f, "  psci: {maj}.{min} via {conduit}")?,
                    None => writeln!(f, "  psci: via {conduit}")?,
                }
            }
            None => writeln!(f, "  psci: none")?,
        }
        match &hw.gic {
            Some(g) => {
                write!(
                    f,
                    "  gic: GICv{} distributor {:#x}, redistributors",
                    g.version, g.dist.base
                )?;
                for r in &g.redists {
                    write!(f, " {:#x}..{:#x}", r.base, r.end())?;
                }
                if let Some(spis) = self.gic_spis {
                    write!(f, ", {spis} SPIs")?;
                }
                for its in &g.its {
                    write!(f, ", its {:#x}", its.region.base)?;
                }
                writeln!(f)?;
            }
            None => writeln!(f, "  gic: none found")?,
        }
        match &hw.timer {
            Some(t) => {
                match self.counter_hz {
                    Some(hz) => write!(f, "  timer: {hz} Hz")?,
                    None => write!(f, "  timer: frequency from CNTFRQ_EL0")?,
                }
                for (name, irq) in [
                    ("el1-phys", t.phys),
                    ("el1-virt", t.virt),
                    ("el2-phys", t.hyp_phys),
                    ("el2-virt", t.hyp_virt),
                ] {
                    if let Some(i) = irq {
                        write!(f, ", {name} intid {}", i.intid())?;
                    }
                }
                writeln!(f)?;
            }
            None => writeln!(f, "  timer: none found")?,
        }
        match &hw.stdout {
            Some(u) => {
                write!(
                    f,
                    "  console: {} ({}) at {:#x}",
                    u.path,
                    u.compatible.first().map_or("no compatible", String::as_str),
                    u.base
                )?;
                if let Some(i) = &u.interrupt {
                    write!(f, " intid {}", i.intid())?;
                }
                match u.driver {
                    Ok(kind) => writeln!(f, ": {kind} driver")?,
                    Err(e) => writeln!(f, ": {e}: left untouched, no console")?,
                }
            }
            None => writeln!(f, "  console: none")?,
        }
        if hw.smmus.is_empty() {
            writeln!(
                f,
                "  no SMMUv3 in the device tree: DMA isolation is unavailable"
            )?;
        }
        for (s, status) in hw.smmus.iter().zip(&self.smmus) {
            write!(f, "  smmuv3 {} at {:#x}: ", s.path, s.base)?;
            match status {
                SmmuStatus::Probed(feat) => {
                    write!(f, "{feat}")?;
                    if let Some(why) = feat.unusable_reason() {
                        write!(f, " (unusable for DMA isolation: {why})")?;
                    }
                    writeln!(f)?;
                }
                SmmuStatus::Unreachable(why) => writeln!(f, "not probed: {why}")?,
                SmmuStatus::NotRead => writeln!(f, "registers not read")?,
            }
        }
        for n in hw.tree().compatible_nodes("arm,smmu-v3") {
            if !n.is_available() {
                writeln!(f, "  smmuv3 {}: disabled in the device tree", n.path())?;
            }
        }
        if hw.pcie.is_empty() && hw.pcie_other.is_empty() {
            writeln!(f, "  pcie: none")?;
        }
        for p in &hw.pcie {
            write!(
                f,
                "  pcie {}: ecam {:#x} ({} MiB), buses {}-{}",
                p.path,
                p.ecam.base,
                mib(p.ecam.size),
                p.bus_range.0,
                p.bus_range.1
            )?;
            for r in &p.ranges {
                let kind = match r.space {
                    PciSpace::Config => "cfg",
                    PciSpace::Io => "io",
                    PciSpace::Mem32 => "mem32",
                    PciSpace::Mem64 => "mem64",
                };
                write!(f, ", {kind} {:#x}+{:#x}", r.cpu_addr, r.size)?;
            }
            self.fmt_iommu_map(f, &p.iommu_map)?;
            writeln!(f)?;
            for t in self.pci.iter().filter(|t| t.path == p.path) {
                for func in &t.functions {
                    writeln!(f, "    {func}")?;
                }
                for problem in &t.problems {
                    writeln!(f, "    problem: {problem}")?;
                }
            }
        }
        for p in &hw.pcie_other {
            write!(f, "  pcie {} ({}): not driven", p.path, p.compatible)?;
            self.fmt_iommu_map(f, &p.iommu_map)?;
            writeln!(f)?;
        }
        Ok(())
    }
}

/// What the summary reports for each SMMUv3 of `hw` (same order): the
/// features `smmus` read when it probed it, in use or not.
pub fn smmu_statuses<R, D, C>(hw: &HostDt, smmus: &SmmuManager<R, D, C>) -> Vec<SmmuStatus> {
    hw.smmus
        .iter()
        .map(|s| match smmus.features_at(s.base) {
            Some(f) => SmmuStatus::Probed(*f),
            None => SmmuStatus::Unreachable(String::from("its registers could not be mapped")),
        })
        .collect()
}

/// Reads what the summary needs from the hardware: the GIC distributor's
/// type register, PSCI version, counter frequency; the SMMUs' features
/// from `smmus`.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub fn probe<'a>(
    hw: &'a HostDt,
    smmus: &crate::smmu::HwSmmuManager,
    pci: Vec<&'a Topology>,
) -> Summary<'a> {
    use crate::arch::aarch64::{cpu, psci};
    use crate::mm::el2map;

    let board_compat = hw.compatible.iter().map(|s| s.as_str());
    let board = platform::identify(board_compat).name;
    let smmus = smmu_statuses(hw, smmus);
    let gic_spis = hw.gic.as_ref().and_then(|g| {
        el2map::map_device(g.dist.base, 0x1000).ok()?;
        // SAFETY: GICD_TYPER (offset 4) of a mapped distributor; read-only.
        let typer = unsafe { core::ptr::read_volatile((g.dist.base as usize + 4) as *const u32) };
        let lines = ((typer & 0x1f) + 1) * 32;
        Some(lines.min(1020) - 32)
    });
    let psci_version = hw
        .psci
        .as_ref()
        .and_then(|p| psci::version(p.conduit).ok())
        .map(|v| (v.major, v.minor));
    let counter_hz = match cpu::counter_frequency() {
        0 => hw.timer.as_ref().and_then(|t| t.frequency).map(u64::from),
        hz => Some(hz),
    };
    Summary {
        hw,
        board,
        online: Some(crate::smp::online()),
        psci_version,
        counter_hz,
        gic_spis,
        smmus,
        pci,
    }
}
