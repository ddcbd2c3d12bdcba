//! The in-hypervisor profile of the bench: the `virtio-iommu profile:`
//! lines an image built with the `profile` feature prints when the guest
//! stops (counter ticks per request type and phase, per notify), parsed and
//! turned into per-request figures. Under `-icount shift=0` a tick is an
//! instruction.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Summed ticks of one request type.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TypeTicks {
    /// Requests.
    pub count: u64,
    /// Descriptor walk.
    pub pop: u64,
    /// Request copy.
    pub read: u64,
    /// The model (including `table`).
    pub model: u64,
    /// The backend's page-table update (and, for UNMAP, invalidation
    /// planning), part of `model`.
    pub table: u64,
}

/// The whole profile of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    /// Notifies.
    pub notifies: u64,
    /// Ticks of whole MMIO accesses that were notifies.
    pub mmio: u64,
    /// Ticks in the device's notify handler.
    pub device: u64,
    /// Ticks of batch syncs.
    pub sync: u64,
    /// Ticks of completions.
    pub complete: u64,
    /// By request type name.
    pub types: BTreeMap<String, TypeTicks>,
}

const PREFIX: &str = "virtio-iommu profile: ";

/// Reads the last profile printed in `console` (a run prints it once, when
/// the guest stops); `None` when there is no notify line.
pub fn parse(console: &str) -> Option<Profile> {
    let mut found: Option<Profile> = None;
    for line in console.lines() {
        let Some(rest) = line.trim().strip_prefix(PREFIX) else {
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        let field = |name: &str| -> Option<u64> {
            let at = words.iter().position(|w| *w == name)?;
            words.get(at + 1)?.parse().ok()
        };
        if words.first() == Some(&"notifies") {
            found = Some(Profile {
                notifies: field("notifies")?,
                mmio: field("mmio")?,
                device: field("device")?,
                sync: field("sync")?,
                complete: field("complete")?,
                types: BTreeMap::new(),
            });
        } else if let (Some(p), Some(kind), Some(count)) = (
            found.as_mut(),
            words.first(),
            words.get(1).and_then(|c| c.parse().ok()),
        ) {
            p.types.insert(
                (*kind).to_owned(),
                TypeTicks {
                    count,
                    pop: field("pop")?,
                    read: field("read")?,
                    model: field("model")?,
                    table: field("table")?,
                },
            );
        }
    }
    found
}

fn per(total: u64, n: u64) -> Option<f64> {
    (n > 0).then(|| total as f64 / n as f64)
}

fn cell(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.0}"))
}

impl Profile {
    /// All requests.
    pub fn requests(&self) -> u64 {
        self.types.values().map(|t| t.count).sum()
    }

    /// Per-request averages of one type: (pop, read, model without the
    /// table, table, completion share).
    fn row(&self, kind: &str) -> Option<[f64; 5]> {
        let t = self.types.get(kind)?;
        let n = t.count;
        Some([
            per(t.pop, n)?,
            per(t.read, n)?,
            per(t.model.saturating_sub(t.table), n)?,
            per(t.table, n)?,
            per(self.complete, self.requests())?,
        ])
    }

    /// Per notify: the transport around the device (lock, register decode,
    /// queue context, used-buffer decision) and the batch sync.
    fn per_notify(&self) -> (Option<f64>, Option<f64>) {
        (
            per(self.mmio.saturating_sub(self.device), self.notifies),
            per(self.sync, self.notifies),
        )
    }

    /// The report.md section; `null_exit` is the trap's share (entry, exit,
    /// ESR decode, dispatch) measured by the bench's null exit.
    pub fn markdown(&self, null_exit: Option<f64>) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "## Where the EL2 instructions go\n\n\
             From one more partita run of an image built with `--features profile` (counter \
             reads around each phase; they add about 2 instructions per read, ~20 per request, \
             to these figures and nothing to the table above). Averages over the whole run \
             ({} notifies, {} requests; MAP and UNMAP of every workload together).\n",
            self.notifies,
            self.requests()
        );
        let _ = writeln!(s, "| per request | MAP | UNMAP |");
        let _ = writeln!(s, "|---|---:|---:|");
        let (map, unmap) = (self.row("map"), self.row("unmap"));
        let labels = [
            "descriptor walk (avail ring, descriptors, checks)",
            "request copy out of guest RAM",
            "model: decode, checks, translation, bookkeeping",
            "page-table update (UNMAP: + invalidation planning)",
            "completion (response, used ring), average",
        ];
        for (i, label) in labels.iter().enumerate() {
            let _ = writeln!(
                s,
                "| {label} | {} | {} |",
                cell(map.map(|r| r[i])),
                cell(unmap.map(|r| r[i]))
            );
        }
        let total = |r: Option<[f64; 5]>| r.map(|r| r.iter().sum::<f64>());
        let _ = writeln!(
            s,
            "| **request total** | **{}** | **{}** |",
            cell(total(map)),
            cell(total(unmap))
        );
        let (transport, sync) = self.per_notify();
        let _ = writeln!(s, "\n| per notify | instructions |");
        let _ = writeln!(s, "|---|---:|");
        let _ = writeln!(
            s,
            "| trap entry and exit, ESR decode, dispatch (the null exit) | {} |",
            cell(null_exit)
        );
        let _ = writeln!(
            s,
            "| transport: lock, register decode, queue context, used-buffer decision | {} |",
            cell(transport)
        );
        let _ = writeln!(
            s,
            "| SMMU: barrier, invalidation commands, CMD_SYNC (average over all notifies) | {} |",
            cell(sync)
        );
        s
    }

    /// Per-request total of one type (the five phases of [`Profile::row`]).
    fn total(&self, kind: &str) -> Option<f64> {
        self.row(kind).map(|r| r.iter().sum())
    }

    /// The report.md subsection setting this profile (of the virtio-mmio
    /// run) beside `pci`'s (the virtio-pci run), per notify and per
    /// request; `nulls` are the two transports' null exits.
    pub fn beside(&self, pci: &Profile, nulls: [Option<f64>; 2]) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "### virtio-pci beside virtio-mmio\n\n\
             The same profiled image, one run per transport ({} and {} notifies). The trap row \
             is each transport's null exit (MagicValue / `device_feature_select` read); the \
             transport row on virtio-pci covers the lock, the BAR decode and the notification \
             region.\n",
            self.notifies, pci.notifies
        );
        let _ = writeln!(s, "| EL2 instructions | virtio-mmio | virtio-pci |");
        let _ = writeln!(s, "|---|---:|---:|");
        let (mt, ms) = self.per_notify();
        let (pt, ps) = pci.per_notify();
        for (label, m, p) in [
            ("per notify: trap (the null exit)", nulls[0], nulls[1]),
            ("per notify: transport", mt, pt),
            ("per notify: SMMU sync (average)", ms, ps),
            ("per MAP request", self.total("map"), pci.total("map")),
            ("per UNMAP request", self.total("unmap"), pci.total("unmap")),
        ] {
            let _ = writeln!(s, "| {label} | {} | {} |", cell(m), cell(p));
        }
        s
    }

    /// The `el2_profile` object of results.json.
    pub fn json(&self) -> String {
        let row = |kind: &str| match self.row(kind) {
            Some([pop, read, model, table, complete]) => format!(
                "{{\"descriptor_walk\": {pop:.1}, \"request_copy\": {read:.1}, \"model\": {model:.1}, \"page_table\": {table:.1}, \"completion\": {complete:.1}}}"
            ),
            None => "null".into(),
        };
        let (transport, sync) = self.per_notify();
        let num = |v: Option<f64>| v.map_or("null".into(), |v| format!("{v:.1}"));
        format!(
            "{{\"map\": {}, \"unmap\": {}, \"per_notify\": {{\"transport\": {}, \"sync\": {}}}, \"notifies\": {}, \"requests\": {}}}",
            row("map"),
            row("unmap"),
            num(transport),
            num(sync),
            self.notifies,
            self.requests()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
[    0.06] INFO  guest 'bench': virtio-iommu requests:
request     ok  ioerr
virtio-iommu profile: notifies 4 mmio 4000 device 3000 sync 400 complete 300
virtio-iommu profile: attach 1 pop 10 read 20 model 30 table 0
virtio-iommu profile: map 2 pop 200 read 100 model 1000 table 400
virtio-iommu profile: unmap 2 pop 220 read 100 model 1200 table 600
[    0.07] INFO  no guest left running: powering off
";

    #[test]
    fn parses_the_lines() {
        let p = parse(LOG).expect("profile");
        assert_eq!(
            (p.notifies, p.mmio, p.device, p.sync, p.complete),
            (4, 4000, 3000, 400, 300)
        );
        assert_eq!(p.requests(), 5);
        assert_eq!(
            p.types["map"],
            TypeTicks {
                count: 2,
                pop: 200,
                read: 100,
                model: 1000,
                table: 400
            }
        );
        assert_eq!(parse("no profile here"), None);
    }

    #[test]
    fn per_request_and_per_notify_figures() {
        let p = parse(LOG).unwrap();
        assert_eq!(p.row("map"), Some([100.0, 50.0, 300.0, 200.0, 60.0]));
        assert_eq!(p.per_notify(), (Some(250.0), Some(100.0)));
        let md = p.markdown(Some(300.0));
        assert!(
            md.contains("| descriptor walk (avail ring, descriptors, checks) | 100 | 110 |"),
            "{md}"
        );
        assert!(
            md.contains("| **request total** | **710** | **820** |"),
            "{md}"
        );
        assert!(md.contains("(the null exit) | 300 |"), "{md}");
        assert!(
            p.json()
                .starts_with("{\"map\": {\"descriptor_walk\": 100.0,")
        );
    }

    #[test]
    fn pci_beside_mmio() {
        let mmio = parse(LOG).unwrap();
        let pci = parse(&LOG.replace("mmio 4000", "mmio 4100")).unwrap();
        let md = mmio.beside(&pci, [Some(283.0), None]);
        assert!(
            md.contains("| per notify: trap (the null exit) | 283 | n/a |"),
            "{md}"
        );
        assert!(md.contains("| per notify: transport | 250 | 275 |"), "{md}");
        assert!(md.contains("| per MAP request | 710 | 710 |"), "{md}");
        assert!(md.contains("(4 and 4 notifies)"), "{md}");
    }
}
