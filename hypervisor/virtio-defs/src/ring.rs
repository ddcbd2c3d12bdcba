//! Split virtqueue layout (virtio 1.2, 2.7): descriptor and ring flags and
//! element sizes, all little-endian in guest memory.
//!
//! - descriptor table: `{le64 addr; le32 len; le16 flags; le16 next}` per
//!   entry ([`DESC_LEN`] bytes, 16-byte aligned);
//! - available ring: `{le16 flags; le16 idx; le16 ring[size]}` (2-byte
//!   aligned);
//! - used ring: `{le16 flags; le16 idx; {le32 id; le32 len} ring[size]}`
//!   (4-byte aligned).

/// Largest queue size a split virtqueue can have.
pub const MAX_QUEUE_SIZE: u16 = 32768;
/// Descriptor flag: the chain continues at `next`.
pub const VIRTQ_DESC_F_NEXT: u16 = 1;
/// Descriptor flag: the buffer is device-writable.
pub const VIRTQ_DESC_F_WRITE: u16 = 2;
/// Descriptor flag: the buffer is an indirect descriptor table.
pub const VIRTQ_DESC_F_INDIRECT: u16 = 4;
/// Available ring flag: the driver wants no used-buffer notifications.
pub const VIRTQ_AVAIL_F_NO_INTERRUPT: u16 = 1;
/// Used ring flag: the device wants no available-buffer notifications.
pub const VIRTQ_USED_F_NO_NOTIFY: u16 = 1;

/// Bytes of one descriptor table entry.
pub const DESC_LEN: u64 = 16;
/// Bytes of one available ring element (a descriptor index).
pub const AVAIL_ELEM_LEN: u64 = 2;
/// Bytes of one used ring element (`id`, `len`).
pub const USED_ELEM_LEN: u64 = 8;
/// Bytes of the `flags` and `idx` fields that start both rings.
pub const RING_HEAD_LEN: u64 = 4;

/// Alignment of the descriptor table.
pub const DESC_ALIGN: u64 = 16;
/// Alignment of the available ring (driver area).
pub const AVAIL_ALIGN: u64 = 2;
/// Alignment of the used ring (device area).
pub const USED_ALIGN: u64 = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_sizes_match_their_fields() {
        // addr u64, len u32, flags u16, next u16; id u32, len u32.
        assert_eq!(DESC_LEN, 8 + 4 + 2 + 2);
        assert_eq!(USED_ELEM_LEN, 4 + 4);
        assert_eq!(RING_HEAD_LEN, 2 + 2);
    }
}
