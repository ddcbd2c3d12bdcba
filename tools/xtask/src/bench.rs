//! `cargo xtask bench`: the virtio-iommu MAP/UNMAP path measured under
//! partita and against QEMU's own virtio-iommu, on each transport
//! (virtio-mmio and virtio-pci), with the same bare-metal guest
//! (`tools/bench-guest`), all under `-icount shift=0 -seed 1` so that guest
//! nanoseconds are executed instructions (EL2 ones included).
//!
//! The virtio-mmio reference run gets the device tree the issue asks for
//! (QEMU's own, with `#iommu-cells` on the virtio-iommu's virtio-mmio node
//! and an `iommu-map` on the PCIe host: see [`refdt`]); the virtio-pci one
//! (`-device virtio-iommu-pci`) boots with QEMU's own DT, which describes
//! that device itself. Both get the CPU count and memory the guest has
//! under partita. The guest finds its device through the DT the same way
//! on every side.
//!
//! Writes `target/bench/report.md`, `target/bench/results.json` and
//! `target/bench/plot.svg` ([`report`]). With `--peer`, also Linux/KVM
//! with QEMU's virtio-iommu running the same guest in the same emulator
//! ([`peer`]). See docs/performance.md.

pub mod peer;
mod profile;
mod refdt;
mod report;

use std::collections::BTreeMap;
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
use report::{Report, Samples, Sides};

/// The guest configuration of the partita runs on virtio-mmio.
pub const CONFIG: &str = "tools/bench-guest/bench-viommu.toml";
/// The same guest with its virtio-iommu on virtio-pci.
pub const CONFIG_PCI: &str = "tools/bench-guest/bench-viommu-pci.toml";
/// Wall-clock limit of one QEMU run; it is killed after that.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// The reference machine: QEMU `virt` without EL2 and without an SMMU.
const REFERENCE_MACHINE: &str = "virt,gic-version=3";
/// Where QEMU `virt`'s RAM starts: the reference guest's RAM is
/// `[VIRT_RAM_BASE, VIRT_RAM_BASE + -m)`, so [`CONFIG`] must put the
/// guest's RAM there too for the two to see the same memory.
const VIRT_RAM_BASE: u64 = 0x4000_0000;
/// A virtio transport of the virtio-iommu.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Mmio,
    Pci,
}

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
    let pci_bundle = payload::build(ws, &ws.root.join(CONFIG_PCI), &emulator.qemu)?;
    let guest_cfg = guest_config(ws)?;
    let smp = guest_cfg.cpus.len().to_string();
    let mem = format!("{}M", guest_cfg.memory_size >> 20);

    let ours_cmd = |image: &Path, bundle: &Path| {
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
        .arg(bundle)
        .args(["-icount", "shift=0", "-seed", "1"]);
        c
    };
    // The reference: the guest's CPU count and memory under partita, QEMU's
    // virtio-iommu on the transport. `dumpdtb` writes QEMU's DT and exits;
    // `dtb` boots with the edited one.
    let reference_cmd = |transport: Transport, dumpdtb: Option<&Path>, dtb: Option<&Path>| {
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
        match transport {
            Transport::Mmio => {
                c.args(["-device", "virtio-iommu-device,primary-bus=pcie.0"])
                    .args(["-global", "virtio-mmio.force-legacy=false"])
                    // Notifies handled in the vCPU's MMIO write (as partita
                    // does in its trap), not by the main loop: with
                    // ioeventfd the guest spins for a host-timing-dependent
                    // number of instructions.
                    .args(["-global", "virtio-mmio.ioeventfd=false"]);
            }
            // On the first free slot of pcie.0 (00:02.0, after the NIC).
            // virtio-iommu-pci has no `ioeventfd` property (QEMU defines it
            // per device type, and not for this one): its notifies are
            // handled in the vCPU's MMIO write already.
            Transport::Pci => {
                c.args(["-device", "virtio-iommu-pci"]);
            }
        }
        c.args(["-icount", "shift=0", "-seed", "1"]);
        c
    };

    let (ref_dtb, edit) = reference_dt(
        &out,
        &mut reference_cmd(Transport::Mmio, Some(&out.join("reference-qemu.dtb")), None),
    )?;
    let pci_iommu = reference_pci_dt(
        &out,
        &mut reference_cmd(Transport::Pci, Some(&out.join("reference-pci.dtb")), None),
    )?;
    let (mut mmio, mut pci) = (Sides::default(), Sides::default());
    let (mut ram, mut pci_ram, mut discovery) = (Vec::new(), Vec::new(), BTreeMap::new());
    for run in 0..runs {
        eprintln!("==> run {}/{runs}: partita, virtio-mmio", run + 1);
        let log = out.join(format!("ours-{run}.log"));
        let text = run_one(&mut ours_cmd(&image, &bundle), &log)?;
        // The guest measured partita's device, found through its DT.
        if device_base(&text) != Some(guest_cfg.viommu_base) {
            return Err(XtaskError::Bench(format!(
                "the guest under partita did not use the virtio-iommu at {:#x} (console: {})",
                guest_cfg.viommu_base,
                log.display()
            )));
        }
        collect(&mut mmio.ours, &text)?;
        if let Some(r) = parse_ram(&text, &guest_cfg.name) {
            ram.push(r);
        }
        discovery.insert("ours, virtio-mmio", dt_line(&text));
        eprintln!(
            "==> run {}/{runs}: QEMU virtio-iommu-device (no hypervisor)",
            run + 1
        );
        let log = out.join(format!("reference-{run}.log"));
        let text = run_one(
            &mut reference_cmd(Transport::Mmio, None, Some(&ref_dtb)),
            &log,
        )?;
        // QEMU's slot assignment, as refdt assumes it, seen from the guest.
        if device_base(&text) != Some(edit.viommu_base) {
            return Err(XtaskError::Bench(format!(
                "the reference guest did not use the virtio-iommu at {:#x} ({} in the edited DT) (console: {})",
                edit.viommu_base,
                edit.viommu_path,
                log.display()
            )));
        }
        collect(&mut mmio.reference, &text)?;
        discovery.insert("reference, virtio-mmio", dt_line(&text));

        eprintln!("==> run {}/{runs}: partita, virtio-pci", run + 1);
        let log = out.join(format!("ours-pci-{run}.log"));
        let text = run_one(&mut ours_cmd(&image, &pci_bundle), &log)?;
        check_pci_function(&text, guest_cfg.pci_viommu_rid, "partita's", &log)?;
        collect(&mut pci.ours, &text)?;
        if let Some(r) = parse_ram(&text, &guest_cfg.pci_name) {
            pci_ram.push(r);
        }
        discovery.insert("ours, virtio-pci", dt_line(&text));
        eprintln!(
            "==> run {}/{runs}: QEMU virtio-iommu-pci (no hypervisor)",
            run + 1
        );
        let log = out.join(format!("reference-pci-{run}.log"));
        let text = run_one(&mut reference_cmd(Transport::Pci, None, None), &log)?;
        check_pci_function(&text, pci_iommu.rid, "QEMU's", &log)?;
        collect(&mut pci.reference, &text)?;
        discovery.insert("reference, virtio-pci", dt_line(&text));
    }

    // Where the instructions go: one run per transport of the image with
    // counter reads around each phase (kept out of the figures above).
    let profiled = tasks::build_profiled_image(ws)?;
    let mut profiles = Vec::new();
    for (name, bundle) in [("ours-profile", &bundle), ("ours-pci-profile", &pci_bundle)] {
        eprintln!("==> profile run: partita built with --features profile ({name})");
        let log = out.join(format!("{name}.log"));
        let text = run_one(&mut ours_cmd(&profiled, bundle), &log)?;
        let Some(p) = profile::parse(&text) else {
            return Err(XtaskError::Bench(format!(
                "the profiled image printed no `virtio-iommu profile:` lines (console: {})",
                log.display()
            )));
        };
        profiles.push(p);
    }
    let pci_profile = profiles.pop();
    let el2_profile = profiles.pop();

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

    let [a, b, c, d] = edit.iommu_map;
    let map = pci_iommu
        .iommu_map
        .iter()
        .map(|c| format!("{c:#x}"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut setup = vec![
        format!(
            "guest: {} CPU(s), {} MiB of RAM at {VIRT_RAM_BASE:#x} on every side (ours: QEMU `-smp 4 -m 1G`, partita gives guest '{}' cpus {:?} and {} MiB per `{CONFIG}` and `{CONFIG_PCI}`; reference: QEMU `-smp {smp} -m {mem}`, the guest alone on the machine)",
            guest_cfg.cpus.len(),
            guest_cfg.memory_size >> 20,
            guest_cfg.name,
            guest_cfg.cpus,
            guest_cfg.memory_size >> 20,
        ),
        format!(
            "virtio-mmio reference DT: QEMU's own (`dumpdtb` of the reference command line), plus `#iommu-cells = <1>` and `phandle = <{:#x}>` on `{}` (the slot QEMU gives `virtio-iommu-device`) and `iommu-map = <{a:#x} &viommu {c:#x} {d:#x}>` on `{}` (phandle {b:#x}); `reference.dts` / `reference.dtb`",
            edit.phandle, edit.viommu_path, edit.pci_path,
        ),
        format!(
            "virtio-pci, ours: `{CONFIG_PCI}` gives the guest QEMU's NIC (00:01.0) as its only PCI function, on a virtual host bridge whose next function, {}, is partita's virtio-iommu (BAR 0 placed by the hypervisor)",
            bdf(guest_cfg.pci_viommu_rid)
        ),
        format!(
            "virtio-pci reference DT: QEMU's own, unedited (`reference-pci.dts`): `{}` ({}) and `iommu-map = <{map}>` on `{}`; the guest gives the function's BAR a place in the bridge's 64-bit window itself (no firmware runs)",
            pci_iommu.path,
            bdf(pci_iommu.rid),
            pci_iommu.pci_path,
        ),
    ];
    for (side, line) in &discovery {
        setup.push(format!(
            "discovery ({side}): {}",
            line.as_deref().unwrap_or("no `bench dt` line")
        ));
    }
    setup.push(format!(
        "ours: `{}` (virtio-pci: the same with `{}`)",
        process::display(&ours_cmd(&image, &bundle)),
        pci_bundle.display()
    ));
    setup.push(format!(
        "reference, virtio-mmio: `{}`",
        process::display(&reference_cmd(Transport::Mmio, None, Some(&ref_dtb)))
    ));
    setup.push(format!(
        "reference, virtio-pci: `{}`",
        process::display(&reference_cmd(Transport::Pci, None, None))
    ));

    let report = Report {
        mmio,
        pci,
        image_bytes,
        runs,
        ram,
        pci_ram,
        guest: guest_cfg.name.clone(),
        setup,
        el2_profile,
        pci_profile,
    };
    let mut md = report.markdown();
    let mut json = report.json();
    let svg = match &peer {
        Some(p) => {
            let others = peer::report::Others {
                mmio: &report.mmio,
                pci: &report.pci,
            };
            md.push('\n');
            md.push_str(&peer::report::markdown(p, Some(others)));
            json = peer::report::add_to_json(&json, &peer::report::json(p, Some(others)));
            report.svg(&peer::report::bars(p))
        }
        None => report.svg(&[]),
    };
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

/// A requester ID as `BB:DD.F`.
fn bdf(rid: u32) -> String {
    format!("{:02x}:{:02x}.{}", rid >> 8, rid >> 3 & 0x1f, rid & 7)
}

/// Fails unless the guest of `log` drove a virtio-iommu on virtio-pci at
/// requester ID `rid` (its `bench pci function=` line).
fn check_pci_function(text: &str, rid: u32, whose: &str, log: &Path) -> Result<(), XtaskError> {
    let found = pci_function(text);
    if found == Some(rid) && device_transport(text) == Some("pci") {
        return Ok(());
    }
    Err(XtaskError::Bench(format!(
        "the guest did not use {whose} virtio-iommu on virtio-pci at {} (it reported {}) (console: {})",
        bdf(rid),
        found.map_or("none".into(), bdf),
        log.display()
    )))
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

/// What the bench needs of the guests of [`CONFIG`] and [`CONFIG_PCI`].
#[derive(Debug, PartialEq, Eq)]
struct GuestSetup {
    name: String,
    cpus: Vec<u32>,
    memory_size: u64,
    /// Where partita puts the guest's virtio-iommu on virtio-mmio.
    viommu_base: u64,
    /// The virtio-pci guest's name.
    pci_name: String,
    /// The requester ID of the virtio-iommu on the virtio-pci guest's
    /// virtual bus: the function after its own (docs/viommu.md).
    pci_viommu_rid: u32,
}

/// Reads [`CONFIG`] and [`CONFIG_PCI`] and checks them ([`check_configs`]).
fn guest_config(ws: &Workspace) -> Result<GuestSetup, XtaskError> {
    let load = |path: &str| -> Result<hypervisor::config::GuestConfig, XtaskError> {
        let file = guestcfg::load(&ws.root.join(path)).map_err(XtaskError::config)?;
        match &file.guests[..] {
            [g] => Ok(g.config.clone()),
            _ => Err(XtaskError::Bench(format!(
                "{path}: expected exactly one guest"
            ))),
        }
    };
    check_configs(&load(CONFIG)?, &load(CONFIG_PCI)?).map_err(XtaskError::Bench)
}

/// The guest of [`CONFIG`] (`mmio`) has a virtio-iommu on virtio-mmio and
/// its RAM where QEMU virt's starts (so that the reference's `-m` gives
/// the guest the same memory map); the guest of [`CONFIG_PCI`] (`pci`) has
/// the same CPUs and RAM (the reference runs of both transports take them
/// from `mmio`), PCI functions and its virtio-iommu on virtio-pci.
fn check_configs(
    mmio: &hypervisor::config::GuestConfig,
    pci: &hypervisor::config::GuestConfig,
) -> Result<GuestSetup, String> {
    use hypervisor::config::ViommuTransport;
    if mmio.memory_base != VIRT_RAM_BASE || !mmio.memory_size.is_multiple_of(1 << 20) {
        return Err(format!(
            "{CONFIG}: the guest's RAM must start at {VIRT_RAM_BASE:#x} (QEMU virt's RAM base) and be whole MiB for the reference run to match it"
        ));
    }
    let Some(viommu) = mmio.viommu.filter(|v| v.transport == ViommuTransport::Mmio) else {
        return Err(format!(
            "{CONFIG}: the guest has no [guest.viommu] on virtio-mmio: there is nothing to measure"
        ));
    };
    if (pci.cpus.len(), pci.memory_base, pci.memory_size)
        != (mmio.cpus.len(), mmio.memory_base, mmio.memory_size)
    {
        return Err(format!(
            "{CONFIG_PCI}: the guest must have the CPU count and RAM of {CONFIG}'s (the reference runs use them)"
        ));
    }
    if pci.viommu.map(|v| v.transport) != Some(ViommuTransport::Pci) {
        return Err(format!(
            "{CONFIG_PCI}: the guest has no [guest.viommu] with transport = \"pci\""
        ));
    }
    let functions = u32::try_from(pci.pci.len())
        .ok()
        .filter(|n| (1..32).contains(n))
        .ok_or_else(|| format!("{CONFIG_PCI}: the guest needs 1 to 31 pci functions"))?;
    Ok(GuestSetup {
        name: mmio.name.clone(),
        cpus: mmio.cpus.clone(),
        memory_size: mmio.memory_size,
        viommu_base: viommu.base,
        pci_name: pci.name.clone(),
        pci_viommu_rid: functions << 3,
    })
}

/// The reference DT of the virtio-pci runs: runs `dump` (the reference
/// command line with `dumpdtb=out/reference-pci.dtb`), decompiles QEMU's
/// DTB into `out/reference-pci.dts` and reads its virtio-iommu binding
/// ([`refdt::pci_iommu`]). The runs boot with QEMU's own DT.
fn reference_pci_dt(out: &Path, dump: &mut Command) -> Result<refdt::PciIommu, XtaskError> {
    let (dtb, dts) = (out.join("reference-pci.dtb"), out.join("reference-pci.dts"));
    for stale in [&dtb, &dts] {
        let _ = fs::remove_file(stale);
    }
    eprintln!("==> reference DT (virtio-pci): QEMU's own");
    run_qemu(dump, &out.join("reference-pci-dumpdtb.log"))?;
    if !dtb.is_file() {
        return Err(XtaskError::Bench(format!(
            "QEMU exited without writing {}",
            dtb.display()
        )));
    }
    let mut dtc = Command::new("dtc");
    dtc.args(["-q", "-I", "dtb", "-O", "dts", "-o"])
        .arg(&dts)
        .arg(&dtb);
    process::run(&mut dtc)?;
    let text = fs::read_to_string(&dts).map_err(|e| XtaskError::io("read", &dts, e))?;
    refdt::pci_iommu(&text).map_err(|e| XtaskError::Bench(format!("{}: {e}", dts.display())))
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

/// The transport the guest reports in its `bench device ... transport=X`
/// line.
fn device_transport(console: &str) -> Option<&str> {
    console.lines().find_map(|l| {
        l.strip_prefix("bench device ")?
            .split_whitespace()
            .find_map(|w| w.strip_prefix("transport="))
    })
}

/// The requester ID of the virtio-pci function the guest drove (its
/// `bench pci function=BB:DD.F ...` line).
fn pci_function(console: &str) -> Option<u32> {
    console.lines().find_map(|l| {
        let v = l
            .strip_prefix("bench pci function=")?
            .split_whitespace()
            .next()?;
        let (bus, rest) = v.split_once(':')?;
        let (dev, func) = rest.split_once('.')?;
        let (bus, dev, func) = (
            u32::from_str_radix(bus, 16).ok()?,
            u32::from_str_radix(dev, 16).ok()?,
            func.parse::<u32>().ok()?,
        );
        (bus < 256 && dev < 32 && func < 8).then_some(bus << 8 | dev << 3 | func)
    })
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
bench device base=0xb000000 transport=mmio page_size_mask=0x40201000 queue_num_max=256
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

    const PCI_LOG: &str = "\
bench start cntfrq=1000000000 psci=hvc
bench dt viommu=/pcie@4010000000/iommu@1,0 iommu-map of /pcie@4010000000 rid=0x0 endpoint=0x0
bench pci function=00:01.0 common=0xffffffc000 notify=0xfffffff000 multiplier=4 bars_placed_by_guest=0x0
bench device base=0xffffffc000 transport=pci page_size_mask=0x40201000 queue_num_max=256
bench done
";

    #[test]
    fn parses_the_pci_discovery_lines() {
        assert_eq!(pci_function(PCI_LOG), Some(0x8));
        assert_eq!(device_transport(PCI_LOG), Some("pci"));
        assert_eq!(device_transport(OURS_LOG), Some("mmio"));
        assert_eq!(pci_function(OURS_LOG), None);
        assert_eq!(
            pci_function("bench pci function=01:1f.7 common=0\n"),
            Some(0x1ff)
        );
        assert_eq!(pci_function("bench pci function=00:20.0\n"), None);
        assert_eq!(bdf(0x10), "00:02.0");
        assert_eq!(bdf(0x1ff), "01:1f.7");
        let log = Path::new("x.log");
        assert!(check_pci_function(PCI_LOG, 0x8, "partita's", log).is_ok());
        let e = check_pci_function(PCI_LOG, 0x10, "QEMU's", log).unwrap_err();
        assert!(
            e.to_string()
                .contains("QEMU's virtio-iommu on virtio-pci at 00:02.0 (it reported 00:01.0)"),
            "{e}"
        );
        assert!(check_pci_function(OURS_LOG, 0x8, "partita's", log).is_err());
    }

    /// The two bench configurations as the repository has them, and what
    /// the check refuses.
    #[test]
    fn bench_configs_agree() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        // The kernel the configurations name is built by the bench itself
        // (absent in a fresh clone): point it at a file that exists, the
        // rest of each configuration is read as the repository has it.
        let load = |path: &str| {
            let path = root.join(path);
            let text = std::fs::read_to_string(&path).expect("reads");
            let kernel = "kernel = \"../../target/bench/bench-guest.bin\"";
            assert!(text.contains(kernel), "{}", path.display());
            let name = path.file_name().unwrap().to_str().unwrap();
            let text = text.replace(kernel, &format!("kernel = \"{name}\""));
            let file = guestcfg::load_str(&text, &path).expect("loads");
            file.guests[0].config.clone()
        };
        let (mmio, pci) = (load(CONFIG), load(CONFIG_PCI));
        let setup = check_configs(&mmio, &pci).expect("the bench configurations agree");
        assert_eq!(setup.viommu_base, 0xb00_0000);
        assert_eq!(setup.pci_viommu_rid, 0x8);
        assert_eq!(setup.cpus, vec![0]);
        let mut other = pci.clone();
        other.memory_size *= 2;
        assert!(check_configs(&mmio, &other).unwrap_err().contains("RAM"));
        let mut other = pci.clone();
        other.viommu = mmio.viommu;
        assert!(
            check_configs(&mmio, &other)
                .unwrap_err()
                .contains("transport = \"pci\"")
        );
        assert!(
            check_configs(&pci, &pci)
                .unwrap_err()
                .contains("virtio-mmio")
        );
    }
}
