//! Ferric's REST API: Ironic's API v1 on actix-web. It is the only crate
//! that knows Ironic's JSON, microversions and error bodies.
//!
//! Invariants: the API never changes a node's power, provision or boot state
//! itself: it checks the request and sends a task to the owning conductor
//! ([`state::AppState::call`]). It may insert, patch and delete descriptive
//! rows, guarded by `reservation IS NULL`. Every error goes through
//! [`error::ApiError`], so every error body is Ironic's.

pub mod auth;
pub mod body;
pub mod boot_files;
pub mod call;
pub mod console;
pub mod error;
pub mod metrics;
pub mod microversion;
pub mod pagination;
pub mod patch;
pub mod routes;
pub mod startup;
pub mod state;
pub mod throttle;
pub mod validation;
pub mod views;
