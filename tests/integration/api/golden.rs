//! Golden comparison with a real Ironic 39.0.0: every request/response pair
//! in `../shared/reference/ironic-samples/` is replayed against Ferric in the
//! same scenario (same UUIDs, names and conductor host), and the status,
//! Ironic's headers, the key sets (in order) of every JSON object, every
//! link's path and every error text must match. Values such as times are
//! not compared.

use std::collections::BTreeSet;
use std::path::PathBuf;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, spawn_app_with};

const CHASSIS: &str = "ab526566-0ba9-41ef-900b-8f13fe99691f";
const NODE: &str = "822796f2-e8fd-416a-8500-2118425da32a";
const PORT: &str = "7f811b5f-4312-430c-9b9e-02ef2ea49110";
const CLI_NODE_1: &str = "7bc3ca97-d14e-44e1-b4ff-7978a83eb362";
const CLI_NODE_2: &str = "8fac5e1b-237b-4bb7-b2b4-7bbb231d135f";
const IRONIC_BASE: &str = "http://127.0.0.1:6385";

const IPMI_NODE: &str = "7efc9e20-c958-4de0-b6a3-c45dd1d13455";

/// Samples that need a later issue's feature, with the reason.
const PENDING: [(&str, &str); 0] = [];

fn samples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/ironic-samples")
}

/// One captured request/response pair.
struct Sample {
    name: String,
    method: Method,
    path: String,
    body: Option<Value>,
    version: Option<String>,
    status: u16,
    headers: Vec<(String, String)>,
    response: String,
}

fn load(name: &str) -> Sample {
    let dir = samples_dir();
    let head = std::fs::read_to_string(dir.join(format!("{name}.headers")))
        .unwrap_or_else(|e| panic!("sample {name}: {e} (is ../shared/reference present?)"));
    let response = std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap_or_default();
    let mut lines = head.lines();
    let request = lines.next().unwrap().trim_start_matches("# ");
    let (request, version) = request.rsplit_once("  [").unwrap();
    let version = version.trim_end_matches(']');
    let version = version
        .strip_prefix("X-OpenStack-Ironic-API-Version: ")
        .map(str::to_owned);
    let (request, body) = match request.split_once("  body: ") {
        Some((r, b)) => (r, Some(serde_json::from_str(b).unwrap())),
        None => (request, None),
    };
    let (method, path) = request.split_once(' ').unwrap();
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_lowercase(), v.to_owned()))
        .collect();
    Sample {
        name: name.to_owned(),
        method: method.parse().unwrap(),
        path: path.to_owned(),
        body,
        version,
        status,
        headers,
        response,
    }
}

/// Compares structure: object keys in order, array elements pairwise, link
/// paths; scalars other than URLs are not compared.
fn compare(
    sample: &str,
    at: &str,
    want: &Value,
    got: &Value,
    ours: &str,
    problems: &mut Vec<String>,
) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            let wk: Vec<&String> = w.keys().collect();
            let gk: Vec<&String> = g.keys().collect();
            if wk != gk {
                let ws: BTreeSet<_> = wk.iter().collect();
                let gs: BTreeSet<_> = gk.iter().collect();
                problems.push(format!(
                    "{sample}{at}: keys differ; missing {:?}, extra {:?}, order ironic {wk:?} ferric {gk:?}",
                    ws.difference(&gs).collect::<Vec<_>>(),
                    gs.difference(&ws).collect::<Vec<_>>()
                ));
            }
            for (k, wv) in w {
                if let Some(gv) = g.get(k) {
                    compare(sample, &format!("{at}.{k}"), wv, gv, ours, problems);
                }
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            // Named items (drivers) pair by name; others by position.
            for (i, wv) in w.iter().enumerate() {
                let gv = match wv.get("name") {
                    Some(name) if name.is_string() => {
                        g.iter().find(|gv| gv.get("name") == Some(name))
                    }
                    _ => g.get(i),
                };
                if let Some(gv) = gv {
                    compare(sample, &format!("{at}[{i}]"), wv, gv, ours, problems);
                }
            }
        }
        (Value::String(w), Value::String(g)) if w.starts_with(IRONIC_BASE) => {
            let (wp, gp) = (&w[IRONIC_BASE.len()..], g.strip_prefix(ours).unwrap_or(g));
            if wp != gp {
                problems.push(format!("{sample}{at}: link {wp} vs {gp}"));
            }
        }
        (w, g)
            if (w.is_object() || w.is_array() || g.is_object() || g.is_array())
                && !(w.is_null() || g.is_null()) =>
        {
            problems.push(format!("{sample}{at}: type differs: {w} vs {g}"));
        }
        _ => {}
    }
}

async fn replay(app: &TestApp, sample: &Sample, body: Option<Value>, problems: &mut Vec<String>) {
    let body = body.or_else(|| sample.body.clone());
    let reply = app
        .request(
            sample.method.clone(),
            &sample.path,
            sample.version.as_deref(),
            body.as_ref(),
        )
        .await;
    let name = &sample.name;
    if reply.status.as_u16() != sample.status {
        problems.push(format!(
            "{name}: status {} vs {} ({})",
            sample.status, reply.status, reply.text
        ));
        return;
    }
    for (header, value) in &sample.headers {
        let ours = reply.header(header);
        match header.as_str() {
            "x-openstack-ironic-api-minimum-version"
            | "x-openstack-ironic-api-maximum-version"
            | "x-openstack-ironic-api-version"
                if ours != Some(value.as_str()) =>
            {
                problems.push(format!("{name}: header {header} {value} vs {ours:?}"));
            }
            "location" => {
                let want = value.strip_prefix(IRONIC_BASE).unwrap_or(value);
                let got = ours.and_then(|v| v.strip_prefix(&app.base));
                if got != Some(want) {
                    problems.push(format!("{name}: location {want} vs {ours:?}"));
                }
            }
            "x-openstack-request-id" | "openstack-request-id" | "content-type"
                if ours.is_none() =>
            {
                problems.push(format!("{name}: header {header} missing"));
            }
            _ => {}
        }
    }
    if sample
        .headers
        .iter()
        .all(|(h, _)| h != "x-openstack-ironic-api-version")
        && reply.header("x-openstack-ironic-api-version").is_some()
    {
        problems.push(format!("{name}: unexpected version header"));
    }
    if sample.response.trim().is_empty() {
        if !reply.text.is_empty() {
            problems.push(format!(
                "{name}: expected an empty body, got {}",
                reply.text
            ));
        }
        return;
    }
    let want: Value = serde_json::from_str(&sample.response).unwrap();
    let got = reply.json();
    if want.get("error_message").is_some() {
        if want != got {
            problems.push(format!("{name}: error body {want} vs {got}"));
        }
        return;
    }
    compare(name, "", &want, &got, &app.base, problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ironic_sample_matches_in_shape() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.conductor.host = Some("ironic-anchor".into())
    })
    .await;
    let mut problems = Vec::new();
    let mut replayed = BTreeSet::new();
    let run = async |name: &str, body: Option<Value>, problems: &mut Vec<String>| {
        let sample = load(name);
        replay(&app, &sample, body, problems).await;
        name.to_owned()
    };

    // The list samples show two nodes made before the sample node.
    for (uuid, name) in [(CLI_NODE_1, "cli-node-1"), (CLI_NODE_2, "cli-node-2")] {
        app.post(
            "/v1/nodes",
            json!({"driver": "fake-hardware", "name": name, "uuid": uuid}),
        )
        .await;
    }
    // cli-node-1 was deployed and undeployed, then powered on.
    for (target, reached) in [
        ("manage", "manageable"),
        ("provide", "available"),
        ("active", "active"),
        ("deleted", "available"),
    ] {
        app.provision(CLI_NODE_1, target).await;
        app.wait_for_state(CLI_NODE_1, reached).await;
    }
    app.put(
        &format!("/v1/nodes/{CLI_NODE_1}/states/power"),
        json!({"target": "power on"}),
    )
    .await;
    crate::helpers::wait_until(std::time::Duration::from_secs(10), "power on", || async {
        (app.get(&format!("/v1/nodes/{CLI_NODE_1}")).await.json()["power_state"] == "power on")
            .then_some(())
    })
    .await;

    replayed.insert(
        run(
            "chassis-create",
            Some(json!({"description": "sample rack", "uuid": CHASSIS})),
            &mut problems,
        )
        .await,
    );
    replayed.insert(run("chassis", None, &mut problems).await);
    let create = load("node-create").body.unwrap();
    let mut create = create.as_object().unwrap().clone();
    create.insert("uuid".into(), json!(NODE));
    replayed.insert(run("node-create", Some(Value::Object(create)), &mut problems).await);
    for name in [
        "node-enroll",
        "node-enroll-v1.1",
        "node-states-enroll",
        "node-validate",
        "error-400-bad-transition",
        "node-patch",
    ] {
        replayed.insert(run(name, None, &mut problems).await);
    }
    let port = load("port-create").body.unwrap();
    let mut port = port.as_object().unwrap().clone();
    port.insert("uuid".into(), json!(PORT));
    replayed.insert(run("port-create", Some(Value::Object(port)), &mut problems).await);
    for name in ["node-ports", "ports", "provision-manage-202"] {
        replayed.insert(run(name, None, &mut problems).await);
    }
    app.wait_for_state(NODE, "manageable").await;
    replayed.insert(run("provision-provide-202", None, &mut problems).await);
    app.wait_for_state(NODE, "available").await;
    replayed.insert(run("node-available", None, &mut problems).await);
    replayed.insert(run("provision-deploy-202", None, &mut problems).await);
    app.wait_for_state(NODE, "active").await;
    for name in ["node-active", "node-states-active", "power-off-202"] {
        replayed.insert(run(name, None, &mut problems).await);
    }
    for name in [
        "error-404-node",
        "error-409-duplicate-name",
        "error-400-bad-driver",
        "error-400-limit0",
        "error-406-version",
        "drivers",
        "driver-fake-hardware",
        "conductors",
        "root",
        "v1",
        "v1-no-version-header",
        "nodes",
        "nodes-fields",
        "nodes-detail",
    ] {
        replayed.insert(run(name, None, &mut problems).await);
    }

    // Last, so the list samples above do not include it.
    let ipmi = load("node-ipmi-create").body.unwrap();
    let mut ipmi = ipmi.as_object().unwrap().clone();
    ipmi.insert("uuid".into(), json!(IPMI_NODE));
    replayed.insert(run("node-ipmi-create", Some(Value::Object(ipmi)), &mut problems).await);

    let mut all: BTreeSet<String> = std::fs::read_dir(samples_dir())
        .unwrap()
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".headers")
                .map(str::to_owned)
        })
        .collect();
    for (name, why) in PENDING {
        assert!(
            all.remove(name),
            "pending sample {name} ({why}) no longer exists"
        );
    }
    let not_replayed: Vec<_> = all.difference(&replayed).collect();
    assert!(
        not_replayed.is_empty(),
        "samples not replayed: {not_replayed:?}"
    );
    assert!(
        problems.is_empty(),
        "differences from Ironic:\n{}",
        problems.join("\n")
    );
    app.stop().await;
}
