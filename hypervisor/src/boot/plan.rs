//! Boot planning, host-tested: which RAM is free, which guests of the
//! payload fit the machine (each checked against the live device tree and
//! given its RAM), and building them. The target glue (`entry.rs`) calls
//! these between bringing up the MMU and heap and starting the CPUs.

use crate::config::limits::HEAP_RESERVE;
use crate::config::{Bundle, BundleGuest, Located, ValidationError, validate};
use crate::fdt::HostDt;
use crate::mm::accounting::Owner;
use crate::mm::{heap, layout};
use crate::smmu::streamtable::L2_TABLE_BYTES;
use crate::vm::build::{self, BuildCtx, GuestSpec};
use crate::vm::guest::Guest;
use crate::vm::ram::GuestRam;
use alloc::vec::Vec;
use log::{error, info};

/// RAM that nothing uses: RAM minus the image, the DTB, the initrd and the
/// DT's reserved regions.
pub fn free_ram(hw: &HostDt, img: layout::Region, dtb: &[u8]) -> Vec<layout::Region> {
    let mut reserved: Vec<layout::Region> = hw.reserved.clone();
    reserved.push(img);
    reserved.push(layout::Region {
        base: dtb.as_ptr() as u64,
        size: dtb.len() as u64,
    });
    if let Some(initrd) = hw.chosen.initrd {
        reserved.push(initrd);
    }
    layout::free_ranges(&hw.memory, &reserved, 4096)
}

/// A guest of the payload that passed validation, with its RAM carved out.
pub struct Planned {
    /// Position in the bundle.
    pub index: usize,
    /// The guest's images and configuration.
    pub guest: BundleGuest<'static>,
    /// Host-physical base of the RAM carved for it.
    pub ram_pa: u64,
}

/// Reads the payload bundle (the initrd), checks every guest against the
/// live device tree and carves the RAM of those that can run out of `free`
/// (before the rest becomes the heap). A guest with any problem is refused
/// with the reason; the others go on.
pub fn plan_guests(
    hw: &HostDt,
    bytes: &'static [u8],
    free: &mut Vec<layout::Region>,
) -> Vec<Planned> {
    let bundle = match Bundle::parse(bytes) {
        Ok(b) => b,
        Err(e) => {
            error!("guest payload rejected: {e}; no guest started");
            return Vec::new();
        }
    };
    info!(
        "guest payload: {} guest(s), {} bytes",
        bundle.guests.len(),
        bytes.len()
    );
    let configs: Vec<_> = bundle.guests.iter().map(|g| g.config.clone()).collect();
    let errors = validate(&configs, hw);
    let mut refused = alloc::vec![false; configs.len()];
    for e in &errors {
        let origin = e
            .guest
            .as_ref()
            .and_then(|g| configs.get(g.index))
            .map(|c| &c.origin);
        error!("{}", Located { error: e, origin });
        match &e.guest {
            Some(g) if g.index < refused.len() => refused[g.index] = true,
            _ => refused.iter_mut().for_each(|r| *r = true),
        }
    }
    let mut planned = Vec::new();
    // Heap committed to the guests planned so far (their virtio-iommus'
    // worst case at run time).
    let mut committed = 0u64;
    for (index, g) in bundle.guests.into_iter().enumerate() {
        let name = &g.config.name;
        if refused[index] {
            error!("guest '{name}' refused: its configuration does not fit this machine");
            continue;
        }
        let size = g.config.memory_size;
        let Some(ram_pa) = layout::carve(free, size, GUEST_RAM_ALIGN) else {
            error!(
                "guest '{name}' refused: not enough free contiguous RAM for {} MiB",
                size >> 20
            );
            continue;
        };
        let heap = g.config.viommu.map_or(0, |_| {
            // Its ATTACHes may configure a stream on any bus of its host
            // bridges: a stream table level-2 table per bus at most.
            let buses: u64 = hw
                .pcie
                .iter()
                .filter(|p| g.config.devices.contains(&p.path))
                .map(|p| u64::from(p.bus_range.1.saturating_sub(p.bus_range.0)) + 1)
                .sum();
            g.config.limits.viommu_heap() + buses * L2_TABLE_BYTES
        });
        let left = free.iter().map(|r| r.size).sum::<u64>();
        // The reserve counts once the guests' limits commit anything.
        if committed + heap > 0 && committed + heap + HEAP_RESERVE > left {
            error!(
                "guest '{name}' refused: its [guest.limits] let its virtio-iommu hold up to {} MiB of hypervisor memory, and only {} MiB of the heap is left uncommitted (of {} MiB, {} MiB kept for the hypervisor); lower io_table_memory, io_mappings or domains, or the guests' memory",
                heap.div_ceil(1 << 20),
                left.saturating_sub(committed + HEAP_RESERVE) >> 20,
                left >> 20,
                HEAP_RESERVE >> 20
            );
            layout::give_back(free, layout::Region::new(ram_pa, size));
            continue;
        }
        committed += heap;
        planned.push(Planned {
            index,
            guest: g,
            ram_pa,
        });
    }
    planned
}

/// Alignment of guest RAM in host memory (2 MiB: block mappings).
pub const GUEST_RAM_ALIGN: u64 = 2 << 20;

/// Builds the planned guests; one that cannot be built is refused with the
/// reason (its RAM stays unused).
///
/// # Safety
/// Each planned guest's `ram_pa` must be RAM carved for it alone (by
/// [`plan_guests`]), mapped for the hypervisor and used by nothing else.
pub unsafe fn build_guests(ctx: &BuildCtx<'_>, planned: Vec<Planned>) -> Vec<Guest> {
    let mut guests = Vec::new();
    for Planned {
        index,
        guest: g,
        ram_pa,
    } in planned
    {
        let name = g.config.name.clone();
        let origin = g.config.origin.clone();
        // SAFETY: the caller's contract: `ram_pa` is RAM carved for this
        // guest alone, mapped, used by nothing else.
        let ram = unsafe {
            GuestRam::new(
                layout::Region::new(g.config.memory_base, g.config.memory_size),
                ram_pa,
            )
        };
        let spec = GuestSpec {
            index,
            config: g.config,
            kernel: g.kernel,
            initrd: g.initrd,
            ram,
        };
        // Everything allocated while the guest is built is the guest's.
        match heap::charged_to(Owner::Guest(index), || build::build(ctx, spec)) {
            Ok(guest) => {
                info!(
                    "guest '{name}': {} vcpus on cpus {:?}, {} MiB at {:#x} (host {:#x}), devices {:?}",
                    guest.vcpus.len(),
                    guest.config.cpus,
                    guest.config.memory_size >> 20,
                    guest.config.memory_base,
                    ram_pa,
                    guest.config.devices
                );
                guests.push(guest);
            }
            Err(e) if !e.problems().is_empty() => {
                for p in e.problems() {
                    let error = ValidationError::guest(index, &name, p.clone());
                    let origin = Some(&origin);
                    error!(
                        "{}",
                        Located {
                            error: &error,
                            origin
                        }
                    );
                }
                error!("guest '{name}' refused: its configuration does not fit this machine");
            }
            Err(e) => error!("guest '{name}' refused: {e}"),
        }
    }
    guests
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GuestConfig;
    use crate::vm::tests::{World, host, kernel};

    const SIZE: u64 = 16 << 20;

    /// A guest on `cpu` with 16 MiB (the smallest a configuration may
    /// ask) and the UART when `uart`.
    fn config(name: &str, cpu: u32, uart: bool) -> GuestConfig {
        let mut c = crate::vm::tests::config(name, &[cpu], false);
        c.memory_size = SIZE;
        if !uart {
            c.devices.clear();
        }
        c
    }
    use alloc::boxed::Box;

    #[test]
    fn free_ram_leaves_out_the_image_the_dtb_and_the_payload() {
        let hw = host();
        let img = layout::Region::new(0x4020_0000, 0x10_0000);
        let dtb = [0u8; 16];
        let free = free_ram(hw, img, &dtb);
        assert!(!free.is_empty());
        for r in &free {
            assert!(r.end() <= img.base || r.base >= img.end(), "{r:?}");
            assert!(
                hw.memory
                    .iter()
                    .any(|m| m.contains(r.base) && r.end() <= m.end())
            );
        }
    }

    fn bundle(guests: &[(crate::config::GuestConfig, &[u8])]) -> &'static [u8] {
        let images: Vec<_> = guests.iter().map(|(c, k)| (c.clone(), *k, None)).collect();
        Box::leak(Bundle::encode(&images).unwrap().into_boxed_slice())
    }

    #[test]
    fn guests_that_fit_get_ram_and_the_others_are_refused() {
        let hw = host();
        let k = kernel();
        let mut big = config("big", 2, false);
        big.memory_size = 1 << 30;
        let bytes = bundle(&[
            (config("a", 0, true), k),
            (big, k),
            (config("b", 1, false), k),
            (config("ghost", 99, false), k),
        ]);
        let mut free = alloc::vec![layout::Region::new(0x5000_0000, 64 << 20)];
        let planned = plan_guests(hw, bytes, &mut free);
        let names: Vec<&str> = planned
            .iter()
            .map(|p| p.guest.config.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b"], "too big and nonexistent CPU refused");
        assert_eq!(planned[0].index, 0);
        assert_eq!(planned[1].index, 2);
        for p in &planned {
            assert_eq!(p.ram_pa % GUEST_RAM_ALIGN, 0);
        }
        let left: u64 = free.iter().map(|r| r.size).sum();
        assert_eq!(left, (64 << 20) - 2 * SIZE, "carved out of the free RAM");
        assert!(plan_guests(hw, b"not a bundle", &mut free).is_empty());
    }

    #[test]
    fn a_guest_whose_limits_the_heap_cannot_cover_is_refused_and_its_ram_given_back() {
        let hw = host();
        let k = kernel();
        // Guest "a" owns the UART and the PCIe host, the others nothing.
        let viommu = |name: &str, cpu: u32| {
            let mut c = crate::vm::tests::config(name, &[cpu], true);
            c.memory_size = SIZE;
            if name != "a" {
                c.devices.clear();
            }
            c
        };
        let heap = viommu("a", 0).limits.viommu_heap();
        assert!(heap > 16 << 20, "default limits: {heap}");
        let bytes = bundle(&[
            (viommu("a", 0), k),
            (viommu("b", 1), k),
            (config("c", 2, false), k),
            (config("d", 3, false), k),
        ]);
        // 64 MiB: a's RAM, its commitment and the reserve fit; b's
        // commitment does not, nor does c's RAM beside them.
        let mut free = alloc::vec![layout::Region::new(0x5000_0000, 64 << 20)];
        let planned = plan_guests(hw, bytes, &mut free);
        let names: Vec<&str> = planned
            .iter()
            .map(|p| p.guest.config.name.as_str())
            .collect();
        assert_eq!(names, ["a"]);
        let left: u64 = free.iter().map(|r| r.size).sum();
        assert_eq!(
            left,
            (64 << 20) - SIZE,
            "the refused guests' RAM is free again"
        );
        assert_eq!(free.len(), 1, "in one piece");
        // With smaller limits b fits.
        let mut small = viommu("b", 1);
        small.limits.io_table_memory = 1 << 20;
        small.limits.io_mappings = 4096;
        let bytes = bundle(&[(viommu("a", 0), k), (small, k)]);
        let mut free = alloc::vec![layout::Region::new(0x5000_0000, 80 << 20)];
        assert_eq!(plan_guests(hw, bytes, &mut free).len(), 2);
    }

    #[test]
    fn planned_guests_are_built() {
        let hw = host();
        let w = World::new();
        let k = kernel();
        let bytes = bundle(&[(config("a", 0, true), k), (config("b", 1, false), k)]);
        // Host memory standing in for the machine's free RAM.
        let size = 2 * SIZE as usize;
        let layout_ = core::alloc::Layout::from_size_align(size, GUEST_RAM_ALIGN as usize).unwrap();
        // SAFETY: a non-zero layout; the block is never freed.
        let base = unsafe { alloc::alloc::alloc_zeroed(layout_) } as u64;
        let mut free = alloc::vec![layout::Region::new(base, size as u64)];
        let planned = plan_guests(hw, bytes, &mut free);
        let ctx = BuildCtx {
            host: hw,
            gic: w.gic,
            smmus: w.dma,
            vmids: &w.vmids,
            pci: &[],
        };
        // SAFETY: the RAM was carved out of the block above for each guest.
        let guests = unsafe { build_guests(&ctx, planned) };
        let names: Vec<&str> = guests.iter().map(|g| g.name()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_ne!(
            guests[0].ram.to_pa(0x4000_0000),
            guests[1].ram.to_pa(0x4000_0000)
        );
    }
}
