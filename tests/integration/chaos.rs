//! The chaos soak (`scripts/chaos --minutes N`; CI runs 2 minutes): three
//! `ferric conductor`s (one in a network namespace, reaching the services
//! through relays on its veth) and two `ferric api`s of the real binary, a
//! PostgreSQL server of the soak's own and the machine's RabbitMQ, a
//! readiness-following balancer, and fake nodes cycling through manage,
//! provide, deploy and undeploy under a steady stream of requests, while a
//! seeded schedule (each kind once per round of six, 200–600 accepted
//! requests apart, each held until the fleet shows it and for at least
//! 1–5 s) kills (-9) and restarts conductors and APIs, stops APIs with
//! SIGTERM, restarts RabbitMQ, restarts or crashes PostgreSQL and cuts the
//! namespaced conductor off.
//!
//! Invariants, checked while it runs and at the end: no answer is a 5xx
//! other than 503; every 202 takes effect (the node leaves the state it was
//! asked from) within a minute; every provision transition the conductors
//! publish is one of Ironic's state machine (its notifications, followed
//! throughout); every 2 s, no reservation is held by a conductor the API
//! has shown dead for longer than the takeover window, and no node stays
//! in a transitional state for two minutes; each node's task receipts
//! number at least its 202s and at most its 202s plus the requests that got
//! no definite answer (503, or none: each accepted task ran once, none was
//! lost before its commit); once the faults stop, every node settles in a
//! stable or failed state within two minutes, and no reservation is left.
//! Settings: TEST_FERRIC_CHAOS_MINUTES (2), TEST_FERRIC_CHAOS_NODES (1000),
//! TEST_FERRIC_CHAOS_SEED (7).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::balancer::Balancer;
use crate::helpers::broker::{amqp_url, delete_queues, rabbitmqctl, service_env};
use crate::helpers::netns::{Forward, Netns};
use crate::helpers::private_pg::PrivatePg;
use crate::helpers::process::{ServiceProcess, free_port};
use crate::helpers::wait_until;

/// Longest a dead conductor's reservation may stay: its heartbeat timeout
/// (3 s), a takeover pass (every 1 s), the wait after a database outage,
/// and a wide margin.
const TAKEOVER_WINDOW: Duration = Duration::from_secs(20);
/// Longest a node may sit unchanged in a transitional state (fake steps
/// take 200 ms).
const STUCK_AFTER: Duration = Duration::from_secs(120);

fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the workers saw.
#[derive(Default)]
struct Tally {
    accepted: AtomicUsize,
    unavailable: AtomicUsize,
    refused: AtomicUsize,
    /// Per node: (202s, PUTs without a definite answer).
    per_node: Mutex<HashMap<String, (u64, u64)>>,
    /// Provision transitions seen on the notifications exchange.
    transitions: AtomicUsize,
    /// Rounds of the reservation and stuck-node check.
    rounds: AtomicUsize,
    violations: Mutex<Vec<String>>,
}

impl Tally {
    fn violation(&self, what: String) {
        self.violations.lock().unwrap().push(what);
    }

    fn count(&self, uuid: &str, accepted: u64, ambiguous: u64) {
        let mut per_node = self.per_node.lock().unwrap();
        let entry = per_node.entry(uuid.to_owned()).or_default();
        entry.0 += accepted;
        entry.1 += ambiguous;
    }
}

/// The next verb for a node at rest in `state`, if any.
fn next_verb(state: &str) -> Option<&'static str> {
    Some(match state {
        "enroll" | "clean failed" | "inspect failed" => "manage",
        "manageable" => "provide",
        "available" => "active",
        "active" | "deploy failed" | "error" => "deleted",
        _ => return None,
    })
}

/// Whether a node is at rest: no lock, and a stable state or a failed one.
fn at_rest(node: &Value) -> bool {
    let state = node["provision_state"].as_str().unwrap_or_default();
    node["reservation"].is_null()
        && (node["target_provision_state"].is_null()
            || state.ends_with("failed")
            || state == "error")
}

/// Cycles the nodes `mine` until `stop`; checks each 202 took effect.
async fn worker(balancer: &Balancer, mine: Vec<String>, stop: &AtomicBool, tally: &Tally) {
    // A node's (state, provision_updated_at) when a 202 was answered for it.
    let mut pending: BTreeMap<String, (Value, Instant)> = BTreeMap::new();
    while !stop.load(SeqCst) {
        for uuid in &mine {
            if stop.load(SeqCst) {
                return;
            }
            let (status, node) = balancer
                .send(Method::GET, &format!("/v1/nodes/{uuid}"), None)
                .await;
            if status != StatusCode::OK {
                // 502 with no body: no answer at all (an API killed mid-request).
                let answered = !(status == StatusCode::BAD_GATEWAY && node.is_null());
                if answered && status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE
                {
                    tally.violation(format!("GET {uuid}: {status}"));
                }
                continue;
            }
            let seen = json!([node["provision_state"], node["provision_updated_at"]]);
            if let Some((before, at)) = pending.get(uuid) {
                if *before != seen {
                    pending.remove(uuid);
                } else if at.elapsed() > Duration::from_secs(60) {
                    tally.violation(format!(
                        "202 for {uuid} without effect for a minute: {node}"
                    ));
                    pending.remove(uuid);
                } else {
                    continue;
                }
            }
            let Some(verb) = next_verb(node["provision_state"].as_str().unwrap_or_default())
                .filter(|_| at_rest(&node))
            else {
                continue;
            };
            let (status, body) = balancer
                .send(
                    Method::PUT,
                    &format!("/v1/nodes/{uuid}/states/provision"),
                    Some(json!({"target": verb})),
                )
                .await;
            match status {
                StatusCode::ACCEPTED => {
                    tally.accepted.fetch_add(1, SeqCst);
                    tally.count(uuid, 1, 0);
                    pending.insert(uuid.clone(), (seen, Instant::now()));
                }
                StatusCode::SERVICE_UNAVAILABLE => {
                    tally.unavailable.fetch_add(1, SeqCst);
                    tally.count(uuid, 0, 1);
                }
                // The node moved meanwhile (a takeover), or is locked.
                StatusCode::BAD_REQUEST | StatusCode::CONFLICT => {
                    tally.refused.fetch_add(1, SeqCst);
                }
                // No answer at all (an API killed mid-request).
                StatusCode::BAD_GATEWAY if body.is_null() => tally.count(uuid, 0, 1),
                other => tally.violation(format!("PUT {verb} {uuid}: {other} {body}")),
            }
        }
    }
}

/// Follows the provision transitions the conductors publish (a queue of
/// the soak's own on the notifications exchange, bound again after a
/// broker restart; what is published while the broker is away is lost, as
/// notifications may be) and checks each against Ironic's state machine.
async fn follow_transitions(prefix: &str, stop: &AtomicBool, tally: &Tally) {
    use futures_util::StreamExt as _;
    use lapin::options::{
        BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    };
    use lapin::types::FieldTable;
    let exchange = ferric_common::notify::exchange_name(prefix);
    while !stop.load(SeqCst) {
        let subscribe = || async {
            let conn =
                lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
                    .await
                    .ok()?;
            let channel = conn.create_channel().await.ok()?;
            let durable = ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            };
            channel
                .exchange_declare(
                    exchange.as_str().into(),
                    lapin::ExchangeKind::Topic,
                    durable,
                    FieldTable::default(),
                )
                .await
                .ok()?;
            let exclusive = QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            };
            let queue = channel
                .queue_declare("".into(), exclusive, FieldTable::default())
                .await
                .ok()?;
            channel
                .queue_bind(
                    queue.name().clone(),
                    exchange.as_str().into(),
                    "baremetal.node.provision_set.*".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .ok()?;
            let consumer = channel
                .basic_consume(
                    queue.name().clone(),
                    "chaos-transitions".into(),
                    BasicConsumeOptions {
                        no_ack: true,
                        ..BasicConsumeOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .ok()?;
            Some((conn, consumer))
        };
        let (_conn, mut consumer) =
            wait_until(Duration::from_secs(120), "the notifications", subscribe).await;
        while !stop.load(SeqCst) {
            let Ok(next) = tokio::time::timeout(Duration::from_millis(500), consumer.next()).await
            else {
                continue;
            };
            let Some(Ok(delivery)) = next else {
                break;
            };
            let message: Value = serde_json::from_slice(&delivery.data).unwrap_or_default();
            let data = &message["payload"]["ironic_object.data"];
            let (from, event, to) = (
                data["previous_provision_state"]
                    .as_str()
                    .unwrap_or_default(),
                data["event"].as_str().unwrap_or_default(),
                data["provision_state"].as_str().unwrap_or_default(),
            );
            tally.transitions.fetch_add(1, SeqCst);
            let legal = ferric_common::states::TRANSITIONS
                .iter()
                .any(|(f, e, t)| f.as_str() == from && e.as_str() == event && t.as_str() == to);
            if !legal {
                tally.violation(format!(
                    "transition {from} --{event}--> {to} is not Ironic's: {}",
                    data["uuid"]
                ));
            }
        }
    }
}

/// Every 2 s while the soak runs: no reservation held by a conductor the
/// API has shown dead for longer than [`TAKEOVER_WINDOW`], no node in a
/// transitional state unchanged for [`STUCK_AFTER`]. A round whose reads
/// fail (no database) is skipped.
async fn watch_reservations(balancer: &Balancer, stop: &AtomicBool, tally: &Tally) {
    let mut dead_since: HashMap<String, Instant> = HashMap::new();
    let mut unchanged_since: HashMap<String, (Value, Instant)> = HashMap::new();
    let mut reported: BTreeSet<String> = BTreeSet::new();
    let mut ticker = tokio::time::interval(Duration::from_secs(2));
    while !stop.load(SeqCst) {
        ticker.tick().await;
        let (status, list) = balancer.send(Method::GET, "/v1/conductors", None).await;
        if status != StatusCode::OK {
            continue;
        }
        for conductor in list["conductors"].as_array().into_iter().flatten() {
            let host = conductor["hostname"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if conductor["alive"] == true {
                dead_since.remove(&host);
            } else {
                dead_since.entry(host).or_insert_with(Instant::now);
            }
        }
        let mut nodes = Vec::new();
        let mut marker = String::new();
        loop {
            let (status, page) = balancer
                .send(
                    Method::GET,
                    &format!(
                        "/v1/nodes?limit=1000{marker}&fields=uuid,provision_state,\
                         target_provision_state,reservation,provision_updated_at"
                    ),
                    None,
                )
                .await;
            let Some(page) = page["nodes"]
                .as_array()
                .filter(|_| status == StatusCode::OK)
            else {
                nodes.clear();
                break;
            };
            nodes.extend(page.iter().cloned());
            match page.last() {
                Some(last) if page.len() == 1000 => {
                    marker = format!("&marker={}", last["uuid"].as_str().unwrap_or_default());
                }
                _ => break,
            }
        }
        if nodes.is_empty() {
            continue;
        }
        tally.rounds.fetch_add(1, SeqCst);
        for node in &nodes {
            let uuid = node["uuid"].as_str().unwrap_or_default().to_owned();
            if let Some(holder) = node["reservation"].as_str()
                && dead_since
                    .get(holder)
                    .is_some_and(|since| since.elapsed() > TAKEOVER_WINDOW)
                && reported.insert(format!("{uuid} {holder}"))
            {
                tally.violation(format!(
                    "{uuid} still reserved by {holder}, dead for over {TAKEOVER_WINDOW:?}: {node}"
                ));
            }
            if at_rest(node) {
                unchanged_since.remove(&uuid);
                continue;
            }
            let seen = json!([node["provision_state"], node["provision_updated_at"]]);
            let since = match unchanged_since.get(&uuid) {
                Some((before, since)) if *before == seen => *since,
                _ => {
                    unchanged_since.insert(uuid.clone(), (seen, Instant::now()));
                    continue;
                }
            };
            if since.elapsed() > STUCK_AFTER && reported.insert(format!("{uuid} stuck")) {
                tally.violation(format!("{uuid} unchanged for {STUCK_AFTER:?}: {node}"));
            }
        }
    }
}

/// The processes of the soak and what they need.
struct Fleet {
    pg: PrivatePg,
    netns: Netns,
    conductors: Vec<ServiceProcess>,
    apis: Vec<ServiceProcess>,
    hosts: Vec<String>,
    _relays: (Forward, Forward),
}

impl Fleet {
    fn start(prefix: &str, dir: &std::path::Path) -> (Fleet, Vec<u16>) {
        let pg = PrivatePg::start();
        let netns = Netns::new();
        let db_relay = Forward::new(&netns.host_ip, &format!("127.0.0.1:{}", pg.port));
        let amqp_relay = Forward::new(&netns.host_ip, "127.0.0.1:5672");
        let common = |db: String, amqp: String| service_env(&db, &amqp, prefix, 200, "warn");
        let relayed_amqp = amqp_url().replace(
            "127.0.0.1:5672",
            &format!("{}:{}", netns.host_ip, amqp_relay.port),
        );
        let hosts: Vec<String> = (0..3).map(|i| format!("{prefix}c-{i}")).collect();
        let conductors = hosts
            .iter()
            .enumerate()
            .map(|(i, host)| {
                // The last one lives in the namespace, the one to cut off.
                let (ns, db, amqp) = if i == 2 {
                    (
                        Some(netns.name.as_str()),
                        format!(
                            "postgres://postgres@{}:{}/postgres",
                            netns.host_ip, db_relay.port
                        ),
                        relayed_amqp.clone(),
                    )
                } else {
                    (None, pg.url(), amqp_url())
                };
                let mut env = common(db, amqp);
                env.push(("FERRIC_CONDUCTOR__HOST".into(), host.clone()));
                ServiceProcess::new_in(ns, "conductor", env, dir.join(format!("{host}.log")))
            })
            .collect();
        let ports = vec![free_port(), free_port()];
        let apis = ports
            .iter()
            .map(|port| {
                let mut env = common(pg.url(), amqp_url());
                env.push(("FERRIC_API__PORT".into(), port.to_string()));
                ServiceProcess::new("api", env, dir.join(format!("api-{port}.log")))
            })
            .collect();
        (
            Fleet {
                pg,
                netns,
                conductors,
                apis,
                hosts,
                _relays: (db_relay, amqp_relay),
            },
            ports,
        )
    }
}

/// Every API ready and every conductor alive.
async fn recovered(balancer: &Balancer, hosts: &[String]) -> Duration {
    let started = Instant::now();
    wait_until(Duration::from_secs(120), "the fleet to recover", || async {
        if !balancer.ready.iter().all(|r| r.load(SeqCst)) {
            return None;
        }
        let (_, list) = balancer.send(Method::GET, "/v1/conductors", None).await;
        let alive = list["conductors"].as_array().map_or(0, |cs| {
            cs.iter()
                .filter(|c| {
                    c["alive"] == true
                        && hosts.contains(&c["hostname"].as_str().unwrap_or_default().to_owned())
                })
                .count()
        });
        (alive == hosts.len()).then_some(())
    })
    .await;
    started.elapsed()
}

/// Holds a fault until the fleet shows it (`seen`) and for at least `hold`
/// since `since`; how long that was.
async fn hold_until<F, Fut>(since: Instant, hold: Duration, what: &str, seen: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    wait_until(Duration::from_secs(60), what, || async {
        (since.elapsed() >= hold && seen().await).then_some(())
    })
    .await;
    since.elapsed()
}

/// One fault, held until the fleet shows it and for at least `hold` (a
/// SIGTERM is not held: the process drains and is started again at once),
/// then undone; its name and how long it was held.
async fn inject(
    fleet: &mut Fleet,
    balancer: &Balancer,
    choice: u32,
    which: usize,
    hold: Duration,
) -> (String, Duration) {
    let since = Instant::now();
    let no_api_ready = || async { !balancer.ready.iter().any(|r| r.load(SeqCst)) };
    match choice {
        0 => {
            let host = fleet.hosts[which % 3].clone();
            fleet.conductors[which % 3].kill().await;
            let held = hold_until(since, hold, "the conductor seen dead", || async {
                !balancer.is_alive(&host).await
            })
            .await;
            fleet.conductors[which % 3].start();
            (format!("kill -9 conductor {}", which % 3), held)
        }
        1 => {
            let i = which % 2;
            fleet.apis[i].kill().await;
            let held = hold_until(since, hold, "the API out of the balancer", || async {
                !balancer.ready[i].load(SeqCst)
            })
            .await;
            fleet.apis[i].start();
            (format!("kill -9 api {i}"), held)
        }
        2 => {
            let a = &mut fleet.apis[which % 2];
            let exit = a.terminate().await;
            assert!(exit.success(), "SIGTERM of an API: {exit:?}");
            a.start();
            (format!("SIGTERM api {}", which % 2), Duration::ZERO)
        }
        3 => {
            rabbitmqctl(&["stop_app"]);
            let held =
                hold_until(since, hold, "no API ready without the broker", no_api_ready).await;
            rabbitmqctl(&["start_app"]);
            rabbitmqctl(&["await_startup"]);
            ("restart rabbitmq".into(), held)
        }
        4 => {
            let mode = if which.is_multiple_of(2) {
                "fast"
            } else {
                "immediate"
            };
            fleet.pg.stop(mode);
            let held = hold_until(
                since,
                hold,
                "no API ready without the database",
                no_api_ready,
            )
            .await;
            fleet.pg.restart();
            (format!("stop postgresql ({mode}) and start it"), held)
        }
        _ => {
            fleet.netns.cut();
            let host = fleet.hosts[2].clone();
            let held = hold_until(since, hold, "the cut-off conductor seen dead", || async {
                !balancer.is_alive(&host).await
            })
            .await;
            fleet.netns.heal();
            ("partition conductor 2".into(), held)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(clippy::print_stderr, reason = "the soak's report")]
async fn a_chaos_soak_keeps_every_invariant() {
    let minutes: f64 = setting("TEST_FERRIC_CHAOS_MINUTES", 2.0);
    let n_nodes: usize = setting("TEST_FERRIC_CHAOS_NODES", 1000);
    let seed: u64 = setting("TEST_FERRIC_CHAOS_SEED", 7);
    let prefix = format!("t{}.", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let dir = tempfile::tempdir().unwrap();
    let (mut fleet, ports) = Fleet::start(&prefix, dir.path());
    let balancer = Balancer::new(
        ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect(),
    );
    let (stop_watching, stop_working) = (AtomicBool::new(false), AtomicBool::new(false));
    let tally = Tally::default();
    let hosts = fleet.hosts.clone();

    let soak = async {
        recovered(&balancer, &hosts).await;
        let mut uuids = Vec::new();
        for i in 0..n_nodes {
            let (status, node) = balancer
                .send(
                    Method::POST,
                    "/v1/nodes",
                    Some(json!({"driver": "fake-hardware", "name": format!("chaos{i}")})),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{node}");
            uuids.push(node["uuid"].as_str().unwrap().to_owned());
        }
        let n_workers = 16;
        let workers = futures_util::future::join_all((0..n_workers).map(|w| {
            let mine: Vec<String> = uuids.iter().skip(w).step_by(n_workers).cloned().collect();
            worker(&balancer, mine, &stop_working, &tally)
        }));
        let schedule = async {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let deadline = Instant::now() + Duration::from_secs_f64(minutes * 60.0);
            let mut faults = Vec::new();
            // Every kind of fault once per round of six, in a seeded order.
            let mut deck: Vec<u32> = Vec::new();
            while Instant::now() < deadline {
                if deck.is_empty() {
                    deck = (0..6).collect();
                    deck.shuffle(&mut rng);
                }
                // A quiet spell of a seeded number of accepted requests,
                // then the next fault.
                let quiet = tally.accepted.load(SeqCst) + rng.random_range(200..600);
                wait_until(
                    Duration::from_secs(120),
                    "the quiet spell's requests",
                    || async { (tally.accepted.load(SeqCst) >= quiet).then_some(()) },
                )
                .await;
                let hold = Duration::from_millis(rng.random_range(1000..5000));
                let kind = deck.pop().unwrap_or_default();
                let (name, held) =
                    inject(&mut fleet, &balancer, kind, rng.random_range(0..6), hold).await;
                let recovery = recovered(&balancer, &hosts).await;
                faults.push((name, held, recovery));
            }
            stop_working.store(true, SeqCst);
            faults
        };
        let (_, faults) = tokio::join!(workers, schedule);
        // Faults over: every node comes to rest, unlocked.
        let settled_in = Instant::now();
        let mut unsettled = Vec::new();
        for uuid in &uuids {
            let node = wait_until(Duration::from_secs(120), "every node at rest", || async {
                let (status, node) = balancer
                    .send(Method::GET, &format!("/v1/nodes/{uuid}"), None)
                    .await;
                (status == StatusCode::OK && at_rest(&node)).then_some(node)
            })
            .await;
            if !node["reservation"].is_null() {
                unsettled.push(node);
            }
        }
        let settled_in = settled_in.elapsed();
        stop_watching.store(true, SeqCst);
        (faults, unsettled, settled_in)
    };
    let ((faults, unsettled, settled_in), (), (), ()) = tokio::join!(
        soak,
        balancer.watch(&stop_watching),
        follow_transitions(&prefix, &stop_watching, &tally),
        watch_reservations(&balancer, &stop_watching, &tally),
    );

    // Every accepted task committed its receipt.
    let mut conn =
        <diesel::PgConnection as diesel::Connection>::establish(&fleet.pg.url()).unwrap();
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let receipts = diesel::RunQueryDsl::get_result::<Count>(
        diesel::sql_query("SELECT count(*) AS n FROM task_receipts"),
        &mut conn,
    )
    .unwrap()
    .n;
    #[derive(diesel::QueryableByName)]
    struct PerNode {
        #[diesel(sql_type = diesel::sql_types::Text)]
        uuid: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let per_node_receipts: HashMap<String, i64> = diesel::RunQueryDsl::load::<PerNode>(
        diesel::sql_query(
            "SELECT n.uuid AS uuid, count(r.task_id) AS n FROM nodes n \
             LEFT JOIN task_receipts r ON r.node_id = n.id GROUP BY n.uuid",
        ),
        &mut conn,
    )
    .unwrap()
    .into_iter()
    .map(|row| (row.uuid, row.n))
    .collect();
    let mut receipt_violations = Vec::new();
    for (uuid, (accepted, ambiguous)) in tally.per_node.lock().unwrap().iter() {
        let receipts = u64::try_from(per_node_receipts.get(uuid).copied().unwrap_or(0)).unwrap();
        if receipts < *accepted || receipts > accepted + ambiguous {
            receipt_violations.push(format!(
                "{uuid}: {receipts} receipts for {accepted} accepted and {ambiguous} unanswered requests"
            ));
        }
    }
    let accepted = tally.accepted.load(SeqCst);
    let statuses = balancer.statuses.lock().unwrap().clone();
    let no_answer = balancer.failures.lock().unwrap().len();
    let server_errors: Vec<&(String, StatusCode)> = statuses
        .iter()
        .filter(|(_, s)| s.is_server_error() && *s != StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    let violations = tally.violations.lock().unwrap().clone();
    let mut report = format!(
        "chaos soak: {minutes} min, seed {seed}, {n_nodes} nodes, 3 conductors, 2 APIs\n\
         requests answered: {}, accepted (202): {accepted}, 503: {}, refused (400/409, the \
         node moved or was locked): {}, no answer (an API killed mid-request): {no_answer}\n\
         task receipts: {receipts}; provision transitions checked: {}; reservation rounds: {}\n\
         every node at rest {settled_in:?} after the last fault\n\
         faults ({}):\n",
        statuses.len(),
        tally.unavailable.load(SeqCst),
        tally.refused.load(SeqCst),
        tally.transitions.load(SeqCst),
        tally.rounds.load(SeqCst),
        faults.len()
    );
    for (name, held, recovery) in &faults {
        report.push_str(&format!(
            "  {name}: held {held:?}, fleet ready again {recovery:?} after\n"
        ));
    }
    report.push_str(&format!(
        "invariant violations: {}\n",
        violations.len() + server_errors.len() + unsettled.len() + receipt_violations.len()
    ));
    eprintln!("{report}");

    assert!(violations.is_empty(), "{violations:#?}");
    assert!(server_errors.is_empty(), "{server_errors:?}");
    assert!(unsettled.is_empty(), "locks left: {unsettled:?}");
    assert!(receipt_violations.is_empty(), "{receipt_violations:#?}");
    assert!(
        tally.transitions.load(SeqCst) > 0 && tally.rounds.load(SeqCst) > 0,
        "the watchers saw the fleet"
    );
    assert!(
        usize::try_from(receipts).unwrap() >= accepted,
        "{accepted} tasks accepted, {receipts} receipts"
    );
    assert!(!faults.is_empty());
    for c in fleet.conductors.iter_mut().chain(fleet.apis.iter_mut()) {
        c.kill().await;
    }
    delete_queues(&prefix, &hosts);
}
