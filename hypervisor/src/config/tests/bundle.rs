//! The bundle format: round trip and every kind of corruption.

use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;

use super::linux;
use crate::config::bundle::{ENTRY_LEN, HEADER_LEN, MAGIC, PART_LEN, VERSION};
use crate::config::crc32::crc32;
use crate::config::{Bundle, BundleError, GuestConfig, GuestRef, Part, ResetAction};

const KERNEL: &[u8] = b"kernel image bytes, not a multiple of eight";
const INITRD: &[u8] = b"initrd";

fn second() -> GuestConfig {
    let mut g = GuestConfig::new("rtos", &[2], 16 << 20);
    g.on_reset = ResetAction::PowerOff;
    g.memory_base = 0x8000_0000;
    g.devices = vec!["/virtio_mmio@a000000".to_string()];
    g.allow_untranslated_dma = vec!["/virtio_mmio@a000000".to_string()];
    g
}

/// Two guests: "linux" with an initrd, "rtos" without.
fn sample() -> Vec<u8> {
    let kernel2 = vec![0xa5u8; 1000];
    Bundle::encode(&[(linux(), KERNEL, Some(INITRD)), (second(), &kernel2, None)]).unwrap()
}

/// Offset and length of a part of guest `guest`, from the entry table.
fn part(bytes: &[u8], guest: usize, part: usize) -> (usize, usize) {
    let at = HEADER_LEN + guest * ENTRY_LEN + part * PART_LEN;
    let offset = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    let len = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().unwrap()) as usize;
    (offset, len)
}

/// Rewrites the header checksum after a deliberate change to the header
/// or table.
fn reseal(bytes: &mut [u8]) {
    let count = u32::from_le_bytes(bytes[12..16].try_into().unwrap()).min(8) as usize;
    let mut covered = bytes[..24].to_vec();
    covered.extend_from_slice(&[0; 4]);
    covered.extend_from_slice(&bytes[28..HEADER_LEN]);
    covered
        .extend_from_slice(&bytes[HEADER_LEN..(HEADER_LEN + count * ENTRY_LEN).min(bytes.len())]);
    let crc = crc32(&covered);
    bytes[24..28].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn round_trip() {
    let bytes = sample();
    assert_eq!(&bytes[..8], &MAGIC);
    assert_eq!(bytes.len() % 8, 0);
    let bundle = Bundle::parse(&bytes).unwrap();
    assert_eq!(bundle.guests.len(), 2);
    assert_eq!(bundle.guests[0].config, linux());
    assert_eq!(bundle.guests[0].kernel, KERNEL);
    assert_eq!(bundle.guests[0].initrd, Some(INITRD));
    assert_eq!(bundle.guests[1].config, second());
    assert_eq!(bundle.guests[1].kernel, &[0xa5u8; 1000][..]);
    assert_eq!(bundle.guests[1].initrd, None);
    for g in 0..2 {
        for p in 0..3 {
            assert_eq!(part(&bytes, g, p).0 % 8, 0, "guest {g} part {p} aligned");
        }
    }
}

#[test]
fn trailing_bytes_after_total_length_are_ignored() {
    let mut bytes = sample();
    bytes.extend_from_slice(&[0xff; 13]);
    assert_eq!(Bundle::parse(&bytes).unwrap().guests.len(), 2);
}

#[test]
fn empty_initrd_is_kept() {
    let bytes = Bundle::encode(&[(linux(), KERNEL, Some(&[]))]).unwrap();
    assert_eq!(
        Bundle::parse(&bytes).unwrap().guests[0].initrd,
        Some(&[][..])
    );
}

#[test]
fn encode_refuses_bad_counts() {
    assert_eq!(Bundle::encode(&[]), Err(BundleError::NoGuests));
    let many: Vec<_> = (0..9).map(|_| (linux(), KERNEL, None)).collect();
    assert_eq!(
        Bundle::encode(&many),
        Err(BundleError::TooManyGuests { count: 9 })
    );
}

#[test]
fn truncation_at_every_length() {
    let bytes = sample();
    for len in 0..bytes.len() {
        match Bundle::parse(&bytes[..len]) {
            Err(BundleError::Truncated { available, .. }) => assert_eq!(available, len),
            other => panic!("truncated to {len}: {other:?}"),
        }
    }
}

#[test]
fn bad_magic_and_version() {
    let mut bytes = sample();
    bytes[0] ^= 1;
    assert_eq!(Bundle::parse(&bytes), Err(BundleError::BadMagic));
    let mut bytes = sample();
    bytes[8..12].copy_from_slice(&(VERSION + 1).to_le_bytes());
    assert_eq!(
        Bundle::parse(&bytes),
        Err(BundleError::UnsupportedVersion {
            version: VERSION + 1
        })
    );
    assert_eq!(
        Bundle::parse(&bytes).unwrap_err().to_string(),
        alloc::format!(
            "unsupported bundle version {} (this hypervisor reads version {VERSION})",
            VERSION + 1
        )
    );
}

#[test]
fn older_bundles_are_refused() {
    // Version 3 added `allow_untranslated_dma` to the config, version 4
    // `console`, version 5 `pci`, version 6 `origin`: an older config
    // would decode wrongly, so the version is checked first.
    assert_eq!(VERSION, 6);
    for old in [2u32, 3, 4, 5] {
        let mut bytes = sample();
        bytes[8..12].copy_from_slice(&old.to_le_bytes());
        reseal(&mut bytes);
        assert_eq!(
            Bundle::parse(&bytes),
            Err(BundleError::UnsupportedVersion { version: old })
        );
    }
    // The allowance survives the round trip.
    let bundle_bytes = sample();
    let bundle = Bundle::parse(&bundle_bytes).unwrap();
    assert_eq!(
        bundle.guests[1].config.allow_untranslated_dma,
        ["/virtio_mmio@a000000"]
    );
}

#[test]
fn bad_guest_counts() {
    let mut bytes = sample();
    bytes[12..16].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(Bundle::parse(&bytes), Err(BundleError::NoGuests));
    bytes[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        Bundle::parse(&bytes),
        Err(BundleError::TooManyGuests {
            count: u32::MAX as u64
        })
    );
}

#[test]
fn bad_total_length() {
    let mut bytes = sample();
    bytes[16..24].copy_from_slice(&8u64.to_le_bytes());
    assert!(matches!(
        Bundle::parse(&bytes),
        Err(BundleError::BadTotalLength { total: 8, .. })
    ));
    bytes[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        Bundle::parse(&bytes),
        Err(BundleError::Truncated {
            needed: u64::MAX,
            ..
        })
    ));
}

/// Flipping any byte of the blob is caught, by the error of the place it is in.
#[test]
fn every_flipped_byte_is_caught() {
    let bytes = sample();
    let table_end = HEADER_LEN + 2 * ENTRY_LEN;
    let parts: Vec<(usize, Part, (usize, usize))> = (0..2)
        .flat_map(|g| {
            [Part::Config, Part::Kernel, Part::Initrd]
                .into_iter()
                .enumerate()
                .map(move |(i, p)| (g, p, i))
        })
        .map(|(g, p, i)| (g, p, part(&bytes, g, i)))
        .collect();
    for at in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[at] ^= 0x40;
        let err = Bundle::parse(&bad).expect_err("corruption accepted");
        let _ = err.to_string();
        if at < 8 {
            assert_eq!(err, BundleError::BadMagic, "byte {at}");
        } else if at < 12 {
            assert!(
                matches!(err, BundleError::UnsupportedVersion { .. }),
                "byte {at}: {err:?}"
            );
        } else if at < 16 {
            assert!(
                matches!(err, BundleError::TooManyGuests { .. }),
                "byte {at}: {err:?}"
            );
        } else if at < 24 {
            assert!(
                matches!(
                    err,
                    BundleError::Truncated { .. }
                        | BundleError::BadTotalLength { .. }
                        | BundleError::HeaderChecksum { .. }
                ),
                "byte {at}: {err:?}"
            );
        } else if at < table_end {
            assert!(
                matches!(err, BundleError::HeaderChecksum { .. }),
                "byte {at}: {err:?}"
            );
        } else if let Some(&(g, p, _)) = parts
            .iter()
            .find(|(_, _, (o, l))| (*o..o + l).contains(&at))
        {
            match err {
                BundleError::Checksum { guest, part, .. } => {
                    assert_eq!((guest.index, part), (g, p), "byte {at}");
                }
                other => panic!("byte {at} in guest {g} {p}: {other:?}"),
            }
        } else {
            assert_eq!(
                err,
                BundleError::NonZeroPadding { offset: at as u64 },
                "byte {at}"
            );
        }
    }
}

#[test]
fn kernel_checksum_error_names_the_guest() {
    let mut bytes = sample();
    let (offset, _) = part(&bytes, 1, 1);
    bytes[offset] ^= 1;
    let err = Bundle::parse(&bytes).unwrap_err();
    assert!(
        matches!(&err, BundleError::Checksum { guest, part: Part::Kernel, .. } if *guest == GuestRef::named(1, "rtos"))
    );
    assert!(
        err.to_string()
            .starts_with("guest 1 (\"rtos\"): checksum mismatch in kernel"),
        "{err}"
    );
}

/// Rewrites descriptor `part` of guest `guest` and reseals the header.
fn with_desc(
    guest: usize,
    part: usize,
    offset: u64,
    len: u64,
    crc: Option<u32>,
    flags: u32,
) -> Vec<u8> {
    let mut bytes = sample();
    let at = HEADER_LEN + guest * ENTRY_LEN + part * PART_LEN;
    bytes[at..at + 8].copy_from_slice(&offset.to_le_bytes());
    bytes[at + 8..at + 16].copy_from_slice(&len.to_le_bytes());
    if let Some(crc) = crc {
        bytes[at + 16..at + 20].copy_from_slice(&crc.to_le_bytes());
    }
    bytes[at + 20..at + 24].copy_from_slice(&flags.to_le_bytes());
    reseal(&mut bytes);
    bytes
}

#[test]
fn bad_descriptors() {
    let bytes = sample();
    let (k_off, k_len) = part(&bytes, 0, 1);
    let linux = || GuestRef::named(0, "linux");
    let err = Bundle::parse(&with_desc(0, 1, k_off as u64 + 4, k_len as u64, None, 1)).unwrap_err();
    assert!(
        matches!(
            err,
            BundleError::Misaligned {
                part: Part::Kernel,
                ..
            }
        ),
        "{err:?}"
    );
    let err = Bundle::parse(&with_desc(0, 1, k_off as u64, u64::MAX, None, 1)).unwrap_err();
    assert!(
        matches!(
            err,
            BundleError::OutOfBounds {
                part: Part::Kernel,
                ..
            }
        ),
        "{err:?}"
    );
    let err = Bundle::parse(&with_desc(0, 1, u64::MAX - 7, 16, None, 1)).unwrap_err();
    assert!(
        matches!(
            err,
            BundleError::OutOfBounds {
                part: Part::Kernel,
                ..
            }
        ),
        "{err:?}"
    );
    let err = Bundle::parse(&with_desc(0, 1, 0, k_len as u64, None, 1)).unwrap_err();
    assert!(
        matches!(err, BundleError::OutOfBounds { offset: 0, .. }),
        "{err:?}"
    );
    let err = Bundle::parse(&with_desc(0, 1, k_off as u64, k_len as u64, None, 3)).unwrap_err();
    assert_eq!(
        err,
        BundleError::BadPartEntry {
            guest: linux(),
            part: Part::Kernel
        }
    );
    let err = Bundle::parse(&with_desc(0, 1, 0, 0, Some(0), 0)).unwrap_err();
    assert_eq!(
        err,
        BundleError::MissingPart {
            guest: linux(),
            part: Part::Kernel
        }
    );
    let err = Bundle::parse(&with_desc(0, 0, 0, 0, Some(0), 0)).unwrap_err();
    assert_eq!(
        err,
        BundleError::MissingPart {
            guest: GuestRef::unnamed(0),
            part: Part::Config
        }
    );
    let err = Bundle::parse(&with_desc(1, 2, 8, 0, Some(0), 0)).unwrap_err();
    assert_eq!(
        err,
        BundleError::BadPartEntry {
            guest: GuestRef::named(1, "rtos"),
            part: Part::Initrd
        }
    );
    let err = Bundle::parse(&with_desc(0, 1, k_off as u64, 0, Some(0), 1)).unwrap_err();
    assert_eq!(
        err,
        BundleError::MissingPart {
            guest: linux(),
            part: Part::Kernel
        }
    );
}

#[test]
fn overlapping_parts() {
    let bytes = sample();
    let (k_off, k_len) = part(&bytes, 0, 1);
    let crc = crc32(&bytes[k_off..k_off + k_len]);
    // Guest 1's kernel descriptor pointing at guest 0's kernel.
    let err =
        Bundle::parse(&with_desc(1, 1, k_off as u64, k_len as u64, Some(crc), 1)).unwrap_err();
    assert!(
        matches!(
            &err,
            BundleError::Overlap {
                first_part: Part::Kernel,
                second_part: Part::Kernel,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("overlaps"), "{err}");
}

#[test]
fn undecodable_and_trailing_config() {
    let mut bytes = sample();
    let (c_off, c_len) = part(&bytes, 0, 0);
    // A name length prefix pointing far past the config.
    bytes[c_off] = 0x7f;
    let crc = crc32(&bytes[c_off..c_off + c_len]);
    let at = HEADER_LEN + 16;
    bytes[at..at + 4].copy_from_slice(&crc.to_le_bytes());
    reseal(&mut bytes);
    assert!(matches!(
        Bundle::parse(&bytes),
        Err(BundleError::BadConfig { .. })
    ));

    let bytes = sample();
    let with_extra = with_desc(
        0,
        0,
        c_off as u64,
        c_len as u64 + 1,
        Some(crc32(&bytes[c_off..c_off + c_len + 1])),
        1,
    );
    let err = Bundle::parse(&with_extra).unwrap_err();
    assert_eq!(
        err,
        BundleError::TrailingConfigBytes {
            guest: GuestRef::unnamed(0),
            extra: 1
        }
    );
}

#[test]
fn garbage_never_panics() {
    let mut rng = crate::test_rng::Rng(0x1234_5678);
    let mut next = move || rng.next() as u32;
    let good = sample();
    for _ in 0..2000 {
        let mut bytes = good.clone();
        for _ in 0..(next() % 4 + 1) {
            let at = next() as usize % bytes.len();
            bytes[at] = next() as u8;
        }
        reseal(&mut bytes);
        let _ = Bundle::parse(&bytes);
        let len = next() as usize % (good.len() + 1);
        let _ = Bundle::parse(&bytes[..len]);
    }
}

#[test]
fn reserved_header_field() {
    let mut bytes = sample();
    bytes[28] = 1;
    assert!(matches!(
        Bundle::parse(&bytes),
        Err(BundleError::HeaderChecksum { .. })
    ));
    reseal(&mut bytes);
    assert_eq!(Bundle::parse(&bytes), Err(BundleError::ReservedNotZero));
}
