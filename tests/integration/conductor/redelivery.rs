//! A task delivered twice (RabbitMQ delivers at least once) acts once: the
//! second delivery is answered `Accepted` from the task's receipt.

use std::time::Duration;

use ferric_proto::v1::{PowerAction, ProvisionAction, Task, TaskReply, task, task_reply::Outcome};
use prost::Message;

use crate::helpers::{TestApp, spawn_app, wait_until};

async fn deliver(app: &TestApp, task: &Task) -> TaskReply {
    let embedded = app.embedded.as_ref().unwrap();
    embedded
        .queue
        .call_raw(
            embedded.conductor_host(),
            task.encode_to_vec(),
            Duration::from_secs(5),
        )
        .await
        .expect("the conductor answers")
}

fn task(id: &str, node: &str, kind: task::Kind) -> Task {
    Task {
        task_id: id.into(),
        node_uuid: node.into(),
        request_id: "req-redelivery".into(),
        issued_at_unix_ms: 0,
        kind: Some(kind),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_task_is_acknowledged_without_acting_twice() {
    let app = spawn_app().await;
    let node = app.create_node("redelivered").await;
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    let manage = task(
        "11111111-1111-4111-8111-111111111111",
        &uuid,
        task::Kind::Provision(ProvisionAction {
            verb: "manage".into(),
            ..ProvisionAction::default()
        }),
    );
    let reboot = task(
        "22222222-2222-4222-8222-222222222222",
        &uuid,
        task::Kind::Power(PowerAction {
            target: "rebooting".into(),
            ..PowerAction::default()
        }),
    );

    let first = deliver(&app, &manage).await;
    app.wait_for_state(&uuid, "manageable").await;
    let again = deliver(&app, &manage).await;
    let fresh = deliver(
        &app,
        &task(
            "33333333-3333-4333-8333-333333333333",
            &uuid,
            manage.kind.clone().unwrap(),
        ),
    )
    .await;
    deliver(&app, &reboot).await;
    let rebooted = wait_until(Duration::from_secs(10), "the reboot", || async {
        let n = app.get(&format!("/v1/nodes/{uuid}")).await.json();
        (n["power_state"] == "power on" && n["reservation"].is_null()).then_some(n)
    })
    .await;
    let reboot_again = deliver(&app, &reboot).await;
    let after = app.get(&format!("/v1/nodes/{uuid}")).await.json();

    assert!(
        matches!(first.outcome, Some(Outcome::Accepted(_))),
        "{first:?}"
    );
    assert!(
        matches!(again.outcome, Some(Outcome::Accepted(_))),
        "the same task again is acknowledged, not refused: {again:?}"
    );
    assert!(
        matches!(fresh.outcome, Some(Outcome::Refused(_))),
        "a new task with the same verb is checked as usual: {fresh:?}"
    );
    assert!(matches!(reboot_again.outcome, Some(Outcome::Accepted(_))));
    assert_eq!(after["provision_state"], "manageable");
    assert!(after["last_error"].is_null());
    assert_eq!(
        after["driver_internal_info"]["last_power_state_change"],
        rebooted["driver_internal_info"]["last_power_state_change"],
        "the redelivered reboot did not power-cycle the node again"
    );
    app.stop().await;
}
