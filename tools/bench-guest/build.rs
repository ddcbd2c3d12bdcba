//! Links every guest with the crate's script (Image header first), each at
//! the start of its own guest RAM: `__guest_base` per binary.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    println!("cargo:rustc-link-arg-bins=-T{dir}/link.ld");
    for (bin, base) in [
        // tools/bench-guest/bench-viommu.toml: QEMU virt's RAM base.
        ("bench-guest", 0x4000_0000u64),
        // tools/bench-guest/hostile.toml: RAM at 0x8000_0000, above the
        // host's RAM of the 1 GiB test machine.
        ("hostile", 0x8000_0000),
        ("heartbeat", 0x4000_0000),
    ] {
        println!("cargo:rustc-link-arg-bin={bin}=--defsym=__guest_base={base:#x}");
    }
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:rerun-if-changed=build.rs");
}
