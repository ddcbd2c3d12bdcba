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

/// Most single PCI functions (`pci = [...]`) per guest: the guest's virtual
/// bus (`pci::vbus`) has 32 device slots, one of which is kept for a
/// function the hypervisor emulates (the virtio-iommu on virtio-pci).
pub const MAX_PCI_PER_GUEST: usize = 31;

/// Default budget of a guest's IO page tables (`[guest.limits]
/// io_table_memory`): 8 MiB, 2 048 table pages.
pub const DEFAULT_IO_TABLE_MEMORY: u64 = 8 << 20;

/// Smallest IO page-table budget: one domain's root (two pages) and one
/// table per level below it.
pub const MIN_IO_TABLE_MEMORY: u64 = 16 << 10;

/// Largest IO page-table budget (1 GiB).
pub const MAX_IO_TABLE_MEMORY: u64 = 1 << 30;

/// Default bound on a guest's virtio-iommu mappings (`[guest.limits]
/// io_mappings`).
pub const DEFAULT_IO_MAPPINGS: u32 = 1 << 16;

/// Largest `io_mappings`.
pub const MAX_IO_MAPPINGS: u32 = 1 << 20;

/// Default guest-physical base of a guest's virtio-iommu window (a free
/// 4 KiB page on QEMU `virt`, between its virtio-mmio transports at
/// 0x0a00_0000 and its platform bus at 0x0c00_0000).
pub const DEFAULT_VIOMMU_BASE: u64 = 0x0b00_0000;

/// Default SPI of a guest's virtio-iommu (GIC INTID 128), free on QEMU
/// `virt`.
pub const DEFAULT_VIOMMU_SPI: u32 = 96;

/// Size of the virtio-mmio register window of a virtio-iommu (registers
/// up to 0x0ff, device config from 0x100).
pub const VIOMMU_MMIO_SIZE: u64 = virtio_defs::mmio::WINDOW_SIZE;

/// The page that holds a virtio-iommu window: its base must be aligned to
/// it, and nothing else of the guest may lie in it (the page is left
/// unmapped in stage 2 so that every access traps).
pub const VIOMMU_PAGE: u64 = 0x1000;

/// Default `[guest.limits] domains`: virtio-iommu domains one guest may
/// hold at once (a Linux guest uses one per IOMMU group, plus its identity
/// domain).
pub const DEFAULT_VIOMMU_DOMAINS: u32 = 32;

/// Largest `[guest.limits] domains`: the size of the device's domain range
/// (1 to 1023), beyond which more domains cannot be named.
pub const MAX_VIOMMU_DOMAINS: u32 = 1023;

/// Hypervisor heap one virtio-iommu mapping may hold: the model's entry in
/// its domain's interval set (`viommu::model::intervals`): up to 128
/// mappings a sorted ring of 32-byte entries at most three times as long as
/// its contents (96 bytes), beyond that a B-tree whose nodes may be half
/// full, with its share of the inner nodes (about 90 bytes at worst; the
/// host test `vm::tests::io_budget::heap_per_mapping_is_within_its_allowance`
/// measures it).
pub const HEAP_PER_IO_MAPPING: u64 = 128;

/// Hypervisor heap one virtio-iommu domain may hold besides its page
/// tables and its mappings' share: the model's and the backend's records
/// of it (under 1 KiB) and the room its mapping ring keeps once grown
/// (`viommu::model::intervals::MIN_CAPACITY` entries of 32 bytes, 2 KiB;
/// the host test
/// `vm::tests::io_budget::heap_per_domain_is_within_its_allowance`
/// measures both).
pub const HEAP_PER_DOMAIN: u64 = 3 << 10;

/// Hypervisor heap a virtio-iommu holds at run time whatever the guest
/// does: request and batch buffers, fault queue, invalidation batch.
pub const HEAP_PER_VIOMMU: u64 = 64 << 10;

/// Heap kept for the hypervisor itself (its SMMU tables, the guests'
/// construction) beyond what the guests' limits commit.
pub const HEAP_RESERVE: u64 = 16 << 20;

/// Highest SPI number a virtio-iommu may use when the host GIC's own count
/// is not known (the architectural maximum, INTID 1019).
pub const MAX_VIOMMU_SPI: u32 = crate::fdt::MAX_SPI;
