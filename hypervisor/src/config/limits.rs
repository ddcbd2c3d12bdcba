//! The bounds a configuration must stay within, checked by
//! [`super::check_guests`] on the host and again in the hypervisor.
//! `guest-configs/README.md` documents them for users.

/// Most guests one configuration (and one bundle) may hold.
pub const MAX_GUESTS: usize = 8;

/// Longest guest name, in bytes. Names use `[A-Za-z0-9._-]`.
pub const MAX_NAME_LEN: usize = 32;

/// Most physical CPUs one guest may own.
pub const MAX_CPUS_PER_GUEST: usize = 64;

/// Granule of guest RAM: size and base must be multiples of it (one
/// stage-2 level-2 block).
pub const MEMORY_ALIGN: u64 = 2 << 20;

/// Smallest guest RAM.
pub const MIN_MEMORY: u64 = 16 << 20;

/// Guest RAM must end at or below this guest-physical address (1 TiB, a
/// 40-bit IPA space, which every stage-2 configuration the hypervisor uses
/// can map).
pub const MAX_GUEST_PHYS: u64 = 1 << 40;

/// Default guest-physical base of guest RAM (where QEMU `virt` puts RAM).
pub const DEFAULT_MEMORY_BASE: u64 = 0x4000_0000;

/// Longest kernel command line, in bytes: Linux arm64's
/// `COMMAND_LINE_SIZE` (2048) less the terminating NUL.
pub const MAX_CMDLINE_LEN: usize = 2047;

/// Most devices one guest may list.
pub const MAX_DEVICES_PER_GUEST: usize = 32;

/// Longest device path, in bytes.
pub const MAX_DEVICE_PATH_LEN: usize = 256;
