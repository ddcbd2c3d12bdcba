//! partita: a static-partitioning type-1 hypervisor for arm64, running at EL2.
//!
//! The library holds everything that can be tested on the host (device-tree
//! parsing, page tables, SMMU register decoding, the hardware summary); the
//! `arch` module is the only home of assembly and system registers and is
//! compiled only for the bare-metal target.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod fdt;
pub mod mm;
