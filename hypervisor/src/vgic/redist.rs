//! The emulated redistributors: one 128 KiB frame pair per vCPU (RD_base,
//! then SGI_base for the SGI/PPI registers).

use super::dist::{VGic, extract, state_reg};
use super::hw::RegCtx;
use super::{REDIST_STRIDE, merge};

const SGI_BASE: u64 = 0x1_0000;
const CTLR: u64 = 0x0000;
const IIDR: u64 = 0x0004;
const TYPER: u64 = 0x0008;
const TYPER_HI: u64 = 0x000c;
const WAKER: u64 = 0x0014;
const PIDR2: u64 = 0xffe8;
const IGROUPR0: u64 = SGI_BASE + 0x080;
const ISENABLER0: u64 = SGI_BASE + 0x100;
const ICENABLER0: u64 = SGI_BASE + 0x180;
const ISPENDR0: u64 = SGI_BASE + 0x200;
const ICPENDR0: u64 = SGI_BASE + 0x280;
const ISACTIVER0: u64 = SGI_BASE + 0x300;
const ICACTIVER0: u64 = SGI_BASE + 0x380;
const IPRIORITYR: u64 = SGI_BASE + 0x400;
const ICFGR0: u64 = SGI_BASE + 0xc00;
const ICFGR1: u64 = SGI_BASE + 0xc04;

const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;

impl VGic {
    /// Splits an offset into the redistributor region into (vCPU, offset
    /// inside its frame); None beyond the last vCPU.
    pub fn redist_frame(&self, offset: u64) -> Option<(usize, u64)> {
        let vcpu = (offset / REDIST_STRIDE) as usize;
        (vcpu < self.vcpus()).then_some((vcpu, offset % REDIST_STRIDE))
    }

    /// Reads a redistributor register of `vcpu`'s frame for the access
    /// `ctx`.
    pub fn redist_read(&self, ctx: &RegCtx<'_>, vcpu: usize, offset: u64, width: usize) -> u64 {
        let reg = offset & !3;
        let p = &self.private[vcpu];
        let word: u64 = match reg {
            CTLR => 0,
            IIDR => 0x5000_043b,
            TYPER | TYPER_HI => {
                let last = if vcpu + 1 == self.vcpus() { 1 << 4 } else { 0 };
                let typer = (vcpu as u64) << 32 | (vcpu as u64) << 8 | last;
                if width == 8 && offset == TYPER {
                    return typer;
                }
                if reg == TYPER {
                    typer & 0xffff_ffff
                } else {
                    typer >> 32
                }
            }
            WAKER if self.sleeping[vcpu] => (WAKER_PROCESSOR_SLEEP | WAKER_CHILDREN_ASLEEP) as u64,
            PIDR2 => 0x3b,
            IGROUPR0 => 0xffff_ffff,
            ISENABLER0 | ICENABLER0 => p
                .iter()
                .enumerate()
                .filter(|(_, s)| s.enabled)
                .fold(0u64, |a, (i, _)| a | 1 << i),
            ISPENDR0 | ICPENDR0 | ISACTIVER0 | ICACTIVER0 => {
                self.state_read(ctx, Some(vcpu), 0, state_reg(reg).0) as u64
            }
            r if (IPRIORITYR..IPRIORITYR + 32).contains(&r) => {
                let first = (offset - IPRIORITYR) as usize;
                return (0..width.min(8))
                    .filter(|i| first + i < 32)
                    .fold(0, |a, i| a | (p[first + i].priority as u64) << (8 * i));
            }
            ICFGR0 => 0xaaaa_aaaa, // SGIs: edge
            ICFGR1 => p[16..]
                .iter()
                .enumerate()
                .fold(0u64, |a, (i, s)| a | if s.edge { 2 << (2 * i) } else { 0 }),
            _ => 0,
        };
        extract(word, offset, width)
    }

    /// Writes a redistributor register of `vcpu`'s frame for the access
    /// `ctx`.
    pub fn redist_write(
        &mut self,
        ctx: &RegCtx<'_>,
        vcpu: usize,
        offset: u64,
        width: usize,
        value: u64,
    ) {
        let phys = ctx.phys;
        let reg = offset & !3;
        match reg {
            WAKER => {
                let v = merge(0, offset, width, value);
                self.sleeping[vcpu] = v & WAKER_PROCESSOR_SLEEP != 0;
            }
            ISENABLER0 => self.set_enables(phys, Some(vcpu), 0, value as u32, true),
            ICENABLER0 => self.set_enables(phys, Some(vcpu), 0, value as u32, false),
            ISPENDR0 | ICPENDR0 | ISACTIVER0 | ICACTIVER0 => {
                self.state_write(ctx, Some(vcpu), 0, value as u32, state_reg(reg).0)
            }
            r if (IPRIORITYR..IPRIORITYR + 32).contains(&r) => {
                let first = (offset - IPRIORITYR) as usize;
                for i in 0..width.min(8) {
                    if let Some(s) = self.private[vcpu].get_mut(first + i) {
                        s.priority = (value >> (8 * i)) as u8;
                    }
                }
            }
            ICFGR1 => {
                let pcpu = self.pcpus[vcpu];
                let old = self.redist_read(ctx, vcpu, ICFGR1, 4) as u32;
                let word = merge(old, offset, width, value);
                for i in 0..16 {
                    let s = &mut self.private[vcpu][16 + i];
                    s.edge = word & (2 << (2 * i)) != 0;
                    if s.owned {
                        phys.set_edge(16 + i as u32, pcpu, s.edge);
                    }
                }
            }
            _ => {} // RAZ/WI: CTLR, groups, ICFGR0, IGRPMODR0
        }
    }
}
