//! A rolling restart under load, as an operator upgrades Ferric: two
//! `ferric api` and two `ferric conductor` processes of the real binary over
//! PostgreSQL and RabbitMQ, a load balancer in the test that sends only to
//! the APIs whose `/readyz` says 200 (polled every 50 ms, connections kept
//! alive as a balancer keeps them), and workers cycling fake nodes through
//! manage, provide, deploy and undeploy. Each process in turn gets SIGTERM,
//! exits by itself and is started again. No request fails on the way: no
//! connection reset, no 5xx, every 202 takes effect.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::balancer::Balancer;
use crate::helpers::broker::{amqp_url, delete_queues, service_env};
use crate::helpers::db::TestPg;
use crate::helpers::process::{ServiceProcess, free_port};
use crate::helpers::wait_until;

/// One node cycled until `stop`: enroll → manageable → available, then
/// active and back to available again and again. Returns the cycles done.
async fn cycle(balancer: &Balancer, name: String, stop: &AtomicBool) -> usize {
    let (status, node) = balancer
        .send(
            Method::POST,
            "/v1/nodes",
            Some(json!({"driver": "fake-hardware", "name": name})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{node}");
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    let path = format!("/v1/nodes/{uuid}/states/provision");
    for (target, state) in [("manage", "manageable"), ("provide", "available")] {
        balancer
            .send(Method::PUT, &path, Some(json!({"target": target})))
            .await;
        balancer.settle(&uuid, state).await;
    }
    let mut cycles = 0;
    while !stop.load(SeqCst) {
        for (target, state) in [("active", "active"), ("deleted", "available")] {
            balancer
                .send(Method::PUT, &path, Some(json!({"target": target})))
                .await;
            balancer.settle(&uuid, state).await;
        }
        cycles += 1;
    }
    cycles
}

fn env(db: &str, prefix: &str, extra: &[(&str, String)]) -> Vec<(String, String)> {
    let mut env = service_env(db, &amqp_url(), prefix, 300, "info");
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    env
}

fn log_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(clippy::print_stderr, reason = "prints what the closing note quotes")]
async fn a_rolling_restart_of_every_process_under_load_fails_no_request() {
    let pg = TestPg::new();
    let prefix = format!("t{}.", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let dir = tempfile::tempdir().unwrap();
    let hosts = [format!("{prefix}c-0"), format!("{prefix}c-1")];
    let mut conductors: Vec<ServiceProcess> = hosts
        .iter()
        .map(|host| {
            ServiceProcess::new(
                "conductor",
                env(
                    &pg.url,
                    &prefix,
                    &[("FERRIC_CONDUCTOR__HOST", host.clone())],
                ),
                dir.path().join(format!("{host}.log")),
            )
        })
        .collect();
    let ports = [free_port(), free_port()];
    let mut apis: Vec<ServiceProcess> = ports
        .iter()
        .map(|port| {
            ServiceProcess::new(
                "api",
                env(&pg.url, &prefix, &[("FERRIC_API__PORT", port.to_string())]),
                dir.path().join(format!("api-{port}.log")),
            )
        })
        .collect();
    let balancer = Balancer::new(
        ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect(),
    );
    let stop_watching = AtomicBool::new(false);
    let stop_cycling = AtomicBool::new(false);
    let all_ready = || async { balancer.ready.iter().all(|r| r.load(SeqCst)).then_some(()) };

    let watcher = balancer.watch(&stop_watching);
    let run = async {
        wait_until(Duration::from_secs(60), "both APIs ready", all_ready).await;
        let workers = futures_util::future::join_all(
            (0..12).map(|i| cycle(&balancer, format!("roll{i}"), &stop_cycling)),
        );
        let roll = async {
            let mut exits = Vec::new();
            for (conductor, host) in conductors.iter_mut().zip(&hosts) {
                exits.push(conductor.terminate().await);
                conductor.start();
                balancer.conductor_alive(host).await;
            }
            for api in &mut apis {
                exits.push(api.terminate().await);
                api.start();
                wait_until(Duration::from_secs(60), "the API back", all_ready).await;
            }
            stop_cycling.store(true, SeqCst);
            exits
        };
        let (cycles, exits) = tokio::join!(workers, roll);
        stop_watching.store(true, SeqCst);
        (cycles, exits)
    };
    let ((cycles, exits), ()) = tokio::join!(run, watcher);

    let failures = balancer.failures.lock().unwrap().clone();
    let statuses = balancer.statuses.lock().unwrap().clone();
    let unexpected: Vec<&(String, StatusCode)> = statuses
        .iter()
        .filter(|(request, status)| {
            let wanted = if request.starts_with("PUT") {
                StatusCode::ACCEPTED
            } else if request.starts_with("POST") {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            *status != wanted
        })
        .collect();
    let logs: String = conductors
        .iter()
        .chain(&apis)
        .map(|p| log_text(&p.log))
        .collect();
    eprintln!(
        "rolling restart: 2 conductors and 2 APIs restarted in turn; {} requests, {} \
         provision cycles by 12 workers, failures: {}, unexpected statuses: {}",
        statuses.len(),
        cycles.iter().sum::<usize>(),
        failures.len(),
        unexpected.len()
    );

    assert!(
        failures.is_empty(),
        "requests without an answer: {failures:#?}"
    );
    assert!(unexpected.is_empty(), "{unexpected:?}");
    assert!(
        exits.iter().all(std::process::ExitStatus::success),
        "{exits:?}\n{logs}"
    );
    assert_eq!(
        logs.matches("conductor stopped").count(),
        2,
        "each conductor drained and deregistered"
    );
    assert!(cycles.iter().all(|c| *c >= 1), "{cycles:?}");
    // Nothing half-way: every node stable and unlocked.
    let (_, list) = balancer.send(Method::GET, "/v1/nodes/detail", None).await;
    for node in list["nodes"].as_array().unwrap() {
        assert_eq!(node["provision_state"], "available", "{node}");
        assert!(node["reservation"].is_null(), "{node}");
    }
    for p in conductors.iter_mut().chain(apis.iter_mut()) {
        p.terminate().await;
    }
    delete_queues(&prefix, &hosts);
}
