//! The `ferric` binary's wiring: the only place the API and the conductor
//! meet. [`embedded`] runs both in one process over SQLite and the
//! in-process queue (Ironic's combined `ironic` command).
//!
//! Invariant: no behaviour lives here, only construction and shutdown order.

pub mod embedded;
