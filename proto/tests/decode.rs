//! Property test: any bytes off the queue decode to a task or an error,
//! never a panic; every task survives an encode/decode round trip.
// Tests unwrap freely.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ferric_proto::v1::{PowerAction, ProvisionAction, Task, TaskReply, task};
use proptest::prelude::*;
use prost::Message;

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Task::decode(bytes.as_slice());
        let _ = TaskReply::decode(bytes.as_slice());
    }

    #[test]
    fn tasks_round_trip(id in ".{0,36}", node in ".{0,36}", verb in ".{0,12}", target in ".{0,16}", issued in any::<i64>(), provision in any::<bool>()) {
        let kind = if provision {
            task::Kind::Provision(ProvisionAction { verb, ..ProvisionAction::default() })
        } else {
            task::Kind::Power(PowerAction { target, timeout_seconds: 0 })
        };
        let task = Task { task_id: id, node_uuid: node, request_id: String::new(), issued_at_unix_ms: issued, kind: Some(kind) };
        prop_assert_eq!(Task::decode(task.encode_to_vec().as_slice()).unwrap(), task);
    }
}
