//! PostgreSQL faults under the distributed mode (`ferric api` and a
//! conductor in this process, RabbitMQ, a PostgreSQL server of the test's
//! own): a clean restart, a crash, every connection dropped, and a failover
//! to a standby promoted in its place. While there is no database the API
//! answers 503 within 3 s (and `/readyz` says why); afterwards both sides
//! serve again without a restart, and every deploy or undeploy that was
//! accepted before the fault ends as asked, unlocked, with no error.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::distributed::Cluster;
use crate::helpers::private_pg::PrivatePg;
use crate::helpers::wait_until;

/// How long each outage lasts at least (the measured blip).
const OUTAGE: Duration = Duration::from_secs(3);
/// Concurrent readers during an outage: twice the API's pool.
const READERS: usize = 16;
/// The longest the API may take to say 503 without a database.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);

/// What the API answered while the database was away.
struct Outage {
    /// Every answer to `GET /v1/nodes/{uuid}`, with its time.
    reads: Vec<(StatusCode, Duration)>,
    readyz: (StatusCode, Value),
    healthz: StatusCode,
}

/// Reads a node in waves of [`READERS`] at once (twice the API's pool) for
/// at least [`OUTAGE`] after the database went away, and asks the probes.
async fn while_down(cluster: &Cluster, uuid: &str) -> Outage {
    let path = format!("/v1/nodes/{uuid}");
    let down_since = Instant::now();
    let mut reads = Vec::new();
    while down_since.elapsed() < OUTAGE {
        let wave = (0..READERS).map(|_| async {
            let sent = Instant::now();
            let (status, _) = cluster.send(Method::GET, &path, None).await;
            (status, sent.elapsed())
        });
        reads.extend(futures_util::future::join_all(wave).await);
    }
    let readyz = cluster.send(Method::GET, "/readyz", None).await;
    let (healthz, _) = cluster.send(Method::GET, "/healthz", None).await;
    Outage {
        reads,
        readyz,
        healthz,
    }
}

fn assert_unavailable(outage: &Outage, what: &str) {
    assert!(!outage.reads.is_empty());
    for (status, took) in &outage.reads {
        assert_eq!(
            *status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{what}: {:?}",
            outage.reads
        );
        assert!(*took < ANSWER_WITHIN, "{what}: a 503 took {took:?}");
    }
    let (status, body) = &outage.readyz;
    assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {body}");
    assert_eq!(body["status"], "not ready", "{body}");
    assert_ne!(body["checks"]["database"], "ok", "{body}");
    assert_eq!(body["checks"]["broker"], "ok", "{body}");
    assert_eq!(outage.healthz, StatusCode::OK, "{what}: the process lives");
}

/// The API answers again (no restart of its own): the time it took.
async fn served_again(cluster: &Cluster, uuid: &str) -> Duration {
    let back = Instant::now();
    wait_until(
        Duration::from_secs(30),
        "the API to read the database again",
        || async {
            let (status, _) = cluster
                .send(Method::GET, &format!("/v1/nodes/{uuid}"), None)
                .await;
            (status == StatusCode::OK).then_some(())
        },
    )
    .await;
    back.elapsed()
}

/// Every node ends in `state`, unlocked, without an error.
async fn all_settle(cluster: &Cluster, uuids: &[String], state: &str) {
    for uuid in uuids {
        let node = wait_until(Duration::from_secs(60), "the node to settle", || async {
            let (_, node) = cluster
                .send(Method::GET, &format!("/v1/nodes/{uuid}"), None)
                .await;
            // A stable state, or a failed one (whose target Ironic keeps).
            let state = node["provision_state"].as_str().unwrap_or_default();
            let failed = state.ends_with("failed") || state == "error";
            ((node["target_provision_state"].is_null() || failed) && node["reservation"].is_null())
                .then_some(node)
        })
        .await;
        assert_eq!(node["provision_state"], state, "{node}");
        assert_eq!(node["last_error"], Value::Null, "{node}");
    }
    let (status, ready) = cluster.send(Method::GET, "/readyz", None).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
}

fn accepted(replies: &[StatusCode]) {
    assert!(
        replies.iter().all(|s| *s == StatusCode::ACCEPTED),
        "{replies:?}"
    );
}

/// DESIGN §11 and the measurement: 30 nodes mid-deploy (fake steps
/// of 3 s), PostgreSQL stopped cleanly and started again; then mid-undeploy,
/// PostgreSQL crashed (`immediate`) and started again; then mid-deploy,
/// every connection of the server terminated. No accepted task fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(
    clippy::print_stderr,
    reason = "prints the recovery times the closing note quotes"
)]
async fn restarts_crashes_and_dropped_connections_of_postgresql_fail_no_accepted_work() {
    let pg = PrivatePg::start();
    let cluster = Cluster::start_on(&pg.url(), 1, |s| s.conductor.fake_step_delay_ms = 3000).await;
    let uuids = cluster.available_nodes(30).await;

    // A clean restart mid-deploy.
    accepted(&cluster.provision_all(&uuids, "active").await);
    pg.stop("fast");
    let outage = while_down(&cluster, &uuids[0]).await;
    pg.restart();
    let restart_back = served_again(&cluster, &uuids[0]).await;
    let (reads, slowest) = (
        outage.reads.len(),
        outage.reads.iter().map(|(_, took)| *took).max(),
    );
    assert_unavailable(&outage, "clean restart");
    all_settle(&cluster, &uuids, "active").await;

    // A crash mid-undeploy (fake cleaning included).
    accepted(&cluster.provision_all(&uuids, "deleted").await);
    pg.stop("immediate");
    let outage = while_down(&cluster, &uuids[0]).await;
    pg.restart();
    let crash_back = served_again(&cluster, &uuids[0]).await;
    assert_unavailable(&outage, "crash");
    all_settle(&cluster, &uuids, "available").await;

    // Every connection dropped mid-deploy.
    accepted(&cluster.provision_all(&uuids, "active").await);
    let mut admin = <diesel::PgConnection as diesel::Connection>::establish(&pg.url()).unwrap();
    let dropped = diesel::RunQueryDsl::execute(
        diesel::sql_query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'",
        ),
        &mut admin,
    )
    .unwrap();
    all_settle(&cluster, &uuids, "active").await;

    eprintln!(
        "postgresql faults, 30 nodes: {reads} reads while down, all 503, the slowest in {slowest:?}; \
         the API served again {restart_back:?} after a clean restart and {crash_back:?} after \
         a crash; {dropped} connections dropped; accepted tasks failed or lost: 0"
    );
    assert!(
        dropped > 0,
        "the conductor and the API had connections to drop"
    );
    cluster.stop().await;
}

/// A primary and a streaming standby; Ferric is given both
/// (`target_session_attrs=read-write`). Mid-deploy the primary stops and
/// the standby is promoted: the deploys end `active` on the new primary and
/// the API serves from it, with no restart of Ferric.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(
    clippy::print_stderr,
    reason = "prints the recovery time the closing note quotes"
)]
async fn a_failover_to_a_promoted_standby_fails_no_accepted_work() {
    let primary = PrivatePg::start();
    let standby = primary.standby();
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
        primary.port, standby.port
    );
    let cluster = Cluster::start_on(&url, 1, |s| s.conductor.fake_step_delay_ms = 3000).await;
    let uuids = cluster.available_nodes(20).await;

    accepted(&cluster.provision_all(&uuids, "active").await);
    primary.stop("fast");
    let outage = while_down(&cluster, &uuids[0]).await;
    standby.promote();
    let back = served_again(&cluster, &uuids[0]).await;
    assert_unavailable(&outage, "failover");
    all_settle(&cluster, &uuids, "active").await;
    // New work goes to the new primary.
    accepted(&cluster.provision_all(&uuids, "deleted").await);
    all_settle(&cluster, &uuids, "available").await;

    eprintln!("postgresql failover, 20 nodes: the API served again {back:?} after the promotion");
    cluster.stop().await;
}

/// An outage longer than the conductors' heartbeat timeout leaves every
/// heartbeat old: when the database returns, no conductor may judge the
/// other dead and take its deploys over (they would fail "aborted due to
/// conductor take over") before each had a heartbeat timeout to write again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_the_heartbeat_timeout_takes_no_node_over() {
    let pg = PrivatePg::start();
    let cluster = Cluster::start_on(&pg.url(), 2, |s| {
        s.conductor.fake_step_delay_ms = 3000;
        s.conductor.heartbeat_interval_secs = 1;
        s.conductor.heartbeat_timeout_secs = 2;
        s.conductor.check_provision_state_interval_secs = 1;
    })
    .await;
    let uuids = cluster.available_nodes(20).await;
    accepted(&cluster.provision_all(&uuids, "active").await);
    pg.stop("fast");
    // Longer than the heartbeat timeout: every heartbeat is stale on return.
    let outage = while_down(&cluster, &uuids[0]).await;
    pg.restart();
    assert_unavailable(&outage, "outage past the heartbeat timeout");
    all_settle(&cluster, &uuids, "active").await;
    cluster.stop().await;
}

/// An outage longer than `[database] outage_tolerance_secs` (1 s here,
/// PostgreSQL away for 12 s, fake steps of 3 s): every deploy reaches a
/// step's write while the database is away past the tolerance, so each
/// fails, and neither the failure nor the lock's release can be written
/// then. Once the database is back the conductor writes what it owes:
/// `deploy failed`, `last_error` naming the outage, the lock released (the
/// conductor was alive all along, so no takeover would ever have freed it).
/// Undeploying then brings every node back to `available`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_past_the_tolerance_fails_the_work_saying_why_once_the_database_is_back() {
    let pg = PrivatePg::start();
    let cluster = Cluster::start_on(&pg.url(), 1, |s| {
        s.conductor.fake_step_delay_ms = 3000;
        s.conductor.check_provision_state_interval_secs = 1;
        s.database.outage_tolerance_secs = 1;
    })
    .await;
    let uuids = cluster.available_nodes(10).await;
    accepted(&cluster.provision_all(&uuids, "active").await);
    pg.stop("fast");
    // The fault's length: a step (3 s), then the step's write, the
    // failure's and the lock's release each giving up (at most 2 s each,
    // the checkout timeout, since the tolerance is shorter), with room:
    // only the conductor's memory of what it owes can settle the nodes.
    let down = Instant::now();
    while down.elapsed() < Duration::from_secs(12) {
        let (status, _) = cluster
            .send(Method::GET, &format!("/v1/nodes/{}", uuids[0]), None)
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
    pg.restart();
    for uuid in &uuids {
        let node = wait_until(Duration::from_secs(60), "the node to settle", || async {
            let (status, node) = cluster
                .send(Method::GET, &format!("/v1/nodes/{uuid}"), None)
                .await;
            let state = node["provision_state"].as_str().unwrap_or_default();
            let at_rest = node["target_provision_state"].is_null() || state.ends_with("failed");
            (status == StatusCode::OK && at_rest && node["reservation"].is_null()).then_some(node)
        })
        .await;
        assert_eq!(node["provision_state"], "deploy failed", "{node}");
        let error = node["last_error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("deploying failed on conductor")
                && error.contains("database unavailable"),
            "{node}"
        );
    }
    accepted(&cluster.provision_all(&uuids, "deleted").await);
    for uuid in &uuids {
        cluster.wait_state(uuid, "available").await;
    }
    cluster.stop().await;
}
