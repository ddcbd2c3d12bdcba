//! `cargo xtask bench`: the virtio-iommu MAP/UNMAP path measured under
//! partita and against QEMU's own virtio-iommu (virtio-mmio), with the same
//! bare-metal guest (`tools/bench-guest`), both under `-icount shift=0 -seed 1`
//! so that guest nanoseconds are executed instructions (EL2 ones included).
//!
//! Writes `target/bench/report.md`, `target/bench/results.json` and
//! `target/bench/plot.svg`. See docs/performance.md.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::XtaskError;
use crate::image;
use crate::payload;
use crate::prereq::TARGET;
use crate::process;
use crate::qemu;
use crate::tasks;
use crate::workspace::Workspace;

/// The guest configuration of run (a).
pub const CONFIG: &str = "tools/bench-guest/bench-viommu.toml";
/// Wall-clock limit of one QEMU run; it is killed after that.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// The workloads of the table, in order: (key, label, what one op is).
const OPS: [(&str, &str, &str); 5] = [
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

/// One side's samples: workload -> ns per op, one per run.
type Samples = BTreeMap<String, Vec<f64>>;

/// `cargo xtask bench [--runs N]`.
pub fn bench(ws: &Workspace, runs: usize) -> Result<(), XtaskError> {
    let emulator = tasks::ensure_all(ws)?;
    let image = tasks::build_image(ws)?;
    let image_bytes = fs::metadata(&image)
        .map_err(|e| XtaskError::io("stat", &image, e))?
        .len();
    let out = ws.target_dir.join("bench");
    fs::create_dir_all(&out).map_err(|e| XtaskError::io("create", &out, e))?;
    let guest = build_guest(ws, &out)?;
    let bundle = payload::build(ws, &ws.root.join(CONFIG), &emulator.qemu)?;

    let ours_cmd = |_: usize| {
        let mut c = Command::new(&emulator.qemu);
        c.args([
            "-M",
            qemu::MACHINE,
            "-cpu",
            qemu::CPU,
            "-smp",
            "4",
            "-m",
            "1G",
        ])
        .args(["-display", "none", "-serial", "stdio", "-monitor", "none"])
        .arg("-kernel")
        .arg(&image)
        .arg("-initrd")
        .arg(&bundle)
        .args(["-icount", "shift=0", "-seed", "1"]);
        c
    };
    let reference_cmd = |_: usize| {
        let mut c = Command::new(&emulator.qemu);
        c.args([
            "-M",
            "virt,gic-version=3",
            "-cpu",
            qemu::CPU,
            "-smp",
            "4",
            "-m",
            "1G",
        ])
        .args(["-display", "none", "-serial", "stdio", "-monitor", "none"])
        .arg("-kernel")
        .arg(&guest)
        .args(["-device", "virtio-iommu-device,primary-bus=pcie.0"])
        .args(["-global", "virtio-mmio.force-legacy=false"])
        // Notifies handled in the vCPU's MMIO write (as partita does in
        // its trap), not by the main loop: with ioeventfd the guest
        // spins for a host-timing-dependent number of instructions.
        .args(["-global", "virtio-mmio.ioeventfd=false"])
        .args(["-icount", "shift=0", "-seed", "1"]);
        c
    };

    let (mut ours, mut reference) = (Samples::new(), Samples::new());
    for run in 0..runs {
        eprintln!("==> run {}/{runs}: partita", run + 1);
        collect(
            &mut ours,
            &run_one(&mut ours_cmd(run), &out.join(format!("ours-{run}.log")))?,
        )?;
        eprintln!(
            "==> run {}/{runs}: QEMU virtio-iommu-device (no hypervisor)",
            run + 1
        );
        collect(
            &mut reference,
            &run_one(
                &mut reference_cmd(run),
                &out.join(format!("reference-{run}.log")),
            )?,
        )?;
    }

    let report = Report {
        ours,
        reference,
        image_bytes,
        runs,
    };
    let md = report.markdown();
    println!("{md}");
    write(&out.join("report.md"), &md)?;
    write(&out.join("results.json"), &report.json())?;
    write(&out.join("plot.svg"), &report.svg())?;
    println!(
        "written: {}, {}, {}",
        out.join("report.md").display(),
        out.join("results.json").display(),
        out.join("plot.svg").display()
    );
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), XtaskError> {
    fs::write(path, text).map_err(|e| XtaskError::io("write", path, e))
}

/// Builds the bench guest (its own workspace, static relocation model: the
/// top `.cargo/config.toml` asks for PIE for the hypervisor's target) and
/// converts it to `out/bench-guest.bin`, the kernel of [`CONFIG`].
fn build_guest(ws: &Workspace, out: &Path) -> Result<PathBuf, XtaskError> {
    let target_dir = ws.target_dir.join("bench-guest");
    let mut cmd = ws.cargo();
    cmd.env("RUSTFLAGS", "-C relocation-model=static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .arg("build")
        .arg("--release")
        .arg("--manifest-path")
        .arg(ws.root.join("tools/bench-guest/Cargo.toml"))
        .args(["--target", TARGET])
        .arg("--target-dir")
        .arg(&target_dir);
    process::run(&mut cmd)?;
    let elf = target_dir.join(TARGET).join("release").join("bench-guest");
    let bin = out.join("bench-guest.bin");
    let raw = image::convert(&elf, &bin).map_err(|source| XtaskError::Image {
        elf: elf.clone(),
        source,
    })?;
    if raw.base != 0x4000_0000 {
        return Err(XtaskError::Bench(format!(
            "bench guest linked at {:#x}, expected 0x40000000",
            raw.base
        )));
    }
    println!("bench guest: {} ({} bytes)", bin.display(), raw.bytes.len());
    Ok(bin)
}

/// Runs QEMU with a wall-clock limit; returns its console output (also
/// written to `log`). Fails on a timeout, a non-zero exit or no `bench done`.
fn run_one(cmd: &mut Command, log: &Path) -> Result<String, XtaskError> {
    eprintln!("$ {}", process::display(cmd));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| XtaskError::Bench(format!("cannot start QEMU: {e}")))?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let ereader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() > RUN_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(XtaskError::Bench(format!("waiting for QEMU: {e}"))),
        }
    };
    let text = reader.join().unwrap_or_default();
    let etext = ereader.join().unwrap_or_default();
    write(log, &format!("{text}{etext}"))?;
    let fail = |why: String| XtaskError::Bench(format!("{why} (console: {})", log.display()));
    match status {
        None => {
            return Err(fail(format!(
                "QEMU killed after {} s",
                RUN_TIMEOUT.as_secs()
            )));
        }
        Some(s) if !s.success() => return Err(fail(format!("QEMU exited with {s}"))),
        Some(_) => {}
    }
    if let Some(line) = text.lines().find(|l| l.starts_with("bench error")) {
        return Err(fail(format!("guest reported `{line}`")));
    }
    if !text.lines().any(|l| l.trim_end() == "bench done") {
        return Err(fail("guest did not finish".into()));
    }
    Ok(text)
}

/// Adds the `bench NAME ns_per_op=X ... errors=E` lines of one run.
fn collect(samples: &mut Samples, console: &str) -> Result<(), XtaskError> {
    for (name, ns, errors) in parse(console) {
        if errors != 0 {
            return Err(XtaskError::Bench(format!(
                "{name}: {errors} request(s) did not complete with OK"
            )));
        }
        samples.entry(name).or_default().push(ns);
    }
    Ok(())
}

/// The `bench` result lines: (name, ns per op, errors).
pub fn parse(console: &str) -> Vec<(String, f64, u64)> {
    let mut out = Vec::new();
    for line in console.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("bench") {
            continue;
        }
        let Some(name) = words.next() else { continue };
        let (mut ns, mut errors) = (None, 0);
        for w in words {
            if let Some(v) = w.strip_prefix("ns_per_op=") {
                ns = v.parse::<f64>().ok();
            } else if let Some(v) = w.strip_prefix("errors=") {
                errors = v.parse().unwrap_or(u64::MAX);
            }
        }
        if let Some(ns) = ns {
            out.push((name.to_owned(), ns, errors));
        }
    }
    out
}

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

struct Report {
    ours: Samples,
    reference: Samples,
    image_bytes: u64,
    runs: usize,
}

fn num(v: Option<f64>) -> String {
    v.map_or("null".into(), |v| format!("{v:.1}"))
}

impl Report {
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

    fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# virtio-iommu bench\n");
        let _ = writeln!(
            s,
            "Guest nanoseconds per operation under `-icount shift=0 -seed 1` (1 ns = 1 executed \
             instruction, EL2 included); median of {} run(s), spread = min..max. \
             ours = partita's in-hypervisor virtio-iommu; QEMU's = `virtio-iommu-device` \
             on virtio-mmio without a hypervisor (its work costs no guest instruction).\n",
            self.runs
        );
        let _ = writeln!(
            s,
            "| operation | ours (ns) | spread | QEMU's (ns) | spread | ratio | EL2 instr./op (ours - QEMU's) |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
        for (k, label, _) in OPS {
            let (o, r) = (self.ours(k), self.reference(k));
            let cell = |x: Option<Stat>| {
                x.map_or(("n/a".into(), "".into()), |x| {
                    (
                        format!("{:.1}", x.median),
                        format!("{:.1}..{:.1}", x.min, x.max),
                    )
                })
            };
            let ((om, os), (rm, rs)) = (cell(o), cell(r));
            let ratio = match (o, r) {
                (Some(o), Some(r)) if r.median > 0.0 => format!("{:.1}x", o.median / r.median),
                _ => "n/a".into(),
            };
            let extra = if k == "null_exit" {
                self.null_el2()
            } else {
                self.extra(k)
            };
            let _ = writeln!(
                s,
                "| {label} | {om} | {os} | {rm} | {rs} | {ratio} | {} |",
                num(extra)
            );
        }
        let _ = writeln!(s);
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
            "- null exit: {} EL2 instructions (trapped MagicValue read minus the same loop reading RAM, {} ns/iteration)",
            num(self.null_el2()),
            num(self.ours("loop_baseline").map(|x| x.median))
        );
        let _ = writeln!(s, "- release image: {} bytes", self.image_bytes);
        let _ = writeln!(
            s,
            "- hypervisor RAM per guest: not measured yet (null in results.json)"
        );
        let _ = writeln!(
            s,
            "- EL2 instructions per request are the difference ours - QEMU's (whole-request, not yet split into trap/decode/walk/SMMU sync: no counters inside the hypervisor yet)"
        );
        s
    }

    fn json(&self) -> String {
        let pair = |k: &str| {
            let spread = |x: Option<Stat>| {
                x.map_or("null".into(), |x| format!("[{:.1}, {:.1}]", x.min, x.max))
            };
            format!(
                "{{\"ours\": {}, \"reference\": {}, \"ours_spread\": {}, \"reference_spread\": {}, \"el2_instructions_estimate\": {}}}",
                num(self.ours(k).map(|x| x.median)),
                num(self.reference(k).map(|x| x.median)),
                spread(self.ours(k)),
                spread(self.reference(k)),
                num(self.extra(k)),
            )
        };
        format!(
            "{{\n  \"unit\": \"guest ns per op, -icount shift=0 (1 ns = 1 instruction), median of {runs} runs\",\n  \
             \"map_unmap_4k\": {},\n  \"map_unmap_2m\": {},\n  \"map_batch_64\": {},\n  \"unmap_batch_64\": {},\n  \
             \"null_exit\": {{\"el2_instructions\": {}, \"guest_ns\": {}, \"reference_guest_ns\": {}}},\n  \
             \"image_bytes\": {},\n  \"ram_per_guest_bytes\": null,\n  \
             \"notes\": \"map_batch_64/unmap_batch_64 are per batch of 64 requests; el2_instructions are derived (ours - baseline), not counted inside the hypervisor; ram_per_guest_bytes not measured yet\"\n}}\n",
            pair("map_unmap_4k"),
            pair("map_unmap_2m"),
            pair("map_batch_64"),
            pair("unmap_batch_64"),
            num(self.null_el2().map(f64::round)),
            num(self.ours("null_exit").map(|x| x.median)),
            num(self.reference("null_exit").map(|x| x.median)),
            self.image_bytes,
            runs = self.runs,
        )
    }

    /// A horizontal bar chart, log scale (the ratios are large).
    fn svg(&self) -> String {
        let (w, row, left, top) = (900.0, 56.0, 230.0, 50.0);
        let h = top + row * OPS.len() as f64 + 40.0;
        let max = OPS
            .iter()
            .flat_map(|(k, ..)| [self.ours(k), self.reference(k)])
            .flatten()
            .map(|x| x.median)
            .fold(10.0, f64::max);
        let decades = max.log10().ceil().max(1.0);
        let x = |v: f64| left + (w - left - 30.0) * (v.max(1.0).log10() / decades);
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
             <text x=\"10\" y=\"20\" font-size=\"15\">virtio-iommu: guest ns per op (log scale, -icount shift=0)</text>\n\
             <rect x=\"{left}\" y=\"28\" width=\"12\" height=\"10\" fill=\"#c0392b\"/><text x=\"{}\" y=\"37\">partita (ours)</text>\n\
             <rect x=\"{}\" y=\"28\" width=\"12\" height=\"10\" fill=\"#2980b9\"/><text x=\"{}\" y=\"37\">QEMU virtio-iommu-device (reference)</text>\n",
            left + 16.0,
            left + 130.0,
            left + 146.0
        );
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
            let y = top + row * i as f64 + 8.0;
            let _ = writeln!(s, "<text x=\"10\" y=\"{:.1}\">{label}</text>", y + 20.0);
            for (j, (st, color)) in [(self.ours(k), "#c0392b"), (self.reference(k), "#2980b9")]
                .into_iter()
                .enumerate()
            {
                let yy = y + j as f64 * 18.0;
                if let Some(st) = st {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bench_lines() {
        let text = "noise\nbench start cntfrq=1\nbench map_unmap_4k ns_per_op=67.0 reps=1000 ticks=1 errors=0\n\
                    bench null_exit ns_per_op=312.5 reps=5 ticks=1 errors=2\nbench done\n";
        assert_eq!(
            parse(text),
            vec![
                ("map_unmap_4k".into(), 67.0, 0),
                ("null_exit".into(), 312.5, 2)
            ]
        );
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
