//! Memory management: physical layout, page tables and the heap.
