//! Arm SMMUv3: identification registers (and, later, the stage-2 driver).

pub mod idregs;
