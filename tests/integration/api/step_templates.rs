//! Deploy templates (1.55) and runbooks (1.92, traits 1.112): CRUD, the
//! version gates, step validation and secret masking, paging, and running a
//! runbook on a node — bodies and messages as a running Ironic 39.0.0 gave
//! them side by side.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, spawn_app, spawn_app_with};

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

fn routing_description(reply: &crate::helpers::app::Reply) -> String {
    let outer = reply.json();
    let inner: Value = serde_json::from_str(outer["error_message"].as_str().unwrap()).unwrap();
    inner["description"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn deploy_templates_are_created_listed_patched_and_deleted() {
    let app = spawn_app().await;
    let created = app
        .post(
            "/v1/deploy_templates",
            json!({
                "name": "CUSTOM_RAID1",
                "extra": {"k": "v"},
                "steps": [{"interface": "raid", "step": "apply_configuration",
                           "args": {"settings": [], "bmc_password": "s3cret"}, "priority": "10"}],
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let body = created.json();
    assert_eq!(
        keys(&body),
        [
            "uuid",
            "created_at",
            "updated_at",
            "name",
            "extra",
            "links",
            "steps"
        ]
    );
    let uuid = body["uuid"].as_str().unwrap().to_owned();
    assert_eq!(
        created.header("Location").unwrap(),
        format!("{}/v1/deploy_templates/{uuid}", app.base)
    );
    assert_eq!(
        body["steps"],
        json!([{"interface": "raid", "step": "apply_configuration",
                "args": {"settings": [], "bmc_password": "******"}, "priority": 10}])
    );

    let dup = app
        .post(
            "/v1/deploy_templates",
            json!({"name": "CUSTOM_RAID1", "steps": body["steps"]}),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert_eq!(
        dup.fault(),
        "A deploy template with name CUSTOM_RAID1 already exists."
    );

    let second = app
        .post(
            "/v1/deploy_templates",
            json!({"name": "CUSTOM_BIOS", "steps": [{"interface": "bios", "step": "apply_configuration", "args": {}, "priority": 5}]}),
        )
        .await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.text);

    let list = app.get("/v1/deploy_templates").await.json();
    let items = list["deploy_templates"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(keys(&items[0]), ["uuid", "name", "links"]);
    let page = app
        .get("/v1/deploy_templates?sort_key=name&limit=1")
        .await
        .json();
    assert_eq!(page["deploy_templates"][0]["name"], "CUSTOM_BIOS");
    let next = page["next"].as_str().unwrap();
    assert!(
        next.contains("sort_key=name&sort_dir=asc&fields=uuid,name&limit=1&marker="),
        "{next}"
    );
    let rest = app.get(next.trim_start_matches(&app.base)).await.json();
    assert_eq!(rest["deploy_templates"][0]["name"], "CUSTOM_RAID1");
    let detail = app.get("/v1/deploy_templates?detail=true").await.json();
    assert!(detail["deploy_templates"][0]["steps"].is_array());
    let narrowed = app
        .get("/v1/deploy_templates?fields=name,steps")
        .await
        .json();
    assert_eq!(
        keys(&narrowed["deploy_templates"][0]),
        ["name", "links", "steps"]
    );
    let bad_field = app.get("/v1/deploy_templates?fields=bogus").await;
    assert_eq!(bad_field.status, StatusCode::BAD_REQUEST);
    assert!(
        bad_field
            .fault()
            .starts_with("Schema error: 'bogus' is not one of ['created_at', 'description'"),
        "{}",
        bad_field.fault()
    );
    let bad_sort = app.get("/v1/deploy_templates?sort_key=steps").await;
    assert_eq!(
        bad_sort.fault(),
        "The sort_key value steps is an invalid field for sorting"
    );

    let by_name = app.get("/v1/deploy_templates/CUSTOM_RAID1").await;
    assert_eq!(by_name.json()["uuid"], uuid);
    let patched = app
        .patch(
            "/v1/deploy_templates/CUSTOM_RAID1",
            json!([
                {"op": "replace", "path": "/steps/0/priority", "value": 20},
                {"op": "add", "path": "/extra/a", "value": 1}
            ]),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    let patched = patched.json();
    assert_eq!(patched["steps"][0]["priority"], 20);
    assert_eq!(patched["extra"], json!({"k": "v", "a": 1}));
    assert!(patched["updated_at"].is_string());
    let bad_patch = app
        .patch(
            "/v1/deploy_templates/CUSTOM_RAID1",
            json!([{"op": "replace", "path": "/uuid", "value": "x"}]),
        )
        .await;
    assert_eq!(
        bad_patch.fault(),
        "Cannot patch /uuid. Only the following can be updated: extra, name, steps, description"
    );
    let rename_clash = app
        .patch(
            "/v1/deploy_templates/CUSTOM_RAID1",
            json!([{"op": "replace", "path": "/name", "value": "CUSTOM_BIOS"}]),
        )
        .await;
    assert_eq!(rename_clash.status, StatusCode::CONFLICT);
    assert_eq!(
        rename_clash.fault(),
        "A deploy template with name CUSTOM_BIOS already exists."
    );
    // A patch that breaks the steps changes nothing.
    let broken = app
        .patch(
            "/v1/deploy_templates/CUSTOM_RAID1",
            json!([{"op": "replace", "path": "/steps/0/interface", "value": "boot"}]),
        )
        .await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        app.get("/v1/deploy_templates/CUSTOM_RAID1").await.json()["steps"][0]["interface"],
        "raid"
    );

    assert_eq!(
        app.delete("/v1/deploy_templates/CUSTOM_RAID1").await.status,
        StatusCode::NO_CONTENT
    );
    let gone = app.delete("/v1/deploy_templates/CUSTOM_RAID1").await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(
        gone.fault(),
        "Deploy template CUSTOM_RAID1 could not be found."
    );
    app.stop().await;
}

#[tokio::test]
async fn deploy_template_input_is_checked_and_gated() {
    let app = spawn_app_with(Backend::Postgres, |_| {}).await;
    let cases = [
        (
            json!({"name": "bad", "steps": [{"interface": "bios", "step": "x", "args": {}, "priority": 1}]}),
            "Schema error for template: 'bad' is not valid under any of the given schemas. Possible root cause: 'bad' does not match '^CUSTOM_[A-Z0-9_]+$'",
        ),
        (
            json!({"name": "CUSTOM_C", "steps": [{"interface": "boot", "step": "x", "args": {}, "priority": 1}]}),
            "Schema error for template: 'boot' is not one of ['vendor', 'power', 'management', 'firmware', 'deploy', 'bios', 'raid']",
        ),
        (
            json!({"name": "CUSTOM_C", "steps": []}),
            "Schema error for template: [] should be non-empty",
        ),
        (
            json!({"name": "CUSTOM_C"}),
            "Schema error for template: 'steps' is a required property",
        ),
        (
            json!({"name": "CUSTOM_C", "steps": [{"interface": "bios", "step": "x", "priority": 1}]}),
            "Schema error for template: 'args' is a required property",
        ),
        (
            json!({"name": "CUSTOM_C", "steps": [
                {"interface": "bios", "step": "x", "args": {}, "priority": 1},
                {"interface": "bios", "step": "x", "args": {}, "priority": 2}]}),
            "Deploy template invalid: Duplicate deploy steps. A template cannot have multiple deploy steps with the same interface and step. Duplicates: interface: bios, step: x.",
        ),
    ];
    for (body, message) in cases {
        let reply = app.post("/v1/deploy_templates", body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
        assert_eq!(reply.fault(), message);
    }
    assert!(
        app.get("/v1/deploy_templates").await.json()["deploy_templates"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let old_get = app
        .request(Method::GET, "/v1/deploy_templates", Some("1.54"), None)
        .await;
    assert_eq!(old_get.status, StatusCode::NOT_FOUND);
    assert_eq!(
        routing_description(&old_get),
        "The API version does not allow deploy templates"
    );
    let old_post = app
        .request(
            Method::POST,
            "/v1/deploy_templates",
            Some("1.54"),
            Some(&json!({})),
        )
        .await;
    assert_eq!(old_post.status, StatusCode::METHOD_NOT_ALLOWED);
    app.stop().await;
}

#[tokio::test]
async fn runbooks_carry_traits_from_1_112_and_public_ones_have_no_owner() {
    let app = spawn_app().await;
    let created = app
        .post(
            "/v1/runbooks",
            json!({"name": "my-rb.1", "description": "hello",
                   "steps": [{"interface": "bios", "step": "apply_configuration",
                              "args": {"token": "x"}, "order": "1"}]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let body = created.json();
    assert_eq!(
        keys(&body),
        [
            "uuid",
            "created_at",
            "updated_at",
            "name",
            "extra",
            "public",
            "owner",
            "disable_ramdisk",
            "description",
            "links",
            "steps",
            "traits"
        ]
    );
    assert_eq!(
        body["steps"],
        json!([{"interface": "bios", "step": "apply_configuration", "args": {"token": "******"}, "order": 1}])
    );
    assert_eq!(body["traits"], json!([]));

    // Before 1.112: names are traits, and no description or traits.
    let legacy = app
        .request(
            Method::POST,
            "/v1/runbooks",
            Some("1.111"),
            Some(&json!({"name": "my-rb2", "steps": [{"interface": "deploy", "step": "erase_devices", "order": 0}]})),
        )
        .await;
    assert_eq!(
        legacy.fault(),
        "Schema error for runbook: 'my-rb2' is not valid under any of the given schemas. Possible root cause: 'my-rb2' does not match '^CUSTOM_[A-Z0-9_]+$'"
    );
    let old_view = app
        .request(Method::GET, "/v1/runbooks/my-rb.1", Some("1.111"), None)
        .await
        .json();
    assert!(old_view.get("traits").is_none() && old_view.get("description").is_none());
    let bad_name = app
        .post(
            "/v1/runbooks",
            json!({"name": "bad name", "steps": [{"interface": "deploy", "step": "erase_devices", "order": 0}]}),
        )
        .await;
    assert_eq!(
        bad_name.fault(),
        "Schema error for runbook: 'bad name' does not match '^[A-Za-z0-9\\\\-._~]+$'"
    );
    let with_traits = app
        .post(
            "/v1/runbooks",
            json!({"name": "x1", "traits": ["CUSTOM_X"], "steps": [{"interface": "deploy", "step": "erase_devices", "order": 0}]}),
        )
        .await;
    assert_eq!(
        with_traits.fault(),
        "Schema error for runbook: Additional properties are not allowed ('traits' was unexpected)"
    );

    // The traits sub-resource.
    let path = "/v1/runbooks/my-rb.1/traits";
    assert_eq!(
        app.put(path, json!({"traits": ["CUSTOM_X", "CUSTOM_Y"]}))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let added = app
        .request(
            Method::PUT,
            &format!("{path}/CUSTOM_Z"),
            Some("latest"),
            None,
        )
        .await;
    assert_eq!(added.status, StatusCode::NO_CONTENT, "{}", added.text);
    let usage = app.request(Method::PUT, path, Some("latest"), None).await;
    assert!(
        usage
            .fault()
            .starts_with("A single runbook trait may be added")
    );
    assert_eq!(
        app.delete(&format!("{path}/CUSTOM_NOPE")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete(&format!("{path}/CUSTOM_X")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(path).await.json(),
        json!({"traits": ["CUSTOM_Y", "CUSTOM_Z"]})
    );
    // A PATCH of other fields leaves the traits alone.
    let renamed = app
        .patch(
            "/v1/runbooks/my-rb.1",
            json!([{"op": "replace", "path": "/description", "value": "new"}]),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);
    assert_eq!(renamed.json()["traits"], json!(["CUSTOM_Y", "CUSTOM_Z"]));
    let old_traits = app.request(Method::GET, path, Some("1.111"), None).await;
    assert_eq!(old_traits.status, StatusCode::NOT_FOUND);
    assert_eq!(
        routing_description(&old_traits),
        "The API version does not allow runbook traits"
    );

    // Public runbooks have no owner.
    let public = app
        .post(
            "/v1/runbooks",
            json!({"name": "CUSTOM_RB", "public": true, "steps": [{"interface": "deploy", "step": "erase_devices", "order": 0}]}),
        )
        .await;
    assert_eq!(public.status, StatusCode::CREATED, "{}", public.text);
    let owner_on_public = app
        .patch(
            "/v1/runbooks/CUSTOM_RB",
            json!([{"op": "add", "path": "/owner", "value": "p2"}]),
        )
        .await;
    assert_eq!(owner_on_public.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        owner_on_public.fault(),
        "Couldn't apply patch '[{'op': 'add', 'path': '/owner', 'value': 'p2'}]'. Reason: There cannot be an owner for a public runbook"
    );
    let made_private = app
        .patch(
            "/v1/runbooks/CUSTOM_RB",
            json!([{"op": "replace", "path": "/public", "value": false},
                   {"op": "add", "path": "/owner", "value": "p2"}]),
        )
        .await
        .json();
    assert_eq!(made_private["public"], false);
    assert_eq!(made_private["owner"], "p2");
    let traits_patch = app
        .patch(
            "/v1/runbooks/CUSTOM_RB",
            json!([{"op": "replace", "path": "/traits", "value": []}]),
        )
        .await;
    assert_eq!(
        traits_patch.fault(),
        "Cannot patch /traits. Only the following can be updated: disable_ramdisk, extra, name, owner, public, steps, description"
    );
    let bogus = app.get("/v1/runbooks?fields=bogus").await;
    assert_eq!(bogus.fault(), "Field(s) \"bogus\" are not valid");
    let old = app
        .request(Method::GET, "/v1/runbooks", Some("1.91"), None)
        .await;
    assert_eq!(old.status, StatusCode::NOT_FOUND);
    assert_eq!(
        routing_description(&old),
        "The API version does not allow runbooks"
    );
    assert_eq!(
        app.delete("/v1/runbooks/CUSTOM_RB").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get("/v1/runbooks/CUSTOM_RB").await.fault(),
        "Runbook CUSTOM_RB could not be found."
    );
    app.stop().await;
}

#[tokio::test]
async fn a_runbook_cleans_only_nodes_sharing_its_traits() {
    let app = spawn_app().await;
    let node = app.create_node("rb-node").await;
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    app.provision(&uuid, "manage").await;
    app.wait_for_state(&uuid, "manageable").await;
    let created = app
        .post(
            "/v1/runbooks",
            json!({"name": "wipe", "steps": [{"interface": "bios", "step": "factory_reset", "order": 0}]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let rb_uuid = created.json()["uuid"].as_str().unwrap().to_owned();
    let clean = |runbook: &str| json!({"target": "clean", "runbook": runbook});
    let states = format!("/v1/nodes/{uuid}/states/provision");

    let no_traits = app.put(&states, clean("wipe")).await;
    assert_eq!(no_traits.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        no_traits.fault(),
        format!(
            "Runbook {rb_uuid} has no traits configured. Please ask an administrator to add traits to the runbook."
        )
    );
    app.put(
        "/v1/runbooks/wipe/traits",
        json!({"traits": ["CUSTOM_WIPE"]}),
    )
    .await;
    let not_approved = app.put(&states, clean("wipe")).await;
    assert_eq!(
        not_approved.fault(),
        format!(
            "This runbook has not been approved for use on this node {uuid}. The node does not have any of the runbook's traits ['CUSTOM_WIPE']. Please ask an administrator to add a matching trait to your node."
        )
    );
    let both = app
        .put(
            &states,
            json!({"target": "clean", "runbook": "wipe",
                   "clean_steps": [{"interface": "bios", "step": "factory_reset"}]}),
        )
        .await;
    assert_eq!(both.status, StatusCode::BAD_REQUEST);
    let missing = app.put(&states, clean("nope")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let added = app
        .request(
            Method::PUT,
            &format!("/v1/nodes/{uuid}/traits/CUSTOM_WIPE"),
            Some("latest"),
            None,
        )
        .await;
    assert_eq!(added.status, StatusCode::NO_CONTENT, "{}", added.text);
    // Ironic ignores a runbook given with other verbs; Ferric says so.
    let deploy = app
        .put(&states, json!({"target": "provide", "runbook": "wipe"}))
        .await;
    assert_eq!(
        deploy.fault(),
        "\"runbooks\" is only valid when setting target provision state to any of ['clean', 'service']"
    );
    let accepted = app.put(&states, clean("wipe")).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text);
    app.wait_for_state(&uuid, "manageable").await;

    // Before 1.112 the runbook's name must be one of the node's traits.
    let legacy = app
        .request(Method::PUT, &states, Some("1.111"), Some(&clean("wipe")))
        .await;
    assert_eq!(
        legacy.fault(),
        format!(
            "This runbook has not been approved for use on this node {uuid}. Please ask an administrator to add it to your node traits."
        )
    );
    app.stop().await;
}
