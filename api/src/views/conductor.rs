//! The conductor body (`/v1/conductors`, 1.49+).

use ferric_common::cluster::ClusterView;
use ferric_common::db::models::conductor::Conductor;
use serde_json::{Map, Value, json};

use crate::views::{links, timestamp};

pub fn conductor_body(
    conductor: &Conductor,
    view: &ClusterView,
    base: &str,
    detail: bool,
) -> Value {
    let mut out = Map::new();
    out.insert("hostname".into(), json!(conductor.hostname));
    out.insert("conductor_group".into(), json!(conductor.conductor_group));
    out.insert(
        "links".into(),
        links(base, &format!("conductors/{}", conductor.hostname)),
    );
    out.insert("alive".into(), json!(view.is_alive(&conductor.hostname)));
    if detail {
        let drivers: Value = serde_json::from_str(&conductor.drivers).unwrap_or_else(|_| json!([]));
        out.insert("drivers".into(), drivers);
        out.insert("created_at".into(), timestamp(Some(conductor.created_at)));
        out.insert("updated_at".into(), timestamp(conductor.updated_at));
    }
    Value::Object(out)
}
