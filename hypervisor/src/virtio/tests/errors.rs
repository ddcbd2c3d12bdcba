//! The messages of the virtio layer's error types ([`LayoutError`],
//! [`QueueError`]) and the errors they wrap
//! ([`core::error::Error::source`]).

use crate::virtio::chain::ChainError;
use crate::virtio::memory::MemError;
use crate::virtio::queue::{Area, LayoutError, QueueError};
use alloc::string::{String, ToString};
use core::error::Error;

/// `e`'s message and its source's, if it has one.
fn texts(e: &dyn Error) -> (String, Option<String>) {
    (e.to_string(), e.source().map(ToString::to_string))
}

const OUT: MemError = MemError::OutOfRange {
    gpa: 0x1000,
    len: 0x10,
};
const OUT_TEXT: &str = "range 0x1000+0x10 outside guest RAM";

#[test]
fn layout_error_messages() {
    for (e, text, source) in [
        (
            LayoutError::BadSize { size: 3, max: 256 },
            "queue size 3 is not a power of two from 1 to 256",
            None,
        ),
        (
            LayoutError::Misaligned(Area::Descriptors, 0x4000_0008),
            "descriptor table at 0x40000008 is not 16-byte aligned",
            None,
        ),
        (
            LayoutError::OutOfRam(Area::Device, OUT),
            "device area: range 0x1000+0x10 outside guest RAM",
            Some(OUT_TEXT),
        ),
    ] {
        assert_eq!(texts(&e), (text.into(), source.map(String::from)));
    }
}

#[test]
fn queue_error_messages() {
    for (e, text, source) in [
        (QueueError::NotReady, "queue not ready", None),
        (
            QueueError::Memory(OUT),
            "ring access: range 0x1000+0x10 outside guest RAM",
            Some(OUT_TEXT),
        ),
        (
            QueueError::AvailIdxJump {
                last_avail: 5,
                avail: 300,
            },
            "avail.idx 300 is more than the queue size past entry 5",
            None,
        ),
        (
            QueueError::HeadOutOfRange { head: 70 },
            "available ring names descriptor 70, beyond the queue",
            None,
        ),
        (
            QueueError::BadChain {
                head: 2,
                error: ChainError::Loop,
            },
            "chain at 2: chain longer than the queue (loop)",
            Some("chain longer than the queue (loop)"),
        ),
        (
            QueueError::UsedIdOutOfRange { head: 64 },
            "used id 64 is beyond the queue",
            None,
        ),
    ] {
        assert_eq!(texts(&e), (text.into(), source.map(String::from)));
    }
    let chain = ChainError::OutOfRam(OUT);
    assert_eq!(
        texts(&chain),
        (
            "buffer outside RAM: range 0x1000+0x10 outside guest RAM".into(),
            Some(OUT_TEXT.into())
        )
    );
}
