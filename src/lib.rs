//! The `ferric` binary's wiring: the only place the API and the conductor
//! meet. [`embedded`] runs both in one process over SQLite and the
//! in-process queue (Ironic's combined `ironic` command); [`distributed`]
//! runs either one over PostgreSQL and RabbitMQ.
//!
//! Invariant: no behaviour lives here, only construction and shutdown order.

pub mod distributed;
pub mod embedded;
