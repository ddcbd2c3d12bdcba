//! The messages of the model's error types ([`ConfigError`],
//! [`BackendError`], [`ParseError`]) and that each is a
//! [`core::error::Error`].

use crate::viommu::wire::request::ParseError;
use crate::viommu::{BackendError, ConfigError, RequestType};
use alloc::string::ToString;

fn is_error(_: &dyn core::error::Error) {}

#[test]
fn config_error_messages() {
    for (e, text) in [
        (
            ConfigError::NoPageSize,
            "page_size_mask is 0 (no page size offered)",
        ),
        (
            ConfigError::EmptyInputRange,
            "empty input range (input_start above input_end)",
        ),
        (
            ConfigError::EmptyDomainRange,
            "empty domain range (domain_start above domain_end)",
        ),
        (
            ConfigError::ProbeSizeTooLarge,
            "probe_size above the 4096-byte maximum",
        ),
    ] {
        is_error(&e);
        assert_eq!(e.to_string(), text);
    }
}

#[test]
fn backend_error_messages() {
    for (e, text) in [
        (BackendError::NoMemory, "out of memory for IO page tables"),
        (
            BackendError::NoResources,
            "out of IOMMU resources (such as VMIDs)",
        ),
        (
            BackendError::Hardware,
            "IOMMU hardware failure (command error or sync timeout)",
        ),
    ] {
        is_error(&e);
        assert_eq!(e.to_string(), text);
    }
}

#[test]
fn parse_error_messages() {
    for (e, text) in [
        (ParseError::NoHead, "request shorter than its head"),
        (ParseError::UnknownType(9), "unknown request type 9"),
        (
            ParseError::Truncated(RequestType::Map),
            "map request shorter than its 36 bytes",
        ),
    ] {
        is_error(&e);
        assert_eq!(e.to_string(), text);
    }
}
