//! Building a guest: stage 2, devices in the table, images loaded, streams
//! bound, errors typed.

use super::*;
use crate::arch::fake::Op;
use crate::devices::AccessCtx;
use crate::virtio::memory::GuestMemory;
use crate::vm::resources::ResourceError;
use crate::vm::viommu::vmids::unattached_vmid;

#[test]
fn a_guest_has_its_devices_in_the_table() {
    let w = World::new();
    let g = w.guest(0, config("a", &[0, 1], true));
    let names: Vec<&str> = g.devices.iter().map(|(_, d)| d.name()).collect();
    assert_eq!(
        names,
        ["GIC distributor", "GIC redistributors", "virtio-iommu"]
    );
    let (d, off) = g
        .devices
        .find(VIOMMU_BASE + 0x70)
        .expect("virtio-iommu window");
    assert_eq!((d.name(), off), ("virtio-iommu", 0x70));
    assert!(g.devices.find(VIOMMU_BASE + 0x1000).is_none());
    let ctx = AccessCtx {
        vcpu: 0,
        mem: &g.ram,
        gic: &crate::vgic::hw::NoVcpu(w.gic),
    };
    assert_eq!(d.read(&ctx, 0, 4), Some(0x7472_6976), "virtio magic");
    // Two vCPUs: two redistributor frames, the third is nobody's.
    let (gicr, _) = g.devices.find(0x080a_0000).unwrap();
    assert_eq!(gicr.name(), "GIC redistributors");
    assert!(g.devices.find(0x080a_0000 + 2 * 0x2_0000).is_none());
}

#[test]
fn images_are_loaded_and_streams_bound() {
    let w = World::new();
    let g = w.guest(3, config("a", &[0], false));
    let mut magic = [0u8; 4];
    g.ram.read(RAM_BASE + 64, &mut magic).unwrap();
    assert_eq!(&magic, b"KERN", "kernel copied to its load address");
    let mut dt = [0u8; 4];
    g.ram.read(g.images.layout.dtb, &mut dt).unwrap();
    assert_eq!(dt, [0xd0, 0x0d, 0xfe, 0xed], "device tree copied");
    assert!(
        fake::take_ops()
            .iter()
            .any(|o| matches!(o, Op::Publish { len: 4096, .. })),
        "the kernel is made visible to a guest starting with caches off"
    );
    // Without a virtio-iommu its streams translate through its stage 2.
    assert_eq!(w.dma.take(), [DmaCall::Attach(3, Some(4))]);
    assert_eq!(g.vmid, 4);
    assert_eq!(g.vttbr >> 48, 4);
    let g = w.guest(1, config("b", &[1], true));
    assert_eq!(
        w.dma.take(),
        [DmaCall::Attach(1, Some(unattached_vmid(1)))],
        "with a virtio-iommu, streams translate through the (empty) table of unattached endpoints until attached"
    );
    assert!(g.viommu.is_some());
}

#[test]
fn a_guest_whose_streams_cannot_be_bound_is_refused() {
    let w = World::new();
    w.dma
        .fail_attach
        .store(true, core::sync::atomic::Ordering::Relaxed);
    let ctx = w.ctx();
    let spec = guest_spec(config("a", &[0], false), kernel(), ram());
    let err = build(&ctx, spec).err().expect("refused");
    assert!(matches!(err, super::super::build::BuildError::Dma(_)));
    assert_eq!(
        w.dma.take(),
        [DmaCall::Attach(0, Some(1)), DmaCall::Detach(0, 1)],
        "nothing left bound"
    );
}

#[test]
fn guest_ram_is_cleared_before_the_images_are_loaded() {
    let w = World::new();
    let r = ram();
    // What an earlier user of the memory left there.
    r.write(RAM_BASE + RAM_SIZE - 8, b"leftover").unwrap();
    let ctx = w.ctx();
    let spec = guest_spec(config("a", &[0], false), kernel(), r);
    let g = build(&ctx, spec).expect("builds");
    let mut tail = [0xffu8; 8];
    g.ram.read(RAM_BASE + RAM_SIZE - 8, &mut tail).unwrap();
    assert_eq!(tail, [0; 8]);
    assert!(
        fake::take_ops().contains(&Op::Clean(
            g.ram.to_pa(RAM_BASE).unwrap(),
            RAM_SIZE as usize
        )),
        "the zeros are cleaned to the point of coherency"
    );
}

#[test]
fn a_guest_given_pci_functions_of_a_bridge_not_enumerated_is_refused() {
    let w = World::new();
    let ctx = w.ctx(); // no enumerated host bridge
    let mut c = config("a", &[0], false);
    c.pci.push(String::from("00:02.0"));
    let err = build(&ctx, guest_spec(c, kernel(), ram()))
        .err()
        .expect("refused");
    assert!(matches!(
        err,
        super::super::build::BuildError::Pci(crate::vm::vpci::VpciError::NoBridge(_))
    ));
    assert_eq!(
        alloc::format!("{err}"),
        "pci: 0000:00:02.0: no enumerated host bridge 0000"
    );
    assert!(w.dma.take().is_empty(), "nothing bound");
}

#[test]
fn build_errors_are_typed() {
    let w = World::new();
    let ctx = w.ctx();
    let bad_kernel: &'static [u8] = Box::leak(vec![0u8; 128].into_boxed_slice());
    let spec = guest_spec(config("a", &[0], false), bad_kernel, ram());
    let err = build(&ctx, spec).err().expect("refused");
    assert_eq!(
        alloc::format!("{err}"),
        "the kernel is not an arm64 Image (bad magic)"
    );
    let mut c = config("a", &[0], false);
    c.devices.push(String::from("/nonexistent"));
    let spec = guest_spec(c, kernel(), ram());
    let err = build(&ctx, spec).err().expect("refused");
    assert!(matches!(
        &err,
        super::super::build::BuildError::Device(ResourceError::NoSuchNode { path })
            if path == "/nonexistent"
    ));
    assert_eq!(
        alloc::format!("{err}"),
        "/nonexistent: no such node in the host device tree"
    );
    assert_eq!(
        core::error::Error::source(&err).map(alloc::string::ToString::to_string),
        Some(String::from(
            "/nonexistent: no such node in the host device tree"
        ))
    );
    // The virtio-iommu window over the GIC distributor.
    let mut c = config("a", &[0], true);
    c.viommu.as_mut().unwrap().base = 0x0800_0000;
    let spec = guest_spec(c, kernel(), ram());
    let err = build(&ctx, spec).err().expect("refused");
    assert!(
        alloc::format!("{err}").contains("overlaps the GIC distributor"),
        "{err}"
    );
}

/// Guest 0 of `config` with `kernel` in `ram`, no initrd.
fn guest_spec(config: GuestConfig, kernel: &'static [u8], ram: GuestRam) -> GuestSpec {
    GuestSpec {
        index: 0,
        config,
        kernel,
        initrd: None,
        ram,
    }
}
