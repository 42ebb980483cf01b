//! This process's Prometheus metrics: one registry per process (the embedded
//! mode's API and conductor share it), families named `ferric_*`, rendered in
//! the Prometheus text format by [`render`].
//!
//! Invariants: label values come from small fixed sets (route patterns, not
//! paths; task kinds; outcomes; IPMI command names; state names), so the
//! number of series stays bounded; recording never fails and never blocks.

use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The HTTP methods counted by name; a client's made-up method is `other`,
/// so nobody can grow the registry by inventing methods.
const KNOWN_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
];

/// An API request: method, route pattern (`/v1/nodes/{ident}`), status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: String,
}

/// A task handled by a conductor: its kind and how it was answered.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabels {
    pub kind: String,
    pub outcome: String,
}

/// A task published to a conductor's queue and how the broker answered.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PublishLabels {
    pub outcome: String,
}

/// A message sent to the broker besides a task: `reply`,
/// `notification`, `dead_letter` or `reroute`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageLabels {
    pub kind: String,
}

/// One BMC call and its result (`ok` or `error`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BmcLabels {
    pub protocol: String,
    pub outcome: String,
}

/// Nodes counted by state (refreshed when the API is scraped).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeStateLabels {
    pub provision_state: String,
    pub power_state: String,
}

/// A conductor of the ring (refreshed when the API is scraped).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConductorLabels {
    pub hostname: String,
    pub conductor_group: String,
}

fn latency() -> Histogram {
    // 0.5 ms … about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Every family this process records.
pub struct Metrics {
    registry: Registry,
    pub api_requests: Family<RequestLabels, Histogram, fn() -> Histogram>,
    pub tasks: Family<TaskLabels, Histogram, fn() -> Histogram>,
    pub queue_publishes: Family<PublishLabels, Counter>,
    pub messages_sent: Family<MessageLabels, Counter>,
    pub bmc_calls: Family<BmcLabels, Histogram, fn() -> Histogram>,
    pub nodes: Family<NodeStateLabels, Gauge>,
    pub ring_members: Family<ConductorLabels, Gauge>,
    pub deploy_image_bytes: Counter,
    pub power_sync_sweeps: Histogram,
    pub power_sync_last_sweep_seconds: Gauge<f64, AtomicU64>,
    pub power_sync_last_sweep_nodes: Gauge,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("ferric");
        let api_requests = Family::new_with_constructor(latency as fn() -> Histogram);
        let tasks = Family::new_with_constructor(latency as fn() -> Histogram);
        let bmc_calls = Family::new_with_constructor(latency as fn() -> Histogram);
        let queue_publishes = Family::default();
        let messages_sent = Family::default();
        registry.register(
            "amqp_messages_sent",
            "Messages other than tasks sent to the broker, by kind (reply, notification, dead_letter, reroute)",
            messages_sent.clone(),
        );
        let nodes = Family::default();
        let ring_members = Family::default();
        let deploy_image_bytes = Counter::default();
        let power_sync_sweeps = Histogram::new(exponential_buckets(0.01, 2.0, 16));
        let power_sync_last_sweep_seconds = Gauge::<f64, AtomicU64>::default();
        let power_sync_last_sweep_nodes = Gauge::default();
        registry.register(
            "power_sync_sweep_duration_seconds",
            "Power-state sync sweeps of this conductor, with their duration",
            power_sync_sweeps.clone(),
        );
        registry.register(
            "power_sync_last_sweep_seconds",
            "How long this conductor's last power-state sync sweep took",
            power_sync_last_sweep_seconds.clone(),
        );
        registry.register(
            "power_sync_last_sweep_nodes",
            "Nodes whose power state this conductor's last sweep read",
            power_sync_last_sweep_nodes.clone(),
        );
        registry.register(
            "api_request_duration_seconds",
            "API requests by method, route and status, with their latency",
            api_requests.clone(),
        );
        registry.register(
            "task_duration_seconds",
            "Tasks handled by this conductor by kind and outcome, with the time to answer them",
            tasks.clone(),
        );
        registry.register(
            "queue_publishes",
            "Tasks published to a conductor queue, by the broker's answer",
            queue_publishes.clone(),
        );
        registry.register(
            "bmc_call_duration_seconds",
            "BMC calls (including retries on a fresh session) by protocol and outcome",
            bmc_calls.clone(),
        );
        registry.register(
            "nodes",
            "Nodes by provision state and power state",
            nodes.clone(),
        );
        registry.register(
            "ring_members",
            "Alive conductors in the hash ring (1 per conductor)",
            ring_members.clone(),
        );
        registry.register(
            "deploy_image_bytes",
            "Image bytes agents reported written to disks (deploy_progress in their heartbeats)",
            deploy_image_bytes.clone(),
        );
        Metrics {
            deploy_image_bytes,
            power_sync_sweeps,
            power_sync_last_sweep_seconds,
            power_sync_last_sweep_nodes,
            registry,
            api_requests,
            tasks,
            queue_publishes,
            messages_sent,
            bmc_calls,
            nodes,
            ring_members,
        }
    }

    /// Records one API request. Every label comes from a fixed set: the
    /// method is one of HTTP's own (any other counts as `other`), the route
    /// a pattern of the route table (or `unmatched`), the status a number.
    pub fn api_request(&self, method: &str, route: &str, status: u16, took: Duration) {
        let method = KNOWN_METHODS
            .iter()
            .find(|known| **known == method)
            .copied()
            .unwrap_or("other");
        let labels = RequestLabels {
            method: method.to_owned(),
            route: route.to_owned(),
            status: status.to_string(),
        };
        self.api_requests
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    pub fn task(&self, kind: &str, outcome: &str, took: Duration) {
        let labels = TaskLabels {
            kind: kind.to_owned(),
            outcome: outcome.to_owned(),
        };
        self.tasks
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// Bytes an agent wrote since its last report.
    pub fn deploy_image_bytes(&self, delta: u64) {
        self.deploy_image_bytes.inc_by(delta);
    }

    /// One power-state sync sweep over `nodes` nodes.
    pub fn power_sync_sweep(&self, nodes: usize, took: Duration) {
        self.power_sync_sweeps.observe(took.as_secs_f64());
        self.power_sync_last_sweep_seconds.set(took.as_secs_f64());
        self.power_sync_last_sweep_nodes
            .set(i64::try_from(nodes).unwrap_or(i64::MAX));
    }

    /// A message other than a task sent to the broker.
    pub fn message_sent(&self, kind: &'static str) {
        let labels = MessageLabels {
            kind: kind.to_owned(),
        };
        self.messages_sent.get_or_create(&labels).inc();
    }

    pub fn publish(&self, outcome: &str) {
        let labels = PublishLabels {
            outcome: outcome.to_owned(),
        };
        self.queue_publishes.get_or_create(&labels).inc();
    }

    pub fn bmc_call(&self, protocol: &str, ok: bool, took: Duration) {
        let labels = BmcLabels {
            protocol: protocol.to_owned(),
            outcome: if ok { "ok" } else { "error" }.to_owned(),
        };
        self.bmc_calls
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// Replaces the node counts with `counts` (provision state, power state
    /// or `None`, count).
    pub fn set_nodes(&self, counts: &[(String, Option<String>, i64)]) {
        self.nodes.clear();
        for (provision_state, power_state, count) in counts {
            let labels = NodeStateLabels {
                provision_state: provision_state.clone(),
                power_state: power_state.clone().unwrap_or_else(|| "None".to_owned()),
            };
            self.nodes.get_or_create(&labels).set(*count);
        }
    }

    /// Replaces the ring members with `members` (hostname, group).
    pub fn set_ring_members(&self, members: &[(String, String)]) {
        self.ring_members.clear();
        for (hostname, conductor_group) in members {
            let labels = ConductorLabels {
                hostname: hostname.clone(),
                conductor_group: conductor_group.clone(),
            };
            self.ring_members.get_or_create(&labels).set(1);
        }
    }
}

/// This process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Every family in the Prometheus text format.
pub fn render() -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &global().registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_methods_count_as_other() {
        let metrics = global();
        let invented = "X".repeat(8192);
        for method in ["BREW", "PROPFIND", invented.as_str()] {
            metrics.api_request(method, "unmatched", 405, Duration::from_millis(1));
        }
        let text = render();
        assert!(
            !text.contains("BREW") && !text.contains("XXXXXXXX"),
            "{text}"
        );
        assert!(
            text.contains(r#"method="other",route="unmatched",status="405""#),
            "{text}"
        );
    }

    #[test]
    fn recorded_values_are_rendered() {
        let metrics = global();
        metrics.api_request("GET", "/v1/nodes/{ident}", 200, Duration::from_millis(3));
        metrics.task("power", "accepted", Duration::from_millis(1));
        metrics.publish("confirmed");
        metrics.set_nodes(&[("available".into(), None, 3)]);
        let text = render();
        assert!(text.contains(
            r#"ferric_api_request_duration_seconds_count{method="GET",route="/v1/nodes/{ident}",status="200"} 1"#
        ), "{text}");
        assert!(
            text.contains(
                r#"ferric_task_duration_seconds_count{kind="power",outcome="accepted"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"ferric_queue_publishes_total{outcome="confirmed"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ferric_nodes{provision_state="available",power_state="None"} 3"#),
            "{text}"
        );
        metrics.set_nodes(&[]);
        assert!(!render().contains("provision_state=\"available\""));
    }
}
