//! QEMU test harness (being written).
