//! Ferric's conductor: registers itself and heartbeats ([`membership`]),
//! consumes tasks ([`service`]), runs the task handlers ([`tasks`]), each
//! over a [`task::Task`] that holds the node's lock ([`reservation`]) and
//! its driver composed of interface implementations ([`drivers`]), with the
//! conductor's shared services ([`context`]).
//!
//! Invariants: the conductor is the only writer of a node's power and
//! provision state; it never runs two tasks on one node at once (the
//! `reservation` lock); a malformed or panicking task is dead-lettered and
//! the conductor lives on.

pub mod context;
pub mod destinations;
pub mod drivers;
pub mod images;
pub mod inspection;
pub mod inspection_rules;
pub mod membership;
pub mod periodic;
pub mod power_sync;
pub mod reservation;
pub mod service;
pub mod takeover;
pub mod task;
pub mod tasks;
pub mod unsettled;
