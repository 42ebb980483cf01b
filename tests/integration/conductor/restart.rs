//! A conductor that restarts clears its own stale locks and fails nodes it
//! cannot resume, as Ironic's `_correct_stuck_states` does.

use ferric::embedded::Embedded;
use ferric_common::db::models::node::{Node, StateChange};
use ferric_common::states::ProvisionState;

use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_fails_a_node_left_deploying_and_clears_its_lock() {
    let mut app = spawn_app().await;
    let node = app.available_node("stuck").await;
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    let host = app.settings.conductor.host.clone().unwrap();
    // Simulate a crash mid-deploy: the row says deploying, locked by this host.
    let db = app.embedded.as_ref().unwrap().db.clone();
    let (u, h) = (uuid.clone(), host.clone());
    db.run(move |conn| {
        let node = Node::by_uuid(conn, &u)?.unwrap();
        assert!(Node::try_reserve(conn, node.id, &h)?);
        Node::write_state(
            conn,
            node.id,
            &h,
            &StateChange::provision(ProvisionState::Deploying),
        )?;
        Ok(())
    })
    .await
    .unwrap();
    app.embedded.take().unwrap().shutdown().await;
    let (u, h) = (uuid.clone(), host.clone());
    db.run(move |conn| {
        let node = Node::by_uuid(conn, &u)?.unwrap();
        assert!(
            Node::try_reserve(conn, node.id, &h)?,
            "shutdown released the lock; take it again"
        );
        Ok(())
    })
    .await
    .unwrap();

    let restarted = Embedded::start(app.settings.clone()).await.unwrap();
    app.base = format!("http://127.0.0.1:{}", restarted.port);
    app.embedded = Some(restarted);
    let after = app.get(&format!("/v1/nodes/{uuid}")).await.json();

    assert_eq!(after["provision_state"], "deploy failed");
    assert!(after["reservation"].is_null());
    assert_eq!(
        after["last_error"],
        format!("The deploying state can't be resumed by conductor {host}. Moving to fail state.")
    );
    app.stop().await;
}
