//! The peer's rows beside ours and the bare reference, per transport: the
//! markdown tables, the `"peer"` object of results.json and the peer's
//! bars of the plot.

use std::fmt::Write as _;

use super::PeerOutcome;
use super::l1::{self, L2Run, RUNS, Stage, Transport, WARMUP};
use crate::bench::report::{Bar, Samples, Sides, stat};

/// The workloads compared, in order: (key, label).
pub const OPS: [(&str, &str); 5] = [
    ("map_unmap_4k", "4 KiB MAP+UNMAP"),
    ("map_unmap_2m", "2 MiB MAP+UNMAP"),
    ("map_batch_64", "64 MAPs, one notify"),
    ("unmap_batch_64", "64 UNMAPs, one notify"),
    ("null_exit", "null exit (register read)"),
];

/// The transports, in the report's order: (transport, heading).
const TRANSPORTS: [(Transport, &str); 2] = [
    (
        Transport::Mmio,
        "virtio-mmio (L2: `virtio-iommu-device`; ours and bare QEMU: the virtio-mmio rows)",
    ),
    (
        Transport::Pci,
        "virtio-pci (L2: `virtio-iommu-pci`; ours and bare QEMU: the virtio-pci rows)",
    ),
];

/// The other two sides of the comparison, when they ran.
#[derive(Debug, Clone, Copy)]
pub struct Others<'a> {
    /// ours and QEMU's without a hypervisor, on virtio-mmio.
    pub mmio: &'a Sides,
    /// The same on virtio-pci.
    pub pci: &'a Sides,
}

impl<'a> Others<'a> {
    /// The sides of `t`.
    fn of(self, t: Transport) -> &'a Sides {
        match t {
            Transport::Mmio => self.mmio,
            Transport::Pci => self.pci,
        }
    }
}

/// Median of `k` in `s`.
fn med(s: &Samples, k: &str) -> Option<f64> {
    s.get(k).and_then(|v| stat(v)).map(|x| x.median)
}

fn cell(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.1}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.1}x", a / b),
        _ => "n/a".into(),
    }
}

fn num(v: Option<f64>) -> String {
    v.map_or("null".into(), |v| format!("{v:.1}"))
}

/// The peer's samples on `t`: (vfio, novfio).
fn sides(o: &PeerOutcome, t: Transport) -> (Samples, Samples) {
    (
        o.console.samples(l1::run_of(t, true).name),
        o.console.samples(l1::run_of(t, false).name),
    )
}

/// What one run is, for the report.
fn kind(run: L2Run) -> String {
    let t = match run.transport {
        Transport::Mmio => "virtio-mmio",
        Transport::Pci => "virtio-pci",
    };
    if run.vfio {
        format!(
            "peer, {t}, VFIO (`{}`: the outer `edu` bound to vfio-pci in L1, assigned to L2 at 00:01.0)",
            run.name
        )
    } else {
        format!(
            "peer, {t}, no VFIO (`{}`: QEMU's emulated `edu` at L2's 00:01.0: the VMM exit alone)",
            run.name
        )
    }
}

/// One transport's table.
fn table(s: &mut String, o: &PeerOutcome, t: Transport, others: Option<Others<'_>>) {
    let (vfio, novfio) = sides(o, t);
    let _ = writeln!(
        s,
        "| operation | ours (ns) | peer, VFIO (ns) | peer, no VFIO (ns) | bare QEMU (ns) | peer VFIO / ours | peer no VFIO / ours |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
    for (k, label) in OPS {
        let ours = others.and_then(|x| med(&x.of(t).ours, k));
        let bare = others.and_then(|x| med(&x.of(t).reference, k));
        let (v, n) = (med(&vfio, k), med(&novfio, k));
        let _ = writeln!(
            s,
            "| {label} | {} | {} | {} | {} | {} | {} |",
            cell(ours),
            cell(v),
            cell(n),
            cell(bare),
            ratio(v, ours),
            ratio(n, ours)
        );
    }
    let _ = writeln!(s);
}

/// The peer section of report.md.
pub fn markdown(o: &PeerOutcome, others: Option<Others<'_>>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## The peer: Linux/KVM with QEMU's virtio-iommu\n");
    let reps = o
        .console
        .runs
        .iter()
        .filter(|r| r.name == RUNS[0].name)
        .count();
    let _ = writeln!(
        s,
        "Guest ns per operation of the same bench guest (L2) under KVM in a Linux host (L1) \
         booted on the same outer QEMU, `-icount shift=0 -seed 1`: L1's kernel and QEMU's \
         instructions are guest time. Median of the runs that completed; one L1 boot, each \
         L2 run {reps} time(s).\n"
    );
    for (t, heading) in TRANSPORTS {
        let _ = writeln!(s, "### {heading}\n");
        table(&mut s, o, t, others);
    }
    for run in RUNS {
        let f = o.console.failures(run.name);
        let ok = o
            .console
            .samples(run.name)
            .values()
            .map(Vec::len)
            .max()
            .unwrap_or(0);
        let _ = writeln!(
            s,
            "- {}: {ok} run(s) counted{}",
            kind(run),
            if f.is_empty() {
                String::new()
            } else {
                format!(
                    "; **{} failed**: {}",
                    f.len(),
                    f.iter()
                        .map(|x| format!("`{x}`"))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            }
        );
    }
    let _ = writeln!(
        s,
        "- L1: {} kernel `{}`; QEMU `{}` and its libraries from {} Debian arm64 package(s) resolved by apt; {} CPU, {} RAM; {}",
        o.image.kernel_version,
        o.image.kernel.display(),
        o.image.qemu_version,
        o.image.packages,
        super::L1_CPUS,
        super::L1_MEM,
        o.console.l1.as_deref().unwrap_or("no `peer l1` line"),
    );
    let _ = writeln!(
        s,
        "- assigned function: {}",
        o.console.edu.as_deref().unwrap_or("no `peer edu` line")
    );
    for d in &o.console.dmesg {
        let _ = writeln!(s, "- L1 kernel: `{}`", d.trim());
    }
    for run in RUNS {
        let first = o.console.runs.iter().find(|r| r.name == run.name);
        if let Some(dt) = first.and_then(|r| r.dt.as_deref()) {
            let _ = writeln!(s, "- discovery (peer, {}): {dt}", run.name);
        }
        if let Some(dev) = first.and_then(|r| r.device.as_deref()) {
            let _ = writeln!(s, "- device (peer, {}): {dev}", run.name);
        }
        let _ = writeln!(
            s,
            "- L2 ({}): `qemu-system-aarch64 {}`",
            run.name,
            l1::l2_args(run, Stage::Run).join(" ")
        );
    }
    let _ = writeln!(
        s,
        "- L2's DT on virtio-mmio: QEMU's own (`dumpdtb` in L1), edited with `fdtput` as for the bare reference: {}; on virtio-pci: QEMU's own, unedited",
        l1::DT_EDITS
            .iter()
            .map(|(n, p, c)| format!("`{p}` = {c:x?} on `{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let w = o.console.failures(WARMUP.name);
    let _ = writeln!(
        s,
        "- one warm-up run ({}) after L1's boot, not counted{}",
        WARMUP.name,
        if w.is_empty() {
            String::new()
        } else {
            format!(" (it failed: `{}`)", w.join("; "))
        }
    );
    let _ = writeln!(s, "- outer: `{}`", o.command);
    let _ = writeln!(
        s,
        "- wall clock of the L1 boot and its runs: {:.0} s (console: `{}`)",
        o.wall.as_secs_f64(),
        o.log.display()
    );
    s
}

/// One transport's members of the `"peer"` object: the VFIO figures (the
/// issue's `"map_unmap_4k": G, ...`), then the no-VFIO ones, the ratios to
/// ours and what failed.
fn json_members(o: &PeerOutcome, t: Transport, ours: Option<&Samples>) -> String {
    let (vfio, novfio) = sides(o, t);
    let obj = |s: &Samples| {
        OPS.iter()
            .map(|(k, _)| format!("\"{k}\": {}", num(med(s, k))))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let ratios = |s: &Samples| {
        OPS.iter()
            .map(|(k, _)| {
                let r = match (med(s, k), ours.and_then(|o| med(o, k))) {
                    (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
                    _ => "null".into(),
                };
                format!("\"{k}\": {r}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let failures = |vfio: bool| {
        o.console
            .failures(l1::run_of(t, vfio).name)
            .iter()
            .map(|f| format!("\"{}\"", f.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{}, \"with\": \"VFIO: the outer edu assigned to L2\", \"no_vfio\": {{{}}}, \
         \"ratio_to_ours\": {{{}}}, \"no_vfio_ratio_to_ours\": {{{}}}, \
         \"failures\": {{\"vfio\": [{}], \"no_vfio\": [{}]}}",
        obj(&vfio),
        obj(&novfio),
        ratios(&vfio),
        ratios(&novfio),
        failures(true),
        failures(false),
    )
}

/// The `"peer"` object of results.json: virtio-mmio at the top (VFIO
/// figures first: the issue's `"peer": {"map_unmap_4k": G, ...}`), the
/// same for virtio-pci under `"pci"`, the wall time.
pub fn json(o: &PeerOutcome, others: Option<Others<'_>>) -> String {
    format!(
        "{{{}, \"pci\": {{{}}}, \"wall_s\": {:.0}}}",
        json_members(o, Transport::Mmio, others.map(|x| &x.mmio.ours)),
        json_members(o, Transport::Pci, others.map(|x| &x.pci.ours)),
        o.wall.as_secs_f64()
    )
}

/// `json` (results.json, one object) with `"peer": peer` added as its last
/// member.
pub fn add_to_json(json: &str, peer: &str) -> String {
    let body = json.trim_end().trim_end_matches('}').trim_end();
    format!("{body},\n  \"peer\": {peer}\n}}\n")
}

/// The peer's bars in the plot: VFIO and no VFIO on each transport.
pub fn bars(o: &PeerOutcome) -> Vec<Bar> {
    let (mv, mn) = sides(o, Transport::Mmio);
    let (pv, pn) = sides(o, Transport::Pci);
    vec![
        Bar {
            samples: mv,
            color: "#27ae60",
            name: "Linux/KVM + VFIO, mmio",
        },
        Bar {
            samples: pv,
            color: "#8e44ad",
            name: "Linux/KVM + VFIO, pci",
        },
        Bar {
            samples: mn,
            color: "#7dcea0",
            name: "Linux/KVM, no VFIO, mmio",
        },
        Bar {
            samples: pn,
            color: "#c39bd3",
            name: "Linux/KVM, no VFIO, pci",
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_member_appended() {
        let j = add_to_json("{\n  \"a\": 1\n}\n", "{\"map_unmap_4k\": 2.0}");
        assert_eq!(
            j,
            "{\n  \"a\": 1,\n  \"peer\": {\"map_unmap_4k\": 2.0}\n}\n"
        );
    }

    /// An L1 console with one run of each kind, the PCI VFIO one failed.
    const CONSOLE: &str = "\
peer l1 kernel=6.12.95+deb12-arm64 cpus=1 kvm=/dev/kvm
peer edu 0000:00:05.0 group=3 driver=vfio-pci vfio=3 vfio
peer run warmup begin
bench map_unmap_4k ns_per_op=99999.0 reps=1000 ticks=1 errors=0
bench done
peer run warmup end status=0
peer run novfio begin
bench map_unmap_4k ns_per_op=26195.0 reps=1000 ticks=1 errors=0
bench done
peer run novfio end status=0
peer run vfio begin
bench dt viommu=/virtio_mmio@a003e00 iommu-map of /pcie@10000000 rid=0x8 endpoint=0x8
bench device base=0xa003e00 transport=mmio page_size_mask=0x40201000 queue_num_max=1024
bench map_unmap_4k ns_per_op=35659.0 reps=1000 ticks=1 errors=0
bench done
peer run vfio end status=0
peer run pci-novfio begin
bench map_unmap_4k ns_per_op=24951.0 reps=1000 ticks=1 errors=0
bench done
peer run pci-novfio end status=0
peer run pci-vfio begin
qemu-system-aarch64: -device vfio-pci,host=0000:00:05.0,addr=1.0: no
peer run pci-vfio end status=1
peer done
";

    fn outcome() -> PeerOutcome {
        PeerOutcome {
            console: super::super::console::parse(CONSOLE),
            image: l1::L1Image {
                kernel: "vmlinuz".into(),
                initrd: "initrd".into(),
                kernel_version: "6.12.95".into(),
                qemu_version: "10.0.2".into(),
                packages: 85,
            },
            command: "qemu-system-aarch64 ...".into(),
            wall: std::time::Duration::from_secs(20),
            log: "peer.log".into(),
        }
    }

    #[test]
    fn both_transports_in_report_and_json() {
        let o = outcome();
        let one = |k: &str, v: f64| -> Samples { [(k.to_owned(), vec![v])].into() };
        let mmio = Sides {
            ours: one("map_unmap_4k", 4924.0),
            reference: one("map_unmap_4k", 67.0),
        };
        let pci = Sides {
            ours: one("map_unmap_4k", 4979.0),
            reference: one("map_unmap_4k", 68.0),
        };
        let others = Others {
            mmio: &mmio,
            pci: &pci,
        };
        let md = markdown(&o, Some(others));
        assert!(md.contains("each L2 run 1 time(s)"), "{md}");
        let (m, p) = (
            md.find("### virtio-mmio").expect("mmio table"),
            md.find("### virtio-pci").expect("pci table"),
        );
        assert!(m < p);
        assert!(
            md[m..p]
                .contains("| 4 KiB MAP+UNMAP | 4924.0 | 35659.0 | 26195.0 | 67.0 | 7.2x | 5.3x |"),
            "{md}"
        );
        assert!(
            md[p..].contains("| 4 KiB MAP+UNMAP | 4979.0 | n/a | 24951.0 | 68.0 | n/a | 5.0x |"),
            "{md}"
        );
        assert!(md.contains("`pci-vfio`: the outer `edu`"), "{md}");
        assert!(
            md.contains(
                "- device (peer, vfio): base=0xa003e00 transport=mmio page_size_mask=0x40201000"
            ),
            "{md}"
        );
        assert!(md.contains("0 run(s) counted; **1 failed**: `QEMU exited with status 1"));
        assert!(md.contains("- L2 (pci-novfio): `qemu-system-aarch64 -M virt,gic-version=3"));
        let json = json(&o, Some(others));
        assert!(json.starts_with("{\"map_unmap_4k\": 35659.0, "), "{json}");
        assert!(
            json.contains("\"no_vfio\": {\"map_unmap_4k\": 26195.0, "),
            "{json}"
        );
        assert!(
            json.contains("\"pci\": {\"map_unmap_4k\": null, "),
            "{json}"
        );
        assert!(
            json.contains("\"no_vfio_ratio_to_ours\": {\"map_unmap_4k\": 5.01, "),
            "{json}"
        );
        assert!(json.ends_with(", \"wall_s\": 20}"), "{json}");
        let b = bars(&o);
        assert_eq!(b.len(), 4);
        assert_eq!(b[0].samples["map_unmap_4k"], [35659.0]);
        assert!(b[1].samples.is_empty());
    }

    #[test]
    fn ratios_and_cells() {
        assert_eq!(ratio(Some(37000.0), Some(4900.0)), "7.6x");
        assert_eq!(ratio(Some(1.0), None), "n/a");
        assert_eq!(cell(None), "n/a");
        assert_eq!(num(Some(2.25)), "2.2");
    }
}
