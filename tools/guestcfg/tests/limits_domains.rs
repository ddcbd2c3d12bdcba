//! The `[guest.limits]` domains key: the default domain budget, an explicit
//! one, and a budget too large located at its key.

mod common;

use common::{BASE, Fixture};
use hypervisor::config::limits::{DEFAULT_VIOMMU_DOMAINS, MAX_VIOMMU_DOMAINS};

fn domains(text: &str) -> u32 {
    Fixture::new().load(text).unwrap().guests[0]
        .config
        .limits
        .domains
}

#[test]
fn default_and_explicit_domain_budget() {
    assert_eq!(domains(BASE), DEFAULT_VIOMMU_DOMAINS);
    assert_eq!(domains(&format!("{BASE}[guest.limits]\n")), 32);
    assert_eq!(domains(&format!("{BASE}[guest.limits]\ndomains = 4\n")), 4);
    assert_eq!(
        domains(&format!(
            "{BASE}[guest.limits]\ndomains = {MAX_VIOMMU_DOMAINS}\n"
        )),
        1023
    );
}

#[test]
fn a_budget_above_the_domain_range_is_refused() {
    let errors = Fixture::new().errors(&format!("{BASE}[guest.limits]\ndomains = 1024\n"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("11:11: guest[0].limits.domains: a budget of 1024"),
        "{errors:?}"
    );
    let errors = Fixture::new().errors(&format!("{BASE}[guest.limits]\npages = 4\n"));
    assert!(errors[0].contains("unknown field `pages`"), "{errors:?}");
}
