//! PSCI 1.1 and SMCCC 1.1 as the guest sees them: decoding a call from
//! x0-x3 and deciding its outcome from the guest's vCPU states. The caller
//! carries out the outcome (starting a vCPU, stopping the guest).

/// PSCI return codes.
pub mod ret {
    /// Success.
    pub const SUCCESS: i64 = 0;
    /// Function not supported.
    pub const NOT_SUPPORTED: i64 = -1;
    /// Invalid parameters.
    pub const INVALID_PARAMETERS: i64 = -2;
    /// The target is already on.
    pub const ALREADY_ON: i64 = -4;
    /// The target is being turned on.
    pub const ON_PENDING: i64 = -5;
    /// Bad entry address.
    pub const INVALID_ADDRESS: i64 = -9;
}

const SMCCC_VERSION: u32 = 0x8000_0000;
const SMCCC_ARCH_FEATURES: u32 = 0x8000_0001;
const PSCI_VERSION: u32 = 0x8400_0000;
const CPU_SUSPEND_32: u32 = 0x8400_0001;
const CPU_SUSPEND_64: u32 = 0xc400_0001;
const CPU_OFF: u32 = 0x8400_0002;
const CPU_ON_32: u32 = 0x8400_0003;
const CPU_ON_64: u32 = 0xc400_0003;
const AFFINITY_INFO_32: u32 = 0x8400_0004;
const AFFINITY_INFO_64: u32 = 0xc400_0004;
const MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
const SYSTEM_OFF: u32 = 0x8400_0008;
const SYSTEM_RESET: u32 = 0x8400_0009;
const PSCI_FEATURES: u32 = 0x8400_000a;

/// Functions this emulation implements (what PSCI_FEATURES reports).
const IMPLEMENTED: &[u32] = &[
    PSCI_VERSION,
    CPU_SUSPEND_32,
    CPU_SUSPEND_64,
    CPU_OFF,
    CPU_ON_32,
    CPU_ON_64,
    AFFINITY_INFO_32,
    AFFINITY_INFO_64,
    MIGRATE_INFO_TYPE,
    SYSTEM_OFF,
    SYSTEM_RESET,
    PSCI_FEATURES,
    SMCCC_VERSION,
];

/// Power state of a vCPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VcpuPower {
    /// Running.
    On,
    /// Off (never started, or CPU_OFF).
    Off,
    /// CPU_ON accepted, not yet running.
    OnPending,
}

/// What the caller must do after a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Put this value in x0 and return to the guest.
    Return(i64),
    /// Start `vcpu` at `entry` with `context` in x0; return SUCCESS.
    StartVcpu {
        /// Index of the vCPU to start.
        vcpu: usize,
        /// Guest-physical entry point.
        entry: u64,
        /// Value for the new vCPU's x0.
        context: u64,
    },
    /// Stop the calling vCPU (CPU_OFF).
    StopVcpu,
    /// Wait for an interrupt, then return SUCCESS (CPU_SUSPEND as standby).
    Suspend,
    /// The guest asked to power off.
    SystemOff,
    /// The guest asked to reset.
    SystemReset,
}

/// The guest's view the decisions need.
pub trait GuestView {
    /// Number of vCPUs (virtual MPIDR Aff0 = index).
    fn vcpus(&self) -> usize;
    /// Power state of a vCPU.
    fn power(&self, vcpu: usize) -> VcpuPower;
    /// Whether `ipa` is executable guest RAM.
    fn is_ram(&self, ipa: u64) -> bool;
}

/// vCPU index for a virtual MPIDR, if it names one.
fn vcpu_of(guest: &impl GuestView, mpidr: u64) -> Option<usize> {
    let mpidr = mpidr & 0xff_00ff_ffff;
    (mpidr < guest.vcpus() as u64).then_some(mpidr as usize)
}

/// Handles the call in `x[0..4]` (function ID in x0). 32-bit calls use only
/// the low halves of their arguments.
pub fn handle(guest: &impl GuestView, x: [u64; 4]) -> Outcome {
    let fid = x[0] as u32;
    let arg = |i: usize| {
        if fid & 0x4000_0000 == 0 {
            x[i] & 0xffff_ffff
        } else {
            x[i]
        }
    };
    match fid {
        PSCI_VERSION => Outcome::Return(0x1_0001),
        SMCCC_VERSION => Outcome::Return(0x1_0001),
        SMCCC_ARCH_FEATURES => Outcome::Return(match arg(1) as u32 {
            SMCCC_VERSION | SMCCC_ARCH_FEATURES => ret::SUCCESS,
            _ => ret::NOT_SUPPORTED,
        }),
        PSCI_FEATURES => Outcome::Return(if IMPLEMENTED.contains(&(arg(1) as u32)) {
            ret::SUCCESS
        } else {
            ret::NOT_SUPPORTED
        }),
        MIGRATE_INFO_TYPE => Outcome::Return(2), // no trusted OS to migrate
        CPU_SUSPEND_32 | CPU_SUSPEND_64 => Outcome::Suspend,
        CPU_OFF => Outcome::StopVcpu,
        CPU_ON_32 | CPU_ON_64 => {
            let Some(vcpu) = vcpu_of(guest, arg(1)) else {
                return Outcome::Return(ret::INVALID_PARAMETERS);
            };
            match guest.power(vcpu) {
                VcpuPower::On => Outcome::Return(ret::ALREADY_ON),
                VcpuPower::OnPending => Outcome::Return(ret::ON_PENDING),
                VcpuPower::Off if !guest.is_ram(arg(2)) => Outcome::Return(ret::INVALID_ADDRESS),
                VcpuPower::Off => Outcome::StartVcpu {
                    vcpu,
                    entry: arg(2),
                    context: arg(3),
                },
            }
        }
        AFFINITY_INFO_32 | AFFINITY_INFO_64 => {
            if arg(2) != 0 {
                return Outcome::Return(ret::INVALID_PARAMETERS);
            }
            match vcpu_of(guest, arg(1)) {
                None => Outcome::Return(ret::INVALID_PARAMETERS),
                Some(v) => Outcome::Return(match guest.power(v) {
                    VcpuPower::On => 0,
                    VcpuPower::Off => 1,
                    VcpuPower::OnPending => 2,
                }),
            }
        }
        SYSTEM_OFF => Outcome::SystemOff,
        SYSTEM_RESET => Outcome::SystemReset,
        _ => Outcome::Return(ret::NOT_SUPPORTED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct G([VcpuPower; 2]);
    impl GuestView for G {
        fn vcpus(&self) -> usize {
            2
        }
        fn power(&self, v: usize) -> VcpuPower {
            self.0[v]
        }
        fn is_ram(&self, ipa: u64) -> bool {
            (0x4000_0000..0x6000_0000).contains(&ipa)
        }
    }

    const G0: G = G([VcpuPower::On, VcpuPower::Off]);

    #[test]
    fn versions_and_features() {
        assert_eq!(
            handle(&G0, [PSCI_VERSION as u64, 0, 0, 0]),
            Outcome::Return(0x10001)
        );
        assert_eq!(
            handle(&G0, [SMCCC_VERSION as u64, 0, 0, 0]),
            Outcome::Return(0x10001)
        );
        assert_eq!(
            handle(&G0, [PSCI_FEATURES as u64, CPU_ON_64 as u64, 0, 0]),
            Outcome::Return(0)
        );
        assert_eq!(
            handle(&G0, [PSCI_FEATURES as u64, 0xc400_0012, 0, 0]),
            Outcome::Return(-1)
        );
        assert_eq!(
            handle(&G0, [SMCCC_ARCH_FEATURES as u64, 0x8000_8000, 0, 0]),
            Outcome::Return(-1)
        );
        assert_eq!(
            handle(&G0, [MIGRATE_INFO_TYPE as u64, 0, 0, 0]),
            Outcome::Return(2)
        );
        assert_eq!(
            handle(&G0, [0xc200_0000, 0, 0, 0]),
            Outcome::Return(-1),
            "unknown function"
        );
    }

    #[test]
    fn cpu_on_checks_target_state_and_address() {
        let on = |t: u64, e: u64| handle(&G0, [CPU_ON_64 as u64, t, e, 7]);
        assert_eq!(
            on(1, 0x4008_0000),
            Outcome::StartVcpu {
                vcpu: 1,
                entry: 0x4008_0000,
                context: 7
            }
        );
        assert_eq!(on(0, 0x4008_0000), Outcome::Return(ret::ALREADY_ON));
        assert_eq!(on(2, 0x4008_0000), Outcome::Return(ret::INVALID_PARAMETERS));
        assert_eq!(
            on(0x100, 0x4008_0000),
            Outcome::Return(ret::INVALID_PARAMETERS)
        );
        assert_eq!(on(1, 0x1000), Outcome::Return(ret::INVALID_ADDRESS));
        let pending = G([VcpuPower::On, VcpuPower::OnPending]);
        assert_eq!(
            handle(&pending, [CPU_ON_64 as u64, 1, 0x4000_0000, 0]),
            Outcome::Return(ret::ON_PENDING)
        );
        // The 32-bit call ignores the upper halves.
        assert_eq!(
            handle(
                &G0,
                [CPU_ON_32 as u64, 1 | 1 << 32, 0x4000_0000 | 1 << 40, 0]
            ),
            Outcome::StartVcpu {
                vcpu: 1,
                entry: 0x4000_0000,
                context: 0
            }
        );
    }

    #[test]
    fn affinity_info_and_power() {
        assert_eq!(
            handle(&G0, [AFFINITY_INFO_64 as u64, 0, 0, 0]),
            Outcome::Return(0)
        );
        assert_eq!(
            handle(&G0, [AFFINITY_INFO_64 as u64, 1, 0, 0]),
            Outcome::Return(1)
        );
        assert_eq!(
            handle(&G0, [AFFINITY_INFO_64 as u64, 1, 1, 0]),
            Outcome::Return(ret::INVALID_PARAMETERS)
        );
        assert_eq!(handle(&G0, [CPU_OFF as u64, 0, 0, 0]), Outcome::StopVcpu);
        assert_eq!(
            handle(&G0, [CPU_SUSPEND_64 as u64, 0, 0, 0]),
            Outcome::Suspend
        );
        assert_eq!(
            handle(&G0, [SYSTEM_OFF as u64, 0, 0, 0]),
            Outcome::SystemOff
        );
        assert_eq!(
            handle(&G0, [SYSTEM_RESET as u64, 0, 0, 0]),
            Outcome::SystemReset
        );
    }
}
