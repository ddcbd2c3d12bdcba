//! Host device tree: parsing into typed structures (being written).
