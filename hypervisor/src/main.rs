//! The EL2 image: the panic handler lives here; entry, boot flow and heap
//! are in the library (`hypervisor::arch::aarch64::entry`, `hypervisor::boot`).
#![cfg_attr(target_os = "none", no_std, no_main)]

// Link the library (its entry assembly and boot flow) into the image.
#[cfg(target_os = "none")]
use hypervisor as _;

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    use hypervisor::arch::aarch64::cpu;
    hypervisor::console::emergency_print(format_args!(
        "\npanic on cpu {}: {}\ncpu {} parked\n",
        cpu::cpu_index(),
        info,
        cpu::cpu_index()
    ));
    cpu::park()
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "the hypervisor image only runs on aarch64-unknown-none-softfloat; build it with `cargo xtask build`"
    );
    std::process::exit(1);
}
