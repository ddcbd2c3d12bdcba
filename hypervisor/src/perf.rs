//! Cycle accounting for the hot paths, compiled in with the `profile`
//! feature (the benchmark builds a second image with it to split where a
//! request's EL2 instructions go). Without the feature [`now`] is the
//! constant 0 and every measurement folds away, so the shipped image pays
//! nothing for it.

/// Whether this image measures its hot paths.
pub const ENABLED: bool = cfg!(all(
    feature = "profile",
    target_arch = "aarch64",
    target_os = "none"
));

/// A timestamp in system counter ticks (CNTPCT_EL0; under QEMU's
/// `-icount shift=0` one tick is one executed instruction), or 0 when
/// [`ENABLED`] is false.
#[inline(always)]
pub fn now() -> u64 {
    #[cfg(all(feature = "profile", target_arch = "aarch64", target_os = "none"))]
    {
        crate::arch::aarch64::cpu::counter_ticks()
    }
    #[cfg(not(all(feature = "profile", target_arch = "aarch64", target_os = "none")))]
    {
        0
    }
}
