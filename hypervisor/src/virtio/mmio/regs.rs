//! The virtio-mmio version 2 register layout (virtio 1.2, 4.2.2): offsets,
//! identity values, status and interrupt bits.

/// MagicValue: "virt" little-endian.
pub const MAGIC: u32 = 0x7472_6976;
/// Version of the (non-legacy) MMIO interface.
pub const VERSION: u32 = 2;
/// VendorID: "PART" little-endian (partita). Linux matches virtio drivers
/// on the device ID with any vendor, and no driver keys quirks on it.
pub const VENDOR_ID: u32 = u32::from_le_bytes(*b"PART");
/// Bytes of the register window (registers, then configuration space).
pub const WINDOW_SIZE: u64 = 0x200;
/// Offset of the device configuration space.
pub const CONFIG_OFFSET: u64 = 0x100;

/// Status bit: the guest found the device.
pub const STATUS_ACKNOWLEDGE: u32 = 1;
/// Status bit: the guest has a driver for it.
pub const STATUS_DRIVER: u32 = 2;
/// Status bit: the driver is ready; the device may process queues.
pub const STATUS_DRIVER_OK: u32 = 4;
/// Status bit: feature negotiation is complete (the device may refuse it).
pub const STATUS_FEATURES_OK: u32 = 8;
/// Status bit, set by the device: it needs a reset.
pub const STATUS_DEVICE_NEEDS_RESET: u32 = 64;
/// Status bit: the driver gave up on the device.
pub const STATUS_FAILED: u32 = 128;
/// Status bits a driver may set (SUSPEND is not offered).
pub const STATUS_DRIVER_BITS: u32 =
    STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK | STATUS_FEATURES_OK | STATUS_FAILED;

/// InterruptStatus bit 0: used buffer notification.
pub const INT_USED_BUFFER: u32 = 1;
/// InterruptStatus bit 1: configuration change notification.
pub const INT_CONFIG_CHANGE: u32 = 2;

/// A register of the window below [`CONFIG_OFFSET`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Register {
    /// 0x000, R.
    MagicValue,
    /// 0x004, R.
    Version,
    /// 0x008, R.
    DeviceId,
    /// 0x00c, R.
    VendorId,
    /// 0x010, R: 32 feature bits chosen by DeviceFeaturesSel.
    DeviceFeatures,
    /// 0x014, W.
    DeviceFeaturesSel,
    /// 0x020, W: 32 feature bits chosen by DriverFeaturesSel.
    DriverFeatures,
    /// 0x024, W.
    DriverFeaturesSel,
    /// 0x030, W.
    QueueSel,
    /// 0x034, R (QueueSizeMax).
    QueueNumMax,
    /// 0x038, W (QueueSize).
    QueueNum,
    /// 0x044, RW.
    QueueReady,
    /// 0x050, W.
    QueueNotify,
    /// 0x060, R.
    InterruptStatus,
    /// 0x064, W.
    InterruptAck,
    /// 0x070, RW.
    Status,
    /// 0x080, W.
    QueueDescLow,
    /// 0x084, W.
    QueueDescHigh,
    /// 0x090, W.
    QueueDriverLow,
    /// 0x094, W.
    QueueDriverHigh,
    /// 0x0a0, W.
    QueueDeviceLow,
    /// 0x0a4, W.
    QueueDeviceHigh,
    /// 0x0ac, W.
    ShmSel,
    /// 0x0b0, R.
    ShmLenLow,
    /// 0x0b4, R.
    ShmLenHigh,
    /// 0x0b8, R.
    ShmBaseLow,
    /// 0x0bc, R.
    ShmBaseHigh,
    /// 0x0c0, RW.
    QueueReset,
    /// 0x0fc, R.
    ConfigGeneration,
}

/// Every register with its offset.
const TABLE: [(u64, Register); 29] = [
    (0x000, Register::MagicValue),
    (0x004, Register::Version),
    (0x008, Register::DeviceId),
    (0x00c, Register::VendorId),
    (0x010, Register::DeviceFeatures),
    (0x014, Register::DeviceFeaturesSel),
    (0x020, Register::DriverFeatures),
    (0x024, Register::DriverFeaturesSel),
    (0x030, Register::QueueSel),
    (0x034, Register::QueueNumMax),
    (0x038, Register::QueueNum),
    (0x044, Register::QueueReady),
    (0x050, Register::QueueNotify),
    (0x060, Register::InterruptStatus),
    (0x064, Register::InterruptAck),
    (0x070, Register::Status),
    (0x080, Register::QueueDescLow),
    (0x084, Register::QueueDescHigh),
    (0x090, Register::QueueDriverLow),
    (0x094, Register::QueueDriverHigh),
    (0x0a0, Register::QueueDeviceLow),
    (0x0a4, Register::QueueDeviceHigh),
    (0x0ac, Register::ShmSel),
    (0x0b0, Register::ShmLenLow),
    (0x0b4, Register::ShmLenHigh),
    (0x0b8, Register::ShmBaseLow),
    (0x0bc, Register::ShmBaseHigh),
    (0x0c0, Register::QueueReset),
    (0x0fc, Register::ConfigGeneration),
];

/// [`TABLE`] indexed by 32-bit word of the register area (offsets below
/// 0x100), built at compile time: one load per decode on the trap path.
const BY_WORD: [Option<Register>; 64] = {
    let mut words = [None; 64];
    let mut i = 0;
    while i < TABLE.len() {
        words[(TABLE[i].0 / 4) as usize] = Some(TABLE[i].1);
        i += 1;
    }
    words
};

impl Register {
    /// The register at `offset`, if any (legacy-only offsets such as
    /// GuestPageSize 0x028 and QueuePFN 0x040 are not registers here, nor
    /// is an offset that is not a multiple of 4).
    pub fn from_offset(offset: u64) -> Option<Self> {
        if !offset.is_multiple_of(4) {
            return None;
        }
        BY_WORD.get((offset / 4) as usize).copied().flatten()
    }

    /// The register's offset in the window.
    pub fn offset(self) -> u64 {
        TABLE
            .iter()
            .find(|&&(_, r)| r == self)
            .map_or(0, |&(off, _)| off)
    }
}
