//! The peer's rows beside ours and the bare reference: the markdown table
//! and the `"peer"` object of results.json.

use std::fmt::Write as _;

use super::PeerOutcome;
use super::l1::{self, RUNS, Stage, WARMUP};
use crate::bench::{Samples, stat};

/// The workloads compared, in order: (key, label).
pub const OPS: [(&str, &str); 5] = [
    ("map_unmap_4k", "4 KiB MAP+UNMAP"),
    ("map_unmap_2m", "2 MiB MAP+UNMAP"),
    ("map_batch_64", "64 MAPs, one notify"),
    ("unmap_batch_64", "64 UNMAPs, one notify"),
    ("null_exit", "null exit (register read)"),
];

/// The other two sides of the comparison, when they ran.
#[derive(Debug, Clone, Copy)]
pub struct Others<'a> {
    /// partita's samples.
    pub ours: &'a Samples,
    /// QEMU's virtio-iommu without a hypervisor.
    pub reference: &'a Samples,
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

/// The peer's samples per run kind: (vfio, novfio).
fn sides(o: &PeerOutcome) -> (Samples, Samples) {
    (o.console.samples("vfio"), o.console.samples("novfio"))
}

/// The peer section of report.md.
pub fn markdown(o: &PeerOutcome, others: Option<Others<'_>>) -> String {
    let (vfio, novfio) = sides(o);
    let mut s = String::new();
    let _ = writeln!(s, "## The peer: Linux/KVM with QEMU's virtio-iommu\n");
    let _ = writeln!(
        s,
        "Guest ns per operation of the same bench guest (L2) under KVM in a Linux host (L1) \
         booted on the same outer QEMU, `-icount shift=0 -seed 1`: L1's kernel and QEMU's \
         instructions are guest time. Median of the runs that completed; one L1 boot, each \
         L2 run {} time(s).\n",
        o.console.runs.len() / RUNS.len().max(1)
    );
    let _ = writeln!(
        s,
        "| operation | ours (ns) | peer, VFIO (ns) | peer, no VFIO (ns) | bare QEMU (ns) | peer VFIO / ours | peer no VFIO / ours |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
    for (k, label) in OPS {
        let ours = others.and_then(|x| med(x.ours, k));
        let bare = others.and_then(|x| med(x.reference, k));
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
    for run in RUNS {
        let f = o.console.failures(run.name);
        let kind = if run.vfio {
            "peer, VFIO (the outer `edu` bound to vfio-pci in L1, assigned to L2 at 00:01.0)"
        } else {
            "peer, no VFIO (QEMU's emulated `edu` at L2's 00:01.0: the VMM exit alone)"
        };
        let ok = o
            .console
            .samples(run.name)
            .values()
            .map(Vec::len)
            .max()
            .unwrap_or(0);
        let _ = writeln!(
            s,
            "- {kind}: {ok} run(s) counted{}",
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
        if let Some(dt) = o
            .console
            .runs
            .iter()
            .find(|r| r.name == run.name)
            .and_then(|r| r.dt.as_deref())
        {
            let _ = writeln!(s, "- discovery (peer, {}): {dt}", run.name);
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
        "- L2's DT on virtio-mmio: QEMU's own (`dumpdtb` in L1), edited with `fdtput` as for the bare reference: {}",
        l1::DT_EDITS
            .iter()
            .map(|(n, p, c)| format!("`{p}` = {c:x?} on `{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let w = o.console.failures(WARMUP.name);
    let _ = writeln!(
        s,
        "- one warm-up run of the no-VFIO case after L1's boot, not counted{}",
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

/// The `"peer"` object of results.json: the VFIO figures at the top (the
/// issue's `"peer": {"map_unmap_4k": G, ...}`), then each kind, the ratios
/// to ours and what failed.
pub fn json(o: &PeerOutcome, ours: Option<&Samples>) -> String {
    let (vfio, novfio) = sides(o);
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
    let failures = |name: &str| {
        o.console
            .failures(name)
            .iter()
            .map(|f| format!("\"{}\"", f.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{{{}, \"with\": \"VFIO: the outer edu assigned to L2\", \"no_vfio\": {{{}}}, \
         \"ratio_to_ours\": {{{}}}, \"no_vfio_ratio_to_ours\": {{{}}}, \
         \"failures\": {{\"vfio\": [{}], \"no_vfio\": [{}]}}, \"wall_s\": {:.0}}}",
        obj(&vfio),
        obj(&novfio),
        ratios(&vfio),
        ratios(&novfio),
        failures("vfio"),
        failures("novfio"),
        o.wall.as_secs_f64()
    )
}

/// `json` (results.json, one object) with `"peer": peer` added as its last
/// member.
pub fn add_to_json(json: &str, peer: &str) -> String {
    let body = json.trim_end().trim_end_matches('}').trim_end();
    format!("{body},\n  \"peer\": {peer}\n}}\n")
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

    #[test]
    fn ratios_and_cells() {
        assert_eq!(ratio(Some(37000.0), Some(4900.0)), "7.6x");
        assert_eq!(ratio(Some(1.0), None), "n/a");
        assert_eq!(cell(None), "n/a");
        assert_eq!(num(Some(2.25)), "2.2");
    }
}
