//! Inspection rules (1.96): CRUD with Ironic 39.0.0's validation of
//! operators, actions and their arguments, phase and priority; sensitive
//! rules never show their conditions and actions.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::spawn_app;

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

#[tokio::test]
async fn inspection_rules_are_validated_stored_and_masked() {
    let app = spawn_app().await;
    let rule = json!({
        "description": "r",
        "actions": [{"op": "set-attribute", "args": {"path": "/properties/cpu_arch", "value": "x86_64"}}],
        "conditions": [{"op": "eq", "args": {"values": ["{inventory[cpu][architecture]}", "x86_64"]}}],
    });
    let created = app.post("/v1/inspection_rules", rule.clone()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let body = created.json();
    assert_eq!(
        keys(&body),
        [
            "uuid",
            "created_at",
            "updated_at",
            "description",
            "priority",
            "sensitive",
            "phase",
            "conditions",
            "actions",
            "links"
        ]
    );
    assert_eq!(body["phase"], "main");
    assert_eq!(body["priority"], 0);
    assert_eq!(body["conditions"], rule["conditions"]);
    let uuid = body["uuid"].as_str().unwrap().to_owned();

    let secret = app
        .post(
            "/v1/inspection_rules",
            json!({"actions": [{"op": "log", "args": {"msg": "hi"}}], "sensitive": true, "priority": 10}),
        )
        .await;
    assert_eq!(secret.status, StatusCode::CREATED, "{}", secret.text);
    let secret = secret.json();
    assert!(secret["actions"].is_null() && secret["conditions"].is_null());

    let list = app.get("/v1/inspection_rules").await.json();
    assert_eq!(
        keys(&list["inspection_rules"][0]),
        ["uuid", "description", "priority", "phase", "links"]
    );
    let sorted = app
        .get("/v1/inspection_rules?sort_key=priority&sort_dir=desc")
        .await
        .json();
    assert_eq!(sorted["inspection_rules"][0]["priority"], 10);

    let cases = [
        (
            json!({"actions": [{"op": "bogus", "args": {}}]}),
            "Schema error: 'bogus' is not one of ['fail', 'log', 'set-attribute', 'extend-attribute', 'del-attribute', 'set-capability', 'unset-capability', 'add-trait', 'remove-trait', 'set-plugin-data', 'extend-plugin-data', 'unset-plugin-data', 'set-port-attribute', 'extend-port-attribute', 'del-port-attribute', 'api-call']",
        ),
        (
            json!({"actions": [{"op": "log", "args": {"msg": "hi"}}], "phase": "x"}),
            "Invalid phase: x. Valid phases are: main",
        ),
        (
            json!({"actions": [{"op": "log", "args": {"msg": "hi"}}], "priority": 10000}),
            "Priority must be between 0 and 9999 for user-defined rules.",
        ),
        (
            json!({"actions": []}),
            "Schema error: [] should be non-empty",
        ),
        (
            json!({"actions": [{"op": "log", "args": {"msg": "x"}}],
                   "conditions": [{"op": "eq", "args": {"rule": "x86_64", "value": "x"}}]}),
            "Invalid parameters for condition operator eq: missing required argument(s): values; unexpected argument(s): rule, value",
        ),
    ];
    for (body, message) in cases {
        let reply = app.post("/v1/inspection_rules", body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
        assert_eq!(reply.fault(), message);
    }

    let path = format!("/v1/inspection_rules/{uuid}");
    let patched = app
        .patch(
            &path,
            json!([{"op": "replace", "path": "/priority", "value": 5}]),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.json()["priority"], 5);
    let old = app
        .request(Method::GET, "/v1/inspection_rules", Some("1.95"), None)
        .await;
    assert_eq!(old.status, StatusCode::NOT_FOUND);
    assert_eq!(
        old.fault(),
        "The API version does not allow inspection rules"
    );
    assert_eq!(app.delete(&path).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&path).await.status, StatusCode::NOT_FOUND);
    app.stop().await;
}
