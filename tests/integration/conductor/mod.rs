//! The conductor behind the API: the provision state machine end to end,
//! node locks, dead letters and recovery after a restart.

mod dead_letter;
mod lifecycle;
mod locking;
mod redelivery;
mod restart;
