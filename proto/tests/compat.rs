//! Additive evolution only: every frozen schema under `compat/` is a subset
//! of today's, and messages cross between them both ways.
// Tests unwrap freely.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, MessageDescriptor, Value};

use ferric_proto::v1::{self, task, task_reply};

const FROZEN: &[&str] = &["compat/949ec05", "compat/d2dc106"];

fn pool(include: &str) -> DescriptorPool {
    let set = protox::compile(["ferric/v1/tasks.proto"], [include]).expect("the schema compiles");
    DescriptorPool::from_file_descriptor_set(set).expect("a valid descriptor set")
}

fn kind_name(kind: &Kind) -> String {
    match kind {
        Kind::Message(m) => m.full_name().to_owned(),
        Kind::Enum(e) => e.full_name().to_owned(),
        other => format!("{other:?}"),
    }
}

#[test]
fn every_frozen_schema_is_a_subset_of_the_current_one() {
    let current = pool(".");
    for dir in FROZEN {
        let old = pool(dir);
        for message in old.all_messages() {
            let Some(now) = current.get_message_by_name(message.full_name()) else {
                panic!("{dir}: message {} was removed", message.full_name());
            };
            for field in message.fields() {
                let Some(same) = now.get_field(field.number()) else {
                    panic!(
                        "{dir}: {} field {} was removed",
                        message.full_name(),
                        field.number()
                    );
                };
                assert_eq!(
                    same.name(),
                    field.name(),
                    "{dir}: {} field {} renamed",
                    message.full_name(),
                    field.number()
                );
                assert_eq!(
                    kind_name(&same.kind()),
                    kind_name(&field.kind()),
                    "{dir}: {} retyped",
                    field.full_name()
                );
                assert_eq!(
                    same.cardinality(),
                    field.cardinality(),
                    "{dir}: {} cardinality",
                    field.full_name()
                );
                assert_eq!(
                    same.containing_oneof().map(|o| o.name().to_owned()),
                    field.containing_oneof().map(|o| o.name().to_owned()),
                    "{dir}: {} moved in or out of a oneof",
                    field.full_name()
                );
            }
        }
        for old_enum in old.all_enums() {
            let now = current
                .get_enum_by_name(old_enum.full_name())
                .unwrap_or_else(|| panic!("{dir}: enum {} was removed", old_enum.full_name()));
            for value in old_enum.values() {
                assert_eq!(
                    now.get_value(value.number()).map(|v| v.name().to_owned()),
                    Some(value.name().to_owned()),
                    "{dir}: {} changed",
                    value.full_name()
                );
            }
        }
    }
}

fn set(message: &mut DynamicMessage, field: &str, value: Value) {
    message.set_field_by_name(field, value);
}

fn old_message(desc: &MessageDescriptor, fields: &[(&str, Value)]) -> DynamicMessage {
    let mut message = DynamicMessage::new(desc.clone());
    for (name, value) in fields {
        set(&mut message, name, value.clone());
    }
    message
}

#[test]
fn tasks_and_replies_written_by_an_old_schema_decode_today() {
    for dir in FROZEN {
        let old = pool(dir);
        let message = |name: &str| {
            old.get_message_by_name(&format!("ferric.v1.{name}"))
                .unwrap()
        };
        let provision = old_message(
            &message("ProvisionAction"),
            &[
                ("verb", Value::String("active".into())),
                (
                    "configdrive_json",
                    Value::String("{\"meta_data\":{}}".into()),
                ),
            ],
        );
        let task_bytes = old_message(
            &message("Task"),
            &[
                ("task_id", Value::String("t-1".into())),
                (
                    "node_uuid",
                    Value::String("1be26c0b-03f2-4d2e-ae87-c02d7f33c123".into()),
                ),
                ("request_id", Value::String("req-1".into())),
                ("issued_at_unix_ms", Value::I64(1_764_300_000_000)),
                ("provision", Value::Message(provision)),
            ],
        )
        .encode_to_vec();
        let refused = old_message(
            &message("Refused"),
            &[
                ("kind", Value::EnumNumber(2)),
                ("message", Value::String("locked".into())),
            ],
        );
        let reply_bytes = old_message(
            &message("TaskReply"),
            &[
                ("task_id", Value::String("t-1".into())),
                ("refused", Value::Message(refused)),
            ],
        )
        .encode_to_vec();

        let task = v1::Task::decode(task_bytes.as_slice()).expect("an old task decodes");
        let reply = v1::TaskReply::decode(reply_bytes.as_slice()).expect("an old reply decodes");

        assert_eq!(task.task_id, "t-1", "{dir}");
        assert_eq!(task.node_uuid, "1be26c0b-03f2-4d2e-ae87-c02d7f33c123");
        assert_eq!(task.request_id, "req-1");
        assert_eq!(task.issued_at_unix_ms, 1_764_300_000_000);
        let Some(task::Kind::Provision(action)) = task.kind else {
            panic!("{dir}: {task:?}");
        };
        assert_eq!(action.verb, "active");
        assert_eq!(
            action.configdrive_json.as_deref(),
            Some("{\"meta_data\":{}}")
        );
        let Some(task_reply::Outcome::Refused(refusal)) = reply.outcome else {
            panic!("{dir}: {reply:?}");
        };
        assert_eq!(refusal.kind(), v1::RefusalKind::NodeLocked);
        assert_eq!(refusal.message, "locked");
    }
}

#[test]
fn todays_tasks_decode_with_an_old_schema() {
    let task = v1::Task {
        task_id: "t-2".into(),
        node_uuid: "n".into(),
        request_id: "r".into(),
        issued_at_unix_ms: 7,
        kind: Some(task::Kind::Power(v1::PowerAction {
            target: "rebooting".into(),
            timeout_seconds: 30,
        })),
    };
    for dir in FROZEN {
        let old = pool(dir);
        let desc = old.get_message_by_name("ferric.v1.Task").unwrap();
        let decoded = DynamicMessage::decode(desc, task.encode_to_vec().as_slice())
            .expect("an old conductor decodes a new task");
        let power = decoded.get_field_by_name("power").expect("power is set");
        let target = power
            .as_message()
            .and_then(|m| m.get_field_by_name("target"))
            .and_then(|v| v.as_str().map(str::to_owned));
        assert_eq!(target.as_deref(), Some("rebooting"), "{dir}");
        assert_eq!(
            decoded
                .get_field_by_name("task_id")
                .and_then(|v| v.as_str().map(str::to_owned)),
            Some("t-2".to_owned())
        );
    }
}
