//! The machine's RabbitMQ as the distributed-mode tests use it: its URL
//! (`TEST_FERRIC_AMQP_URL` or guest on loopback), `rabbitmqctl`, the
//! settings a test's `ferric api` / `ferric conductor` processes share, and
//! the clean-up of a test's queues.

/// The broker's URL.
pub fn amqp_url() -> String {
    std::env::var("TEST_FERRIC_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Runs `rabbitmqctl`, which must succeed.
pub fn rabbitmqctl(args: &[&str]) {
    let status = std::process::Command::new("rabbitmqctl")
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("rabbitmqctl runs");
    assert!(status.success(), "rabbitmqctl {args:?} failed");
}

/// The environment of a test's `ferric api` or `ferric conductor`: its
/// database and broker, the test's name prefix, heartbeats every second
/// (dead after 3 s), a periodic pass every second, fake steps of
/// `step_delay_ms`, one second of drain, two API workers.
pub fn service_env(
    db: &str,
    amqp: &str,
    prefix: &str,
    step_delay_ms: u64,
    log_level: &str,
) -> Vec<(String, String)> {
    [
        ("FERRIC_DATABASE__URL", db.to_owned()),
        ("FERRIC_AMQP__URL", amqp.to_owned()),
        ("FERRIC_AMQP__PREFIX", prefix.to_owned()),
        ("FERRIC_CONDUCTOR__HEARTBEAT_INTERVAL_SECS", "1".into()),
        ("FERRIC_CONDUCTOR__HEARTBEAT_TIMEOUT_SECS", "3".into()),
        (
            "FERRIC_CONDUCTOR__CHECK_PROVISION_STATE_INTERVAL_SECS",
            "1".into(),
        ),
        (
            "FERRIC_CONDUCTOR__FAKE_STEP_DELAY_MS",
            step_delay_ms.to_string(),
        ),
        ("FERRIC_API__DRAIN_SECS", "1".into()),
        ("FERRIC_API__WORKERS", "2".into()),
        ("RUST_LOG", log_level.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Deletes the queues of `hosts` and the dead-letter queue under `prefix`
/// (a queue left behind would pile up messages nobody reads).
pub fn delete_queues(prefix: &str, hosts: &[String]) {
    let names = ferric_common::queue::amqp::Names::new(prefix);
    for queue in hosts
        .iter()
        .map(|h| names.conductor_queue(h))
        .chain([names.dead.clone()])
    {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["-q", "delete_queue", &queue])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}
