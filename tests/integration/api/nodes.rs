//! Node CRUD, lists, fields, masking and microversion gating.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_node_fills_fake_hardware_defaults_and_masks_secrets() {
    let app = spawn_app().await;

    let reply = app
        .post(
            "/v1/nodes",
            json!({"driver": "fake-hardware", "name": "n1",
                   "driver_info": {"ipmi_password": "s3cret", "ipmi_address": "10.0.0.1", "deploy_key": "k"},
                   "properties": {"cpus": 8, "memory_mb": 16384, "local_gb": 100}}),
        )
        .await;

    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let node = reply.json();
    let location = reply.header("location").unwrap();
    assert_eq!(
        location,
        format!("{}/v1/nodes/{}", app.base, node["uuid"].as_str().unwrap())
    );
    assert_eq!(node["provision_state"], "enroll");
    assert_eq!(node["power_interface"], "fake");
    assert_eq!(node["network_interface"], "noop");
    assert_eq!(node["storage_interface"], "noop");
    assert_eq!(node["driver_info"]["ipmi_password"], "******");
    assert_eq!(node["driver_info"]["deploy_key"], "******");
    assert_eq!(node["driver_info"]["ipmi_address"], "10.0.0.1");
    assert_eq!(
        node["conductor"],
        app.settings.conductor.host.clone().unwrap()
    );
    let keys: Vec<&String> = node["properties"].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["cpus", "memory_mb", "local_gb"],
        "JSON keys keep their order"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_node_returns_409_when_name_is_taken() {
    let app = spawn_app().await;
    app.create_node("dup").await;

    let reply = app
        .post(
            "/v1/nodes",
            json!({"driver": "fake-hardware", "name": "dup"}),
        )
        .await;

    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.fault(), "A node with name dup already exists.");
    let list = app.get("/v1/nodes").await.json();
    assert_eq!(list["nodes"].as_array().unwrap().len(), 1, "no second row");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_node_with_unknown_driver_is_no_valid_host() {
    let app = spawn_app().await;

    let reply = app
        .post("/v1/nodes", json!({"driver": "no-such-driver"}))
        .await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.fault(),
        "No valid host was found. Reason: No conductor service registered which supports driver no-such-driver for conductor group \"\". Ensure the driver is valid and enabled."
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_fields_follow_the_microversion() {
    let app = spawn_app().await;
    let node = app.create_node("v").await;
    let uuid = node["uuid"].as_str().unwrap();

    let old = app
        .request(Method::GET, &format!("/v1/nodes/{uuid}"), None, None)
        .await
        .json();
    let new = app.get(&format!("/v1/nodes/{uuid}")).await.json();

    assert_eq!(old.as_object().unwrap().len(), 22, "{old}");
    assert!(old.get("name").is_none());
    assert_eq!(new.as_object().unwrap().len(), 69);
    let at_1_4 = app
        .request(
            Method::POST,
            "/v1/nodes",
            Some("1.4"),
            Some(&json!({"driver": "fake-hardware", "name": "x"})),
        )
        .await;
    assert_eq!(at_1_4.status, StatusCode::NOT_ACCEPTABLE, "name needs 1.5");
    let at_1_10 = app
        .request(
            Method::POST,
            "/v1/nodes",
            Some("1.10"),
            Some(&json!({"driver": "fake-hardware"})),
        )
        .await;
    assert_eq!(
        at_1_10.json()["provision_state"],
        "available",
        "before 1.11 nodes start available"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_with_marker_and_next_link() {
    let app = spawn_app().await;
    let mut uuids = Vec::new();
    for i in 0..5 {
        uuids.push(
            app.create_node(&format!("p{i}")).await["uuid"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }

    let first = app.get("/v1/nodes?limit=2").await.json();
    let next = first["next"].as_str().unwrap();
    let second = app.get(next.strip_prefix(&app.base).unwrap()).await.json();
    let third = app
        .get("/v1/nodes?limit=2&marker=".to_owned().as_str())
        .await;

    let page_uuids = |v: &serde_json::Value| -> Vec<String> {
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["uuid"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(page_uuids(&first), uuids[0..2]);
    assert_eq!(page_uuids(&second), uuids[2..4]);
    assert!(next.contains("sort_key=id&sort_dir=asc&fields=instance_uuid,maintenance,power_state,provision_state,uuid,name&limit=2&marker="), "{next}");
    assert_eq!(third.status, StatusCode::BAD_REQUEST);
    let desc = app
        .get("/v1/nodes?sort_key=name&sort_dir=desc&limit=2")
        .await
        .json();
    assert_eq!(page_uuids(&desc), vec![uuids[4].clone(), uuids[3].clone()]);
    let all = app.get("/v1/nodes?limit=1000").await.json();
    assert!(all.get("next").is_none(), "no next link on a partial page");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_and_fields() {
    let app = spawn_app().await;
    app.create_node("a").await;
    app.available_node("b").await;

    let enroll = app.get("/v1/nodes?provision_state=enroll").await.json();
    let fields = app
        .get("/v1/nodes?fields=uuid,provision_state")
        .await
        .json();
    let detail = app.get("/v1/nodes/detail").await.json();
    let bad_state = app.get("/v1/nodes?provision_state=nope").await;
    let bad_sort = app.get("/v1/nodes?sort_key=properties").await;

    assert_eq!(enroll["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(enroll["nodes"][0]["name"], "a");
    let keys: Vec<&String> = fields["nodes"][0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["uuid", "provision_state", "links"]);
    assert_eq!(detail["nodes"][0].as_object().unwrap().len(), 69);
    assert_eq!(bad_state.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_state.fault(), "Provision state \"nope\" is not valid");
    assert_eq!(bad_sort.status, StatusCode::BAD_REQUEST);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_updates_allowed_fields_and_refuses_read_only_ones() {
    let app = spawn_app().await;
    let node = app.create_node("p").await;
    let uuid = node["uuid"].as_str().unwrap();

    let ok = app
        .patch(
            &format!("/v1/nodes/{uuid}"),
            json!([{"op": "add", "path": "/extra/rack", "value": "r1"},
                   {"op": "replace", "path": "/description", "value": "sample"}]),
        )
        .await;
    let read_only = app
        .patch(
            &format!("/v1/nodes/{uuid}"),
            json!([{"op": "replace", "path": "/provision_state", "value": "active"}]),
        )
        .await;
    let remove_missing = app
        .patch(
            &format!("/v1/nodes/{uuid}"),
            json!([{"op": "remove", "path": "/extra/nope"}]),
        )
        .await;
    let remove_driver = app
        .patch(
            &format!("/v1/nodes/{uuid}"),
            json!([{"op": "remove", "path": "/driver"}]),
        )
        .await;

    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(ok.json()["extra"], json!({"rack": "r1"}));
    assert_eq!(ok.json()["description"], "sample");
    assert_eq!(read_only.status, StatusCode::BAD_REQUEST);
    assert!(read_only.fault().starts_with(
        "Cannot patch /provision_state. Only the following can be updated: automated_clean,"
    ));
    assert_eq!(remove_missing.status, StatusCode::BAD_REQUEST);
    assert!(
        remove_missing
            .fault()
            .starts_with("Couldn't apply patch '{'op': 'remove', 'path': '/extra/nope'}'."),
        "{}",
        remove_missing.fault()
    );
    assert_eq!(remove_driver.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        remove_driver.fault(),
        "Schema error for patch: 'driver' is a required property"
    );
    let after = app.get(&format!("/v1/nodes/{uuid}")).await.json();
    assert_eq!(after["provision_state"], "enroll");
    assert_eq!(after["driver"], "fake-hardware");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_is_refused_while_active_and_allowed_in_maintenance() {
    let app = spawn_app().await;
    let node = app.available_node("d").await;
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    app.provision(&uuid, "active").await;
    app.wait_for_state(&uuid, "active").await;

    let refused = app.delete(&format!("/v1/nodes/{uuid}")).await;
    let maintenance = app
        .put(
            &format!("/v1/nodes/{uuid}/maintenance"),
            json!({"reason": "broken"}),
        )
        .await;
    let in_maintenance = app.get(&format!("/v1/nodes/{uuid}")).await.json();
    let deleted = app.delete(&format!("/v1/nodes/{uuid}")).await;

    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(refused.fault().starts_with(&format!(
        "Can not delete node \"{uuid}\" while it is in provision state \"active\"."
    )));
    assert_eq!(maintenance.status, StatusCode::ACCEPTED);
    assert_eq!(in_maintenance["maintenance_reason"], "broken");
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&format!("/v1/nodes/{uuid}")).await.status,
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traits_are_set_listed_and_removed() {
    let app = spawn_app().await;
    app.create_node("t").await;

    let put_one = app
        .request(
            Method::PUT,
            "/v1/nodes/t/traits/CUSTOM_GPU",
            Some("latest"),
            None,
        )
        .await;
    let replace = app
        .put(
            "/v1/nodes/t/traits",
            json!({"traits": ["CUSTOM_A", "HW_CPU_X86_AVX2"]}),
        )
        .await;
    let listed = app.get("/v1/nodes/t/traits").await.json();
    let bad = app
        .request(Method::PUT, "/v1/nodes/t/traits/bad", Some("latest"), None)
        .await;
    let missing = app.delete("/v1/nodes/t/traits/CUSTOM_GPU").await;

    assert_eq!(put_one.status, StatusCode::NO_CONTENT);
    assert_eq!(replace.status, StatusCode::NO_CONTENT);
    assert_eq!(listed, json!({"traits": ["CUSTOM_A", "HW_CPU_X86_AVX2"]}));
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get("/v1/nodes/t").await.json()["traits"],
        json!(["CUSTOM_A", "HW_CPU_X86_AVX2"])
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_nodes_refuse_undeploy_and_maintenance_refuses_deploy() {
    let app = spawn_app().await;
    let node = app.available_node("prot").await;
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    app.provision(&uuid, "active").await;
    app.wait_for_state(&uuid, "active").await;
    let protect = app
        .patch(
            &format!("/v1/nodes/{uuid}"),
            json!([{"op": "replace", "path": "/protected", "value": true}]),
        )
        .await;
    let other = app.available_node("maint").await;
    let other_uuid = other["uuid"].as_str().unwrap().to_owned();
    app.put(&format!("/v1/nodes/{other_uuid}/maintenance"), json!({}))
        .await;

    let undeploy = app
        .put(
            &format!("/v1/nodes/{uuid}/states/provision"),
            json!({"target": "undeploy"}),
        )
        .await;
    let deploy = app
        .put(
            &format!("/v1/nodes/{other_uuid}/states/provision"),
            json!({"target": "active"}),
        )
        .await;

    assert_eq!(protect.status, StatusCode::OK, "{}", protect.text);
    assert_eq!(undeploy.status, StatusCode::FORBIDDEN);
    assert_eq!(
        undeploy.fault(),
        format!("Node {uuid} is protected and cannot be undeployed, rebuilt or deleted")
    );
    assert_eq!(deploy.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        deploy.fault(),
        format!(
            "The provisioning operation can't be performed on node {other_uuid} because it's in maintenance mode."
        )
    );
    assert_eq!(
        app.get(&format!("/v1/nodes/{uuid}")).await.json()["provision_state"],
        "active"
    );
    assert_eq!(
        app.get(&format!("/v1/nodes/{other_uuid}")).await.json()["provision_state"],
        "available"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn powering_on_a_node_that_is_on_changes_nothing() {
    let app = spawn_app().await;
    app.create_node("pw").await;
    app.put("/v1/nodes/pw/states/power", json!({"target": "power on"}))
        .await;
    let first =
        crate::helpers::wait_until(std::time::Duration::from_secs(10), "power on", || async {
            let n = app.get("/v1/nodes/pw").await.json();
            (n["power_state"] == "power on" && n["reservation"].is_null()).then_some(n)
        })
        .await;

    let again = app
        .put("/v1/nodes/pw/states/power", json!({"target": "power on"}))
        .await;
    let second = crate::helpers::wait_until(
        std::time::Duration::from_secs(10),
        "target cleared",
        || async {
            let n = app.get("/v1/nodes/pw").await.json();
            (n["target_power_state"].is_null() && n["reservation"].is_null()).then_some(n)
        },
    )
    .await;

    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(
        first["driver_internal_info"]["last_power_state_change"],
        second["driver_internal_info"]["last_power_state_change"]
    );
    app.stop().await;
}
