//! Ferric's shared core, used by the API and the conductor alike:
//! configuration ([`config`]), logging ([`telemetry`]), the database with its
//! models and migrations ([`db`]), Ironic's state machine ([`states`]), the
//! tooz-compatible hash ring ([`hash_ring`]) and the cluster view built on it
//! ([`cluster`]), and the task queue both run modes share ([`queue`]).
//!
//! Invariants: `states` and `hash_ring` do no IO; nothing here depends on
//! actix-web; every database call goes through `db::Db::run`.

pub mod cluster;
pub mod config;
pub mod db;
pub mod destinations;
pub mod feed;
pub mod hash_ring;
pub mod journal;
pub mod kernel_args;
pub mod metrics;
pub mod notify;
pub mod py;
pub mod queue;
pub mod redact;
pub mod states;
pub mod telemetry;
