//! Ferric's conductor: registers itself and heartbeats ([`membership`]),
//! consumes tasks ([`service`]), takes node locks ([`reservation`]), runs the
//! task handlers ([`tasks`]) over the hardware interfaces ([`drivers`]).
//!
//! Invariants: the conductor is the only writer of a node's power and
//! provision state; it never runs two tasks on one node at once (the
//! `reservation` lock); a malformed or panicking task is dead-lettered and
//! the conductor lives on.

pub mod drivers;
pub mod images;
pub mod membership;
pub mod periodic;
pub mod power_sync;
pub mod reservation;
pub mod service;
pub mod takeover;
pub mod tasks;
