//! A guest's RAM as the devices reach it: every access inside the region
//! or refused, whatever the address (below the base, across the end,
//! wrapping past 2^64), and the fields the split ring uses at their usual
//! alignments.

use super::*;
use crate::virtio::memory::{GuestMemory, MemError};

#[test]
fn every_range_outside_the_region_is_refused() {
    let ram = ram();
    let end = RAM_BASE + RAM_SIZE;
    // Inside, up to the last byte; a zero-length range at the end.
    assert_eq!(ram.check(RAM_BASE, RAM_SIZE), Ok(()));
    assert_eq!(ram.check(end - 8, 8), Ok(()));
    assert_eq!(ram.check(end, 0), Ok(()));
    assert!(ram.read_u64(end - 8).is_ok());
    // Below the base, across either end, past the end, longer than RAM.
    for (gpa, len) in [
        (RAM_BASE - 1, 1),
        (RAM_BASE - 8, 16),
        (end - 4, 8),
        (end, 1),
        (end + 0x1000, 0),
        (RAM_BASE, RAM_SIZE + 1),
        (0, 8),
        (u64::MAX - 15, 8),
    ] {
        assert_eq!(
            ram.check(gpa, len),
            Err(MemError::OutOfRange { gpa, len }),
            "{gpa:#x}+{len}"
        );
    }
    // Wrapping past 2^64 says so.
    assert_eq!(
        ram.check(u64::MAX - 3, 8),
        Err(MemError::Wraps {
            gpa: u64::MAX - 3,
            len: 8
        })
    );
    assert_eq!(
        ram.read_u64(end - 4),
        Err(MemError::OutOfRange {
            gpa: end - 4,
            len: 8
        })
    );
    assert!(ram.write_u32(RAM_BASE - 2, 0).is_err());
    let mut buf = [0u8; 40];
    assert!(ram.read(end - 39, &mut buf).is_err());
    assert!(ram.write(RAM_BASE - 1, &buf).is_err());
}

#[test]
fn fields_round_trip_at_every_alignment() {
    let ram = ram();
    for misalign in 0..8 {
        let gpa = RAM_BASE + 0x100 + misalign;
        ram.write_u64(gpa, 0x0102_0304_0506_0708).unwrap();
        assert_eq!(ram.read_u64(gpa), Ok(0x0102_0304_0506_0708), "+{misalign}");
        let mut bytes = [0u8; 8];
        ram.read(gpa, &mut bytes).unwrap();
        assert_eq!(bytes, 0x0102_0304_0506_0708u64.to_le_bytes());
    }
    // A request copied out: aligned doublewords plus a tail, and unaligned.
    let req: Vec<u8> = (1..=37).collect();
    for gpa in [RAM_BASE + 0x200, RAM_BASE + 0x301] {
        ram.write(gpa, &req).unwrap();
        let mut out = [0u64; 5];
        // SAFETY: 40 bytes of a u64 array viewed as bytes.
        let bytes = unsafe { core::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u8>(), 37) };
        ram.read(gpa, bytes).unwrap();
        assert_eq!(bytes, &req[..]);
    }
}

#[test]
fn a_descriptor_pair_is_one_range_inside_the_region() {
    let ram = ram();
    let end = RAM_BASE + RAM_SIZE;
    // The last 16 bytes: read; 8 bytes short of the end, or below the
    // base, or wrapping: refused as one 16-byte range.
    ram.write_u64(end - 16, 1).unwrap();
    ram.write_u64(end - 8, 2).unwrap();
    assert_eq!(ram.read_u64_pair(end - 16), Ok((1, 2)));
    for gpa in [end - 8, end, RAM_BASE - 8, u64::MAX - 7] {
        assert!(ram.read_u64_pair(gpa).is_err(), "{gpa:#x}");
    }
    // Misaligned: the same two words.
    for misalign in 0..16 {
        let gpa = RAM_BASE + 0x400 + misalign;
        ram.write_u64(gpa, 0x1111_2222_3333_4444).unwrap();
        ram.write_u64(gpa + 8, 0x5555_6666_7777_8888).unwrap();
        assert_eq!(
            ram.read_u64_pair(gpa),
            Ok((0x1111_2222_3333_4444, 0x5555_6666_7777_8888)),
            "+{misalign}"
        );
    }
}

#[test]
fn requests_of_every_length_are_copied_whole() {
    let ram = ram();
    let src: Vec<u8> = (1..=130).collect();
    for gpa in [RAM_BASE + 0x800, RAM_BASE + 0x903] {
        ram.write(gpa, &src).unwrap();
        for n in 0..=130 {
            let mut out = [0u64; 17];
            // SAFETY: `n <= 136` bytes of a u64 array viewed as bytes.
            let bytes =
                unsafe { core::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u8>(), n) };
            ram.read(gpa, bytes).unwrap();
            assert_eq!(bytes, &src[..n], "{gpa:#x}+{n}");
            // Nothing past the copy.
            // SAFETY: the whole array as bytes.
            let all = unsafe { core::slice::from_raw_parts(out.as_ptr().cast::<u8>(), 136) };
            assert!(all[n..].iter().all(|&b| b == 0), "{gpa:#x}+{n}");
        }
    }
}
