//! `cargo xtask bench`: the virtio-iommu MAP/UNMAP path measured under
//! partita and against QEMU's own virtio-iommu (virtio-mmio), with the same
//! bare-metal guest (`tools/bench-guest`), both under `-icount shift=0 -seed 1`
//! so that guest nanoseconds are executed instructions (EL2 ones included).
//!
//! The reference run gets the device tree the issue asks for (QEMU's own,
//! with `#iommu-cells` on the virtio-iommu's virtio-mmio node and an
//! `iommu-map` on the PCIe host: see [`refdt`]) and the CPU count and
//! memory the guest has under partita. The guest finds its device through
//! the DT the same way on both sides.
//!
//! Writes `target/bench/report.md`, `target/bench/results.json` and
//! `target/bench/plot.svg`. See docs/performance.md.

pub mod peer;
mod profile;
mod refdt;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::cli::BenchSides;
use crate::error::XtaskError;
use crate::payload;
use crate::process;
use crate::qemu;
use crate::tasks;
use crate::workspace::Workspace;

/// The guest configuration of run (a).
pub const CONFIG: &str = "tools/bench-guest/bench-viommu.toml";
/// Wall-clock limit of one QEMU run; it is killed after that.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// The reference machine: QEMU `virt` without EL2 and without an SMMU.
const REFERENCE_MACHINE: &str = "virt,gic-version=3";
/// Where QEMU `virt`'s RAM starts: the reference guest's RAM is
/// `[VIRT_RAM_BASE, VIRT_RAM_BASE + -m)`, so [`CONFIG`] must put the
/// guest's RAM there too for the two to see the same memory.
const VIRT_RAM_BASE: u64 = 0x4000_0000;
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
pub(crate) type Samples = BTreeMap<String, Vec<f64>>;

/// `cargo xtask bench [--runs N] [--peer | --peer-only]`.
pub fn bench(ws: &Workspace, runs: usize, sides: BenchSides) -> Result<(), XtaskError> {
    if sides == BenchSides::PeerOnly {
        return peer::bench_only(ws, runs);
    }
    let emulator = tasks::ensure_all(ws)?;
    let image = tasks::build_image(ws)?;
    let image_bytes = fs::metadata(&image)
        .map_err(|e| XtaskError::io("stat", &image, e))?
        .len();
    let out = ws.target_dir.join("bench");
    fs::create_dir_all(&out).map_err(|e| XtaskError::io("create", &out, e))?;
    let guest = build_guest(ws, &out)?;
    let bundle = payload::build(ws, &ws.root.join(CONFIG), &emulator.qemu)?;
    let guest_cfg = guest_config(ws)?;
    let smp = guest_cfg.cpus.len().to_string();
    let mem = format!("{}M", guest_cfg.memory_size >> 20);

    let ours_cmd = |image: &Path| {
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
        .arg(image)
        .arg("-initrd")
        .arg(&bundle)
        .args(["-icount", "shift=0", "-seed", "1"]);
        c
    };
    // The reference: the guest's CPU count and memory under partita, QEMU's
    // virtio-iommu on virtio-mmio. `dumpdtb` writes QEMU's DT and exits;
    // `dtb` boots with the edited one.
    let reference_cmd = |dumpdtb: Option<&Path>, dtb: Option<&Path>| {
        let machine = match dumpdtb {
            Some(p) => format!("{REFERENCE_MACHINE},dumpdtb={}", p.display()),
            None => REFERENCE_MACHINE.to_owned(),
        };
        let mut c = Command::new(&emulator.qemu);
        c.args(["-M", &machine, "-cpu", qemu::CPU, "-smp", &smp, "-m", &mem])
            .args(["-display", "none", "-serial", "stdio", "-monitor", "none"])
            .arg("-kernel")
            .arg(&guest);
        if let Some(dtb) = dtb {
            c.arg("-dtb").arg(dtb);
        }
        c.args(["-device", "virtio-iommu-device,primary-bus=pcie.0"])
            .args(["-global", "virtio-mmio.force-legacy=false"])
            // Notifies handled in the vCPU's MMIO write (as partita does in
            // its trap), not by the main loop: with ioeventfd the guest
            // spins for a host-timing-dependent number of instructions.
            .args(["-global", "virtio-mmio.ioeventfd=false"])
            .args(["-icount", "shift=0", "-seed", "1"]);
        c
    };

    let (ref_dtb, edit) = reference_dt(
        &out,
        &mut reference_cmd(Some(&out.join("reference-qemu.dtb")), None),
    )?;
    let (mut ours, mut reference) = (Samples::new(), Samples::new());
    let (mut ram, mut discovery) = (Vec::new(), BTreeMap::new());
    for run in 0..runs {
        eprintln!("==> run {}/{runs}: partita", run + 1);
        let text = run_one(&mut ours_cmd(&image), &out.join(format!("ours-{run}.log")))?;
        // The guest measured partita's device, found through its DT.
        if device_base(&text) != Some(guest_cfg.viommu_base) {
            return Err(XtaskError::Bench(format!(
                "the guest under partita did not use the virtio-iommu at {:#x} (console: {})",
                guest_cfg.viommu_base,
                out.join(format!("ours-{run}.log")).display()
            )));
        }
        collect(&mut ours, &text)?;
        if let Some(r) = parse_ram(&text, &guest_cfg.name) {
            ram.push(r);
        }
        discovery.insert("ours", dt_line(&text));
        eprintln!(
            "==> run {}/{runs}: QEMU virtio-iommu-device (no hypervisor)",
            run + 1
        );
        let log = out.join(format!("reference-{run}.log"));
        let text = run_one(&mut reference_cmd(None, Some(&ref_dtb)), &log)?;
        // QEMU's slot assignment, as refdt assumes it, seen from the guest.
        if device_base(&text) != Some(edit.viommu_base) {
            return Err(XtaskError::Bench(format!(
                "the reference guest did not use the virtio-iommu at {:#x} ({} in the edited DT) (console: {})",
                edit.viommu_base,
                edit.viommu_path,
                log.display()
            )));
        }
        collect(&mut reference, &text)?;
        discovery.insert("reference", dt_line(&text));
    }

    // Where the instructions go: one run of the image with counter reads
    // around each phase (kept out of the figures above).
    let profiled = tasks::build_profiled_image(ws)?;
    eprintln!("==> profile run: partita built with --features profile");
    let log = out.join("ours-profile.log");
    let text = run_one(&mut ours_cmd(&profiled), &log)?;
    let el2_profile = profile::parse(&text);
    if el2_profile.is_none() {
        return Err(XtaskError::Bench(format!(
            "the profiled image printed no `virtio-iommu profile:` lines (console: {})",
            log.display()
        )));
    }

    // The peer: Linux/KVM with QEMU's virtio-iommu, in the same emulator.
    let peer = match sides {
        BenchSides::WithPeer => Some(peer::run(
            &emulator.qemu,
            &ws.target_dir.join("guest-cache"),
            &guest,
            &out,
            runs,
        )?),
        _ => None,
    };

    let ours_line = process::display(&ours_cmd(&image));
    let reference_line = process::display(&reference_cmd(None, Some(&ref_dtb)));
    let [a, b, c, d] = edit.iommu_map;
    let mut setup = vec![
        format!(
            "guest: {} CPU(s), {} MiB of RAM at {VIRT_RAM_BASE:#x} on both sides (ours: QEMU `-smp 4 -m 1G`, partita gives guest '{}' cpus {:?} and {} MiB per `{CONFIG}`; reference: QEMU `-smp {smp} -m {mem}`, the guest alone on the machine)",
            guest_cfg.cpus.len(),
            guest_cfg.memory_size >> 20,
            guest_cfg.name,
            guest_cfg.cpus,
            guest_cfg.memory_size >> 20,
        ),
        format!(
            "reference DT: QEMU's own (`dumpdtb` of the reference command line), plus `#iommu-cells = <1>` and `phandle = <{:#x}>` on `{}` (the slot QEMU gives `virtio-iommu-device`) and `iommu-map = <{a:#x} &viommu {c:#x} {d:#x}>` on `{}` (phandle {b:#x}); `reference.dts` / `reference.dtb`",
            edit.phandle, edit.viommu_path, edit.pci_path,
        ),
    ];
    for (side, line) in &discovery {
        setup.push(format!(
            "discovery ({side}): {}",
            line.as_deref().unwrap_or("no `bench dt` line")
        ));
    }
    setup.push(format!("ours: `{ours_line}`"));
    setup.push(format!("reference: `{reference_line}`"));

    let report = Report {
        ours,
        reference,
        image_bytes,
        runs,
        ram,
        guest: guest_cfg.name.clone(),
        setup,
        el2_profile,
    };
    let mut md = report.markdown();
    let mut json = report.json();
    let mut svg = report.svg(None);
    if let Some(p) = &peer {
        let others = peer::report::Others {
            ours: &report.ours,
            reference: &report.reference,
        };
        md.push('\n');
        md.push_str(&peer::report::markdown(p, Some(others)));
        json = peer::report::add_to_json(&json, &peer::report::json(p, Some(&report.ours)));
        svg = report.svg(Some(&p.console.samples("vfio")));
    }
    println!("{md}");
    write(&out.join("report.md"), &md)?;
    write(&out.join("results.json"), &json)?;
    write(&out.join("plot.svg"), &svg)?;
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

/// Builds the bare-metal guests ([`payload::build_bare_guests`]) and
/// checks that the bench guest, the kernel of [`CONFIG`], sits at
/// `out/bench-guest.bin`, linked at QEMU virt's RAM base.
fn build_guest(ws: &Workspace, out: &Path) -> Result<PathBuf, XtaskError> {
    let guests = payload::build_bare_guests(ws, out)?;
    let Some((bin, base)) = guests.iter().find(|(b, _)| b.ends_with("bench-guest.bin")) else {
        return Err(XtaskError::Bench("no bench-guest binary was built".into()));
    };
    if *base != VIRT_RAM_BASE {
        return Err(XtaskError::Bench(format!(
            "bench guest linked at {base:#x}, expected {VIRT_RAM_BASE:#x}"
        )));
    }
    Ok(bin.clone())
}

/// What the bench needs of the guest of [`CONFIG`].
struct GuestSetup {
    name: String,
    cpus: Vec<u32>,
    memory_size: u64,
    /// Where partita puts the guest's virtio-iommu.
    viommu_base: u64,
}

/// Reads [`CONFIG`]: one guest, its RAM where QEMU virt's starts (so that
/// the reference's `-m` gives the guest the same memory map).
fn guest_config(ws: &Workspace) -> Result<GuestSetup, XtaskError> {
    let file = guestcfg::load(&ws.root.join(CONFIG)).map_err(XtaskError::config)?;
    let [g] = &file.guests[..] else {
        return Err(XtaskError::Bench(format!(
            "{CONFIG}: expected exactly one guest"
        )));
    };
    let c = &g.config;
    if c.memory_base != VIRT_RAM_BASE || c.memory_size % (1 << 20) != 0 {
        return Err(XtaskError::Bench(format!(
            "{CONFIG}: the guest's RAM must start at {VIRT_RAM_BASE:#x} (QEMU virt's RAM base) and be whole MiB for the reference run to match it"
        )));
    }
    let Some(viommu) = &c.viommu else {
        return Err(XtaskError::Bench(format!(
            "{CONFIG}: the guest has no [guest.viommu]: there is nothing to measure"
        )));
    };
    Ok(GuestSetup {
        name: c.name.clone(),
        cpus: c.cpus.clone(),
        memory_size: c.memory_size,
        viommu_base: viommu.base,
    })
}

/// The reference DT: runs `dump` (the reference command line with
/// `dumpdtb=out/reference-qemu.dtb`), decompiles QEMU's DTB with `dtc`,
/// edits it ([`refdt::edit`]) into `out/reference.dts` and compiles that to
/// `out/reference.dtb`, which it returns with what the edit did.
fn reference_dt(out: &Path, dump: &mut Command) -> Result<(PathBuf, refdt::Edit), XtaskError> {
    let qemu_dtb = out.join("reference-qemu.dtb");
    let qemu_dts = out.join("reference-qemu.dts");
    let (dts_path, dtb_path) = (out.join("reference.dts"), out.join("reference.dtb"));
    for stale in [&qemu_dtb, &qemu_dts, &dts_path, &dtb_path] {
        let _ = fs::remove_file(stale);
    }
    eprintln!("==> reference DT: QEMU's, with the virtio-iommu and the PCIe iommu-map added");
    run_qemu(dump, &out.join("reference-dumpdtb.log"))?;
    if !qemu_dtb.is_file() {
        return Err(XtaskError::Bench(format!(
            "QEMU exited without writing {}",
            qemu_dtb.display()
        )));
    }
    let mut dtc = Command::new("dtc");
    dtc.args(["-q", "-I", "dtb", "-O", "dts", "-o"])
        .arg(&qemu_dts)
        .arg(&qemu_dtb);
    process::run(&mut dtc)?;
    let text = fs::read_to_string(&qemu_dts).map_err(|e| XtaskError::io("read", &qemu_dts, e))?;
    let (edited, edit) = refdt::edit(&text)
        .map_err(|e| XtaskError::Bench(format!("editing {}: {e}", qemu_dts.display())))?;
    write(&dts_path, &edited)?;
    let mut dtc = Command::new("dtc");
    dtc.args(["-q", "-I", "dts", "-O", "dtb", "-o"])
        .arg(&dtb_path)
        .arg(&dts_path);
    process::run(&mut dtc)?;
    let [r, p, i, n] = edit.iommu_map;
    println!(
        "reference DT: {} (#iommu-cells = <1>, phandle = <{:#x}> on {}; iommu-map = <{r:#x} {p:#x} {i:#x} {n:#x}> on {})",
        dtb_path.display(),
        edit.phandle,
        edit.viommu_path,
        edit.pci_path
    );
    Ok((dtb_path, edit))
}

/// Runs the bench guest in QEMU ([`run_qemu`]); fails on a `bench error`
/// line or no `bench done`.
fn run_one(cmd: &mut Command, log: &Path) -> Result<String, XtaskError> {
    let text = run_qemu(cmd, log)?;
    let fail = |why: String| XtaskError::Bench(format!("{why} (console: {})", log.display()));
    if let Some(line) = text.lines().find(|l| l.starts_with("bench error")) {
        return Err(fail(format!("guest reported `{line}`")));
    }
    if !text.lines().any(|l| l.trim_end() == "bench done") {
        return Err(fail("guest did not finish".into()));
    }
    Ok(text)
}

/// Runs QEMU with a wall-clock limit ([`RUN_TIMEOUT`], then it is killed);
/// returns its console output (also written, with its stderr, to `log`).
/// Fails on a timeout or a non-zero exit.
fn run_qemu(cmd: &mut Command, log: &Path) -> Result<String, XtaskError> {
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
    let status: Option<ExitStatus> = loop {
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
    Ok(text)
}

/// The hypervisor's report of what it allocated for one guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RamUse {
    /// Most bytes the guest had allocated at once.
    pub peak: u64,
    /// Bytes allocated when the line was printed.
    pub live: u64,
}

/// The last `guest '<guest>': hypervisor RAM: peak <P> bytes, live <L>
/// bytes` line of a partita console (after any log prefix).
pub fn parse_ram(console: &str, guest: &str) -> Option<RamUse> {
    let key = format!("guest '{guest}': hypervisor RAM: peak ");
    console.lines().rev().find_map(|line| {
        let rest = &line[line.find(&key)? + key.len()..];
        let (peak, rest) = rest.split_once(" bytes, live ")?;
        let live = rest.trim_end().strip_suffix(" bytes")?;
        Some(RamUse {
            peak: peak.parse().ok()?,
            live: live.parse().ok()?,
        })
    })
}

/// The base the guest reports in its `bench device base=0x...` line.
fn device_base(console: &str) -> Option<u64> {
    console.lines().find_map(|l| {
        let v = l.strip_prefix("bench device base=0x")?;
        u64::from_str_radix(v.split_whitespace().next()?, 16).ok()
    })
}

/// What the guest found through the DT (its `bench dt ...` line).
fn dt_line(console: &str) -> Option<String> {
    console
        .lines()
        .find_map(|l| l.strip_prefix("bench dt "))
        .map(|l| l.trim_end().to_owned())
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
    /// One per partita run that printed the line.
    ram: Vec<RamUse>,
    /// The guest's name in [`CONFIG`].
    guest: String,
    /// How the two sides were set up, one bullet each.
    setup: Vec<String>,
    /// The profiled run's breakdown.
    el2_profile: Option<profile::Profile>,
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
    /// Median over the runs of the hypervisor's peak RAM for the guest.
    fn ram_peak(&self) -> Option<f64> {
        stat(&self.ram.iter().map(|r| r.peak as f64).collect::<Vec<_>>()).map(|s| s.median)
    }
    /// The report.md line on hypervisor RAM per guest.
    fn ram_line(&self) -> String {
        let line = format!(
            "`guest '{}': hypervisor RAM: peak <P> bytes, live <L> bytes`",
            self.guest
        );
        match self.ram_peak() {
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
                format!(
                    "- hypervisor RAM per guest: peak **{p:.0} bytes** ({:.1} KiB; live at the last report {} bytes), median over {} run(s) of the last {line} line{missing}",
                    p / 1024.0,
                    stat(&lives).map_or("n/a".into(), |s| format!("{:.0}", s.median)),
                    self.ram.len(),
                )
            }
        }
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
        for line in &self.setup {
            let _ = writeln!(s, "- {line}");
        }
        let _ = writeln!(s);
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
        let _ = writeln!(s, "{}", self.ram_line());
        let _ = writeln!(
            s,
            "- EL2 instructions per op in the table are the difference ours - QEMU's (the same guest code on both sides); the split below is counted inside the hypervisor\n"
        );
        match &self.el2_profile {
            Some(p) => s.push_str(&p.markdown(self.null_el2())),
            None => s.push_str("## Where the EL2 instructions go\n\nNo profile in this run.\n"),
        }
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
             \"image_bytes\": {},\n  \"ram_per_guest_bytes\": {},\n  \"el2_profile\": {},\n  \
             \"notes\": \"map_batch_64/unmap_batch_64 are per batch of 64 requests; el2_instructions_estimate and null_exit.el2_instructions are differences (ours - reference, trapped - RAM loop); el2_profile is counted inside the hypervisor by a second image built with the profile feature, EL2 instructions per request and per notify; {}\"\n}}\n",
            pair("map_unmap_4k"),
            pair("map_unmap_2m"),
            pair("map_batch_64"),
            pair("unmap_batch_64"),
            num(self.null_el2().map(f64::round)),
            num(self.ours("null_exit").map(|x| x.median)),
            num(self.reference("null_exit").map(|x| x.median)),
            self.image_bytes,
            self.ram_peak().map_or("null".into(), |p| format!("{p:.0}")),
            self.el2_profile
                .as_ref()
                .map_or("null".into(), profile::Profile::json),
            if self.ram_peak().is_some() {
                "ram_per_guest_bytes is the hypervisor's peak allocation for the guest (median over runs of its console report)"
            } else {
                "ram_per_guest_bytes not measured: the hypervisor printed no RAM line for the guest"
            },
            runs = self.runs,
        )
    }

    /// A horizontal bar chart, log scale (the ratios are large); with
    /// `peer`, a third bar per operation (Linux/KVM with VFIO).
    fn svg(&self, peer: Option<&Samples>) -> String {
        let peer_of = |k: &str| peer.and_then(|p| p.get(k)).and_then(|s| stat(s));
        let bars = if peer.is_some() { 3.0 } else { 2.0 };
        let (w, row, left, top) = (960.0, 20.0 + 18.0 * bars, 230.0, 50.0);
        let h = top + row * OPS.len() as f64 + 40.0;
        let max = OPS
            .iter()
            .flat_map(|(k, ..)| [self.ours(k), self.reference(k), peer_of(k)])
            .flatten()
            .map(|x| x.median)
            .fold(10.0, f64::max);
        let decades = max.log10().ceil().max(1.0);
        // Room on the right for the longest bar's label.
        let x = |v: f64| left + (w - left - 90.0) * (v.max(1.0).log10() / decades);
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
        if peer.is_some() {
            let _ = writeln!(
                s,
                "<rect x=\"{}\" y=\"28\" width=\"12\" height=\"10\" fill=\"#27ae60\"/><text x=\"{}\" y=\"37\">Linux/KVM, QEMU's virtio-iommu, VFIO (peer)</text>",
                left + 390.0,
                left + 406.0
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
            let y = top + row * i as f64 + 8.0;
            let _ = writeln!(s, "<text x=\"10\" y=\"{:.1}\">{label}</text>", y + 20.0);
            for (j, (st, color)) in [
                (self.ours(k), "#c0392b"),
                (self.reference(k), "#2980b9"),
                (peer_of(k), "#27ae60"),
            ]
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

    /// A partita console as the hypervisor prints it (after boot and when
    /// the guest stops), with another guest's line in between.
    const OURS_LOG: &str = "\
[    0.009151] INFO  guest 'bench': vcpu 0 starts on cpu 0 at 0x40000000
[    0.009160] INFO  guest 'bench': hypervisor RAM: peak 1191936 bytes, live 1187840 bytes
bench start cntfrq=1000000000 psci=hvc
bench dt viommu=/iommu@b000000 iommu-map of /pcie@10000000 rid=0x8 endpoint=0x8
bench device base=0xb000000 page_size_mask=0x40201000 queue_num_max=256
bench done
[    0.081984] INFO  guest 'bench' powered off (0 DMA fault(s) reported by the SMMU)
[    0.081990] INFO  guest 'bench': hypervisor RAM: peak 1253376 bytes, live 4096 bytes
[    0.081995] INFO  guest 'benchmark': hypervisor RAM: peak 1 bytes, live 1 bytes
[    0.082028] INFO  no guest left running: powering off
";

    #[test]
    fn parses_the_last_ram_line_of_the_guest() {
        assert_eq!(
            parse_ram(OURS_LOG, "bench"),
            Some(RamUse {
                peak: 1_253_376,
                live: 4096
            })
        );
        assert_eq!(
            parse_ram(OURS_LOG, "benchmark"),
            Some(RamUse { peak: 1, live: 1 })
        );
        assert_eq!(parse_ram(OURS_LOG, "linux"), None);
        // Not there yet (a hypervisor without the line), or malformed.
        assert_eq!(parse_ram("bench done\n", "bench"), None);
        assert_eq!(
            parse_ram(
                "guest 'bench': hypervisor RAM: peak 12 KiB, live 3 bytes\n",
                "bench"
            ),
            None
        );
        assert_eq!(
            parse_ram(
                "guest 'bench': hypervisor RAM: peak 12 bytes, live 3 bytes\r\n",
                "bench"
            ),
            Some(RamUse { peak: 12, live: 3 })
        );
    }

    #[test]
    fn parses_the_guest_discovery_lines() {
        assert_eq!(device_base(OURS_LOG), Some(0xb00_0000));
        assert_eq!(
            dt_line(OURS_LOG).as_deref(),
            Some("viommu=/iommu@b000000 iommu-map of /pcie@10000000 rid=0x8 endpoint=0x8")
        );
        assert_eq!(device_base("bench done\n"), None);
        // The discovery lines are not results.
        assert!(parse(OURS_LOG).is_empty());
    }

    fn report(ram: Vec<RamUse>, runs: usize) -> Report {
        Report {
            ours: Samples::new(),
            reference: Samples::new(),
            image_bytes: 1,
            runs,
            ram,
            guest: "bench".into(),
            setup: vec!["guest: 1 CPU(s)".into()],
            el2_profile: None,
        }
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
    }

    #[test]
    fn plot_with_and_without_the_peer() {
        let mut r = report(Vec::new(), 1);
        r.ours.insert("map_unmap_4k".into(), vec![4924.0]);
        let mut peer = Samples::new();
        peer.insert("map_unmap_4k".into(), vec![37207.6]);
        assert!(!r.svg(None).contains("#27ae60"));
        let svg = r.svg(Some(&peer));
        assert!(svg.contains(">37207.6</text>"), "{svg}");
        assert!(svg.contains("(peer)</text>"));
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
