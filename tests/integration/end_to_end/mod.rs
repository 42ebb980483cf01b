//! The real OpenStack clients against Ferric.

mod clients;
mod sdk;
