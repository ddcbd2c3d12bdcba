//! `cargo xtask`: build, run and test the hypervisor (being written).
fn main() {}
