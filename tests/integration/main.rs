//! Ferric's one integration test binary: every test starts the real app
//! (embedded mode, port 0) over its own database (a temporary SQLite file,
//! or a fresh PostgreSQL database) and talks HTTP to it.
// Tests unwrap freely and read their own TEST_FERRIC_* variables.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod agent;
mod api;
mod bench_tool;
mod chaos;
mod compose;
mod conductor;
mod console;
mod db_outages;
mod direct;
mod distributed;
mod end_to_end;
mod helpers;
mod ipa;
mod ipmi;
mod metal3;
mod migrations;
mod partitions;
mod pxe;
mod redfish;
mod rolling;
mod scale;
mod security;
mod service_tls;
mod sim;
mod tidy;
mod traces;
mod vm;
