//! Test harness: `spawn_app` (embedded Ferric on 127.0.0.1:0 over a fresh
//! database), `TestPg` (a PostgreSQL database per test), `PrivatePg` (a
//! PostgreSQL server of the test's own, to stop and fail over, or TLS-only),
//! `PrivateRabbit` (a TLS-only RabbitMQ node of the test's own), `certs`, `SimBmc` (a real
//! IPMI BMC, `ipmi_sim`), `redfish::Emulator` (a real Redfish BMC,
//! `sushy-emulator`), `ipa` (the real ironic-python-agent, confined to a
//! loop device in its own namespaces), `signatures` (disk signatures planted
//! and read back), `sim` (ferric-sim's simulated BMCs), `wait_until`.

pub mod app;
pub mod balancer;
pub mod bmc;
pub mod broker;
pub mod browser;
pub mod certs;
pub mod db;
pub mod http;
pub mod ipa;
pub mod netns;
pub mod otlp;
pub mod private_pg;
pub mod private_rabbit;
pub mod process;
pub mod redfish;
pub mod signatures;
pub mod sim;
pub mod wait;

pub use app::{Backend, TestApp, spawn_app, spawn_app_with};
pub use wait::wait_until;
