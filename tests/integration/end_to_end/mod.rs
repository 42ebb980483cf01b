//! The real OpenStack clients and OpenStack's own API test suite against
//! Ferric.

pub(crate) mod clients;
mod sdk;
pub mod upstream;
