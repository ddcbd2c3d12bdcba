//! What may reach a guest: the host nodes the hypervisor keeps for itself,
//! the properties dropped from copied nodes, the phandle references that
//! are followed (the referenced node is copied too) and those that cannot
//! be satisfied.

use crate::fdt::{GIC_COMPATIBLES, NodeRef};

/// Properties removed from every copied node: the physical SMMU and the
/// GIC ITS belong to the hypervisor. With a virtio-iommu, `iommus` and
/// `iommu-map` are then written again, pointing at it (`super::viommu`).
pub const DROPPED_PROPS: &[&str] = &[
    "iommus",
    "iommu-map",
    "iommu-map-mask",
    "msi-parent",
    "msi-map",
    "msi-map-mask",
];

/// Phandle references whose targets are copied along with the node: the
/// property and the `#...-cells` property of the target that gives the
/// number of argument cells after each phandle.
pub const FOLLOWED_REFS: &[(&str, &str)] = &[
    ("clocks", "#clock-cells"),
    ("assigned-clocks", "#clock-cells"),
    ("assigned-clock-parents", "#clock-cells"),
    ("power-domains", "#power-domain-cells"),
    ("resets", "#reset-cells"),
];

/// Properties known to hold phandles that the generator does not follow:
/// a copied node that has one is refused rather than left dangling.
const UNSUPPORTED_REFS: &[&str] = &[
    "dmas",
    "phys",
    "phy-handle",
    "gpios",
    "gpio-ranges",
    "pwms",
    "mboxes",
    "interconnects",
    "io-channels",
    "nvmem-cells",
    "memory-region",
    "hwlocks",
    "sram",
    "remote-endpoint",
    "operating-points-v2",
];

/// True when the property `name` holds references the generator cannot
/// satisfy: one of a fixed list, `*-gpios`, `*-gpio`, `*-supply` or
/// `pinctrl-<n>`.
pub fn is_unsupported_ref(name: &str) -> bool {
    UNSUPPORTED_REFS.contains(&name)
        || name.ends_with("-gpios")
        || name.ends_with("-gpio")
        || name.ends_with("-supply")
        || name
            .strip_prefix("pinctrl-")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// What the hypervisor owns `node` as, or `None` when it may be passed
/// through.
pub fn hypervisor_owned(node: &NodeRef<'_>) -> Option<&'static str> {
    let path = node.path();
    let compatible = node.compatible();
    if node.ancestors().is_empty() {
        Some("the root")
    } else if node.is_compatible("arm,smmu-v3") {
        Some("SMMUv3")
    } else if GIC_COMPATIBLES.iter().any(|c| node.is_compatible(c))
        || node.is_compatible("arm,gic-v3-its")
    {
        Some("interrupt controller")
    } else if compatible.iter().any(|c| c.starts_with("arm,psci")) {
        Some("PSCI")
    } else if node.is_compatible("arm,armv8-timer") || node.is_compatible("arm,armv7-timer") {
        Some("generic timer")
    } else if path == "/cpus"
        || path.starts_with("/cpus/")
        || node.prop_str("device_type") == Some("cpu")
    {
        Some("CPUs")
    } else if node.prop_str("device_type") == Some("memory") {
        Some("memory")
    } else if matches!(path.as_str(), "/chosen" | "/aliases" | "/reserved-memory") {
        Some("boot configuration")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_refs() {
        for name in [
            "dmas",
            "reset-gpios",
            "vmmc-supply",
            "pinctrl-0",
            "pinctrl-12",
            "enable-gpio",
        ] {
            assert!(is_unsupported_ref(name), "{name}");
        }
        for name in [
            "clocks",
            "pinctrl-names",
            "pinctrl-",
            "gpio-controller",
            "#gpio-cells",
            "ngpios",
        ] {
            assert!(!is_unsupported_ref(name), "{name}");
        }
    }
}
