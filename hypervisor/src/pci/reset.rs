//! Stopping a physical function when the guest that had it stops or
//! restarts, so that nothing it programmed can DMA later: decoding and bus
//! mastering off first, then a Function Level Reset where the function's
//! PCIe capability offers one (Device Capabilities bit 28; initiated with
//! Device Control bit 15, then 100 ms before the function may be touched
//! again), then its BARs written back where the hypervisor placed them (an
//! FLR clears them) and left disabled. A function without FLR (a
//! conventional PCI one, such as QEMU's `edu`) only gets decoding and bus
//! mastering off: a secondary bus reset would need a bridge above it, and
//! functions of the root bus have none.

use super::config::{Bdf, ConfigAccess, command, reg};

/// PCI Express capability ID.
const CAP_PCIE: u8 = 0x10;
/// Device Capabilities: Function Level Reset capability.
const DEVCAP_FLR: u32 = 1 << 28;
/// Device Control: initiate Function Level Reset.
const DEVCTL_FLR: u32 = 1 << 15;
/// What the PCIe base specification asks a reset function be given.
pub const FLR_WAIT_MS: u64 = 100;
/// Most capabilities followed (a looping list stops here).
const MAX_CAPS: usize = 48;

/// Which reset a function got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetKind {
    /// Decoding and bus mastering off, then a Function Level Reset.
    Flr,
    /// Decoding and bus mastering off only (no FLR offered).
    DisableOnly,
}

/// The offset of `bdf`'s PCI Express capability, if it has one.
fn pcie_cap(cfg: &(impl ConfigAccess + ?Sized), bdf: Bdf) -> Option<u16> {
    if cfg.read32(bdf, reg::COMMAND) & (1 << 20) == 0 {
        return None;
    }
    let mut at = (cfg.read32(bdf, 0x34) & 0xfc) as u16;
    for _ in 0..MAX_CAPS {
        if at < 0x40 {
            return None;
        }
        let header = cfg.read32(bdf, at);
        if header as u8 == CAP_PCIE {
            return Some(at);
        }
        at = ((header >> 8) & 0xfc) as u16;
    }
    None
}

/// Stops function `bdf` (see the module documentation): `bars` are its
/// BAR registers as the hypervisor placed them (offset, value), written
/// back after an FLR; `wait_ms` waits that long.
pub fn reset_function(
    cfg: &mut (impl ConfigAccess + ?Sized),
    bdf: Bdf,
    bars: &[(u16, u32)],
    wait_ms: &mut dyn FnMut(u64),
) -> ResetKind {
    disable(cfg, bdf);
    let Some(cap) = pcie_cap(cfg, bdf) else {
        return ResetKind::DisableOnly;
    };
    if cfg.read32(bdf, cap + 4) & DEVCAP_FLR == 0 {
        return ResetKind::DisableOnly;
    }
    let ctl = cfg.read32(bdf, cap + 8) & 0xffff;
    cfg.write(bdf, cap + 8, 2, ctl | DEVCTL_FLR);
    wait_ms(FLR_WAIT_MS);
    for &(at, value) in bars {
        cfg.write32(bdf, at, value);
    }
    disable(cfg, bdf);
    ResetKind::Flr
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
    use crate::pci::fake::{ENDPOINT, FakeBar, FakeEcam};

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
        let kind = reset_function(&mut e, F, &[(0x10, 0x1000_0000)], &mut |ms| waited += ms);
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
    fn a_function_without_flr_is_only_disabled() {
        let mut e = with_pcie_cap(0);
        let kind = reset_function(&mut e, F, &[(0x10, 0x1000_0000)], &mut |_| {
            panic!("no wait")
        });
        assert_eq!(kind, ResetKind::DisableOnly);
        assert_eq!(e.reg(F, reg::COMMAND) & 0x7, 0);
        // A conventional function: no capability list at all.
        let mut e = FakeEcam::default();
        e.add(F, (0x1234, 0x11e8), 0, ENDPOINT, &[], 1);
        e.write32_raw(F, reg::COMMAND, 0x6);
        assert_eq!(
            reset_function(&mut e, F, &[], &mut |_| panic!("no wait")),
            ResetKind::DisableOnly
        );
        assert_eq!(e.reg(F, reg::COMMAND) & 0x7, 0);
    }
}
