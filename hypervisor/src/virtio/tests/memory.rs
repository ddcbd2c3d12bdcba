//! [`VecMemory`] and the range checks every [`GuestMemory`] must make.

use crate::virtio::memory::{GuestMemory, MemError, VecMemory, check_in_region};

const BASE: u64 = 0x1000;

#[test]
fn read_write_round_trip_little_endian() {
    let m = VecMemory::new(BASE, 64);
    m.write_u64(BASE, 0x0102_0304_0506_0708).unwrap();
    let mut b = [0u8; 8];
    m.read(BASE, &mut b).unwrap();
    assert_eq!(b, [8, 7, 6, 5, 4, 3, 2, 1]);
    assert_eq!(m.read_u16(BASE).unwrap(), 0x0708);
    assert_eq!(m.read_u32(BASE + 4).unwrap(), 0x0102_0304);
    m.write_u16(BASE + 62, 0xbeef).unwrap();
    assert_eq!(m.read_u16(BASE + 62).unwrap(), 0xbeef);
    m.write_u32(BASE + 60, 7).unwrap();
    assert_eq!(m.read_u64(BASE + 56).unwrap() >> 32, 7);
    assert_eq!(m.write_log().len(), 3);
}

#[test]
fn ranges_outside_ram_are_refused() {
    let m = VecMemory::new(BASE, 64);
    let mut b = [0u8; 4];
    assert!(matches!(
        m.read(BASE - 1, &mut b),
        Err(MemError::OutOfRange { .. })
    ));
    assert!(matches!(
        m.read(BASE + 61, &mut b),
        Err(MemError::OutOfRange { .. })
    ));
    assert!(matches!(
        m.read(0, &mut b),
        Err(MemError::OutOfRange { .. })
    ));
    assert!(m.write(BASE + 64, &[1]).is_err());
    assert!(m.write_u64(BASE + 57, 0).is_err());
    assert_eq!(m.refused_writes(), 2);
    assert!(m.write_log().is_empty());
    // A refused write leaves memory alone.
    assert_eq!(m.read_u64(BASE + 56).unwrap(), 0);
}

#[test]
fn wrapping_ranges_are_refused() {
    let m = VecMemory::new(BASE, 64);
    let mut b = [0u8; 16];
    assert_eq!(
        m.read(u64::MAX - 3, &mut b),
        Err(MemError::Wraps {
            gpa: u64::MAX - 3,
            len: 16
        })
    );
    assert!(matches!(
        m.check(BASE, u64::MAX),
        Err(MemError::Wraps { .. })
    ));
    // A region at the very top of the address space does not wrap either.
    assert!(check_in_region(u64::MAX - 15, 16, u64::MAX - 15, 16).is_err());
    assert!(check_in_region(u64::MAX - 15, 15, u64::MAX - 15, 15).is_ok());
}

#[test]
fn empty_and_edge_ranges() {
    let m = VecMemory::new(BASE, 64);
    assert!(m.check(BASE, 64).is_ok());
    assert!(m.check(BASE + 64, 0).is_ok());
    assert!(m.check(BASE + 65, 0).is_err());
    assert!(m.check(BASE, 65).is_err());
    m.read(BASE + 64, &mut []).unwrap();
    m.clear_log();
    assert_eq!(m.refused_writes(), 0);
}
