//! The EL2 image entry: panic handler and global allocator live here; the
//! boot flow is in the library.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the hypervisor image only runs on aarch64-unknown-none; build it with `cargo xtask build`");
    std::process::exit(1);
}
