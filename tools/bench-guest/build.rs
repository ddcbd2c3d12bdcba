//! Links every guest with the crate's script (Image header first), each at
//! its own address: `__guest_base` per binary, and the Image header's
//! `text_offset` (`__text_offset`) that makes loaders put it there.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    println!("cargo:rustc-link-arg-bins=-T{dir}/link.ld");
    for (bin, base, text_offset) in [
        // tools/bench-guest/bench-viommu.toml: QEMU virt's RAM base.
        ("bench-guest", 0x4000_0000u64, 0u64),
        // tools/bench-guest/hostile.toml: RAM at 0x8000_0000, above the
        // host's RAM of the 1 GiB test machine.
        ("hostile", 0x8000_0000, 0),
        ("heartbeat", 0x4000_0000, 0),
        // Runs on bare QEMU virt too, whose loader moves an Image with a
        // text_offset below 2 MiB up by 2 MiB (its boot code sits at the
        // RAM base); it uses absolute addresses (core::fmt), so it is
        // linked where both QEMU and partita (tools/bench-guest/
        // archtest.toml, RAM at 0x4000_0000) load it: RAM base + 2 MiB.
        ("archtest", 0x4020_0000, 0x20_0000),
    ] {
        println!("cargo:rustc-link-arg-bin={bin}=--defsym=__guest_base={base:#x}");
        println!("cargo:rustc-link-arg-bin={bin}=--defsym=__text_offset={text_offset:#x}");
    }
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:rerun-if-changed=build.rs");
}
