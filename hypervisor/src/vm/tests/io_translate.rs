//! What a device sees through the virtio-iommu's tables, checked against
//! what the guest asked for (docs/pci.md, "Known problem": a completion
//! written where the guest does not read it). Two guests' models and real
//! SMMU backends share one VMID pool and one SMMU whose IOTLB is modelled
//! the way QEMU's is: leaf entries keyed by VMID and IOVA, shared by every
//! stream, filled by device accesses and emptied only by the invalidation
//! commands the backends issue. After every batch each endpoint's domain
//! must translate every IOVA as the model's mappings say (or fault), TLB
//! hits included, while the other guest maps, unmaps, attaches, detaches
//! and resets (its domains destroyed, their VMIDs and table pages reused).

use super::io_budget::Rng;
use super::*;
use crate::smmu::cmd::op;
use crate::viommu::model::{Viommu, ViommuConfig};
use crate::viommu::wire::Status;
use crate::viommu::wire::request::{Attach, Detach, Map, MapFlags, Request, Unmap};
use crate::vm::viommu::backend::{IOVA_BITS, SmmuBackend, SmmuDomain};
use alloc::collections::BTreeMap;

const MIB2: u64 = 2 << 20;

/// One IOTLB entry: the leaf's output base and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    pa: u64,
    size: u64,
}

/// QEMU's SMMU IOTLB, reduced to what matters here: (VMID, leaf IOVA
/// base) -> leaf, no walk cache, shared by all streams.
#[derive(Default)]
struct Iotlb {
    entries: BTreeMap<(u16, u64), Entry>,
    /// Stream -> VMID of the table it is bound to (None: abort).
    streams: BTreeMap<u32, Option<u16>>,
}

impl Iotlb {
    /// Drops `vmid`'s entries that meet `[addr, addr + len)`.
    fn invalidate(&mut self, vmid: u16, addr: u64, len: u64) {
        self.entries.retain(|&(v, iova), e| {
            !(v == vmid && iova < addr.saturating_add(len) && addr < iova + e.size)
        });
    }

    /// Replays what the backends asked of the SMMU, in order.
    fn replay(&mut self, calls: Vec<DmaCall>) {
        for c in calls {
            match c {
                DmaCall::Bind(_, sid, vmid) => {
                    self.streams.insert(sid, Some(vmid));
                }
                DmaCall::Abort(_, sid) => {
                    // The driver invalidates the VMID the entry had.
                    if let Some(Some(v)) = self.streams.insert(sid, None) {
                        self.entries.retain(|&(ev, _), _| ev != v);
                    }
                }
                DmaCall::Issue(_, cmds) => {
                    for cmd in cmds {
                        match cmd.opcode() {
                            op::TLBI_S12_VMALL => {
                                self.entries.retain(|&(v, _), _| v != cmd.vmid());
                            }
                            op::TLBI_S2_IPA => {
                                let r = cmd.range();
                                let len = if r.tg == 0 { 4096 } else { r.pages() << 12 };
                                self.invalidate(cmd.vmid(), cmd.ipa(), len);
                            }
                            op::TLBI_NSNH_ALL => self.entries.clear(),
                            _ => {}
                        }
                    }
                }
                DmaCall::Attach(..) | DmaCall::Detach(..) | DmaCall::Poll => {}
            }
        }
    }

    /// A DMA of stream `sid` at `iova` through `table` (the domain its
    /// endpoint is attached to): a hit, else a walk that fills the TLB.
    fn access(
        &mut self,
        sid: u32,
        table: &PageTable<Stage2>,
        b: &SmmuBackend,
        iova: u64,
    ) -> Option<u64> {
        let vmid = (*self.streams.get(&sid)?)?;
        if let Some((&(_, base), e)) = self
            .entries
            .range(..=(vmid, iova))
            .next_back()
            .filter(|&(&(v, base), e)| v == vmid && iova < base + e.size)
        {
            return Some(e.pa + (iova - base));
        }
        let (pa, _, size) = table.translate_block(b.tables(), iova)?;
        let off = iova & (size - 1);
        self.entries
            .insert((vmid, iova - off), Entry { pa: pa - off, size });
        Some(pa)
    }
}

/// One guest: its model over the real backend, and its two endpoints.
struct Side {
    g: Guest,
    v: Viommu<SmmuBackend>,
    eps: [u32; 2],
}

impl Side {
    fn new(
        w: &World,
        smmus: &'static dyn DmaControl,
        index: usize,
        name: &str,
        eps: [u32; 2],
    ) -> Side {
        let g = w.guest_on(smmus, index, config(name, &[index as u32], true));
        let b = SmmuBackend::with_table_limit(g.ram, g.dma.clone(), w.vmids.reserve(8), 8, 64);
        let cfg = ViommuConfig {
            input_end: (1 << IOVA_BITS) - 1,
            max_mappings: 256,
            ..ViommuConfig::default()
        };
        Side {
            v: Viommu::new(b, cfg).unwrap(),
            g,
            eps,
        }
    }

    /// What the model says `iova` of domain `d` translates to.
    fn expected(&self, d: u32, iova: u64) -> Option<u64> {
        self.v
            .mappings(d)
            .find(|m| m.start <= iova && iova <= m.end)
            .map(|m| {
                let gpa = m.phys + (iova - m.start);
                self.g.ram.to_pa(gpa).unwrap_or(gpa)
            })
    }

    /// The IOVAs worth probing in domain `d`: the ends and middle of each
    /// mapping, and a few around them.
    fn probes(&self, d: u32, rng: &mut Rng) -> Vec<u64> {
        let mut out = Vec::new();
        for m in self.v.mappings(d) {
            let mid = (m.start + (m.end - m.start) / 2) & !0xfff;
            out.extend([m.start, m.end & !0xfff, mid, m.start.wrapping_sub(0x1000)]);
            out.push((m.end & !0xfff) + 0x1000);
        }
        for _ in 0..8 {
            out.push(rng.below(64 << 9) << 12);
        }
        out.retain(|&a| a < 1 << IOVA_BITS);
        out
    }

    /// Every endpoint's DMA at the probes agrees with the model.
    fn check(&self, tlb: &mut Iotlb, rng: &mut Rng, step: u64, what: &str) {
        for &ep in &self.eps {
            let Some(d) = self.v.domain_of(ep) else {
                continue;
            };
            if self.v.domain_is_bypass(d) == Some(true) {
                continue;
            }
            let table = self
                .v
                .backend_domain(d)
                .and_then(SmmuDomain::table)
                .expect("an attached translating domain has a table");
            // Every IOVA the TLB holds for the stream's VMID too: a stale
            // entry is what a device would use.
            let vmid = tlb.streams.get(&ep).copied().flatten();
            let mut probes = self.probes(d, rng);
            probes.extend(
                tlb.entries
                    .keys()
                    .filter(|&&(v, _)| Some(v) == vmid)
                    .map(|&(_, iova)| iova),
            );
            for iova in probes {
                let got = tlb.access(ep, table, self.v.backend(), iova);
                let want = self.expected(d, iova);
                assert_eq!(
                    got,
                    want,
                    "step {step} ({what}): guest '{}' endpoint {ep:#x} domain {d} IOVA {iova:#x}",
                    self.g.name()
                );
            }
        }
    }
}

fn request(rng: &mut Rng, side: &Side) -> Request {
    let eps = side.eps;
    let domain = 1 + rng.below(3) as u32;
    if rng.below(3) == 0 {
        // Most UNMAPs take back what the guest mapped (Linux's strict
        // mode), sometimes with a neighbour.
        let all: Vec<_> = side.v.mappings(domain).collect();
        if !all.is_empty() {
            let m = all[rng.below(all.len() as u64) as usize];
            let end = match all.iter().find(|n| n.start == m.end + 1) {
                Some(n) if rng.below(4) == 0 => n.end,
                _ => m.end,
            };
            return Request::Unmap(Unmap {
                domain,
                virt_start: m.start,
                virt_end: end,
                reserved: [0; 4],
            });
        }
    }
    let endpoint = eps[rng.below(2) as usize];
    // A small IOVA space (128 MiB) so that tables fill, empty and are
    // reused; pages, runs and 2 MiB blocks of guest RAM.
    match rng.below(16) {
        0 => Request::Attach(Attach {
            domain,
            endpoint,
            flags: 0,
            reserved: [0; 4],
        }),
        1 => Request::Detach(Detach {
            domain,
            endpoint,
            reserved: [0; 8],
        }),
        2..=9 => {
            let (size, phys) = match rng.below(6) {
                0 => (MIB2, RAM_BASE + MIB2 * rng.below(2)),
                1 => (0x1000 * (1 + rng.below(64)), RAM_BASE),
                _ => (0x1000, RAM_BASE + 0x1000 * rng.below(1024)),
            };
            let start = if size == MIB2 {
                rng.below(64) * MIB2
            } else {
                rng.below(64 << 9) << 12
            };
            Request::Map(Map {
                domain,
                virt_start: start,
                virt_end: start + size - 1,
                phys_start: phys,
                flags: MapFlags(3),
            })
        }
        _ => {
            let start = rng.below(64 << 9) << 12;
            let len = if rng.below(4) == 0 {
                rng.below(512) << 12
            } else {
                0
            };
            Request::Unmap(Unmap {
                domain,
                virt_start: start,
                virt_end: start + len + 0xfff,
                reserved: [0; 4],
            })
        }
    }
}

/// The recording SMMU side, with range invalidation (IDR3.RIL, as QEMU's
/// SMMU has): the backends then plan range-form `TLBI_S2_IPA`s.
struct WithRil(&'static FakeDma);

impl DmaControl for WithRil {
    fn attach(&self, owner: &DmaOwner<'_>, table: Option<TableRef<'_>>) -> Result<(), DmaError> {
        self.0.attach(owner, table)
    }
    fn detach(&self, owner: &DmaOwner<'_>) -> Result<(), DmaError> {
        self.0.detach(owner)
    }
    fn endpoint_stream(&self, devices: &[String], ep: u32) -> Option<(usize, u32)> {
        self.0.endpoint_stream(devices, ep)
    }
    fn bind_stream(
        &self,
        smmu: usize,
        sid: u32,
        table: &PageTable<Stage2>,
        vmid: u16,
    ) -> Result<(), DmaError> {
        self.0.bind_stream(smmu, sid, table, vmid)
    }
    fn abort_stream(&self, smmu: usize, sid: u32) -> Result<(), DmaError> {
        self.0.abort_stream(smmu, sid)
    }
    fn issue(&self, smmu: usize, cmds: &[Cmd]) -> Result<(), DmaError> {
        self.0.issue(smmu, cmds)
    }
    fn queue(&'static self, smmu: usize) -> Option<&'static dyn SyncQueue> {
        self.0.queue(smmu)
    }
    fn has_ril(&self, _smmu: usize) -> bool {
        true
    }
    fn count(&self) -> usize {
        1
    }
    fn poll_events(&self) {
        self.0.poll_events()
    }
}

#[test]
fn devices_see_what_their_guest_mapped_while_another_guest_churns_and_resets() {
    churn(false);
}

#[test]
fn the_same_with_range_invalidations() {
    churn(true);
}

/// Two guests' requests and alpha's resets, checked after every batch
/// (see the module documentation); `ril`: the SMMU has range
/// invalidation.
fn churn(ril: bool) {
    let iterations: u64 = std::env::var("PARTITA_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    let seed: u64 = std::env::var("PARTITA_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0bad_5707_0000_0001);
    let w = World::new();
    let smmus: &'static dyn DmaControl = if ril {
        Box::leak(Box::new(WithRil(w.dma)))
    } else {
        w.dma
    };
    let mut a = Side::new(&w, smmus, 0, "alpha", [0x08, 0x09]);
    let mut b = Side::new(&w, smmus, 1, "beta", [0x10, 0x11]);
    let mut tlb = Iotlb::default();
    let mut rng = Rng(seed);
    let mut resets = 0;
    let mut oks = 0;
    for step in 0..iterations {
        let which = rng.below(2);
        let side = if which == 0 { &mut a } else { &mut b };
        if which == 0 && rng.below(64) == 0 {
            // alpha reboots: every domain destroyed, then its streams go
            // back to abort and are attached again (vm/power.rs).
            side.v.reset().unwrap();
            let _ = side.g.dma.detach();
            let _ = side.g.dma.attach(false);
            resets += 1;
        } else {
            let n = 1 + rng.below(4);
            let batch: Vec<(Vec<u8>, usize)> = (0..n)
                .map(|_| (request(&mut rng, side).encode(), 4))
                .collect();
            let out = side.v.process_batch(batch);
            assert_eq!(out.sync, Ok(()), "step {step} (seed {seed:#x})");
            oks += out
                .completions
                .iter()
                .filter(|c| c.response.status() == Some(Status::Ok))
                .count();
        }
        tlb.replay(w.dma.take());
        let what = if which == 0 {
            "after alpha's batch"
        } else {
            "after beta's batch"
        };
        a.check(&mut tlb, &mut rng, step, what);
        b.check(&mut tlb, &mut rng, step, what);
    }
    assert!(
        resets > 10 && oks > 1000,
        "{resets} resets, {oks} requests done"
    );
}
