//! A malformed task is dead-lettered and the conductor keeps serving.

use std::time::Duration;

use ferric_proto::v1::{GetBootDevice, Task, task, task_reply::Outcome};
use prost::Message;

use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_task_goes_to_dead_letters_and_the_conductor_lives_on() {
    let app = spawn_app().await;
    let node = app.create_node("dl").await;
    let embedded = app.embedded.as_ref().unwrap();
    let host = embedded.conductor_host().to_owned();

    let garbage = embedded
        .queue
        .call_raw(
            &host,
            vec![0xff, 0xff, 0xff, 0x01, 0x02],
            Duration::from_secs(5),
        )
        .await;
    let valid = Task {
        task_id: "t-1".into(),
        node_uuid: node["uuid"].as_str().unwrap().into(),
        request_id: "req-test".into(),
        issued_at_unix_ms: 0,
        kind: Some(task::Kind::GetBootDevice(GetBootDevice {})),
    };
    let reply = embedded
        .queue
        .call_raw(&host, valid.encode_to_vec(), Duration::from_secs(5))
        .await
        .expect("the conductor still answers");

    assert!(garbage.is_err(), "a malformed task gets no reply");
    let dead = embedded.queue.dead_letters();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].reason.starts_with("undecodable task"),
        "{}",
        dead[0].reason
    );
    assert_eq!(reply.task_id, "t-1");
    assert!(
        matches!(reply.outcome, Some(Outcome::BootDevice(_))),
        "{reply:?}"
    );
    app.stop().await;
}
