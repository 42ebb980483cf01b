//! Ferric's wire contracts: protobuf messages that travel from the API to
//! conductors over the task queue (RabbitMQ in distributed mode, an in-process
//! channel in the embedded mode).
//!
//! Compatibility invariant: changes to `ferric/v1/*.proto` are additive. A
//! field number is never renumbered or reused, so a conductor on the previous
//! release decodes messages from a newer API (unknown fields are skipped).

/// Version 1 of the task contract (`package ferric.v1`).
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/ferric.v1.rs"));
}
