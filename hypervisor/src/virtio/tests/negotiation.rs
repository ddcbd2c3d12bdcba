//! Identity registers, the offered features and the FEATURES_OK handshake.

use super::fake::{ECHO_F_UPPER, ECHO_ID, ECHO_QMAX, Echo, Guest};
use crate::virtio::features::*;
use crate::virtio::mmio::regs::*;

#[test]
fn identity_registers() {
    let mut g = Guest::new();
    assert_eq!(g.rd(Register::MagicValue), 0x7472_6976);
    assert_eq!(g.rd(Register::Version), 2);
    assert_eq!(g.rd(Register::DeviceId), ECHO_ID);
    assert_eq!(g.rd(Register::VendorId), 0x5452_4150);
    assert_eq!(g.rd(Register::Status), 0);
    assert_eq!(g.rd(Register::InterruptStatus), 0);
    assert_eq!(g.rd(Register::ConfigGeneration), 0);
    // Queues: two of ECHO_QMAX, none beyond.
    for (q, max) in [(0, ECHO_QMAX), (1, ECHO_QMAX), (2, 0), (u32::MAX, 0)] {
        g.wr(Register::QueueSel, q);
        assert_eq!(g.rd(Register::QueueNumMax), u32::from(max));
        assert_eq!(g.rd(Register::QueueReady), 0);
        assert_eq!(g.rd(Register::QueueReset), 0);
    }
    // No shared memory regions: length and base read as all ones.
    for reg in [
        Register::ShmLenLow,
        Register::ShmLenHigh,
        Register::ShmBaseLow,
        Register::ShmBaseHigh,
    ] {
        assert_eq!(g.rd(reg), u32::MAX);
    }
    // Write-only registers read as 0; read-only ones ignore writes.
    g.wr(Register::QueueSel, 1);
    g.wr(Register::QueueNum, 4);
    for reg in [
        Register::QueueSel,
        Register::QueueNum,
        Register::QueueDescLow,
    ] {
        assert_eq!(g.rd(reg), 0);
    }
    g.wr(Register::MagicValue, 0);
    g.wr(Register::DeviceId, 0);
    g.wr(Register::InterruptStatus, 3);
    assert_eq!(g.rd(Register::MagicValue), 0x7472_6976);
    assert_eq!(g.rd(Register::DeviceId), ECHO_ID);
    assert_eq!(g.rd(Register::InterruptStatus), 0);
}

#[test]
fn register_offsets_match_the_specification() {
    let expected = [
        (Register::MagicValue, 0x000),
        (Register::DeviceFeaturesSel, 0x014),
        (Register::DriverFeatures, 0x020),
        (Register::QueueNumMax, 0x034),
        (Register::QueueReady, 0x044),
        (Register::QueueNotify, 0x050),
        (Register::InterruptAck, 0x064),
        (Register::Status, 0x070),
        (Register::QueueDriverHigh, 0x094),
        (Register::QueueDeviceLow, 0x0a0),
        (Register::QueueReset, 0x0c0),
        (Register::ConfigGeneration, 0x0fc),
    ];
    for (reg, off) in expected {
        assert_eq!(reg.offset(), off);
        assert_eq!(Register::from_offset(off), Some(reg));
    }
    assert_eq!(Register::from_offset(0x100), None);
    assert_eq!(Register::from_offset(0x002), None);
}

#[test]
fn offered_features_filter_the_device_bits() {
    let echo = Echo {
        extra_features: F_INDIRECT_DESC
            | F_EVENT_IDX
            | F_RING_PACKED
            | F_ACCESS_PLATFORM
            | (1 << 38)
            | (1 << 23)
            | (1 << 63),
        ..Echo::default()
    };
    let mut g = Guest::with(echo);
    g.wr(Register::DeviceFeaturesSel, 0);
    let low = g.rd(Register::DeviceFeatures);
    g.wr(Register::DeviceFeaturesSel, 1);
    let high = g.rd(Register::DeviceFeatures);
    g.wr(Register::DeviceFeaturesSel, 2);
    assert_eq!(g.rd(Register::DeviceFeatures), 0);
    let offered = u64::from(low) | (u64::from(high) << 32);
    assert_eq!(
        offered,
        ECHO_F_UPPER | (1 << 23) | (1 << 63) | F_VERSION_1 | F_ACCESS_PLATFORM | F_RING_RESET
    );
    assert_eq!(g.t.offered_features(), offered);
}

#[test]
fn features_ok_accepted_for_an_offered_subset() {
    let mut g = Guest::new();
    assert!(g.negotiate(F_VERSION_1 | ECHO_F_UPPER));
    assert_eq!(g.t.driver_features(), F_VERSION_1 | ECHO_F_UPPER);
    // Features are frozen once FEATURES_OK is set.
    g.wr(Register::DriverFeaturesSel, 0);
    g.wr(Register::DriverFeatures, 0);
    assert_eq!(g.t.driver_features(), F_VERSION_1 | ECHO_F_UPPER);
    assert!(g.t.device().activated.is_none());
    g.add_status(STATUS_DRIVER_OK);
    assert_eq!(g.t.device().activated, Some(F_VERSION_1 | ECHO_F_UPPER));
    assert_eq!(
        g.rd(Register::Status),
        STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK
    );
}

#[test]
fn features_ok_refused() {
    let mut g = Guest::new();
    // Without VERSION_1 (a legacy driver).
    assert!(!g.negotiate(ECHO_F_UPPER));
    // With a feature not offered.
    assert!(!g.negotiate(F_VERSION_1 | F_EVENT_IDX));
    assert!(!g.negotiate(F_VERSION_1 | (1 << 5)));
    // A selector beyond 1 writes nothing.
    g.wr(Register::Status, 0);
    g.wr(Register::DriverFeaturesSel, 2);
    g.wr(Register::DriverFeatures, u32::MAX);
    assert_eq!(g.t.driver_features(), 0);
    // DRIVER_OK without FEATURES_OK is refused as well.
    assert!(!g.negotiate(0));
    g.add_status(STATUS_DRIVER_OK);
    assert_eq!(g.rd(Register::Status) & STATUS_DRIVER_OK, 0);
    assert!(g.t.device().activated.is_none());
    // The driver may retry after a reset.
    assert!(g.negotiate(F_VERSION_1));
}

#[test]
fn status_bits_cannot_be_cleared_or_forged() {
    let mut g = Guest::new();
    assert!(g.negotiate(F_VERSION_1));
    g.wr(Register::Status, STATUS_ACKNOWLEDGE);
    assert_eq!(
        g.rd(Register::Status),
        STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK
    );
    // DEVICE_NEEDS_RESET and undefined bits are the device's.
    g.wr(
        Register::Status,
        STATUS_DEVICE_NEEDS_RESET | 0x30 | 0xffff_ff00,
    );
    assert_eq!(
        g.rd(Register::Status),
        STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK
    );
    g.add_status(STATUS_FAILED);
    assert!(g.rd(Register::Status) & STATUS_FAILED != 0);
}

#[test]
fn reset_renegotiates_the_same_features() {
    let mut g = Guest::new();
    g.init(ECHO_F_UPPER);
    assert_eq!(g.t.device().resets, 1);
    g.wr(Register::Status, 0);
    assert_eq!(g.t.device().resets, 2);
    assert!(g.negotiate(F_VERSION_1 | F_RING_RESET | ECHO_F_UPPER));
}
