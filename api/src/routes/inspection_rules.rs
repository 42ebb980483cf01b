//! `/v1/inspection_rules` (1.96): rules applied to inspection data.
//! Ferric stores and validates them as Ironic does (operators, actions and
//! their arguments, phase `main`, priority 0–9999); a `sensitive` rule's
//! conditions and actions are never shown. Applying them waits for
//! agent-based inspection.
//!
//! Deliberate differences: invalid operator arguments get 400 (Ironic 39
//! answers 500), and `links` point at `/v1/inspection_rules/{uuid}` (Ironic
//! 39 links to `/v1/inspection/{uuid}`, which does not exist).

use actix_web::HttpRequest;
use chrono::NaiveDateTime;
use ferric_common::db::models::inspection_rule::{InspectionRule, RuleFields};
use ferric_common::db::{AnyConnection, DbError};
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::microversion::Microversion;
use crate::pagination::Query;
use crate::patch::{apply_patch, check_allowed_paths};
use crate::routes::resource::{Resource, unique_conflict};
use crate::routes::small_lists::{GateBody, resource_gate, sortable};
use crate::validation::{check_known_fields, is_uuid_like, py_repr};
use crate::views::{json_column, links, opt, timestamp};

const VERSION: u32 = 96;

/// Action operators with their required and optional arguments (the
/// parameters of each action's `__call__` in Ironic).
const ACTIONS: [(&str, &[&str], &[&str]); 16] = [
    ("fail", &["msg"], &[]),
    ("log", &["msg"], &["level"]),
    ("set-attribute", &["path", "value"], &[]),
    ("extend-attribute", &["path", "value"], &["unique"]),
    ("del-attribute", &["path"], &[]),
    ("set-capability", &["name", "value"], &[]),
    ("unset-capability", &["name"], &[]),
    ("add-trait", &["name"], &[]),
    ("remove-trait", &["name"], &[]),
    ("set-plugin-data", &["path", "value"], &[]),
    ("extend-plugin-data", &["path", "value"], &["unique"]),
    ("unset-plugin-data", &["path"], &[]),
    ("set-port-attribute", &["port_id", "path", "value"], &[]),
    (
        "extend-port-attribute",
        &["port_id", "path", "value"],
        &["unique"],
    ),
    ("del-port-attribute", &["port_id", "path"], &[]),
    (
        "api-call",
        &["url"],
        &["headers", "proxies", "timeout", "retries", "backoff_factor"],
    ),
];

/// Condition operators with their arguments (`!op` negates one).
const OPERATORS: [(&str, &[&str], &[&str]); 11] = [
    ("eq", &["values"], &["force_strings"]),
    ("lt", &["values"], &["force_strings"]),
    ("gt", &["values"], &["force_strings"]),
    ("is-empty", &["value"], &[]),
    ("in-net", &["address", "subnet"], &[]),
    ("matches", &["value", "regex"], &[]),
    ("contains", &["value", "regex"], &[]),
    ("one-of", &["value"], &["values"]),
    ("is-none", &["value"], &[]),
    ("is-true", &["value"], &[]),
    ("is-false", &["value"], &[]),
];

const DEFAULT_LIST_FIELDS: [&str; 4] = ["uuid", "priority", "phase", "description"];
const PATCH_ALLOWED: [&str; 6] = [
    "description",
    "priority",
    "sensitive",
    "phase",
    "conditions",
    "actions",
];
const SORT_KEYS: [&str; 7] = [
    "id",
    "uuid",
    "description",
    "priority",
    "phase",
    "created_at",
    "updated_at",
];

fn schema_error(message: String) -> ApiError {
    ApiError::BadRequest(format!("Schema error: {message}"))
}

sortable!(InspectionRule, [uuid, description, priority, phase]);

/// Checks an operator's arguments against its signature: a list binds
/// positionally, an object by name.
fn check_args(args: &Value, required: &[&str], optional: &[&str]) -> Result<(), String> {
    let given: Vec<String> = match args {
        Value::Object(map) => map.keys().cloned().collect(),
        Value::Array(items) => {
            let names: Vec<&str> = required.iter().chain(optional).copied().collect();
            if items.len() > names.len() {
                return Err(format!(
                    "takes at most {} argument(s), {} given",
                    names.len(),
                    items.len()
                ));
            }
            names[..items.len()]
                .iter()
                .map(|n| (*n).to_owned())
                .collect()
        }
        _ => return Err("args must be either a list or dictionary".into()),
    };
    let missing: Vec<&str> = required
        .iter()
        .filter(|r| !given.iter().any(|g| g == *r))
        .copied()
        .collect();
    let mut unexpected: Vec<&str> = given
        .iter()
        .map(String::as_str)
        .filter(|g| !required.contains(g) && !optional.contains(g))
        .collect();
    unexpected.sort_unstable();
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!(
            "missing required argument(s): {}",
            missing.join(", ")
        ));
    }
    if !unexpected.is_empty() {
        parts.push(format!("unexpected argument(s): {}", unexpected.join(", ")));
    }
    if parts.is_empty() {
        Ok(())
    } else {
        Err(parts.join("; "))
    }
}

/// Checks a list of conditions or actions: the schema, then each
/// operator's arguments. Returns the first problem (or all, as Ironic words
/// several).
fn check_ops(
    list: &Value,
    key: &str,
    table: &[(&str, &[&str], &[&str])],
    min_items: usize,
    errors: &mut Vec<String>,
) -> Result<(), ApiError> {
    let Value::Array(items) = list else {
        return Err(schema_error(format!(
            "{} is not of type 'array'",
            py_repr(list)
        )));
    };
    if items.len() < min_items {
        return Err(schema_error("[] should be non-empty".into()));
    }
    let negatable = key == "conditions";
    for item in items {
        let Value::Object(map) = item else {
            return Err(schema_error(format!(
                "{} is not of type 'object'",
                py_repr(item)
            )));
        };
        for required in ["op", "args"] {
            if !map.contains_key(required) {
                return Err(schema_error(format!("'{required}' is a required property")));
            }
        }
        let raw_op = map["op"].as_str().unwrap_or_default();
        let op = if negatable {
            raw_op.strip_prefix('!').unwrap_or(raw_op)
        } else {
            raw_op
        };
        let Some((_, required, optional)) = table.iter().find(|(name, _, _)| *name == op) else {
            let mut names: Vec<String> = table.iter().map(|(n, _, _)| format!("'{n}'")).collect();
            if negatable {
                names.extend(table.iter().map(|(n, _, _)| format!("'!{n}'")));
            }
            return Err(schema_error(format!(
                "{} is not one of [{}]",
                py_repr(&map["op"]),
                names.join(", ")
            )));
        };
        if let Some(multiple) = map.get("multiple")
            && !multiple
                .as_str()
                .is_some_and(|m| ["any", "all", "first", "last"].contains(&m))
        {
            return Err(schema_error(format!(
                "{} is not one of ['any', 'all', 'first', 'last']",
                py_repr(multiple)
            )));
        }
        if let Err(problem) = check_args(&map["args"], required, optional) {
            let kind = if negatable { "condition" } else { "action" };
            errors.push(format!(
                "Invalid parameters for {kind} operator {op}: {problem}"
            ));
        }
    }
    Ok(())
}

/// Checks a whole rule document and turns it into row fields.
fn fields_from(map: &Map<String, Value>) -> Result<RuleFields, ApiError> {
    const KEYS: [&str; 7] = [
        "actions",
        "conditions",
        "description",
        "phase",
        "priority",
        "sensitive",
        "uuid",
    ];
    if let Some(key) = map.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(schema_error(format!(
            "Additional properties are not allowed ('{key}' was unexpected)"
        )));
    }
    let Some(actions) = map.get("actions") else {
        return Err(schema_error("'actions' is a required property".into()));
    };
    let conditions = map
        .get("conditions")
        .filter(|c| !c.is_null())
        .cloned()
        .unwrap_or_else(|| json!([]));
    let mut errors = Vec::new();
    check_ops(&conditions, "conditions", &OPERATORS, 0, &mut errors)?;
    check_ops(actions, "actions", &ACTIONS, 1, &mut errors)?;
    let description = match map.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) if d.chars().count() <= 255 => Some(d.clone()),
        Some(other) => {
            return Err(schema_error(format!(
                "{} is not valid for description",
                py_repr(other)
            )));
        }
    };
    let phase = match map.get("phase") {
        None | Some(Value::Null) => "main".to_owned(),
        Some(Value::String(p)) if p == "main" => p.clone(),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "Invalid phase: {}. Valid phases are: main",
                other.as_str().unwrap_or(&other.to_string())
            )));
        }
    };
    let priority = match map.get("priority") {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) if n.is_i64() => {
            let p = n.as_i64().unwrap_or_default();
            if p < 0 {
                return Err(schema_error(format!("{p} is less than the minimum of 0")));
            }
            if p > 9999 {
                return Err(ApiError::BadRequest(
                    "Priority must be between 0 and 9999 for user-defined rules.".into(),
                ));
            }
            i32::try_from(p).unwrap_or_default()
        }
        Some(other) => {
            return Err(schema_error(format!(
                "{} is not of type 'integer'",
                py_repr(other)
            )));
        }
    };
    let sensitive = match map.get("sensitive") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(schema_error(format!(
                "{} is not of type 'boolean', 'null'",
                py_repr(other)
            )));
        }
    };
    match errors.len() {
        0 => {}
        1 => return Err(ApiError::BadRequest(errors.remove(0))),
        _ => {
            return Err(ApiError::BadRequest(format!(
                "Multiple validation errors occurred: {}",
                errors.join("; ")
            )));
        }
    }
    Ok(RuleFields {
        description,
        priority,
        sensitive,
        phase,
        conditions: conditions.to_string(),
        actions: actions.to_string(),
    })
}

fn body(rule: &InspectionRule, base: &str, fields: Option<&[String]>) -> Value {
    let hidden = |text: &str| {
        if rule.sensitive {
            Value::Null
        } else {
            json_column(text)
        }
    };
    let mut out = Map::new();
    out.insert("uuid".into(), json!(rule.uuid));
    out.insert("created_at".into(), timestamp(Some(rule.created_at)));
    out.insert("updated_at".into(), timestamp(rule.updated_at));
    out.insert("description".into(), opt(&rule.description));
    out.insert("priority".into(), json!(rule.priority));
    out.insert("sensitive".into(), json!(rule.sensitive));
    out.insert("phase".into(), json!(rule.phase));
    out.insert("conditions".into(), hidden(&rule.conditions));
    out.insert("actions".into(), hidden(&rule.actions));
    out.insert(
        "links".into(),
        links(base, &format!("inspection_rules/{}", rule.uuid)),
    );
    if let Some(fields) = fields {
        out.retain(|k, _| k == "links" || fields.iter().any(|f| f == k));
    }
    Value::Object(out)
}

impl Resource for InspectionRule {
    type Fields = RuleFields;
    const COLLECTION: &'static str = "inspection_rules";
    const TITLE: &'static str = "Inspection rule";
    const SORT_KEYS: &'static [&'static str] = &SORT_KEYS;
    const UNSORTABLE: &'static [&'static str] = &["actions", "conditions"];
    const DEFAULT_LIST_FIELDS: &'static [&'static str] = &DEFAULT_LIST_FIELDS;
    const FILTERS: &'static [&'static str] = &["phase"];

    fn gate(version: Microversion, req: &HttpRequest) -> Result<(), ApiError> {
        resource_gate(
            req,
            version,
            VERSION,
            "The API version does not allow inspection rules",
            GateBody::Fault,
        )
    }

    fn check_fields(fields: &[String], _: Microversion) -> Result<(), ApiError> {
        check_known_fields(fields, |f| {
            PATCH_ALLOWED.contains(&f) || ["uuid", "created_at", "updated_at", "links"].contains(&f)
        })
    }

    fn listed(&self, query: &Query) -> bool {
        query.get("phase").is_none_or(|p| *p == self.phase)
    }

    fn body(&self, base: &str, _: Microversion, fields: Option<&[String]>) -> Value {
        body(self, base, fields)
    }

    fn create_fields(
        body: &Value,
        _: Microversion,
    ) -> Result<(RuleFields, Option<String>), ApiError> {
        let Value::Object(map) = body else {
            return Err(schema_error(format!(
                "{} is not of type 'object'",
                py_repr(body)
            )));
        };
        let uuid = map.get("uuid").and_then(Value::as_str).map(str::to_owned);
        Ok((fields_from(map)?, uuid))
    }

    fn check_patch_paths(ops: &[Value], _: Microversion) -> Result<(), ApiError> {
        check_allowed_paths(ops, &PATCH_ALLOWED).map(|_| ())
    }

    fn patched(&self, ops: &[Value], _: Microversion) -> Result<RuleFields, ApiError> {
        let mut doc = json!({
            "description": self.description,
            "priority": self.priority,
            "sensitive": self.sensitive,
            "phase": self.phase,
            "conditions": json_column(&self.conditions),
            "actions": json_column(&self.actions),
        });
        apply_patch(&mut doc, ops)?;
        let Value::Object(map) = &doc else {
            return Err(ApiError::BadRequest("Invalid patch.".into()));
        };
        fields_from(map)
    }

    fn duplicate(e: DbError, _: &RuleFields, uuid: &str) -> ApiError {
        unique_conflict(
            e,
            &[],
            format!("An inspection rule with UUID {uuid} already exists."),
        )
    }

    fn updated_at(&self) -> Option<NaiveDateTime> {
        self.updated_at
    }
    /// Rules are found by UUID only.
    fn by_ident(conn: &mut AnyConnection, ident: &str) -> Result<Option<Self>, DbError> {
        if !is_uuid_like(ident) {
            return Ok(None);
        }
        InspectionRule::by_uuid(conn, &ident.to_lowercase())
    }
    fn all(conn: &mut AnyConnection) -> Result<Vec<Self>, DbError> {
        InspectionRule::all(conn)
    }
    fn insert(conn: &mut AnyConnection, uuid: &str, fields: &RuleFields) -> Result<Self, DbError> {
        InspectionRule::insert(conn, uuid, fields)
    }
    fn update(
        conn: &mut AnyConnection,
        id: i32,
        seen: Option<NaiveDateTime>,
        fields: &RuleFields,
    ) -> Result<Option<Self>, DbError> {
        InspectionRule::update(conn, id, seen, fields)
    }
    fn delete(conn: &mut AnyConnection, id: i32) -> Result<bool, DbError> {
        InspectionRule::delete(conn, id)
    }
}
