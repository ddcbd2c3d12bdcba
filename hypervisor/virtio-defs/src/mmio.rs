//! The virtio-mmio version 2 register window (virtio 1.2, 4.2.2): register
//! offsets (as constants in [`offset`] and as the [`Register`] enum), the
//! identity values, device status bits (2.1) and interrupt status bits.
//!
//! Every register is 32 bits wide; 64-bit quantities are split into a
//! `Low` register and a `High` one 4 bytes above it. The device
//! configuration space starts at [`offset::CONFIG`].

/// MagicValue: "virt" little-endian.
pub const MAGIC: u32 = 0x7472_6976;
/// Version of the (non-legacy) MMIO interface.
pub const VERSION: u32 = 2;
/// Bytes of the register window (registers, then configuration space), as
/// partita and QEMU's `virt` lay their virtio-mmio transports out.
pub const WINDOW_SIZE: u64 = 0x200;

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

/// InterruptStatus bit 0: used buffer notification.
pub const INT_USED_BUFFER: u32 = 1;
/// InterruptStatus bit 1: configuration change notification.
pub const INT_CONFIG_CHANGE: u32 = 2;

/// Byte offsets of the registers in the window, named as in the
/// specification (R: the driver reads it, W: the driver writes it).
pub mod offset {
    /// MagicValue, R: [`super::MAGIC`].
    pub const MAGIC_VALUE: u64 = 0x000;
    /// Version, R: [`super::VERSION`].
    pub const VERSION: u64 = 0x004;
    /// DeviceID, R: the virtio device type (0: no device).
    pub const DEVICE_ID: u64 = 0x008;
    /// VendorID, R.
    pub const VENDOR_ID: u64 = 0x00c;
    /// DeviceFeatures, R: 32 feature bits chosen by DeviceFeaturesSel.
    pub const DEVICE_FEATURES: u64 = 0x010;
    /// DeviceFeaturesSel, W: which 32 bits DeviceFeatures shows.
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    /// DriverFeatures, W: 32 feature bits chosen by DriverFeaturesSel.
    pub const DRIVER_FEATURES: u64 = 0x020;
    /// DriverFeaturesSel, W: which 32 bits DriverFeatures sets.
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    /// QueueSel, W: the queue the Queue* registers refer to.
    pub const QUEUE_SEL: u64 = 0x030;
    /// QueueNumMax (QueueSizeMax), R.
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    /// QueueNum (QueueSize), W.
    pub const QUEUE_NUM: u64 = 0x038;
    /// QueueReady, RW.
    pub const QUEUE_READY: u64 = 0x044;
    /// QueueNotify, W: the index of the queue with new buffers.
    pub const QUEUE_NOTIFY: u64 = 0x050;
    /// InterruptStatus, R.
    pub const INTERRUPT_STATUS: u64 = 0x060;
    /// InterruptAck, W.
    pub const INTERRUPT_ACK: u64 = 0x064;
    /// Status, RW: device status; writing 0 resets the device.
    pub const STATUS: u64 = 0x070;
    /// QueueDescLow, W (QueueDescHigh is 4 bytes above).
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    /// QueueDescHigh, W.
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    /// QueueDriverLow (the available ring), W.
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    /// QueueDriverHigh, W.
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    /// QueueDeviceLow (the used ring), W.
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    /// QueueDeviceHigh, W.
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    /// SHMSel, W.
    pub const SHM_SEL: u64 = 0x0ac;
    /// SHMLenLow, R.
    pub const SHM_LEN_LOW: u64 = 0x0b0;
    /// SHMLenHigh, R.
    pub const SHM_LEN_HIGH: u64 = 0x0b4;
    /// SHMBaseLow, R.
    pub const SHM_BASE_LOW: u64 = 0x0b8;
    /// SHMBaseHigh, R.
    pub const SHM_BASE_HIGH: u64 = 0x0bc;
    /// QueueReset, RW.
    pub const QUEUE_RESET: u64 = 0x0c0;
    /// ConfigGeneration, R.
    pub const CONFIG_GENERATION: u64 = 0x0fc;
    /// Start of the device configuration space (to the end of the window).
    pub const CONFIG: u64 = 0x100;
}

/// A register of the window below [`offset::CONFIG`].
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

/// [`Register::ALL`] indexed by 32-bit word of the register area (offsets
/// below [`offset::CONFIG`]), built at compile time: one load per decode on
/// the trap path.
const BY_WORD: [Option<Register>; (offset::CONFIG / 4) as usize] = {
    let mut words = [None; (offset::CONFIG / 4) as usize];
    let mut i = 0;
    while i < Register::ALL.len() {
        let reg = Register::ALL[i];
        words[(reg.offset() / 4) as usize] = Some(reg);
        i += 1;
    }
    words
};

impl Register {
    /// Every register, in offset order.
    pub const ALL: [Register; 29] = [
        Register::MagicValue,
        Register::Version,
        Register::DeviceId,
        Register::VendorId,
        Register::DeviceFeatures,
        Register::DeviceFeaturesSel,
        Register::DriverFeatures,
        Register::DriverFeaturesSel,
        Register::QueueSel,
        Register::QueueNumMax,
        Register::QueueNum,
        Register::QueueReady,
        Register::QueueNotify,
        Register::InterruptStatus,
        Register::InterruptAck,
        Register::Status,
        Register::QueueDescLow,
        Register::QueueDescHigh,
        Register::QueueDriverLow,
        Register::QueueDriverHigh,
        Register::QueueDeviceLow,
        Register::QueueDeviceHigh,
        Register::ShmSel,
        Register::ShmLenLow,
        Register::ShmLenHigh,
        Register::ShmBaseLow,
        Register::ShmBaseHigh,
        Register::QueueReset,
        Register::ConfigGeneration,
    ];

    /// The register at `offset`, if any (legacy-only offsets such as
    /// GuestPageSize 0x028 and QueuePFN 0x040 are not registers here, nor
    /// is an offset that is not a multiple of 4).
    #[inline]
    pub fn from_offset(offset: u64) -> Option<Self> {
        if !offset.is_multiple_of(4) {
            return None;
        }
        BY_WORD.get((offset / 4) as usize).copied().flatten()
    }

    /// The register's offset in the window.
    #[inline]
    pub const fn offset(self) -> u64 {
        match self {
            Register::MagicValue => offset::MAGIC_VALUE,
            Register::Version => offset::VERSION,
            Register::DeviceId => offset::DEVICE_ID,
            Register::VendorId => offset::VENDOR_ID,
            Register::DeviceFeatures => offset::DEVICE_FEATURES,
            Register::DeviceFeaturesSel => offset::DEVICE_FEATURES_SEL,
            Register::DriverFeatures => offset::DRIVER_FEATURES,
            Register::DriverFeaturesSel => offset::DRIVER_FEATURES_SEL,
            Register::QueueSel => offset::QUEUE_SEL,
            Register::QueueNumMax => offset::QUEUE_NUM_MAX,
            Register::QueueNum => offset::QUEUE_NUM,
            Register::QueueReady => offset::QUEUE_READY,
            Register::QueueNotify => offset::QUEUE_NOTIFY,
            Register::InterruptStatus => offset::INTERRUPT_STATUS,
            Register::InterruptAck => offset::INTERRUPT_ACK,
            Register::Status => offset::STATUS,
            Register::QueueDescLow => offset::QUEUE_DESC_LOW,
            Register::QueueDescHigh => offset::QUEUE_DESC_HIGH,
            Register::QueueDriverLow => offset::QUEUE_DRIVER_LOW,
            Register::QueueDriverHigh => offset::QUEUE_DRIVER_HIGH,
            Register::QueueDeviceLow => offset::QUEUE_DEVICE_LOW,
            Register::QueueDeviceHigh => offset::QUEUE_DEVICE_HIGH,
            Register::ShmSel => offset::SHM_SEL,
            Register::ShmLenLow => offset::SHM_LEN_LOW,
            Register::ShmLenHigh => offset::SHM_LEN_HIGH,
            Register::ShmBaseLow => offset::SHM_BASE_LOW,
            Register::ShmBaseHigh => offset::SHM_BASE_HIGH,
            Register::QueueReset => offset::QUEUE_RESET,
            Register::ConfigGeneration => offset::CONFIG_GENERATION,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Register, offset};

    #[test]
    fn every_register_round_trips_through_its_offset() {
        for reg in Register::ALL {
            assert_eq!(Register::from_offset(reg.offset()), Some(reg), "{reg:?}");
        }
    }

    #[test]
    fn all_is_in_strictly_increasing_offset_order_below_the_config_space() {
        for pair in Register::ALL.windows(2) {
            assert!(pair[0].offset() < pair[1].offset(), "{pair:?}");
        }
        let last = Register::ALL[Register::ALL.len() - 1];
        assert!(last.offset() < offset::CONFIG);
    }

    #[test]
    fn only_register_offsets_decode() {
        let mut found = 0;
        for off in 0..offset::CONFIG + 0x40 {
            match Register::from_offset(off) {
                Some(reg) => {
                    assert_eq!(reg.offset(), off);
                    found += 1;
                }
                None => assert!(
                    Register::ALL.iter().all(|r| r.offset() != off),
                    "{off:#x} is a register offset"
                ),
            }
        }
        assert_eq!(found, Register::ALL.len());
        // Legacy-only registers, unaligned offsets, the config space and
        // offsets far out of the window are not registers.
        for off in [0x028, 0x040, 0x002, 0x051, offset::CONFIG, 0x1fc, u64::MAX] {
            assert_eq!(Register::from_offset(off), None, "{off:#x}");
        }
        assert_eq!(Register::from_offset(u64::MAX - 3), None);
    }

    #[test]
    fn offsets_match_the_specification() {
        // virtio 1.2, 4.2.2: a few anchors, spelled out independently.
        let expected = [
            (Register::MagicValue, 0x000),
            (Register::DeviceId, 0x008),
            (Register::DriverFeaturesSel, 0x024),
            (Register::QueueNotify, 0x050),
            (Register::Status, 0x070),
            (Register::QueueDescHigh, 0x084),
            (Register::QueueDeviceLow, 0x0a0),
            (Register::ShmSel, 0x0ac),
            (Register::QueueReset, 0x0c0),
            (Register::ConfigGeneration, 0x0fc),
        ];
        for (reg, off) in expected {
            assert_eq!(reg.offset(), off, "{reg:?}");
        }
        assert_eq!(offset::CONFIG, 0x100);
    }

    #[test]
    fn low_and_high_halves_are_four_bytes_apart() {
        for (low, high) in [
            (Register::QueueDescLow, Register::QueueDescHigh),
            (Register::QueueDriverLow, Register::QueueDriverHigh),
            (Register::QueueDeviceLow, Register::QueueDeviceHigh),
            (Register::ShmLenLow, Register::ShmLenHigh),
            (Register::ShmBaseLow, Register::ShmBaseHigh),
        ] {
            assert_eq!(low.offset() + 4, high.offset(), "{low:?}");
        }
    }
}
