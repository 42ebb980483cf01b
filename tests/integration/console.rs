//! The operator console in a real browser (Debian's headless Chromium over
//! WebDriver): the fleet follows a deploy started from the real `baremetal`
//! CLI without a reload, a node whose agent never calls says why it waits,
//! an action button powers a node on through the API, http_basic guards
//! every page, and the queues page shows a dead letter's reason from
//! RabbitMQ. Screenshots land in `target/console-screenshots/`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::distributed::Cluster;
use crate::end_to_end::clients::{Cli, ensure_venv, venv};
use crate::helpers::browser::Browser;
use crate::helpers::{Backend, spawn_app_with, wait_until};

/// The cell of a node's row in the fleet table.
fn cell(uuid: &str, field: &str) -> String {
    format!("#node-{uuid} [data-field=\"{field}\"]")
}

/// Records, in the page, every text the cell `css` shows from now on.
fn watch_cell(css: &str) -> String {
    format!(
        "const cell = document.querySelector('{css}');
         window.__seen = [cell.textContent];
         new MutationObserver(() => window.__seen.push(cell.textContent))
           .observe(cell, {{childList: true, subtree: true, characterData: true}});
         window.__kept = 42;
         return true;"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_page_follows_a_deploy_started_from_the_cli_without_a_reload() {
    let venv = venv();
    ensure_venv(&venv).await;
    let app = spawn_app_with(Backend::Sqlite, |s| {
        // Each fake step takes a while, so the page can see the deploy pass.
        s.conductor.fake_step_delay_ms = 300;
    })
    .await;
    let mut uuids = Vec::new();
    for name in ["rack1-n1", "rack1-n2", "rack2-n3"] {
        uuids.push(
            app.create_node(name).await["uuid"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    app.provision(&uuids[0], "manage").await;
    app.wait_for_state(&uuids[0], "manageable").await;
    app.provision(&uuids[0], "provide").await;
    app.wait_for_state(&uuids[0], "available").await;

    // Without JavaScript the page is the table itself.
    let html = app
        .client
        .get(format!("{}/console/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(html.status(), StatusCode::OK);
    let policy = html.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.starts_with("default-src 'self'"), "{policy}");
    let html = html.text().await.unwrap();
    for name in ["rack1-n1", "rack1-n2", "rack2-n3"] {
        assert!(html.contains(&format!(">{name}</a>")), "{name} not listed");
    }

    // What a node carries is shown as text, never as markup.
    let reason = "<img src=x onerror=alert(1)>";
    let set = app
        .put(
            &format!("/v1/nodes/{}/maintenance", uuids[1]),
            json!({ "reason": reason }),
        )
        .await;
    assert_eq!(set.status, StatusCode::ACCEPTED, "{}", set.text);
    let page = app
        .client
        .get(format!("{}/console/nodes/{}", app.base, uuids[1]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{page}"
    );
    assert!(!page.contains(reason), "{page}");

    let browser = Browser::start(1280, 800).await;
    browser.goto(&format!("{}/console/", app.base)).await;
    browser.wait_text("#live", "live").await;
    for (uuid, name) in uuids.iter().zip(["rack1-n1", "rack1-n2", "rack2-n3"]) {
        assert_eq!(
            browser.text(&cell(uuid, "name")).await.as_deref(),
            Some(name)
        );
    }
    assert_eq!(browser.text("#count-total").await.as_deref(), Some("3"));
    let state_cell = cell(&uuids[0], "provision_state");
    assert_eq!(browser.run(&watch_cell(&state_cell)).await, json!(true));

    let cli = Cli {
        bin: venv.join("bin/baremetal"),
        endpoint: app.base.clone(),
    };
    cli.run(&["node", "deploy", "rack1-n1"]).await;

    browser.wait_text(&state_cell, "active").await;
    let seen = browser.run("return window.__seen;").await;
    let seen: Vec<String> = serde_json::from_value(seen).unwrap();
    assert!(
        seen.iter().any(|s| s.contains("deploying")),
        "the page never showed the deploy under way: {seen:?}"
    );
    assert_eq!(
        browser.run("return window.__kept;").await,
        json!(42),
        "the page was reloaded"
    );
    browser
        .wait_text("[data-count-state=\"active\"] strong", "1")
        .await;
    browser.screenshot("fleet").await;

    // The search form narrows the table (a plain GET form).
    browser
        .goto(&format!("{}/console/?q=rack2", app.base))
        .await;
    let rows = browser
        .run("return [...document.querySelectorAll('#nodes tbody tr')].map(r => r.dataset.uuid);")
        .await;
    assert_eq!(rows, json!([uuids[2]]));
    browser.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_agent_never_calls_shows_why_it_waits() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let uuid = app
        .manageable_node(
            json!({"driver": "manual-management", "deploy_interface": "direct", "name": "stuck-1"}),
            None,
        )
        .await;
    // Cleaning boots the ramdisk and waits for an agent that never comes.
    app.provision(&uuid, "provide").await;
    app.wait_for_state(&uuid, "clean wait").await;

    let browser = Browser::start(1100, 1400).await;
    browser
        .goto(&format!("{}/console/nodes/stuck-1", app.base))
        .await;
    let diagnosis = browser
        .wait_text("#diagnosis", "Waiting for the agent's first heartbeat for")
        .await;
    assert!(
        diagnosis.contains("it times out in 29 min")
            || diagnosis.contains("it times out in 30 min"),
        "{diagnosis}"
    );
    assert!(
        diagnosis.contains("The BMC last reported power on."),
        "{diagnosis}"
    );
    let agent = browser.text("#agent").await.unwrap();
    assert_eq!(agent, "no heartbeat recorded");
    // The timeline has the path here, from the journal.
    let timeline = browser
        .wait_text("#timeline", "cleaning → clean wait")
        .await;
    assert!(
        timeline.contains("manageable → cleaning (provide)"),
        "{timeline}"
    );
    // Abort is offered from here, deploy is not.
    let actions = browser.text("#actions").await.unwrap();
    assert!(
        actions.contains("Abort") && !actions.contains("Deploy"),
        "{actions}"
    );
    browser.screenshot("stuck-node").await;
    // In a narrow window nothing but the tables' own boxes scrolls sideways.
    browser.client.set_window_size(400, 1200).await.unwrap();
    let overflow = browser
        .run("return document.documentElement.scrollWidth - document.documentElement.clientWidth;")
        .await;
    assert_eq!(overflow, json!(0), "the page is wider than a narrow window");
    browser.screenshot("stuck-node-narrow").await;
    browser.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_button_powers_a_node_on_after_confirmation() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let uuid = app.create_node("button-1").await["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    app.power_off(&uuid).await;

    let browser = Browser::start(1100, 1200).await;
    browser
        .goto(&format!("{}/console/nodes/{uuid}", app.base))
        .await;
    browser.wait_text("#live", "live").await;
    let button = "#actions button[data-target=\"power on\"]";

    // Refused at the confirmation: nothing is sent.
    browser
        .client
        .find(fantoccini::Locator::Css(button))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let question = browser.client.get_alert_text().await.unwrap();
    assert_eq!(question, "Power on node button-1?");
    browser.client.dismiss_alert().await.unwrap();
    browser.wait_text("#action-result", "Cancelled.").await;
    let node = app.get(&format!("/v1/nodes/{uuid}")).await.json();
    assert_eq!(node["power_state"], "power off");

    // Confirmed: the API's answer, the node on, the page updated live.
    browser
        .client
        .find(fantoccini::Locator::Css(button))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.client.accept_alert().await.unwrap();
    browser
        .wait_text("#action-result", "Power on: accepted (202).")
        .await;
    wait_until(Duration::from_secs(20), "the node to be on", || async {
        let node = app.get(&format!("/v1/nodes/{uuid}")).await.json();
        (node["power_state"] == "power on").then_some(())
    })
    .await;
    browser
        .wait_text("#facts [data-field=\"power_state\"]", "power on")
        .await;
    browser.wait_text("#power-actions", "power on").await;
    browser.screenshot("node-powered-on").await;
    browser.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_http_basic_every_console_path_needs_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("htpasswd");
    std::fs::write(
        &file,
        format!("admin:{}\n", bcrypt::hash("s3cret", 4).unwrap()),
    )
    .unwrap();
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.auth.strategy = ferric_common::config::AuthStrategy::HttpBasic;
        s.auth.http_basic_auth_user_file = file;
    })
    .await;
    let created = app
        .client
        .post(format!("{}/v1/nodes", app.base))
        .basic_auth("admin", Some("s3cret"))
        .header("X-OpenStack-Ironic-API-Version", "latest")
        .json(&json!({"driver": "fake-hardware", "name": "guarded-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    for path in [
        "/console/",
        "/console/nodes/guarded-1",
        "/console/conductors",
        "/console/counts",
        "/console/events",
        "/console/assets/console.js",
    ] {
        let url = format!("{}{path}", app.base);
        let without = app.client.get(&url).send().await.unwrap();
        assert_eq!(without.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            without.headers()["www-authenticate"],
            "Basic realm=\"Baremetal API\"",
            "{path}"
        );
        let wrong = app
            .client
            .get(&url)
            .basic_auth("admin", Some("guess"))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "{path}");
        if path != "/console/events" {
            let with = app
                .client
                .get(&url)
                .basic_auth("admin", Some("s3cret"))
                .send()
                .await
                .unwrap();
            assert_eq!(with.status(), StatusCode::OK, "{path}");
        }
    }

    // A browser given the credentials sees the page and its live feed.
    let browser = Browser::start(1100, 700).await;
    let port = app.base.rsplit(':').next().unwrap();
    browser
        .goto(&format!("http://admin:s3cret@127.0.0.1:{port}/console/"))
        .await;
    browser.wait_text("#nodes", "guarded-1").await;
    browser.wait_text("#live", "live").await;
    browser.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queues_page_shows_a_dead_letter_from_rabbitmq_and_the_fleet_follows_other_processes() {
    use lapin::options::BasicPublishOptions;
    use lapin::{BasicProperties, Connection, ConnectionProperties};

    let cluster = Cluster::start_with(1, |_| {}).await;
    let names = ferric_common::queue::amqp::Names::new(cluster.prefix());
    let conn = Connection::connect(
        &crate::helpers::broker::amqp_url(),
        ConnectionProperties::default(),
    )
    .await
    .unwrap();
    let channel = conn.create_channel().await.unwrap();
    // Not a task: the conductor sets it aside with its reason.
    channel
        .basic_publish(
            names.tasks.as_str().into(),
            cluster.hosts[0].as_str().into(),
            BasicPublishOptions::default(),
            &[0xff, 0x01, 0x02],
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let page = format!("{}/console/conductors", cluster.base);
    let html = wait_until(
        Duration::from_secs(20),
        "the dead letter on the page",
        || async {
            let html = client.get(&page).send().await.ok()?.text().await.ok()?;
            html.contains("undecodable task").then_some(html)
        },
    )
    .await;
    assert!(html.contains(&cluster.hosts[0]), "the conductor is listed");

    let browser = Browser::start(1200, 900).await;
    browser.goto(&page).await;
    let letters = browser.text("#dead-letters").await.unwrap();
    assert!(letters.contains(&cluster.hosts[0]), "{letters}");
    let queues = browser.text("#queues").await.unwrap();
    assert!(
        queues.contains(&names.conductor_queue(&cluster.hosts[0])),
        "{queues}"
    );
    browser.screenshot("queues").await;
    // Looking did not consume it: the queue still holds exactly one.
    let dead = channel
        .queue_declare(
            names.dead.as_str().into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(dead.message_count(), 1);

    // The fleet page of `ferric api` follows what the conductor does,
    // through the notifications exchange.
    let uuid = cluster.available_nodes(1).await.remove(0);
    browser.goto(&format!("{}/console/", cluster.base)).await;
    browser.wait_text("#live", "live").await;
    let (status, _) = cluster
        .send(
            reqwest::Method::PUT,
            &format!("/v1/nodes/{uuid}/states/provision"),
            Some(json!({"target": "active"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    browser
        .wait_text(&cell(&uuid, "provision_state"), "active")
        .await;
    let node: Value = cluster
        .send(reqwest::Method::GET, &format!("/v1/nodes/{uuid}"), None)
        .await
        .1;
    assert_eq!(node["provision_state"], "active");
    browser.close().await;
    cluster.stop().await;
}
