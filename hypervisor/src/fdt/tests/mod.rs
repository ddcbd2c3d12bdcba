//! Tests of the device-tree layer against real QEMU blobs, hand-written
//! malformed trees (see `../testdata/README.md`) and garbage input.

mod boards;
mod builder;
mod early;
mod errors;
mod handwritten;
mod qemu;
mod robust;
mod tree;

/// Keeps an included blob 8-byte aligned, as a boot loader hands it over.
#[repr(C, align(8))]
pub(super) struct Aligned<T: ?Sized>(pub T);

/// A test blob from `../testdata/`, 8-byte aligned.
macro_rules! dtb {
    ($name:literal) => {{
        static BLOB: &$crate::fdt::tests::Aligned<[u8]> =
            &$crate::fdt::tests::Aligned(*include_bytes!(concat!("../testdata/", $name)));
        &BLOB.0
    }};
}
pub(super) use dtb;

/// Every QEMU blob, for tests that run over all of them.
pub(super) fn qemu_blobs() -> [(&'static str, &'static [u8]); 7] {
    [
        ("qemu-virt-smmu", dtb!("qemu-virt-smmu.dtb")),
        ("qemu-virt-smp1", dtb!("qemu-virt-smp1.dtb")),
        ("qemu-virt-nosmmu", dtb!("qemu-virt-nosmmu.dtb")),
        ("qemu-virt-initrd", dtb!("qemu-virt-initrd.dtb")),
        ("qemu-virt-9.1", dtb!("qemu-virt-9.1.dtb")),
        ("qemu-virt-hvc", dtb!("qemu-virt-hvc.dtb")),
        ("qemu-virt-gicv2", dtb!("qemu-virt-gicv2.dtb")),
    ]
}

/// Every hand-written blob.
pub(super) fn handwritten_blobs() -> [(&'static str, &'static [u8]); 8] {
    [
        ("bad-iommu-map", dtb!("bad-iommu-map.dtb")),
        ("smmu-no-reg", dtb!("smmu-no-reg.dtb")),
        ("bad-memory-reg", dtb!("bad-memory-reg.dtb")),
        ("no-memory", dtb!("no-memory.dtb")),
        ("no-cpus", dtb!("no-cpus.dtb")),
        ("features", dtb!("features.dtb")),
        ("cells32", dtb!("cells32.dtb")),
        ("bad-optional", dtb!("bad-optional.dtb")),
    ]
}

/// Shorthand for a region.
pub(super) fn r(base: u64, size: u64) -> crate::mm::layout::Region {
    crate::mm::layout::Region::new(base, size)
}

/// Shorthand for an SPI.
pub(super) fn spi(number: u32, flags: u32) -> crate::fdt::Interrupt {
    crate::fdt::Interrupt {
        kind: crate::fdt::IrqKind::Spi,
        number,
        flags,
    }
}

/// Shorthand for a PPI.
pub(super) fn ppi(number: u32, flags: u32) -> crate::fdt::Interrupt {
    crate::fdt::Interrupt {
        kind: crate::fdt::IrqKind::Ppi,
        number,
        flags,
    }
}
