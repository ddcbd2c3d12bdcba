//! Host tests of the SMMUv3 driver against [`fake::FakeSmmu`], a small
//! model of the hardware (registers, memory, command consumption, event
//! production), and of the encodings against the bit positions of the
//! Linux header (`arm-smmu-v3.h`) and `smmuv3.md`; and of the manager
//! over two fakes (`manager*.rs`).

mod attach;
mod cmd;
mod errors;
mod events;
pub(crate) mod fake;
pub(crate) mod heapcount;
pub(crate) mod logcapture;
mod manager;
mod manager_devices;
mod manager_faults;
mod probe;
mod queue;
mod ranges;
mod ste;
mod streams;
mod streamtable;

use fake::{FakeSmmu, PHYS_BASE};

use crate::smmu::Smmu;
use crate::smmu::driver::ProbeOptions;
use crate::smmu::ste::S2Config;

/// The driver over the fake (registers, memory and caches all in one).
type TestSmmu = Smmu<FakeSmmu, FakeSmmu, FakeSmmu>;

/// Probes `fake` with the default options.
fn probe(fake: &FakeSmmu) -> TestSmmu {
    try_probe(fake, ProbeOptions::DEFAULT).expect("probe")
}

fn try_probe(fake: &FakeSmmu, opts: ProbeOptions) -> Result<TestSmmu, crate::smmu::SmmuError> {
    let features = fake.features();
    Smmu::probe_with(fake.clone(), fake.clone(), fake.clone(), &features, opts)
}

/// A valid stage-2 configuration: 40-bit IPA from level 1 (two
/// concatenated root pages), 44-bit output.
fn s2(vmid: u16) -> S2Config {
    S2Config {
        vmid,
        t0sz: 24,
        sl0: 1,
        ps: 4,
        root: PHYS_BASE + 0x80_0000 + u64::from(vmid) * 0x2000,
    }
}
