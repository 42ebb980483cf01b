//! Behaviours OpenStack's own suites rely on (ironic-tempest-plugin's API
//! tests, openstacksdk's functional tests), each as Ironic 39 answers it:
//! paths without `/v1`, the `.json` suffix below 1.91, node fields PATCH
//! derives or refuses,
//! `?detail` on volume lists, and a node's lock waited for as Ironic's lock
//! retry does instead of refused at once.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestApp, spawn_app};

/// Sets (or clears) a node's lock in the database, as a conductor's
/// operation would.
async fn set_lock(app: &TestApp, uuid: &str, holder: Option<&str>) {
    use diesel::prelude::*;
    let db = app.embedded.as_ref().unwrap().db.clone();
    let (key, holder) = (uuid.to_owned(), holder.map(str::to_owned));
    db.run(move |conn| {
        use ferric_common::db::schema::nodes;
        diesel::update(nodes::table.filter(nodes::uuid.eq(&key)))
            .set(nodes::reservation.eq(holder.clone()))
            .execute(conn)?;
        Ok(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_json_suffix_is_stripped_below_1_91_and_part_of_the_name_from_it() {
    let app = spawn_app().await;
    let node = app.create_node("suffix").await;
    let uuid = node["uuid"].as_str().unwrap();
    let port = app
        .post(
            "/v1/ports",
            json!({"node_uuid": uuid, "address": "52:54:00:aa:00:01"}),
        )
        .await;
    let port_uuid = port.json()["uuid"].as_str().unwrap().to_owned();

    for (path, found) in [
        (format!("/v1/nodes/{uuid}.json"), uuid.to_owned()),
        ("/v1/nodes/suffix.json".to_owned(), uuid.to_owned()),
        (format!("/v1/ports/{port_uuid}.json"), port_uuid.clone()),
    ] {
        let old = app.request(Method::GET, &path, Some("1.90"), None).await;
        assert_eq!(old.status, StatusCode::OK, "{path}: {}", old.text);
        assert_eq!(old.json()["uuid"], found.as_str());
        let new = app.request(Method::GET, &path, Some("1.91"), None).await;
        assert_eq!(new.status, StatusCode::NOT_FOUND, "{path}: {}", new.text);
    }
    // Without Ironic's version header nothing is stripped, as in Ironic.
    let bare = app
        .request(Method::GET, &format!("/v1/nodes/{uuid}.json"), None, None)
        .await;
    assert_eq!(bare.status, StatusCode::NOT_FOUND);
    // A path without its version element is v1's, as Ironic's root
    // controller routes it; a trailing slash changes nothing.
    for path in [format!("/nodes/{uuid}"), format!("/v1/nodes/{uuid}/")] {
        let unversioned = app.get(&path).await;
        assert_eq!(
            unversioned.status,
            StatusCode::OK,
            "{path}: {}",
            unversioned.text
        );
        assert_eq!(unversioned.json()["uuid"], uuid);
    }
    // The console state at the path Ironic's object dispatch also serves.
    let console = app.get(&format!("/v1/nodes/states/console/{uuid}")).await;
    assert_eq!(console.status, StatusCode::OK, "{}", console.text);
    assert_eq!(
        console.json(),
        json!({"console_enabled": false, "console_info": null})
    );
    // A list and a delete with the suffix.
    let list = app
        .request(Method::GET, "/v1/nodes.json", Some("1.60"), None)
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert_eq!(list.json()["nodes"][0]["uuid"], uuid);
    let deleted = app
        .request(
            Method::DELETE,
            &format!("/v1/ports/{port_uuid}.json"),
            Some("1.60"),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    app.stop().await;
}

#[tokio::test]
async fn display_name_becomes_instance_name_and_available_nodes_cannot_retire() {
    let app = spawn_app().await;
    let node = app.create_node("named").await;
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    let patched = app
        .patch(
            &format!("/v1/nodes/{uuid}"),
            json!([{"op": "add", "path": "/instance_info/display_name", "value": "web-1"}]),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.json()["instance_name"], "web-1");
    // A set instance_name is kept.
    let again = app
        .patch(
            &format!("/v1/nodes/{uuid}"),
            json!([{"op": "add", "path": "/instance_info/display_name", "value": "web-2"}]),
        )
        .await;
    assert_eq!(again.json()["instance_name"], "web-1");

    app.provision(&uuid, "manage").await;
    app.wait_for_state(&uuid, "manageable").await;
    app.provision(&uuid, "provide").await;
    app.wait_for_state(&uuid, "available").await;
    let retired = app
        .patch(
            &format!("/v1/nodes/{uuid}"),
            json!([{"op": "replace", "path": "/retired", "value": true}]),
        )
        .await;
    assert_eq!(retired.status, StatusCode::CONFLICT, "{}", retired.text);
    assert_eq!(
        retired.fault(),
        format!(
            "Node {uuid} can not have 'retired' set in provision state 'available', the current state is 'available'"
        )
    );
    app.stop().await;
}

#[tokio::test]
async fn volume_lists_take_detail_at_their_first_version() {
    let app = spawn_app().await;
    let node = app.create_node("vol").await;
    let uuid = node["uuid"].as_str().unwrap();
    let created = app
        .post(
            "/v1/volume/connectors",
            json!({"node_uuid": uuid, "type": "iqn", "connector_id": "iqn.2010-10.org.openstack:1"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    for path in [
        "/v1/volume/connectors?detail=True",
        "/v1/volume/targets?detail=True",
    ] {
        let listed = app.request(Method::GET, path, Some("1.32"), None).await;
        assert_eq!(listed.status, StatusCode::OK, "{path}: {}", listed.text);
    }
    let detailed = app
        .request(
            Method::GET,
            "/v1/volume/connectors?detail=True",
            Some("1.32"),
            None,
        )
        .await
        .json();
    assert_eq!(
        detailed["connectors"][0]["connector_id"],
        "iqn.2010-10.org.openstack:1"
    );
    assert!(detailed["connectors"][0]["extra"].is_object(), "{detailed}");
    app.stop().await;
}

/// A node locked by a conductor's operation is waited for (Ironic retries
/// its lock `node_locked_retry_attempts` times) rather than refused at
/// once; one that stays locked is refused with 409 naming the holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_a_locked_node_wait_for_the_lock_as_ironic_does() {
    let app = spawn_app().await;
    let node = app.create_node("busy").await;
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    app.power_off(&uuid).await;
    let connector = app
        .post(
            "/v1/volume/connectors",
            json!({"node_uuid": uuid, "type": "iqn", "connector_id": "iqn.2010-10.org.openstack:2"}),
        )
        .await
        .json();
    let path = format!(
        "/v1/volume/connectors/{}",
        connector["uuid"].as_str().unwrap()
    );
    let extra = |v: &str| json!([{"op": "add", "path": "/extra/k", "value": v}]);

    // A conductor's operation holds the lock: the PATCH is still waiting
    // (not refused) a while later, and goes through once it is released.
    let waited = {
        set_lock(&app, &uuid, Some("other-conductor")).await;
        let patch = app.patch(&path, extra("after"));
        tokio::pin!(patch);
        assert!(
            tokio::time::timeout(Duration::from_millis(300), &mut patch)
                .await
                .is_err(),
            "a write to a locked node is answered at once instead of waiting for the lock"
        );
        set_lock(&app, &uuid, None).await;
        patch.await
    };
    assert_eq!(waited.status, StatusCode::OK, "{}", waited.text);
    assert_eq!(waited.json()["extra"]["k"], "after");

    set_lock(&app, &uuid, Some("other-conductor")).await;
    let refused = app.patch(&path, extra("never")).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(
        refused
            .fault()
            .contains("is locked by host other-conductor"),
        "{}",
        refused.text
    );
    let node_patch = app
        .patch(
            &format!("/v1/nodes/{uuid}"),
            json!([{"op": "add", "path": "/extra/k", "value": "v"}]),
        )
        .await;
    assert_eq!(node_patch.status, StatusCode::CONFLICT);
    set_lock(&app, &uuid, None).await;
    app.stop().await;
}

#[tokio::test]
async fn a_port_is_shown_by_uuid_or_name_and_found_by_address_in_a_list() {
    let app = spawn_app().await;
    let node = app.create_node("ported").await;
    let mac = "52:54:00:aa:bb:cc";
    let port = app
        .post(
            "/v1/ports",
            json!({"node_uuid": node["uuid"], "address": mac}),
        )
        .await;
    assert_eq!(port.status, StatusCode::CREATED, "{}", port.text);
    for ident in [mac, "malformed:uuid"] {
        let shown = app.get(&format!("/v1/ports/{ident}")).await;
        assert_eq!(
            shown.status,
            StatusCode::BAD_REQUEST,
            "{ident}: {}",
            shown.text
        );
        assert_eq!(
            shown.fault(),
            format!("Expected UUID or name for port_ident: {ident}")
        );
    }
    let listed = app.get(&format!("/v1/ports/detail?address={mac}")).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert_eq!(listed.json()["ports"][0]["uuid"], port.json()["uuid"]);
    app.stop().await;
}

#[tokio::test]
async fn sub_resources_have_their_detail_lists_and_drivers_their_raid_and_vendor_tables() {
    let app = spawn_app().await;
    let node = app.create_node("lists").await;
    let uuid = node["uuid"].as_str().unwrap();
    let port = app
        .post(
            "/v1/ports",
            json!({"node_uuid": uuid, "address": "52:54:00:aa:00:09"}),
        )
        .await;
    assert_eq!(port.status, StatusCode::CREATED, "{}", port.text);
    let group = app
        .post(
            "/v1/portgroups",
            json!({"node_uuid": uuid, "name": "bond0"}),
        )
        .await;
    assert_eq!(group.status, StatusCode::CREATED, "{}", group.text);

    let ports = app.get(&format!("/v1/nodes/{uuid}/ports/detail")).await;
    assert_eq!(ports.status, StatusCode::OK, "{}", ports.text);
    assert_eq!(ports.json()["ports"][0]["address"], "52:54:00:aa:00:09");
    assert!(
        ports.json()["ports"][0]["extra"].is_object(),
        "detail: {}",
        ports.text
    );
    let groups = app
        .get(&format!("/v1/nodes/{uuid}/portgroups/detail"))
        .await;
    assert_eq!(groups.status, StatusCode::OK, "{}", groups.text);
    assert_eq!(groups.json()["portgroups"][0]["name"], "bond0");
    let in_group = app.get("/v1/portgroups/bond0/ports/detail").await;
    assert_eq!(in_group.status, StatusCode::OK, "{}", in_group.text);

    let raid = app
        .request(
            Method::GET,
            "/v1/drivers/fake-hardware/raid/logical_disk_properties",
            Some("1.12"),
            None,
        )
        .await;
    assert_eq!(raid.status, StatusCode::OK, "{}", raid.text);
    let table = raid.json();
    assert_eq!(table.as_object().unwrap().len(), 10);
    assert!(
        table["raid_level"]
            .as_str()
            .unwrap()
            .starts_with("RAID level for the logical disk.")
    );
    let old = app
        .request(
            Method::GET,
            "/v1/drivers/fake-hardware/raid/logical_disk_properties",
            Some("1.11"),
            None,
        )
        .await;
    assert_eq!(old.status, StatusCode::NOT_ACCEPTABLE);
    let unknown = app
        .get("/v1/drivers/nope/raid/logical_disk_properties")
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let methods = app
        .get("/v1/drivers/fake-hardware/vendor_passthru/methods")
        .await;
    assert_eq!(methods.status, StatusCode::OK, "{}", methods.text);
    assert_eq!(methods.json(), json!({}));
    app.stop().await;
}

#[tokio::test]
async fn a_driver_change_resets_the_interfaces_when_asked() {
    let app = spawn_app().await;
    let node = app.create_node("reset").await;
    let uuid = node["uuid"].as_str().unwrap();
    let to_ipmi = json!([{"op": "replace", "path": "/driver", "value": "ipmi"}]);
    let kept = app
        .patch(&format!("/v1/nodes/{uuid}"), to_ipmi.clone())
        .await;
    assert_eq!(kept.status, StatusCode::BAD_REQUEST, "{}", kept.text);
    assert_eq!(
        app.get(&format!("/v1/nodes/{uuid}")).await.json()["driver"],
        "fake-hardware"
    );

    let old = app
        .request(
            Method::PATCH,
            &format!("/v1/nodes/{uuid}?reset_interfaces=true"),
            Some("1.44"),
            Some(&to_ipmi),
        )
        .await;
    assert_eq!(old.status, StatusCode::NOT_ACCEPTABLE);
    let same_driver = app
        .request(
            Method::PATCH,
            &format!("/v1/nodes/{uuid}?reset_interfaces=true"),
            Some("1.45"),
            Some(&json!([{"op": "add", "path": "/extra/k", "value": 1}])),
        )
        .await;
    assert_eq!(same_driver.status, StatusCode::BAD_REQUEST);
    let reset = app
        .request(
            Method::PATCH,
            &format!("/v1/nodes/{uuid}?reset_interfaces=true"),
            Some("latest"),
            Some(&to_ipmi),
        )
        .await;
    assert_eq!(reset.status, StatusCode::OK, "{}", reset.text);
    let node = reset.json();
    assert_eq!(node["driver"], "ipmi");
    for iface in [
        "boot",
        "console",
        "deploy",
        "inspect",
        "management",
        "power",
        "raid",
        "vendor",
    ] {
        assert_ne!(
            node[format!("{iface}_interface")],
            "fake",
            "{iface}: {node}"
        );
    }
    assert_eq!(node["power_interface"], "ipmitool");
    app.stop().await;
}

/// Below the version that introduced a resource, the answer Ironic 39
/// gives there (ironic-tempest-plugin's `test_microversion_enforcement`
/// sends each request one version below and at the version).
#[tokio::test]
async fn resources_below_their_version_answer_as_ironic_does() {
    let app = spawn_app().await;
    let node = app.create_node("gated").await;
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    let group = app
        .post("/v1/portgroups", json!({"node_uuid": uuid, "name": "pg0"}))
        .await
        .json();
    let port = app
        .post(
            "/v1/ports",
            json!({"node_uuid": uuid, "address": "52:54:00:aa:00:0a", "portgroup_uuid": group["uuid"]}),
        )
        .await;
    assert_eq!(port.status, StatusCode::CREATED, "{}", port.text);
    let status =
        |method: Method, path: String, version: &'static str, body: Option<serde_json::Value>| {
            let app = &app;
            async move {
                let reply = app
                    .request(method, &path, Some(version), body.as_ref())
                    .await;
                (reply.status, reply.text)
            }
        };
    let node_path = |sub: &str| format!("/v1/nodes/{uuid}/{sub}");
    let cases = [
        (
            Method::GET,
            node_path("traits"),
            "1.36",
            None,
            StatusCode::NOT_ACCEPTABLE,
        ),
        (
            Method::PUT,
            node_path("traits"),
            "1.27",
            Some(json!({"traits": []})),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::PUT,
            node_path("traits/CUSTOM_A"),
            "1.36",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::DELETE,
            node_path("traits/CUSTOM_A"),
            "1.36",
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::DELETE,
            node_path("traits"),
            "1.27",
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::PUT,
            node_path("states/raid"),
            "1.11",
            Some(json!({})),
            StatusCode::NOT_ACCEPTABLE,
        ),
        (
            Method::PUT,
            node_path("vmedia"),
            "1.88",
            Some(json!({})),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::PUT,
            node_path("vmedia"),
            "1.89",
            Some(json!({})),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::GET,
            node_path("portgroups"),
            "1.23",
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            node_path("portgroups/detail"),
            "1.23",
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            node_path("portgroups"),
            "1.24",
            None,
            StatusCode::OK,
        ),
        (
            Method::GET,
            format!("/v1/ports?portgroup={}", group["uuid"].as_str().unwrap()),
            "1.23",
            None,
            StatusCode::NOT_ACCEPTABLE,
        ),
        (
            Method::GET,
            "/nodes/None/allocation".to_owned(),
            "1.51",
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/nodes/None/allocation".to_owned(),
            "1.52",
            None,
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (method, path, version, body, expected) in cases {
        let (got, text) = status(method.clone(), path.clone(), version, body).await;
        assert_eq!(got, expected, "{method} {path} at {version}: {text}");
    }
    // The bodies Ironic gives there: a missing route's, or a fault.
    let delete = app
        .request(
            Method::DELETE,
            &node_path("traits/CUSTOM_A"),
            Some("1.36"),
            None,
        )
        .await;
    assert_eq!(delete.fault(), "Resource could not be found.");
    let put = app
        .request(
            Method::PUT,
            &node_path("traits/CUSTOM_A"),
            Some("1.36"),
            None,
        )
        .await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(put.json()["error_message"].as_str().unwrap())
            .unwrap(),
        json!({"code": 405, "title": "Method Not Allowed", "description": ""})
    );
    let by_group = app
        .request(Method::GET, "/v1/ports?portgroup=pg0", Some("1.24"), None)
        .await;
    assert_eq!(by_group.json()["ports"][0]["uuid"], port.json()["uuid"]);

    // The heartbeat with its node in the body, as the pecan controller took it.
    let beat = json!({"node_ident": uuid, "callback_url": "http://127.0.0.1:9999",
                      "agent_version": "10.0.0", "agent_token": "x"});
    let old = app
        .request(Method::POST, "/v1/heartbeat", Some("1.21"), Some(&beat))
        .await;
    assert_eq!(old.status, StatusCode::NOT_FOUND);
    assert_eq!(old.fault(), "Resource could not be found.");
    let first = app
        .request(Method::POST, "/v1/heartbeat", Some("1.22"), Some(&beat))
        .await;
    assert_eq!(first.status, StatusCode::BAD_REQUEST);
    assert_eq!(first.fault(), "Field \"agent_version\" not recognised");
    app.stop().await;
}

#[tokio::test]
async fn the_ports_of_a_portgroup_share_one_physical_network() {
    let app = spawn_app().await;
    let node = app.create_node("physnets").await;
    let uuid = node["uuid"].as_str().unwrap();
    let group = app
        .post(
            "/v1/portgroups",
            json!({"node_uuid": uuid, "name": "bond1"}),
        )
        .await
        .json();
    let port = |mac: &str, physnet: &str| {
        json!({"node_uuid": uuid, "address": mac, "physical_network": physnet,
               "portgroup_uuid": group["uuid"]})
    };
    let first = app
        .post("/v1/ports", port("52:54:00:bb:00:01", "physnet1"))
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    // The portgroup took its first port's network.
    let shown = app.get("/v1/portgroups/bond1").await.json();
    assert_eq!(shown["physical_network"], "physnet1");
    let other = app
        .post("/v1/ports", port("52:54:00:bb:00:02", "physnet2"))
        .await;
    assert_eq!(other.status, StatusCode::CONFLICT, "{}", other.text);
    assert_eq!(
        other.fault(),
        format!(
            "Port with physical network physnet2 cannot become a member of port group {} which has ports in physical network physnet1.",
            group["uuid"].as_str().unwrap()
        )
    );
    let same = app
        .post("/v1/ports", port("52:54:00:bb:00:03", "physnet1"))
        .await;
    assert_eq!(same.status, StatusCode::CREATED, "{}", same.text);
    let moved = app
        .patch(
            &format!("/v1/ports/{}", same.json()["uuid"].as_str().unwrap()),
            json!([{"op": "replace", "path": "/physical_network", "value": "physnet2"}]),
        )
        .await;
    assert_eq!(moved.status, StatusCode::CONFLICT, "{}", moved.text);
    // physical_network came with 1.34: an older client cannot set it.
    let old = app
        .request(
            Method::PATCH,
            &format!("/v1/ports/{}", first.json()["uuid"].as_str().unwrap()),
            Some("1.33"),
            Some(&json!([{"op": "replace", "path": "/physical_network", "value": "physnet1"}])),
        )
        .await;
    assert_eq!(old.status, StatusCode::NOT_ACCEPTABLE, "{}", old.text);
    app.stop().await;
}

#[tokio::test]
async fn the_fake_graphical_console_publishes_a_vnc_endpoint_and_a_novnc_link() {
    let app = spawn_app().await;
    let created = app
        .post(
            "/v1/nodes",
            json!({"driver": "fake-hardware", "console_interface": "fake-graphical"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let uuid = created.json()["uuid"].as_str().unwrap().to_owned();
    let console = format!("/v1/nodes/{uuid}/states/console");

    let on = app.put(&console, json!({"enabled": true})).await;
    assert_eq!(on.status, StatusCode::ACCEPTED, "{}", on.text);
    let shown = app.get(&console).await.json();
    assert_eq!(shown["console_enabled"], true);
    assert_eq!(shown["console_info"]["type"], "vnc");
    let url = shown["console_info"]["url"].as_str().unwrap();
    assert!(
        url.starts_with("http://127.0.0.1:6090/vnc_auto.html?path=websockify%3Fnode%3D"),
        "{url}"
    );
    assert!(url.contains(&uuid), "{url}");
    let internal =
        app.get(&format!("/v1/nodes/{uuid}")).await.json()["driver_internal_info"].clone();
    assert_eq!(internal["vnc_host"], "192.0.2.1");
    assert_eq!(internal["vnc_port"], 5900);
    assert_eq!(
        internal["novnc_secret_token"], "******",
        "the token is a secret"
    );

    let off = app.put(&console, json!({"enabled": false})).await;
    assert_eq!(off.status, StatusCode::ACCEPTED, "{}", off.text);
    assert_eq!(
        app.get(&console).await.json(),
        json!({"console_enabled": false, "console_info": null})
    );
    let internal =
        app.get(&format!("/v1/nodes/{uuid}")).await.json()["driver_internal_info"].clone();
    assert!(
        internal.get("vnc_host").is_none() && internal.get("novnc_secret_token").is_none(),
        "{internal}"
    );
    app.stop().await;
}

/// Answers the suite does not check but a side-by-side probe against
/// Ironic 39 did: indicators at every version and one by one, driver
/// `?fields` (1.77), an empty RAID configuration, an unknown driver's name.
#[tokio::test]
async fn indicators_driver_fields_and_empty_raid_configs_answer_as_ironic() {
    let app = spawn_app().await;
    let node = app.create_node("leds").await;
    let uuid = node["uuid"].as_str().unwrap();
    let leds = app
        .request(
            Method::GET,
            &format!("/v1/nodes/{uuid}/management/indicators"),
            Some("1.1"),
            None,
        )
        .await;
    assert_eq!(leds.status, StatusCode::OK, "{}", leds.text);
    assert_eq!(leds.json()["indicators"][1]["name"], "led@system");
    let one = app
        .get(&format!(
            "/v1/nodes/{uuid}/management/indicators/led@system"
        ))
        .await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.text);
    assert_eq!(one.json(), json!({"state": "on"}));
    let malformed = app
        .get(&format!("/v1/nodes/{uuid}/management/indicators/led"))
        .await;
    assert_eq!(malformed.fault(), "Malformed indicator name \"led\"");
    let set = app
        .put(
            &format!("/v1/nodes/{uuid}/management/indicators/led@system"),
            json!({"state": "off"}),
        )
        .await;
    assert_eq!(set.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        set.fault(),
        "Driver fake-hardware does not support set_indicator_state (disabled or not implemented)."
    );

    let old = app
        .request(Method::GET, "/v1/drivers?fields=name", Some("1.76"), None)
        .await;
    assert_eq!(old.status, StatusCode::NOT_ACCEPTABLE);
    let named = app
        .request(
            Method::GET,
            "/v1/drivers/fake-hardware?fields=name",
            Some("1.77"),
            None,
        )
        .await;
    assert_eq!(named.status, StatusCode::OK, "{}", named.text);
    let keys: Vec<String> = named.json().as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["name", "links"]);

    let raid = app
        .request(
            Method::PUT,
            &format!("/v1/nodes/{uuid}/states/raid"),
            Some("1.12"),
            Some(&json!({})),
        )
        .await;
    assert_eq!(raid.status, StatusCode::NO_CONTENT, "{}", raid.text);
    let unknown = app
        .get("/v1/drivers/testdriver/raid/logical_disk_properties")
        .await;
    assert_eq!(unknown.fault(), "The driver 'testdriver' is unknown.");
    app.stop().await;
}
