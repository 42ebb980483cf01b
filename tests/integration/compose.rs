//! docker-compose.yml stays true to the binary: every service that runs
//! `ferric` uses a command the binary has and settings it accepts; the stack
//! has what the README promises (PostgreSQL, RabbitMQ with its UI, Jaeger,
//! a one-shot migration, the API, three conductors with distinct names) and
//! start-up ordering by health. Where a Docker client with compose exists,
//! `docker compose config` checks the file too.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use ferric_common::config::Settings;
use serde_json::{Map, Value};
use yaml_rust2::{Yaml, YamlLoader};

/// YAML to JSON, applying `<<` merge keys as docker compose does.
fn to_json(yaml: &Yaml) -> Value {
    match yaml {
        Yaml::Hash(hash) => {
            let mut map = Map::new();
            if let Some(Value::Object(merged)) = hash.get(&Yaml::String("<<".into())).map(to_json) {
                map.extend(merged);
            }
            for (key, value) in hash {
                let key = match key {
                    Yaml::String(s) => s.clone(),
                    other => format!("{other:?}"),
                };
                if key != "<<" {
                    map.insert(key, to_json(value));
                }
            }
            Value::Object(map)
        }
        Yaml::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Real(r) => Value::String(r.clone()),
        _ => Value::Null,
    }
}

fn compose() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker-compose.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let docs = YamlLoader::load_from_str(&text).expect("docker-compose.yml is YAML");
    to_json(&docs[0])
}

fn command(service: &Value) -> Vec<String> {
    service["command"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[test]
fn every_ferric_service_runs_a_real_command_with_valid_settings() {
    let file = compose();
    let services = file["services"].as_object().unwrap();
    let ferric: Vec<(&String, &Value)> = services
        .iter()
        .filter(|(_, s)| s["image"] == "ferric:dev")
        .collect();
    let mut conductor_hosts = BTreeSet::new();
    let mut commands = BTreeSet::new();

    for (name, service) in &ferric {
        let args = command(service);
        let help = std::process::Command::new(env!("CARGO_BIN_EXE_ferric"))
            .args(&args)
            .arg("--help")
            .env_clear()
            .output()
            .unwrap();
        assert!(
            help.status.success(),
            "{name}: `ferric {}` is not a command of the binary: {}",
            args.join(" "),
            String::from_utf8_lossy(&help.stderr)
        );
        let env: HashMap<String, String> = service["environment"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with("FERRIC_"))
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        let settings = Settings::load_with_env(None, Some(env))
            .unwrap_or_else(|e| panic!("{name}: settings the binary refuses: {e}"));
        assert!(
            settings.database_url().starts_with("postgres://"),
            "{name}: the distributed mode needs PostgreSQL"
        );
        if args == ["conductor"] {
            conductor_hosts.insert(settings.conductor_host());
        }
        commands.insert(args.join(" "));
    }

    assert_eq!(
        commands,
        BTreeSet::from(["api".to_owned(), "conductor".into(), "db upgrade".into()])
    );
    assert_eq!(conductor_hosts.len(), 3, "three conductors, distinct names");
}

#[test]
fn the_stack_starts_in_order_of_health() {
    let file = compose();
    let services = file["services"].as_object().unwrap();
    for needed in ["postgres", "rabbitmq", "jaeger", "db-upgrade", "api"] {
        assert!(services.contains_key(needed), "no {needed} service");
    }
    assert!(
        services["rabbitmq"]["image"]
            .as_str()
            .unwrap()
            .ends_with("-management")
    );
    assert_eq!(services["api"]["ports"][0], "127.0.0.1:6385:6385");

    for (name, service) in services {
        let Some(deps) = service["depends_on"].as_object() else {
            continue;
        };
        for (dep, how) in deps {
            let target = &services[dep.as_str()];
            match how["condition"].as_str() {
                Some("service_healthy") => assert!(
                    target["healthcheck"].is_object(),
                    "{name} waits for {dep} to be healthy, which has no health check"
                ),
                Some("service_completed_successfully") => {
                    assert_eq!(command(target), ["db", "upgrade"], "{name} -> {dep}");
                }
                Some("service_started") => {}
                other => panic!("{name} -> {dep}: unexpected condition {other:?}"),
            }
        }
    }
    for (name, service) in services {
        if command(service).first().map(String::as_str) == Some("conductor")
            || command(service) == ["api"]
        {
            let deps = service["depends_on"].as_object().unwrap();
            assert_eq!(
                deps["db-upgrade"]["condition"], "service_completed_successfully",
                "{name} starts after the migration"
            );
        }
    }
}

#[test]
fn docker_compose_accepts_the_file_where_it_exists() {
    let version = std::process::Command::new("docker")
        .args(["compose", "version"])
        .output();
    if !version.is_ok_and(|o| o.status.success()) {
        // No compose client here: the two tests above are the check.
        return;
    }
    let out = std::process::Command::new("docker")
        .args(["compose", "config", "--quiet"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
