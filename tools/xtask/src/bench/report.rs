//! What `cargo xtask bench` writes: `report.md`, `results.json` and
//! `plot.svg`, from the samples of both transports (virtio-mmio and
//! virtio-pci), each measured under partita (ours) and on bare QEMU (the
//! reference), the hypervisor's RAM for the guest and the in-hypervisor
//! profiles.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::RamUse;
use super::profile;

/// The workloads of the tables, in order: (key, label, what one op is).
/// The null exit's label names the virtio-mmio register; on virtio-pci
/// it is [`PCI_NULL_LABEL`].
pub const OPS: [(&str, &str, &str); 5] = [
    (
        "map_unmap_4k",
        "4 KiB MAP+UNMAP",
        "one MAP and one UNMAP, one notify each",
    ),
    (
        "map_unmap_2m",
        "2 MiB MAP+UNMAP",
        "one MAP and one UNMAP, one notify each",
    ),
    (
        "map_batch_64",
        "64 MAPs, one notify",
        "a batch of 64 4 KiB MAPs",
    ),
    (
        "unmap_batch_64",
        "64 UNMAPs, one notify",
        "a batch of 64 4 KiB UNMAPs",
    ),
    (
        "null_exit",
        "null exit (MagicValue read)",
        "one read of a trapped register",
    ),
];

/// The null exit's label on virtio-pci.
const PCI_NULL_LABEL: &str = "null exit (common-config read)";

/// The goal of issue 13: the 4 KiB pair on virtio-pci within this factor
/// of virtio-mmio, under partita.
pub const PCI_GOAL: f64 = 1.1;

/// One side's samples: workload -> ns per op, one per run.
pub type Samples = BTreeMap<String, Vec<f64>>;

/// Median, minimum and maximum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    /// The median.
    pub median: f64,
    /// The smallest sample.
    pub min: f64,
    /// The largest sample.
    pub max: f64,
}

/// The statistics of some samples (None when there are none).
pub fn stat(samples: &[f64]) -> Option<Stat> {
    if samples.is_empty() {
        return None;
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    Some(Stat {
        median,
        min: s[0],
        max: s[n - 1],
    })
}

/// One transport's samples, on both sides.
#[derive(Debug, Default)]
pub struct Sides {
    /// Under partita.
    pub ours: Samples,
    /// On bare QEMU with its own virtio-iommu.
    pub reference: Samples,
}

impl Sides {
    fn ours(&self, k: &str) -> Option<Stat> {
        self.ours.get(k).and_then(|s| stat(s))
    }
    fn reference(&self, k: &str) -> Option<Stat> {
        self.reference.get(k).and_then(|s| stat(s))
    }
    /// EL2 instructions of a null exit: the trapped read's loop minus the
    /// same loop reading RAM (1 guest ns = 1 instruction at shift=0).
    fn null_el2(&self) -> Option<f64> {
        Some(self.ours("null_exit")?.median - self.ours("loop_baseline")?.median)
    }
    /// Extra instructions per op under partita (ours - reference): QEMU's
    /// device costs no guest instruction, the guest code is the same.
    fn extra(&self, k: &str) -> Option<f64> {
        Some(self.ours(k)?.median - self.reference(k)?.median)
    }
    /// The EL2 column of workload `k`.
    fn el2(&self, k: &str) -> Option<f64> {
        if k == "null_exit" {
            self.null_el2()
        } else {
            self.extra(k)
        }
    }
}

/// Everything one `cargo xtask bench` measured.
pub struct Report {
    /// virtio-mmio (the `results.json` keys of old).
    pub mmio: Sides,
    /// virtio-pci.
    pub pci: Sides,
    /// Bytes of the release image.
    pub image_bytes: u64,
    /// Runs per side.
    pub runs: usize,
    /// One per partita run (virtio-mmio) that printed the line.
    pub ram: Vec<RamUse>,
    /// The same for the virtio-pci runs.
    pub pci_ram: Vec<RamUse>,
    /// The guest's name in the bench configurations.
    pub guest: String,
    /// How the sides were set up, one bullet each.
    pub setup: Vec<String>,
    /// The profiled virtio-mmio run's breakdown.
    pub el2_profile: Option<profile::Profile>,
    /// The profiled virtio-pci run's breakdown.
    pub pci_profile: Option<profile::Profile>,
}

/// A number for results.json (`null` when missing).
fn num(v: Option<f64>) -> String {
    v.map_or("null".into(), |v| format!("{v:.1}"))
}

/// A ratio for results.json, three decimals.
fn ratio_json(v: Option<f64>) -> String {
    v.map_or("null".into(), |v| format!("{v:.3}"))
}

/// `a / b` when both are there and `b` is not 0.
fn ratio(a: Option<Stat>, b: Option<Stat>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b.median > 0.0 => Some(a.median / b.median),
        _ => None,
    }
}

impl Report {
    /// Median over runs of the hypervisor's peak RAM for the guest.
    fn ram_peak(ram: &[RamUse]) -> Option<f64> {
        stat(&ram.iter().map(|r| r.peak as f64).collect::<Vec<_>>()).map(|s| s.median)
    }

    /// The report.md line on hypervisor RAM per guest (virtio-mmio runs).
    fn ram_line(&self) -> String {
        let line = format!(
            "`guest '{}': hypervisor RAM: peak <P> bytes, live <L> bytes`",
            self.guest
        );
        match Self::ram_peak(&self.ram) {
            None => format!(
                "- hypervisor RAM per guest: **not measured**: no {line} in the partita console logs (`ours-N.log`): this hypervisor does not print it yet (null in results.json)"
            ),
            Some(p) => {
                let lives: Vec<f64> = self.ram.iter().map(|r| r.live as f64).collect();
                let missing = if self.ram.len() < self.runs {
                    format!(
                        "; **the line was missing in {} of the {} run(s)**",
                        self.runs - self.ram.len(),
                        self.runs
                    )
                } else {
                    String::new()
                };
                let pci = Self::ram_peak(&self.pci_ram).map_or(String::new(), |p| {
                    format!(" (virtio-pci guest: peak {p:.0} bytes, `ours-pci-N.log`)")
                });
                format!(
                    "- hypervisor RAM per guest: peak **{p:.0} bytes** ({:.1} KiB; live at the last report {} bytes), median over {} run(s) of the last {line} line{missing}{pci}",
                    p / 1024.0,
                    stat(&lives).map_or("n/a".into(), |s| format!("{:.0}", s.median)),
                    self.ram.len(),
                )
            }
        }
    }

    /// Ours on virtio-pci over ours on virtio-mmio, for workload `k`.
    fn ours_pci_over_mmio(&self, k: &str) -> Option<f64> {
        ratio(self.pci.ours(k), self.mmio.ours(k))
    }

    /// The same on the reference.
    fn reference_pci_over_mmio(&self, k: &str) -> Option<f64> {
        ratio(self.pci.reference(k), self.mmio.reference(k))
    }

    /// One transport's table.
    fn table(s: &mut String, sides: &Sides, null_label: &str) {
        let _ = writeln!(
            s,
            "| operation | ours (ns) | spread | QEMU's (ns) | spread | ratio | EL2 instr./op (ours - QEMU's) |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
        for (k, label, _) in OPS {
            let label = if k == "null_exit" { null_label } else { label };
            let (o, r) = (sides.ours(k), sides.reference(k));
            let cell = |x: Option<Stat>| {
                x.map_or(("n/a".into(), "".into()), |x| {
                    (
                        format!("{:.1}", x.median),
                        format!("{:.1}..{:.1}", x.min, x.max),
                    )
                })
            };
            let ((om, os), (rm, rs)) = (cell(o), cell(r));
            let ratio = ratio(o, r).map_or("n/a".into(), |v| format!("{v:.1}x"));
            let _ = writeln!(
                s,
                "| {label} | {om} | {os} | {rm} | {rs} | {ratio} | {} |",
                num(sides.el2(k))
            );
        }
        let _ = writeln!(s);
    }

    /// The line on the goal for the 4 KiB pair.
    fn goal_line(&self) -> String {
        let k = "map_unmap_4k";
        match (
            self.pci.ours(k),
            self.mmio.ours(k),
            self.ours_pci_over_mmio(k),
        ) {
            (Some(p), Some(m), Some(r)) => format!(
                "- **4 KiB MAP+UNMAP under partita: virtio-pci {:.1} ns = {r:.3}x virtio-mmio {:.1} ns** (goal: within {PCI_GOAL}x: {})",
                p.median,
                m.median,
                if r <= PCI_GOAL { "met" } else { "**not met**" }
            ),
            _ => "- 4 KiB MAP+UNMAP under partita, virtio-pci over virtio-mmio: n/a".into(),
        }
    }

    /// report.md.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# virtio-iommu bench\n");
        let _ = writeln!(
            s,
            "Guest nanoseconds per operation under `-icount shift=0 -seed 1` (1 ns = 1 executed \
             instruction, EL2 included); median of {} run(s), spread = min..max. \
             ours = partita's in-hypervisor virtio-iommu; QEMU's = its own virtio-iommu without \
             a hypervisor (`virtio-iommu-device` on virtio-mmio, `virtio-iommu-pci` on \
             virtio-pci; its work costs no guest instruction). The same guest binary and \
             driver code on all four.\n",
            self.runs
        );
        for line in &self.setup {
            let _ = writeln!(s, "- {line}");
        }
        let _ = writeln!(s, "\n## virtio-mmio\n");
        Self::table(&mut s, &self.mmio, OPS[4].1);
        let _ = writeln!(s, "## virtio-pci\n");
        Self::table(&mut s, &self.pci, PCI_NULL_LABEL);
        let _ = writeln!(s, "## virtio-pci / virtio-mmio\n");
        let _ = writeln!(s, "| operation | ours | QEMU's |");
        let _ = writeln!(s, "|---|---:|---:|");
        for (k, label, _) in OPS {
            let x = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.3}x"));
            let label = if k == "null_exit" { "null exit" } else { label };
            let _ = writeln!(
                s,
                "| {label} | {} | {} |",
                x(self.ours_pci_over_mmio(k)),
                x(self.reference_pci_over_mmio(k))
            );
        }
        let _ = writeln!(s, "\n{}", self.goal_line());
        let _ = writeln!(
            s,
            "- ops: {}",
            OPS.iter()
                .map(|(k, _, what)| format!("`{k}` = {what}"))
                .collect::<Vec<_>>()
                .join("; ")
        );
        let _ = writeln!(
            s,
            "- null exit: {} EL2 instructions on virtio-mmio, {} on virtio-pci (trapped MagicValue / `device_feature_select` read minus the same loop reading RAM, {} ns/iteration)",
            num(self.mmio.null_el2()),
            num(self.pci.null_el2()),
            num(self.mmio.ours("loop_baseline").map(|x| x.median))
        );
        let _ = writeln!(s, "- release image: {} bytes", self.image_bytes);
        let _ = writeln!(s, "{}", self.ram_line());
        let _ = writeln!(
            s,
            "- EL2 instructions per op in the tables are the difference ours - QEMU's (the same guest code on both sides); the split below is counted inside the hypervisor\n"
        );
        match &self.el2_profile {
            Some(p) => {
                s.push_str(&p.markdown(self.mmio.null_el2()));
                if let Some(pci) = &self.pci_profile {
                    let _ = writeln!(s);
                    s.push_str(&p.beside(pci, [self.mmio.null_el2(), self.pci.null_el2()]));
                }
            }
            None => s.push_str("## Where the EL2 instructions go\n\nNo profile in this run.\n"),
        }
        s
    }

    /// One workload's results.json object.
    fn pair(sides: &Sides, k: &str) -> String {
        let spread =
            |x: Option<Stat>| x.map_or("null".into(), |x| format!("[{:.1}, {:.1}]", x.min, x.max));
        format!(
            "{{\"ours\": {}, \"reference\": {}, \"ours_spread\": {}, \"reference_spread\": {}, \"el2_instructions_estimate\": {}}}",
            num(sides.ours(k).map(|x| x.median)),
            num(sides.reference(k).map(|x| x.median)),
            spread(sides.ours(k)),
            spread(sides.reference(k)),
            num(sides.extra(k)),
        )
    }

    /// The null exit's results.json object.
    fn null_json(sides: &Sides) -> String {
        format!(
            "{{\"el2_instructions\": {}, \"guest_ns\": {}, \"reference_guest_ns\": {}}}",
            num(sides.null_el2().map(f64::round)),
            num(sides.ours("null_exit").map(|x| x.median)),
            num(sides.reference("null_exit").map(|x| x.median)),
        )
    }

    /// The `pci` object of results.json.
    fn pci_json(&self) -> String {
        let ratios = |f: &dyn Fn(&str) -> Option<f64>| {
            OPS.iter()
                .map(|(k, ..)| format!("\"{k}\": {}", ratio_json(f(k))))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let k4 = "map_unmap_4k";
        format!(
            "{{\n    \"map_unmap_4k\": {},\n    \"map_unmap_2m\": {},\n    \"map_batch_64\": {},\n    \"unmap_batch_64\": {},\n    \
             \"null_exit\": {},\n    \"ram_per_guest_bytes\": {},\n    \"el2_profile\": {},\n    \
             \"ours_pci_over_mmio\": {{{}}},\n    \"reference_pci_over_mmio\": {{{}}},\n    \
             \"map_unmap_4k_goal\": {{\"max_ratio\": {PCI_GOAL}, \"met\": {}}}\n  }}",
            Self::pair(&self.pci, k4),
            Self::pair(&self.pci, "map_unmap_2m"),
            Self::pair(&self.pci, "map_batch_64"),
            Self::pair(&self.pci, "unmap_batch_64"),
            Self::null_json(&self.pci),
            Self::ram_peak(&self.pci_ram).map_or("null".into(), |p| format!("{p:.0}")),
            self.pci_profile
                .as_ref()
                .map_or("null".into(), profile::Profile::json),
            ratios(&|k| self.ours_pci_over_mmio(k)),
            ratios(&|k| self.reference_pci_over_mmio(k)),
            self.ours_pci_over_mmio(k4)
                .map_or("null".into(), |r| (r <= PCI_GOAL).to_string()),
        )
    }

    /// results.json: the virtio-mmio figures under their old keys, the
    /// virtio-pci ones under `pci`.
    pub fn json(&self) -> String {
        let ram = Self::ram_peak(&self.ram);
        format!(
            "{{\n  \"unit\": \"guest ns per op, -icount shift=0 (1 ns = 1 instruction), median of {runs} runs\",\n  \
             \"map_unmap_4k\": {},\n  \"map_unmap_2m\": {},\n  \"map_batch_64\": {},\n  \"unmap_batch_64\": {},\n  \
             \"null_exit\": {},\n  \
             \"image_bytes\": {},\n  \"ram_per_guest_bytes\": {},\n  \"el2_profile\": {},\n  \"pci\": {},\n  \
             \"notes\": \"top-level workloads are the virtio-mmio transport, pci holds the same for virtio-pci (partita's virtio-pci function; QEMU's virtio-iommu-pci) with ours/reference ratios pci over mmio; map_batch_64/unmap_batch_64 are per batch of 64 requests; el2_instructions_estimate and null_exit.el2_instructions are differences (ours - reference, trapped - RAM loop); el2_profile is counted inside the hypervisor by a second image built with the profile feature, EL2 instructions per request and per notify; {}\"\n}}\n",
            Self::pair(&self.mmio, "map_unmap_4k"),
            Self::pair(&self.mmio, "map_unmap_2m"),
            Self::pair(&self.mmio, "map_batch_64"),
            Self::pair(&self.mmio, "unmap_batch_64"),
            Self::null_json(&self.mmio),
            self.image_bytes,
            ram.map_or("null".into(), |p| format!("{p:.0}")),
            self.el2_profile
                .as_ref()
                .map_or("null".into(), profile::Profile::json),
            self.pci_json(),
            if ram.is_some() {
                "ram_per_guest_bytes is the hypervisor's peak allocation for the guest (median over runs of its console report)"
            } else {
                "ram_per_guest_bytes not measured: the hypervisor printed no RAM line for the guest"
            },
            runs = self.runs,
        )
    }

    /// A horizontal bar chart, log scale (the ratios are large): per
    /// workload, ours and QEMU's on each transport, then the `extra` bars
    /// (the peer's, with `--peer`).
    pub fn svg(&self, extra: &[Bar]) -> String {
        let own: [(&Samples, &str, &str); 4] = [
            (&self.mmio.ours, "#c0392b", "partita, virtio-mmio"),
            (&self.pci.ours, "#e67e22", "partita, virtio-pci"),
            (&self.mmio.reference, "#2980b9", "QEMU virtio-iommu-device"),
            (&self.pci.reference, "#16a085", "QEMU virtio-iommu-pci"),
        ];
        // partita's bars first, then the extra ones, then the bare
        // reference's (the shortest) last.
        let bars: Vec<(&Samples, &str, &str)> = own[..2]
            .iter()
            .copied()
            .chain(extra.iter().map(|b| (&b.samples, b.color, b.name)))
            .chain(own[2..].iter().copied())
            .collect();
        let get = |samples: &Samples, k: &str| samples.get(k).and_then(|s| stat(s));
        // The legend: four entries per line.
        let legend_lines = bars.len().div_ceil(4) as f64;
        let row = 12.0 + 18.0 * bars.len() as f64;
        let (w, left, top) = (900.0, 230.0, 34.0 + 16.0 * legend_lines);
        let h = top + row * OPS.len() as f64 + 40.0;
        let max = OPS
            .iter()
            .flat_map(|(k, ..)| bars.iter().map(move |b| get(b.0, k)))
            .flatten()
            .map(|x| x.median)
            .fold(10.0, f64::max);
        let decades = max.log10().ceil().max(1.0);
        // Room on the right for the longest bar's label.
        let x = |v: f64| left + (w - left - 70.0) * (v.max(1.0).log10() / decades);
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
             <text x=\"10\" y=\"20\" font-size=\"15\">virtio-iommu: guest ns per op (log scale, -icount shift=0)</text>\n"
        );
        for (i, (_, color, name)) in bars.iter().enumerate() {
            let lx = 10.0 + 220.0 * (i % 4) as f64;
            let ly = 28.0 + 16.0 * (i / 4) as f64;
            let _ = writeln!(
                s,
                "<rect x=\"{lx}\" y=\"{ly}\" width=\"12\" height=\"10\" fill=\"{color}\"/><text x=\"{}\" y=\"{}\">{name}</text>",
                lx + 16.0,
                ly + 9.0
            );
        }
        for d in 0..=decades as u32 {
            let v = 10f64.powi(d as i32);
            let xx = x(v);
            let _ = writeln!(
                s,
                "<line x1=\"{xx:.1}\" y1=\"{top}\" x2=\"{xx:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/><text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{v}</text>",
                h - 30.0,
                h - 15.0
            );
        }
        for (i, (k, label, _)) in OPS.iter().enumerate() {
            let y = top + row * i as f64 + 6.0;
            // One label for both transports' registers.
            let label = if *k == "null_exit" {
                "null exit (trapped read)"
            } else {
                label
            };
            let _ = writeln!(
                s,
                "<text x=\"10\" y=\"{:.1}\">{label}</text>",
                y + row / 2.0 - 4.0
            );
            for (j, (samples, color, _)) in bars.iter().enumerate() {
                let yy = y + j as f64 * 18.0;
                if let Some(st) = get(samples, k) {
                    let _ = writeln!(
                        s,
                        "<rect x=\"{left}\" y=\"{yy:.1}\" width=\"{:.1}\" height=\"15\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"{:.1}\">{:.1}</text>",
                        (x(st.median) - left).max(1.0),
                        x(st.median) + 4.0,
                        yy + 12.0,
                        st.median
                    );
                }
            }
        }
        s.push_str("</svg>\n");
        s
    }
}

/// A further bar per workload in the plot: another side's samples.
#[derive(Debug)]
pub struct Bar {
    /// Its samples.
    pub samples: Samples,
    /// Its fill colour.
    pub color: &'static str,
    /// Its legend.
    pub name: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(ram: Vec<RamUse>, runs: usize) -> Report {
        Report {
            mmio: Sides::default(),
            pci: Sides::default(),
            image_bytes: 1,
            runs,
            ram,
            pci_ram: Vec::new(),
            guest: "bench".into(),
            setup: vec!["guest: 1 CPU(s)".into()],
            el2_profile: None,
            pci_profile: None,
        }
    }

    fn samples(pairs: &[(&str, f64)]) -> Samples {
        pairs
            .iter()
            .map(|&(k, v)| (k.to_owned(), vec![v]))
            .collect()
    }

    #[test]
    fn ram_in_report_and_json() {
        let none = report(Vec::new(), 2);
        assert!(
            none.markdown()
                .contains("hypervisor RAM per guest: **not measured**")
        );
        assert!(none.markdown().contains("- guest: 1 CPU(s)\n"));
        assert!(none.json().contains("\"ram_per_guest_bytes\": null,"));
        let r = |peak| RamUse { peak, live: 0 };
        let some = report(vec![r(100), r(300), r(200)], 3);
        assert!(some.markdown().contains("peak **200 bytes**"));
        assert!(!some.markdown().contains("missing"));
        assert!(some.json().contains("\"ram_per_guest_bytes\": 200,"));
        let partial = report(vec![r(100)], 2);
        assert!(partial.markdown().contains("missing in 1 of the 2 run(s)"));
        let mut pci = report(vec![r(100)], 1);
        pci.pci_ram = vec![r(150)];
        assert!(pci.markdown().contains("(virtio-pci guest: peak 150 bytes"));
        assert!(pci.json().contains("\"ram_per_guest_bytes\": 150,"));
    }

    /// Both transports' tables, the ratios and the goal, in report.md,
    /// results.json and the plot.
    #[test]
    fn pci_rows_beside_mmio() {
        let mut r = report(Vec::new(), 1);
        r.mmio = Sides {
            ours: samples(&[
                ("map_unmap_4k", 5000.0),
                ("null_exit", 286.0),
                ("loop_baseline", 3.0),
            ]),
            reference: samples(&[("map_unmap_4k", 68.0), ("null_exit", 3.0)]),
        };
        r.pci = Sides {
            ours: samples(&[
                ("map_unmap_4k", 5400.0),
                ("null_exit", 308.0),
                ("loop_baseline", 3.0),
            ]),
            reference: samples(&[("map_unmap_4k", 68.0), ("null_exit", 3.0)]),
        };
        let md = r.markdown();
        assert!(md.contains("## virtio-mmio\n"), "{md}");
        assert!(md.contains("## virtio-pci\n"), "{md}");
        assert!(
            md.contains(
                "| 4 KiB MAP+UNMAP | 5400.0 | 5400.0..5400.0 | 68.0 | 68.0..68.0 | 79.4x | 5332.0 |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| null exit (common-config read) | 308.0 |"),
            "{md}"
        );
        assert!(
            md.contains("| null exit (MagicValue read) | 286.0 |"),
            "{md}"
        );
        assert!(md.contains("| 4 KiB MAP+UNMAP | 1.080x | 1.000x |"), "{md}");
        assert!(md.contains("| 2 MiB MAP+UNMAP | n/a | n/a |"), "{md}");
        assert!(
            md.contains(
                "virtio-pci 5400.0 ns = 1.080x virtio-mmio 5000.0 ns** (goal: within 1.1x: met)"
            ),
            "{md}"
        );
        assert!(md.contains("283.0 EL2 instructions on virtio-mmio, 305.0 on virtio-pci"));
        let json = r.json();
        assert!(
            json.contains("\"map_unmap_4k\": {\"ours\": 5000.0,"),
            "{json}"
        );
        assert!(
            json.contains("\"pci\": {\n    \"map_unmap_4k\": {\"ours\": 5400.0,"),
            "{json}"
        );
        assert!(
            json.contains("\"ours_pci_over_mmio\": {\"map_unmap_4k\": 1.080,"),
            "{json}"
        );
        assert!(
            json.contains("\"map_unmap_4k_goal\": {\"max_ratio\": 1.1, \"met\": true}"),
            "{json}"
        );
        assert!(json.contains("\"el2_instructions\": 305.0"), "{json}");
        let svg = r.svg(&[]);
        assert!(
            svg.contains("partita, virtio-pci") && svg.contains(">5400.0<"),
            "{svg}"
        );
        // Over the goal.
        r.pci.ours.insert("map_unmap_4k".into(), vec![5600.0]);
        assert!(r.markdown().contains("within 1.1x: **not met**"));
        assert!(r.json().contains("\"met\": false"));
    }

    /// The peer's bars (`--peer`) between partita's and the bare
    /// reference's, the legend on two lines.
    #[test]
    fn plot_with_extra_bars() {
        let mut r = report(Vec::new(), 1);
        r.mmio.ours = samples(&[("map_unmap_4k", 4924.0)]);
        r.mmio.reference = samples(&[("map_unmap_4k", 67.0)]);
        let plain = r.svg(&[]);
        assert!(!plain.contains("#27ae60"));
        let extra = [Bar {
            samples: samples(&[("map_unmap_4k", 37207.6)]),
            color: "#27ae60",
            name: "Linux/KVM + VFIO, mmio",
        }];
        let svg = r.svg(&extra);
        assert!(svg.contains(">37207.6</text>"), "{svg}");
        assert!(svg.contains(">Linux/KVM + VFIO, mmio</text>"), "{svg}");
        let pos = |n: &str| svg.find(n).unwrap_or_else(|| panic!("{n} not in {svg}"));
        assert!(pos(">4924.0<") < pos(">37207.6<") && pos(">37207.6<") < pos(">67.0<"));
        // Five legend entries: the fifth on a second line.
        assert!(svg.contains("y=\"44\" width=\"12\""), "{svg}");
        assert!(!plain.contains("y=\"44\" width=\"12\""), "{plain}");
    }

    #[test]
    fn median_and_spread() {
        assert_eq!(stat(&[]), None);
        assert_eq!(
            stat(&[3.0, 1.0, 2.0]),
            Some(Stat {
                median: 2.0,
                min: 1.0,
                max: 3.0
            })
        );
        assert_eq!(stat(&[4.0, 1.0, 2.0, 3.0]).map(|s| s.median), Some(2.5));
    }
}
