//! Inspection rules (API 1.96) applied to an inspection's data, as Ironic's
//! engine applies them: rules of phase `main`, highest priority first; a
//! rule whose every condition holds runs its actions in order.
//!
//! Arguments Ironic formats (`values`, `value`, `address`, `subnet`, `msg`)
//! are Python format strings over `node`, `inventory` and `plugin_data`:
//! `{inventory[cpu][architecture]}`, `{node.properties[cpu_arch]}`; the
//! result is a string, as in Ironic (so `gt` compares formatted numbers as
//! text, as Ironic does; literal numbers compare as numbers). A field that
//! is missing leaves the text as it is (`is-empty` sees nothing).
//!
//! Ferric runs the conditions (every operator, `!` negation) and the
//! actions that change what an inspection records: `fail`, `log`,
//! `set-attribute`/`del-attribute` within `properties` and `extra`,
//! `set-capability`,
//! `unset-capability`, `add-trait`, `remove-trait`, `set-plugin-data`,
//! `unset-plugin-data`. The others (`loop`, port attributes, `api-call`,
//! `extend-*`) fail the inspection with a message saying so, rather than
//! being skipped silently.

use ipnet::IpNet;
use serde_json::{Map, Value, json};

use crate::inspection::set_capability;

/// A rule as stored.
pub struct Rule {
    pub uuid: String,
    pub priority: i32,
    pub conditions: Vec<Value>,
    pub actions: Vec<Value>,
}

/// What rules change: the node's fields by name (`properties` and `extra`
/// writable), its traits, the plugin data.
pub struct Subject<'a> {
    pub node: &'a mut Map<String, Value>,
    pub add_traits: Vec<String>,
    pub remove_traits: Vec<String>,
    pub plugin_data: &'a mut Map<String, Value>,
}

/// Fields of the node `set-attribute` may change.
const WRITABLE: [&str; 2] = ["properties", "extra"];

/// Applies `rules` to `inventory` and `subject`.
///
/// # Errors
/// A `fail` action's message, or why a rule could not be applied.
pub fn apply(
    mut rules: Vec<Rule>,
    inventory: &Value,
    subject: &mut Subject<'_>,
) -> Result<(), String> {
    rules.sort_by_key(|r| std::cmp::Reverse(r.priority));
    for rule in &rules {
        let context = json!({
            "node": Value::Object(subject.node.clone()),
            "inventory": inventory,
            "plugin_data": Value::Object(subject.plugin_data.clone()),
        });
        let mut holds = true;
        for condition in &rule.conditions {
            if !check(condition, &context)
                .map_err(|e| format!("Inspection rule {}: {e}", rule.uuid))?
            {
                holds = false;
                break;
            }
        }
        if !holds {
            continue;
        }
        tracing::info!(rule = %rule.uuid, "applying the inspection rule's actions");
        for action in &rule.actions {
            act(action, &context, subject).map_err(|e| match e {
                Stop::Failed(message) => message,
                Stop::Broken(e) => format!("Inspection rule {}: {e}", rule.uuid),
            })?;
        }
    }
    Ok(())
}

/// `args` as a map by name (a list binds positionally to `names`).
fn named_args(op: &Value, names: &[&str]) -> Map<String, Value> {
    match &op["args"] {
        Value::Object(map) => map.clone(),
        Value::Array(items) => names
            .iter()
            .zip(items)
            .map(|(n, v)| ((*n).to_owned(), v.clone()))
            .collect(),
        _ => Map::new(),
    }
}

/// Looks `path` (`inventory[cpu][count]`, `node.properties[x]`) up.
fn lookup<'v>(context: &'v Value, path: &str) -> Option<&'v Value> {
    let mut rest = path;
    let root_end = rest.find(['[', '.']).unwrap_or(rest.len());
    let mut value = context.get(&rest[..root_end])?;
    rest = &rest[root_end..];
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            let key = &after[..end];
            value = match value {
                Value::Array(items) => items.get(key.parse::<usize>().ok()?)?,
                other => other.get(key)?,
            };
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['[', '.']).unwrap_or(after.len());
            value = value.get(&after[..end])?;
            rest = &after[end..];
        } else {
            return None;
        }
    }
    Some(value)
}

fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

/// Formats `{…}` fields in a string (recursively in lists and objects);
/// `None` when a field is missing and `missing_is_none`.
fn format(value: &Value, context: &Value, missing_is_none: bool) -> Option<Value> {
    match value {
        Value::String(text) => {
            let mut out = String::new();
            let mut rest = text.as_str();
            while let Some(start) = rest.find('{') {
                let Some(len) = rest[start..].find('}') else {
                    break;
                };
                let field = &rest[start + 1..start + len];
                match lookup(context, field) {
                    Some(found) => {
                        out.push_str(&rest[..start]);
                        out.push_str(&as_text(found));
                    }
                    None if missing_is_none => return None,
                    // As Ironic: the text is left unformatted.
                    None => return Some(value.clone()),
                }
                rest = &rest[start + len + 1..];
            }
            out.push_str(rest);
            Some(Value::String(out))
        }
        Value::Array(items) => Some(Value::Array(
            items
                .iter()
                .map(|v| format(v, context, missing_is_none).unwrap_or(Value::Null))
                .collect(),
        )),
        Value::Object(map) => Some(Value::Object(
            map.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        format(v, context, missing_is_none).unwrap_or(Value::Null),
                    )
                })
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

/// Python's truth of a value.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn compare(a: &Value, b: &Value, force_strings: bool) -> Option<std::cmp::Ordering> {
    if !force_strings && let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) {
        return x.partial_cmp(&y);
    }
    Some(as_text(a).cmp(&as_text(b)))
}

fn check(condition: &Value, context: &Value) -> Result<bool, String> {
    let raw = condition["op"].as_str().unwrap_or_default();
    let (inverted, op) = match raw.strip_prefix('!') {
        Some(op) => (true, op),
        None => (false, raw),
    };
    if condition.get("loop").is_some_and(truthy) {
        return Err("conditions with 'loop' are not supported by Ferric yet".into());
    }
    let names: &[&str] = match op {
        "eq" | "lt" | "gt" => &["values", "force_strings"],
        "in-net" => &["address", "subnet"],
        "matches" | "contains" => &["value", "regex"],
        "one-of" => &["value", "values"],
        _ => &["value"],
    };
    let args = named_args(condition, names);
    let formatted = |key: &str| -> Option<Value> {
        format(
            args.get(key).unwrap_or(&Value::Null),
            context,
            op == "is-empty",
        )
    };
    let force = args.get("force_strings").is_some_and(truthy);
    let result = match op {
        "eq" | "lt" | "gt" => {
            let Some(Value::Array(values)) = formatted("values") else {
                return Err(format!(
                    "Failed to check condition: '{op}': Expected list for 'values'"
                ));
            };
            let want = match op {
                "eq" => std::cmp::Ordering::Equal,
                "lt" => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            values
                .windows(2)
                .all(|pair| compare(&pair[0], &pair[1], force) == Some(want))
        }
        "is-empty" => formatted("value").is_none_or(|v| !truthy(&v) || v == "None"),
        "is-none" => formatted("value").is_none_or(|v| v.is_null() || v == "None"),
        "is-true" => formatted("value").is_some_and(|v| {
            v == true
                || as_text(&v).eq_ignore_ascii_case("true")
                || v == "1"
                || v.as_f64() == Some(1.0)
        }),
        "is-false" => formatted("value").is_some_and(|v| {
            v == false
                || as_text(&v).eq_ignore_ascii_case("false")
                || v == "0"
                || v.as_f64() == Some(0.0)
        }),
        "one-of" => {
            let value = formatted("value").unwrap_or(Value::Null);
            args.get("values")
                .and_then(Value::as_array)
                .is_some_and(|values| values.iter().any(|v| as_text(v) == as_text(&value)))
        }
        "matches" | "contains" => {
            let value = as_text(&formatted("value").unwrap_or(Value::Null));
            let pattern = args
                .get("regex")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let anchored = if op == "matches" {
                format!("^(?:{pattern})$")
            } else {
                pattern.to_owned()
            };
            let regex = regex::Regex::new(&anchored)
                .map_err(|e| format!("invalid regex {pattern:?}: {e}"))?;
            regex.is_match(&value)
        }
        "in-net" => {
            let address = as_text(&formatted("address").unwrap_or(Value::Null));
            let subnet = as_text(&formatted("subnet").unwrap_or(Value::Null));
            let net: IpNet = subnet
                .parse()
                .map_err(|_| format!("invalid subnet {subnet:?}"))?;
            address
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| net.contains(&ip))
        }
        other => return Err(format!("Unsupported operator: '{other}'.")),
    };
    Ok(result != inverted)
}

/// A path in dot or slash notation, as Ironic's `normalize_path`.
fn path_parts(path: &str) -> Vec<String> {
    if path.contains('/') {
        path.trim_matches('/')
            .split('/')
            .map(str::to_owned)
            .collect()
    } else {
        path.split('.').map(str::to_owned).collect()
    }
}

/// Sets (`Some`) or deletes (`None`) `path` in `root`.
fn set_path(
    root: &mut Map<String, Value>,
    parts: &[String],
    value: Option<Value>,
) -> Result<(), String> {
    let Some((last, parents)) = parts.split_last() else {
        return Err("an empty path".into());
    };
    let mut current = root;
    for part in parents {
        let next = current.entry(part.clone()).or_insert_with(|| json!({}));
        current = next
            .as_object_mut()
            .ok_or_else(|| format!("{part} is not an object"))?;
    }
    match value {
        Some(value) => {
            current.insert(last.clone(), value);
        }
        None => {
            current.remove(last);
        }
    }
    Ok(())
}

/// Why an action stopped the inspection.
enum Stop {
    /// A `fail` action, with its message.
    Failed(String),
    /// The action could not be applied.
    Broken(String),
}

impl From<String> for Stop {
    fn from(text: String) -> Stop {
        Stop::Broken(text)
    }
}

impl From<&str> for Stop {
    fn from(text: &str) -> Stop {
        Stop::Broken(text.to_owned())
    }
}

fn act(action: &Value, context: &Value, subject: &mut Subject<'_>) -> Result<(), Stop> {
    let op = action["op"].as_str().unwrap_or_default();
    if action.get("loop").is_some_and(truthy) {
        return Err(format!("action '{op}' with 'loop' is not supported by Ferric yet").into());
    }
    let names: &[&str] = match op {
        "fail" | "log" => &["msg", "level"],
        "set-attribute" | "set-plugin-data" => &["path", "value"],
        "del-attribute" | "unset-plugin-data" => &["path"],
        "set-capability" => &["name", "value"],
        _ => &["name"],
    };
    let args = named_args(action, names);
    let text = |key: &str| args.get(key).map(as_text).unwrap_or_default();
    let formatted = |key: &str| {
        format(args.get(key).unwrap_or(&Value::Null), context, false).unwrap_or(Value::Null)
    };
    match op {
        "fail" => Err(Stop::Failed(as_text(&formatted("msg")))),
        "log" => {
            tracing::info!(message = %as_text(&formatted("msg")), "inspection rule log");
            Ok(())
        }
        "set-attribute" | "del-attribute" => {
            let parts = path_parts(&text("path"));
            if !parts
                .first()
                .is_some_and(|p| WRITABLE.contains(&p.as_str()))
                || parts.len() < 2
            {
                return Err(format!(
                    "{op} on {} is not supported by Ferric yet (only within {})",
                    text("path"),
                    WRITABLE.join(", ")
                )
                .into());
            }
            let value = (op == "set-attribute").then(|| formatted("value"));
            Ok(set_path(subject.node, &parts, value)?)
        }
        "set-plugin-data" | "unset-plugin-data" => {
            let value = (op == "set-plugin-data").then(|| formatted("value"));
            Ok(set_path(
                subject.plugin_data,
                &path_parts(&text("path")),
                value,
            )?)
        }
        "set-capability" | "unset-capability" => {
            let properties = subject
                .node
                .entry("properties")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .ok_or("properties is not an object")?;
            if op == "set-capability" {
                set_capability(properties, &text("name"), &as_text(&formatted("value")));
            } else {
                unset_capability(properties, &text("name"));
            }
            Ok(())
        }
        "add-trait" => {
            subject.remove_traits.retain(|t| *t != text("name"));
            subject.add_traits.push(text("name"));
            Ok(())
        }
        "remove-trait" => {
            subject.add_traits.retain(|t| *t != text("name"));
            subject.remove_traits.push(text("name"));
            Ok(())
        }
        other => Err(format!("action '{other}' is not supported by Ferric yet").into()),
    }
}

fn unset_capability(properties: &mut Map<String, Value>, key: &str) {
    match properties.get_mut("capabilities") {
        Some(Value::Object(map)) => {
            map.remove(key);
        }
        Some(Value::String(text)) => {
            *text = text
                .split(',')
                .filter(|p| !p.is_empty() && p.split(':').next() != Some(key))
                .collect::<Vec<_>>()
                .join(",");
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(priority: i32, conditions: Value, actions: Value) -> Rule {
        Rule {
            uuid: format!("rule-{priority}"),
            priority,
            conditions: conditions.as_array().cloned().unwrap(),
            actions: actions.as_array().cloned().unwrap(),
        }
    }

    /// The outcome, the node, the traits added and the plugin data.
    type Ran = (
        Result<(), String>,
        Map<String, Value>,
        Vec<String>,
        Map<String, Value>,
    );

    fn run(rules: Vec<Rule>) -> Ran {
        let inventory = json!({"cpu": {"architecture": "x86_64", "count": 8},
                               "memory": {"physical_mb": 16384},
                               "interfaces": [{"name": "eth0", "ipv4_address": "10.1.2.3"}]});
        let mut node = json!({"properties": {"capabilities": "a:b"}, "extra": {}})
            .as_object()
            .cloned()
            .unwrap();
        let mut plugin = Map::new();
        let mut subject = Subject {
            node: &mut node,
            add_traits: vec![],
            remove_traits: vec![],
            plugin_data: &mut plugin,
        };
        let result = apply(rules, &inventory, &mut subject);
        let traits = subject.add_traits.clone();
        (result, node, traits, plugin)
    }

    #[test]
    fn conditions_select_rules_and_actions_change_the_node() {
        let (result, node, traits, plugin) = run(vec![
            rule(
                10,
                json!([{"op": "eq", "args": {"values": ["{inventory[cpu][architecture]}", "x86_64"]}},
                             {"op": "eq", "args": {"values": ["{inventory[cpu][count]}", "8"]}},
                             {"op": "gt", "args": {"values": [16384, 9000]}},
                             {"op": "in-net", "args": {"address": "{inventory[interfaces][0][ipv4_address]}", "subnet": "10.0.0.0/8"}}]),
                json!([{"op": "add-trait", "args": {"name": "CUSTOM_BIG"}},
                        {"op": "set-attribute", "args": {"path": "/extra/arch", "value": "{inventory[cpu][architecture]}"}},
                        {"op": "set-capability", "args": {"name": "cpu_count", "value": "{inventory[cpu][count]}"}},
                        {"op": "set-plugin-data", "args": {"path": "seen", "value": "yes"}}]),
            ),
            rule(
                5,
                json!([{"op": "!matches", "args": {"value": "{inventory[cpu][architecture]}", "regex": "x86.*"}}]),
                json!([{"op": "add-trait", "args": ["CUSTOM_NOT_X86"]}]),
            ),
            rule(
                1,
                json!([{"op": "is-empty", "args": {"value": "{inventory[missing]}"}}]),
                json!([{"op": "add-trait", "args": {"name": "CUSTOM_NO_MISSING"}}]),
            ),
        ]);
        result.unwrap();
        assert_eq!(traits, ["CUSTOM_BIG", "CUSTOM_NO_MISSING"]);
        assert_eq!(node["extra"]["arch"], "x86_64");
        assert_eq!(node["properties"]["capabilities"], "a:b,cpu_count:8");
        assert_eq!(plugin["seen"], "yes");
    }

    #[test]
    fn a_fail_action_or_an_unsupported_one_stops_with_its_message() {
        let (result, ..) = run(vec![rule(
            0,
            json!([]),
            json!([{"op": "fail", "args": {"msg": "no {inventory[cpu][architecture]} here"}}]),
        )]);
        assert_eq!(result.unwrap_err(), "no x86_64 here");
        let (result, ..) = run(vec![rule(
            0,
            json!([]),
            json!([{"op": "api-call", "args": {"url": "http://x"}}]),
        )]);
        assert!(result.unwrap_err().contains("not supported by Ferric yet"));
        let (result, ..) = run(vec![rule(
            0,
            json!([]),
            json!([{"op": "set-attribute", "args": {"path": "driver", "value": "x"}}]),
        )]);
        assert!(result.unwrap_err().contains("not supported by Ferric yet"));
    }
}
