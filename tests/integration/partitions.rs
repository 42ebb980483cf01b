//! A conductor cut off from PostgreSQL and RabbitMQ while it goes on
//! running: `ferric conductor` (the real binary) in a network namespace of
//! the test's own, reaching the machine's PostgreSQL and RabbitMQ through
//! relays on the veth; the API and a second conductor on the machine. The
//! cut drops every packet both ways mid-deploy. The ring gives the cut-off
//! conductor's nodes to the other after its heartbeat timeout, whose
//! takeover fails their deploys as Ironic's does; when the cut heals, the
//! stale conductor, whose deploy flows wake up believing they still hold
//! their nodes, must change none of them (fencing, ARCHITECTURE.md
//! "Faults").

use std::time::Duration;

use ferric_conductor::takeover::TAKEOVER_ERROR;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::distributed::Cluster;
use crate::helpers::broker::{amqp_url, delete_queues, service_env};
use crate::helpers::db::TestPg;
use crate::helpers::netns::{Forward, Netns};
use crate::helpers::process::ServiceProcess;
use crate::helpers::wait_until;

/// `url` with its host and port replaced; the original `host:port`.
fn relayed(url: &str, host: &str, port: u16) -> (String, String) {
    let mut parsed = reqwest::Url::parse(url).unwrap();
    let target = format!(
        "{}:{}",
        parsed.host_str().unwrap(),
        parsed.port_or_known_default().unwrap_or(5432)
    );
    parsed.set_host(Some(host)).unwrap();
    parsed.set_port(Some(port)).unwrap();
    (parsed.to_string(), target)
}

async fn node(cluster: &Cluster, uuid: &str) -> Value {
    cluster
        .send(Method::GET, &format!("/v1/nodes/{uuid}"), None)
        .await
        .1
}

async fn alive(cluster: &Cluster, host: &str) -> bool {
    let (_, conductor) = cluster
        .send(Method::GET, &format!("/v1/conductors/{host}"), None)
        .await;
    conductor["alive"] == true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(clippy::print_stderr, reason = "prints what the closing note quotes")]
async fn a_partitioned_conductor_loses_its_nodes_and_changes_none_of_them_when_it_returns() {
    let netns = Netns::new();
    let pg = TestPg::new();
    let cluster = Cluster::start_on(&pg.url, 1, |s| {
        s.conductor.heartbeat_interval_secs = 1;
        s.conductor.heartbeat_timeout_secs = 3;
        s.conductor.check_provision_state_interval_secs = 1;
        s.conductor.fake_step_delay_ms = 4000;
    })
    .await;
    // The cut-off conductor reaches PostgreSQL and RabbitMQ through relays
    // on the machine's end of the veth, nothing else.
    let (db_target, amqp_target) = (
        relayed(&pg.url, "127.0.0.1", 1).1,
        relayed(&amqp_url(), "127.0.0.1", 1).1,
    );
    let db_relay = Forward::new(&netns.host_ip, &db_target);
    let amqp_relay = Forward::new(&netns.host_ip, &amqp_target);
    let stale_host = format!("{}c-stale", cluster.prefix());
    let dir = tempfile::tempdir().unwrap();
    let mut env = service_env(
        &relayed(&pg.url, &netns.host_ip, db_relay.port).0,
        &relayed(&amqp_url(), &netns.host_ip, amqp_relay.port).0,
        cluster.prefix(),
        4000,
        "info",
    );
    env.push(("FERRIC_CONDUCTOR__HOST".into(), stale_host.clone()));
    let mut stale = ServiceProcess::new_in(
        Some(&netns.name),
        "conductor",
        env,
        dir.path().join("stale.log"),
    );
    wait_until(
        Duration::from_secs(60),
        "the namespaced conductor alive",
        || async { alive(&cluster, &stale_host).await.then_some(()) },
    )
    .await;

    let mut uuids = Vec::new();
    for i in 0..20 {
        let (status, created) = cluster
            .send(
                Method::POST,
                "/v1/nodes",
                Some(json!({"driver": "fake-hardware", "name": format!("p{i}")})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        uuids.push(created["uuid"].as_str().unwrap().to_owned());
    }
    for (target, state) in [("manage", "manageable"), ("provide", "available")] {
        cluster.provision_all(&uuids, target).await;
        for uuid in &uuids {
            cluster.wait_state(uuid, state).await;
        }
    }
    let mut theirs = Vec::new();
    for uuid in &uuids {
        if node(&cluster, uuid).await["conductor"] == stale_host.as_str() {
            theirs.push(uuid.clone());
        }
    }
    assert!(
        !theirs.is_empty() && theirs.len() < uuids.len(),
        "the ring shares the nodes"
    );

    // Mid-deploy (fake steps of 4 s), the namespace is cut off.
    let replies = cluster.provision_all(&uuids, "active").await;
    assert!(
        replies.iter().all(|s| *s == StatusCode::ACCEPTED),
        "{replies:?}"
    );
    for uuid in &theirs {
        assert_eq!(
            node(&cluster, uuid).await["reservation"],
            stale_host.as_str()
        );
    }
    netns.cut();
    let cut_at = std::time::Instant::now();
    let taken_over = wait_until(Duration::from_secs(60), "the takeover", || async {
        let mut settled = Vec::new();
        for uuid in &theirs {
            let n = node(&cluster, uuid).await;
            if n["provision_state"] != "deploy failed" || !n["reservation"].is_null() {
                return None;
            }
            settled.push(n);
        }
        Some(settled)
    })
    .await;
    let takeover_after = cut_at.elapsed();
    for uuid in uuids.iter().filter(|u| !theirs.contains(u)) {
        cluster.wait_state(uuid, "active").await;
    }

    // The cut heals: the stale conductor's flows wake up. It heartbeats
    // again; once it has stopped (SIGTERM waits for every task it runs),
    // whatever it would do is done.
    netns.heal();
    wait_until(
        Duration::from_secs(90),
        "the stale conductor back",
        || async { alive(&cluster, &stale_host).await.then_some(()) },
    )
    .await;
    let exit = stale.terminate().await;
    let log = std::fs::read_to_string(&stale.log).unwrap_or_default();
    eprintln!(
        "partition: {} of 20 nodes on the cut-off conductor, taken over {takeover_after:?} \
         after the cut; the stale conductor came back, its flows stopped at the fence, and it \
         changed none of them",
        theirs.len()
    );

    for before in &taken_over {
        assert_eq!(before["last_error"], TAKEOVER_ERROR, "{before}");
        let uuid = before["uuid"].as_str().unwrap();
        let after = node(&cluster, uuid).await;
        assert_eq!(after["provision_state"], "deploy failed", "{after}\n{log}");
        assert_eq!(after["last_error"], TAKEOVER_ERROR, "{after}");
        assert!(after["reservation"].is_null(), "{after}");
        assert_eq!(
            after["updated_at"], before["updated_at"],
            "nothing wrote to {uuid}"
        );
    }
    // Each of its deploy flows woke up, found its lock gone at the fence
    // before its next step, and stopped without acting.
    assert_eq!(
        log.matches("fenced: the node's lock was taken").count(),
        theirs.len(),
        "{log}"
    );
    assert!(exit.success(), "{exit:?}\n{log}");
    assert!(log.contains("conductor stopped"), "{log}");
    // Its nodes can be deployed again, by whoever owns them now.
    cluster.provision_all(&theirs, "active").await;
    for uuid in &theirs {
        cluster.wait_state(uuid, "active").await;
    }
    let prefix = cluster.prefix().to_owned();
    cluster.stop().await;
    delete_queues(&prefix, &[stale_host]);
}
