//! Reading the L1 console: what L1 reported about itself, and each L2 run
//! between its `peer run NAME begin` and `peer run NAME end status=N`
//! markers (the bench guest's lines, QEMU's messages, its exit status).

use super::l1::marker;
use crate::bench::{self, report::Samples};

/// One L2 run as the console shows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct L2Result {
    /// The run's name (`vfio`, `novfio`).
    pub name: String,
    /// QEMU's exit status in L1 (`timeout` gives 143); `None` if the end
    /// marker never came.
    pub status: Option<i32>,
    /// The bench lines: (workload, ns per op, errors).
    pub results: Vec<(String, f64, u64)>,
    /// Whether the guest printed `bench done`.
    pub done: bool,
    /// The guest's `bench dt ...` line (what it found through its DT).
    pub dt: Option<String>,
    /// The guest's `bench device ...` line (the device's transport and
    /// the page sizes it offers: with VFIO behind it, the host SMMU's).
    pub device: Option<String>,
    /// Every line of the run, for the evidence of a failure.
    pub lines: Vec<String>,
}

impl L2Result {
    /// Why the run does not count, or `None` if it does.
    pub fn failure(&self) -> Option<String> {
        let bad: Vec<&String> = self
            .lines
            .iter()
            .filter(|l| l.starts_with("bench error") || l.contains("qemu-system-aarch64:"))
            .collect();
        let errors: u64 = self.results.iter().map(|r| r.2).sum();
        let bad: Vec<&String> = if bad.is_empty() && errors != 0 {
            self.lines
                .iter()
                .filter(|l| l.starts_with("bench ") && !l.contains(" errors=0"))
                .filter(|l| l.contains(" errors="))
                .collect()
        } else {
            bad
        };
        let why = match self.status {
            None => "L1 stopped before the run ended".to_owned(),
            Some(s) if s != 0 || !self.done => format!(
                "QEMU exited with status {s}{}",
                if self.done { "" } else { ", no `bench done`" }
            ),
            Some(_) if errors != 0 => format!("{errors} request(s) did not complete with OK"),
            Some(_) => return None,
        };
        let evidence = if bad.is_empty() {
            last(&self.lines, 3)
        } else {
            bad.iter()
                .map(|l| l.as_str())
                .collect::<Vec<_>>()
                .join(" / ")
        };
        Some(format!("{why}: {evidence}"))
    }
}

/// The L1 console, parsed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PeerConsole {
    /// The `peer l1 ...` line (kernel, CPUs, /dev/kvm).
    pub l1: Option<String>,
    /// The `peer edu ...` line (the function, its group, its driver).
    pub edu: Option<String>,
    /// L1's kernel messages on KVM, the SMMU and VFIO.
    pub dmesg: Vec<String>,
    /// The L2 runs in order.
    pub runs: Vec<L2Result>,
    /// Whether the script finished.
    pub done: bool,
}

impl PeerConsole {
    /// The samples of the runs named `name` that count.
    pub fn samples(&self, name: &str) -> Samples {
        let mut s = Samples::new();
        for r in self.runs.iter().filter(|r| r.name == name) {
            if r.failure().is_none() {
                for (w, ns, _) in &r.results {
                    s.entry(w.clone()).or_default().push(*ns);
                }
            }
        }
        s
    }

    /// The failures of the runs named `name`, one line each.
    pub fn failures(&self, name: &str) -> Vec<String> {
        self.runs
            .iter()
            .filter(|r| r.name == name)
            .filter_map(L2Result::failure)
            .collect()
    }
}

/// The last `n` non-empty lines of `lines`, joined with ` / `.
fn last(lines: &[String], n: usize) -> String {
    let l: Vec<&str> = lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .collect();
    l[l.len().saturating_sub(n)..].join(" / ")
}

/// The last `n` non-empty lines of `text`, joined with ` / `.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    last(&lines, n)
}

/// Parses the console text.
pub fn parse(text: &str) -> PeerConsole {
    let mut c = PeerConsole::default();
    let mut cur: Option<L2Result> = None;
    for raw in text.lines() {
        let line = raw.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix(marker::RUN).map(str::trim) {
            let mut w = rest.split_whitespace();
            let (name, what) = (w.next().unwrap_or(""), w.next().unwrap_or(""));
            if what == "begin" {
                c.runs.extend(cur.take());
                cur = Some(L2Result {
                    name: name.to_owned(),
                    ..L2Result::default()
                });
                continue;
            }
            if what == "end" {
                if let Some(mut r) = cur.take() {
                    r.status = w
                        .next()
                        .and_then(|s| s.strip_prefix("status="))
                        .and_then(|s| s.parse().ok());
                    let text = r.lines.join("\n");
                    r.results = bench::parse(&text);
                    r.done = r.lines.iter().any(|l| l.trim() == "bench done");
                    r.dt = r
                        .lines
                        .iter()
                        .find_map(|l| l.strip_prefix("bench dt "))
                        .map(|s| s.trim().to_owned());
                    r.device = r
                        .lines
                        .iter()
                        .find_map(|l| l.strip_prefix("bench device "))
                        .map(|s| s.trim().to_owned());
                    c.runs.push(r);
                }
                continue;
            }
        }
        if let Some(r) = cur.as_mut() {
            r.lines.push(line.to_owned());
        } else if line.starts_with(marker::L1) {
            c.l1 = Some(line.to_owned());
        } else if line.starts_with(marker::EDU) {
            c.edu = Some(line.to_owned());
        } else if let Some(d) = line.strip_prefix("peer dmesg ") {
            c.dmesg.push(d.to_owned());
        } else if line.trim() == marker::DONE {
            c.done = true;
        }
    }
    c.runs.extend(cur);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONSOLE: &str = "\
[    1.0] kvm [1]: VHE mode initialized successfully
peer l1 kernel=6.12.95+deb12-arm64 cpus=1 kvm=/dev/kvm
peer dmesg [    1.0] kvm [1]: VHE mode initialized successfully
peer edu 0000:00:05.0 group=3 driver=vfio-pci vfio=3 vfio
peer run novfio begin
bench start cntfrq=1000000000 psci=hvc\r
bench dt viommu=/pcie@10000000/virtio_iommu@10 rid=0x8 endpoint=0x8
bench device base=0xa003e00 transport=mmio page_size_mask=0xfffffffffffff000 queue_num_max=1024
bench map_unmap_4k ns_per_op=30000.0 reps=1000 ticks=1 errors=0
bench null_exit ns_per_op=9000.5 reps=5000 ticks=1 errors=0
bench done
peer run novfio end status=0
peer run vfio begin
qemu-system-aarch64: -device vfio-pci,host=0000:00:05.0,addr=1.0: vfio 0000:00:05.0: failed to setup container
peer run vfio end status=1
peer run novfio begin
bench map_unmap_4k ns_per_op=30002.0 reps=1000 ticks=1 errors=0
bench map_unmap_2m ns_per_op=1.0 reps=1000 ticks=1 errors=3
bench done
peer run novfio end status=0
peer run vfio begin
bench start
";

    #[test]
    fn runs_samples_and_failures() {
        let c = parse(CONSOLE);
        assert_eq!(
            c.l1.as_deref(),
            Some("peer l1 kernel=6.12.95+deb12-arm64 cpus=1 kvm=/dev/kvm")
        );
        assert!(c.edu.as_deref().unwrap().contains("driver=vfio-pci"));
        assert_eq!(c.dmesg.len(), 1);
        assert!(!c.done);
        assert_eq!(c.runs.len(), 4);
        assert_eq!(c.runs[0].status, Some(0));
        assert!(c.runs[0].done);
        assert_eq!(
            c.runs[0].dt.as_deref(),
            Some("viommu=/pcie@10000000/virtio_iommu@10 rid=0x8 endpoint=0x8")
        );
        assert_eq!(
            c.runs[0].device.as_deref(),
            Some(
                "base=0xa003e00 transport=mmio page_size_mask=0xfffffffffffff000 queue_num_max=1024"
            )
        );
        assert_eq!(c.runs[1].device, None);
        // The second novfio run had errors: only the first counts.
        let s = c.samples("novfio");
        assert_eq!(s["map_unmap_4k"], [30000.0]);
        assert_eq!(s["null_exit"], [9000.5]);
        let f = c.failures("novfio");
        assert_eq!(
            f,
            [
                "3 request(s) did not complete with OK: bench map_unmap_2m ns_per_op=1.0 reps=1000 ticks=1 errors=3"
            ]
        );
        let f = c.failures("vfio");
        assert_eq!(f.len(), 2);
        assert!(
            f[0].starts_with(
                "QEMU exited with status 1, no `bench done`: qemu-system-aarch64: -device vfio-pci"
            ),
            "{}",
            f[0]
        );
        assert!(
            f[1].starts_with("L1 stopped before the run ended: bench start"),
            "{}",
            f[1]
        );
        assert!(c.samples("vfio").is_empty());
    }
}
