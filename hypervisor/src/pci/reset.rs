//! Stopping a physical function when the guest that had it stops or
//! restarts, so that nothing it programmed can DMA later: decoding and bus
//! mastering off first, then the strongest reset the function offers, as
//! Linux orders them (`pci_reset_function`): a Function Level Reset through
//! its PCI Express capability (Device Capabilities bit 28, Device Control
//! bit 15), else through its Advanced Features capability (conventional
//! functions: AF Capabilities bit 1, AF Control bit 0), each followed by
//! 100 ms before the function may be touched again; else a power-management
//! reset (D3hot then D0, 10 ms each, when the PM capability does not set
//! No_Soft_Reset); else, for an endpoint alone below a PCI-to-PCI bridge,
//! a secondary bus reset of that bridge (Bridge Control bit 6 held 2 ms,
//! then 100 ms). After a reset its BARs are written back where the
//! hypervisor placed them (a reset clears them) and it is left disabled. A
//! function offering none of these (on the host bridge's own bus, or
//! sharing its bus with other functions) only gets decoding and bus
//! mastering off.

use core::fmt;

use super::config::{Bdf, ConfigAccess, command, reg};

/// Power Management capability ID.
const CAP_PM: u8 = 0x01;
/// PCI Express capability ID.
const CAP_PCIE: u8 = 0x10;
/// Advanced Features capability ID.
const CAP_AF: u8 = 0x13;
/// Device Capabilities: Function Level Reset capability.
const DEVCAP_FLR: u32 = 1 << 28;
/// Device Control: initiate Function Level Reset.
const DEVCTL_FLR: u32 = 1 << 15;
/// AF Capabilities (byte 3 of the capability): FLR capable.
const AF_CAP_FLR: u32 = 1 << 1;
/// AF Control (byte 4): initiate FLR.
const AF_CTRL_FLR: u32 = 1;
/// PMCSR (at +4 of the PM capability): the power state field.
const PMCSR_STATE: u32 = 0b11;
/// PMCSR: the function keeps its state across D3hot -> D0.
const PMCSR_NO_SOFT_RESET: u32 = 1 << 3;
/// PMCSR: PME status (write 1 to clear: written as 0).
const PMCSR_PME_STATUS: u32 = 1 << 15;
/// The D3hot power state.
const D3HOT: u32 = 0b11;
/// Bridge Control: secondary bus reset.
const BRIDGE_CTL_SBR: u32 = 1 << 6;
/// How long the secondary bus reset is held (the PCIe base specification
/// asks at least 1 ms; Linux holds it 2).
pub const SBR_HOLD_MS: u64 = 2;
/// What the PCIe base specification asks a reset function be given.
pub const FLR_WAIT_MS: u64 = 100;
/// The D3hot <-> D0 transition recovery time (PCI PM 1.2).
pub const PM_WAIT_MS: u64 = 10;
/// Most capabilities followed (a looping list stops here).
const MAX_CAPS: usize = 48;

/// Which reset a function got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetKind {
    /// Decoding and bus mastering off, then a Function Level Reset
    /// through the PCI Express capability.
    Flr,
    /// The same through the Advanced Features capability.
    AfFlr,
    /// Decoding and bus mastering off, then D3hot and back to D0.
    PowerManagement,
    /// Decoding and bus mastering off, then a secondary bus reset of the
    /// bridge above (the function alone below it).
    SecondaryBus {
        /// The bridge whose secondary bus was reset.
        bridge: Bdf,
    },
    /// Decoding and bus mastering off only (no reset offered).
    DisableOnly,
}

impl fmt::Display for ResetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResetKind::Flr => f.write_str("Function Level Reset"),
            ResetKind::AfFlr => f.write_str("Function Level Reset (Advanced Features)"),
            ResetKind::PowerManagement => f.write_str("power-management reset (D3hot, D0)"),
            ResetKind::SecondaryBus { bridge } => {
                write!(f, "secondary bus reset of bridge {bridge}")
            }
            ResetKind::DisableOnly => {
                f.write_str("decoding and bus mastering off (it offers no reset)")
            }
        }
    }
}

/// The offset of `bdf`'s capability `id`, if it has one.
fn find_cap(cfg: &(impl ConfigAccess + ?Sized), bdf: Bdf, id: u8) -> Option<u16> {
    if cfg.read32(bdf, reg::COMMAND) & (1 << 20) == 0 {
        return None;
    }
    let mut at = (cfg.read32(bdf, 0x34) & 0xfc) as u16;
    for _ in 0..MAX_CAPS {
        if at < 0x40 {
            return None;
        }
        let header = cfg.read32(bdf, at);
        if header as u8 == id {
            return Some(at);
        }
        at = ((header >> 8) & 0xfc) as u16;
    }
    None
}

/// Stops function `bdf` (see the module documentation): `bars` are its
/// BAR registers as the hypervisor placed them (offset, value), written
/// back after a reset; `alone_below` is the bridge above it when it is the
/// only function there (`Topology::alone_below`); `wait_ms` waits that
/// long.
pub fn reset_function(
    cfg: &mut (impl ConfigAccess + ?Sized),
    bdf: Bdf,
    bars: &[(u16, u32)],
    alone_below: Option<Bdf>,
    wait_ms: &mut dyn FnMut(u64),
) -> ResetKind {
    disable(cfg, bdf);
    let kind = if let Some(cap) =
        find_cap(cfg, bdf, CAP_PCIE).filter(|&c| cfg.read32(bdf, c + 4) & DEVCAP_FLR != 0)
    {
        let ctl = cfg.read32(bdf, cap + 8) & 0xffff;
        cfg.write(bdf, cap + 8, 2, ctl | DEVCTL_FLR);
        wait_ms(FLR_WAIT_MS);
        ResetKind::Flr
    } else if let Some(cap) =
        find_cap(cfg, bdf, CAP_AF).filter(|&c| cfg.read32(bdf, c) >> 24 & AF_CAP_FLR != 0)
    {
        cfg.write(bdf, cap + 4, 1, AF_CTRL_FLR);
        wait_ms(FLR_WAIT_MS);
        ResetKind::AfFlr
    } else if let Some(cap) =
        find_cap(cfg, bdf, CAP_PM).filter(|&c| cfg.read32(bdf, c + 4) & PMCSR_NO_SOFT_RESET == 0)
    {
        let csr = cfg.read32(bdf, cap + 4) & 0xffff & !(PMCSR_STATE | PMCSR_PME_STATUS);
        cfg.write(bdf, cap + 4, 2, csr | D3HOT);
        wait_ms(PM_WAIT_MS);
        cfg.write(bdf, cap + 4, 2, csr);
        wait_ms(PM_WAIT_MS);
        ResetKind::PowerManagement
    } else if let Some(bridge) = alone_below {
        let ctl = cfg.read32(bridge, reg::INTERRUPT) >> 16 & !BRIDGE_CTL_SBR;
        cfg.write(bridge, reg::BRIDGE_CONTROL, 2, ctl | BRIDGE_CTL_SBR);
        wait_ms(SBR_HOLD_MS);
        cfg.write(bridge, reg::BRIDGE_CONTROL, 2, ctl);
        wait_ms(FLR_WAIT_MS);
        ResetKind::SecondaryBus { bridge }
    } else {
        return ResetKind::DisableOnly;
    };
    for &(at, value) in bars {
        cfg.write32(bdf, at, value);
    }
    disable(cfg, bdf);
    kind
}

/// Memory and I/O decoding and bus mastering off in `bdf`'s command
/// register (its status half untouched).
fn disable(cfg: &mut (impl ConfigAccess + ?Sized), bdf: Bdf) {
    let cmd = cfg.read32(bdf, reg::COMMAND) & 0xffff;
    let cmd = cmd & !(command::MEMORY | command::IO | command::BUS_MASTER);
    cfg.write(bdf, reg::COMMAND, 2, cmd);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::fake::{BRIDGE, ENDPOINT, FakeBar, FakeEcam};

    const F: Bdf = Bdf::new(0, 2, 0);

    fn with_pcie_cap(devcap: u32) -> FakeEcam {
        let mut e = FakeEcam::default();
        e.add(
            F,
            (0x1b36, 0x0010),
            0x010802,
            ENDPOINT,
            &[FakeBar::Mem32(0x4000)],
            1,
        );
        e.write32_raw(F, reg::COMMAND, 1 << 20 | 0x6);
        e.write32_raw(F, 0x34, 0x40);
        e.write32_raw(F, 0x40, 0x50 << 8 | 0x01); // PM
        e.write32_raw(F, 0x50, 0x10); // PCIe, end of list
        e.write32_raw(F, 0x54, devcap);
        e.write32_raw(F, 0x58, 0x2810);
        e.write32_raw(F, 0x10, 0x1000_0000);
        e
    }

    #[test]
    fn a_function_with_flr_is_reset_waited_for_and_its_bars_restored() {
        let mut e = with_pcie_cap(DEVCAP_FLR);
        let mut waited = 0;
        let kind = reset_function(&mut e, F, &[(0x10, 0x1000_0000)], None, &mut |ms| {
            waited += ms
        });
        assert_eq!(kind, ResetKind::Flr);
        assert_eq!(waited, FLR_WAIT_MS);
        // Disabled before the FLR was initiated, the BAR written back after.
        let writes: Vec<(u16, u32)> = e.writes.iter().map(|&(_, o, v)| (o, v)).collect();
        let flr = writes
            .iter()
            .position(|&(o, v)| o == 0x58 && v & DEVCTL_FLR != 0)
            .unwrap();
        let disable = writes
            .iter()
            .position(|&(o, v)| o == reg::COMMAND && v & 0x7 == 0)
            .unwrap();
        let bar = writes.iter().position(|&(o, _)| o == 0x10).unwrap();
        assert!(disable < flr && flr < bar, "{writes:x?}");
        assert_eq!(e.reg(F, reg::COMMAND) & 0x7, 0);
    }

    #[test]
    fn a_conventional_function_with_advanced_features_gets_its_flr() {
        let mut e = FakeEcam::default();
        e.add(
            F,
            (0x1234, 0x11e8),
            0,
            ENDPOINT,
            &[FakeBar::Mem32(0x1000)],
            1,
        );
        e.write32_raw(F, reg::COMMAND, 1 << 20 | 0x6);
        e.write32_raw(F, 0x34, 0x48);
        e.write32_raw(F, 0x48, (AF_CAP_FLR | 1) << 24 | 0x06 << 16 | CAP_AF as u32);
        let mut waited = 0;
        let kind = reset_function(&mut e, F, &[(0x10, 0x2000_0000)], None, &mut |ms| {
            waited += ms
        });
        assert_eq!(kind, ResetKind::AfFlr);
        assert_eq!(waited, FLR_WAIT_MS);
        assert!(
            e.writes
                .iter()
                .any(|&(_, o, v)| o == 0x4c && v & 0xff == AF_CTRL_FLR)
        );
        assert_eq!(e.reg(F, 0x10), 0x2000_0000, "BAR restored");
        assert_eq!(e.reg(F, reg::COMMAND) & 0x7, 0);
    }

    #[test]
    fn a_function_without_flr_gets_a_power_management_reset_if_it_offers_one() {
        let mut e = with_pcie_cap(0);
        let mut waited = Vec::new();
        let kind = reset_function(&mut e, F, &[(0x10, 0x1000_0000)], None, &mut |ms| {
            waited.push(ms)
        });
        assert_eq!(kind, ResetKind::PowerManagement);
        assert_eq!(waited, [PM_WAIT_MS, PM_WAIT_MS]);
        // PMCSR (0x44): D3hot, then D0; the BAR after.
        let writes: Vec<(u16, u32)> = e.writes.iter().map(|&(_, o, v)| (o, v)).collect();
        let d3 = writes
            .iter()
            .position(|&(o, v)| o == 0x44 && v & 3 == 3)
            .unwrap();
        let d0 = writes
            .iter()
            .rposition(|&(o, v)| o == 0x44 && v & 3 == 0)
            .unwrap();
        let bar = writes.iter().position(|&(o, _)| o == 0x10).unwrap();
        assert!(d3 < d0 && d0 < bar, "{writes:x?}");
        assert_eq!(e.reg(F, reg::COMMAND) & 0x7, 0);
        // With No_Soft_Reset set, D3hot would reset nothing: disable only.
        let mut e = with_pcie_cap(0);
        e.write32_raw(F, 0x44, PMCSR_NO_SOFT_RESET);
        let kind = reset_function(&mut e, F, &[(0x10, 0x1000_0000)], None, &mut |_| {
            panic!("no wait")
        });
        assert_eq!(kind, ResetKind::DisableOnly);
        assert_eq!(e.reg(F, reg::COMMAND) & 0x7, 0);
        // A conventional function: no capability list at all.
        let mut e = FakeEcam::default();
        e.add(F, (0x1234, 0x11e8), 0, ENDPOINT, &[], 1);
        e.write32_raw(F, reg::COMMAND, 0x6);
        assert_eq!(
            reset_function(&mut e, F, &[], None, &mut |_| panic!("no wait")),
            ResetKind::DisableOnly
        );
        assert_eq!(e.reg(F, reg::COMMAND) & 0x7, 0);
    }

    #[test]
    fn a_function_alone_below_a_bridge_without_a_reset_of_its_own_gets_a_bus_reset() {
        const BRIDGE_BDF: Bdf = Bdf::new(0, 1, 0);
        const EP: Bdf = Bdf::new(1, 0, 0);
        let mut e = FakeEcam::default();
        e.add(BRIDGE_BDF, (0x1b36, 0x0001), 0x060400, BRIDGE, &[], 0);
        // Bridge control: parity and SERR enabled, to be kept.
        e.write32_raw(BRIDGE_BDF, reg::INTERRUPT, 0x0003 << 16 | 0x01ff);
        e.add(
            EP,
            (0x1234, 0x11e8),
            0x00ff00,
            ENDPOINT,
            &[FakeBar::Mem32(0x1000)],
            1,
        );
        e.write32_raw(EP, reg::COMMAND, 0x6);
        let mut waited = Vec::new();
        let kind = reset_function(
            &mut e,
            EP,
            &[(0x10, 0x2000_0000)],
            Some(BRIDGE_BDF),
            &mut |ms| waited.push(ms),
        );
        assert_eq!(kind, ResetKind::SecondaryBus { bridge: BRIDGE_BDF });
        assert_eq!(kind.to_string(), "secondary bus reset of bridge 00:01.0");
        assert_eq!(waited, [SBR_HOLD_MS, FLR_WAIT_MS]);
        // The endpoint disabled first; the bridge's control register with
        // the reset bit set, then as it was; the BAR written back after.
        let at = |pred: &dyn Fn(&(Bdf, u16, u32)) -> bool| e.writes.iter().position(pred).unwrap();
        let disable = at(&|&(b, o, v)| b == EP && o == reg::COMMAND && v & 0x7 == 0);
        let set = at(&|&(b, o, v)| b == BRIDGE_BDF && o == reg::INTERRUPT && v >> 16 == 0x43);
        let clear = at(&|&(b, o, v)| b == BRIDGE_BDF && o == reg::INTERRUPT && v >> 16 == 0x03);
        let bar = at(&|&(b, o, _)| b == EP && o == 0x10);
        assert!(
            disable < set && set < clear && clear < bar,
            "{:x?}",
            e.writes
        );
        assert_eq!(e.reg(BRIDGE_BDF, reg::INTERRUPT), 0x0003 << 16 | 0x01ff);
        assert_eq!(e.reg(EP, 0x10), 0x2000_0000, "BAR restored");
        assert_eq!(e.reg(EP, reg::COMMAND) & 0x7, 0);
        // A reset of its own comes first.
        let mut e = with_pcie_cap(DEVCAP_FLR);
        let kind = reset_function(&mut e, F, &[], Some(BRIDGE_BDF), &mut |_| {});
        assert_eq!(kind, ResetKind::Flr);
    }
}
