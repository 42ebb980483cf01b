//! `[auth] strategy = http_basic`: an htpasswd file of bcrypt entries, the
//! public version routes, Ironic's 401/400 answers, reload on SIGHUP.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, TestApp, spawn_app_with, wait_until};

fn htpasswd(path: &Path, users: &[(&str, &str)]) {
    let lines: String = users
        .iter()
        .map(|(user, password)| {
            // Apache's htpasswd -B writes $2y$; bcrypt's $2b$ is the same digest.
            let digest = bcrypt::hash(password, 4)
                .unwrap()
                .replacen("$2b$", "$2y$", 1);
            format!("{user}:{digest}\n")
        })
        .collect();
    std::fs::write(path, lines).unwrap();
}

fn basic(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

async fn get(
    app: &TestApp,
    path: &str,
    authorization: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut request = app.client.get(format!("{}{path}", app.base));
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.text().await.unwrap())
}

async fn basic_app(dir: &Path) -> TestApp {
    let file = dir.join("htpasswd");
    htpasswd(&file, &[("admin", "s3cret"), ("ops", "other")]);
    spawn_app_with(Backend::Sqlite, |s| {
        s.auth.strategy = ferric_common::config::AuthStrategy::HttpBasic;
        s.auth.http_basic_auth_user_file = file;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_basic_lets_in_only_the_users_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let app = basic_app(dir.path()).await;

    let root = get(&app, "/", None).await;
    let v1 = get(&app, "/v1", None).await;
    let v1_slash = get(&app, "/v1/", None).await;
    let healthz = get(&app, "/healthz", None).await;
    let readyz = get(&app, "/readyz", None).await;
    let missing = get(&app, "/v1/nodes", None).await;
    let wrong = get(&app, "/v1/nodes", Some(&basic("admin", "nope"))).await;
    let stranger = get(&app, "/v1/nodes", Some(&basic("mallory", "s3cret"))).await;
    let bearer = get(&app, "/v1/nodes", Some("Bearer abc")).await;
    let garbage = get(&app, "/v1/nodes", Some("Basic !!!not-base64")).await;
    let ok = get(&app, "/v1/nodes", Some(&basic("admin", "s3cret"))).await;
    let ok_again = get(&app, "/v1/drivers", Some(&basic("admin", "s3cret"))).await;
    let created = app
        .client
        .post(format!("{}/v1/nodes", app.base))
        .header("Authorization", basic("ops", "other"))
        .json(&json!({"driver": "fake-hardware"}))
        .send()
        .await
        .unwrap()
        .status();
    let refused_create = app
        .client
        .post(format!("{}/v1/nodes", app.base))
        .json(&json!({"driver": "fake-hardware"}))
        .send()
        .await
        .unwrap()
        .status();
    let (_, _, list) = get(&app, "/v1/nodes", Some(&basic("admin", "s3cret"))).await;

    assert_eq!(root.0, StatusCode::OK, "version discovery is public");
    assert_eq!(v1.0, StatusCode::OK);
    assert_eq!(v1_slash.0, StatusCode::OK);
    assert_eq!(
        healthz.0,
        StatusCode::OK,
        "probes are public: {}",
        healthz.2
    );
    assert_eq!(readyz.0, StatusCode::OK, "{}", readyz.2);
    let ready: serde_json::Value = serde_json::from_str(&readyz.2).unwrap();
    assert_eq!(
        ready,
        json!({"status": "ready",
               "checks": {"database": "ok", "broker": "ok", "conductors": "ok"}})
    );
    assert_eq!(missing.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        missing.1["www-authenticate"].to_str().unwrap(),
        "Basic realm=\"Baremetal API\""
    );
    let body: serde_json::Value = serde_json::from_str(&missing.2).unwrap();
    assert_eq!(
        body,
        json!({"error": {"message": "Authorization required", "code": 401}})
    );
    for (status, _, text) in [&wrong, &stranger] {
        assert_eq!(*status, StatusCode::UNAUTHORIZED);
        assert!(text.contains("Incorrect username or password"), "{text}");
    }
    assert_eq!(bearer.0, StatusCode::BAD_REQUEST);
    assert!(
        bearer
            .2
            .contains("Unsupported authorization type \\\"Bearer\\\""),
        "{}",
        bearer.2
    );
    assert_eq!(garbage.0, StatusCode::BAD_REQUEST);
    assert!(
        garbage.2.contains("Could not decode authorization token"),
        "{}",
        garbage.2
    );
    assert_eq!(ok.0, StatusCode::OK);
    assert_eq!(ok_again.0, StatusCode::OK);
    assert_eq!(created, StatusCode::CREATED);
    assert_eq!(refused_create, StatusCode::UNAUTHORIZED);
    let nodes: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(
        nodes["nodes"].as_array().unwrap().len(),
        1,
        "the refused create made nothing"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_file_is_read_again_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let app = basic_app(dir.path()).await;
    let before = get(&app, "/v1/nodes", Some(&basic("newcomer", "hello")))
        .await
        .0;

    htpasswd(&dir.path().join("htpasswd"), &[("newcomer", "hello")]);
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    wait_until(
        Duration::from_secs(10),
        "the new user to get in",
        || async {
            (get(&app, "/v1/nodes", Some(&basic("newcomer", "hello")))
                .await
                .0
                == StatusCode::OK)
                .then_some(())
        },
    )
    .await;
    let removed = get(&app, "/v1/nodes", Some(&basic("admin", "s3cret")))
        .await
        .0;

    assert!(sent.success());
    assert_eq!(before, StatusCode::UNAUTHORIZED);
    assert_eq!(
        removed,
        StatusCode::UNAUTHORIZED,
        "a user gone from the file is out"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_file_with_a_non_bcrypt_entry_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("htpasswd");
    std::fs::write(&file, "bob:$apr1$abcdefgh$0123456789abcdefghijkl\n").unwrap();
    let mut settings = ferric_common::config::Settings {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    settings.api.port = 0;
    settings.auth.strategy = ferric_common::config::AuthStrategy::HttpBasic;
    settings.auth.http_basic_auth_user_file = file;

    let error = ferric::embedded::Embedded::start(settings)
        .await
        .err()
        .unwrap();

    assert!(
        format!("{error:#}").contains("Only bcrypt digested passwords are supported for bob"),
        "{error:#}"
    );
}

/// An unknown user's password is checked as long as a known user's (the
/// decoy digest): the answer's time does not tell whether a user exists.
/// Every attempt has its own password, so none is answered from the cache;
/// the two differ a hundredfold without the decoy, so half is a wide margin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_user_takes_as_long_as_a_wrong_password() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("htpasswd");
    // Cost 10, as a real file's: about 50 ms a check.
    let digest = bcrypt::hash("s3cret", 10).unwrap();
    std::fs::write(&file, format!("admin:{digest}\n")).unwrap();
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.auth.strategy = ferric_common::config::AuthStrategy::HttpBasic;
        s.auth.http_basic_auth_user_file = file;
        // Every guess must be checked here: no backoff.
        s.api.auth_backoff_max_secs = 0;
    })
    .await;
    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for attempt in 0..7 {
        for (user, times) in [("admin", &mut known), ("mallory", &mut unknown)] {
            let started = std::time::Instant::now();
            let (status, _, _) = get(
                &app,
                "/v1/nodes",
                Some(&basic(user, &format!("guess-{attempt}"))),
            )
            .await;
            times.push(started.elapsed());
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
    }
    let (known, unknown) = (median(&mut known), median(&mut unknown));
    assert!(
        unknown * 2 > known,
        "unknown user answered in {unknown:?}, a known one's wrong password in {known:?}"
    );
}

/// Wrong passwords from one address make it wait: past the free failures,
/// 429 with `Retry-After` (even for the right password: nothing is checked
/// while it waits); another address is not held up; once the wait is over
/// the right password gets in and the count starts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_from_one_address_make_it_wait() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("htpasswd");
    htpasswd(&file, &[("admin", "s3cret")]);
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.auth.strategy = ferric_common::config::AuthStrategy::HttpBasic;
        s.auth.http_basic_auth_user_file = file;
        s.api.auth_failures_before_backoff = 2;
        s.api.auth_backoff_max_secs = 30;
    })
    .await;
    let from = |address: &str| {
        reqwest::Client::builder()
            .local_address(address.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    let status_of = |client: reqwest::Client, password: &str| {
        let request = client
            .get(format!("{}/v1/nodes", app.base))
            .header("Authorization", basic("admin", password));
        async move { request.send().await.unwrap() }
    };
    for _ in 0..3 {
        let wrong = status_of(from("127.0.0.5"), "guess").await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    let held = status_of(from("127.0.0.5"), "s3cret").await;
    assert_eq!(held.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(held.headers()["retry-after"], "1");
    let other = status_of(from("127.0.0.6"), "s3cret").await;
    assert_eq!(other.status(), StatusCode::OK);

    wait_until(Duration::from_secs(5), "the backoff to end", || async {
        (status_of(from("127.0.0.5"), "s3cret").await.status() == StatusCode::OK).then_some(())
    })
    .await;
    let wrong = status_of(from("127.0.0.5"), "guess").await;
    assert_eq!(
        wrong.status(),
        StatusCode::UNAUTHORIZED,
        "the count started again"
    );
    app.stop().await;
}
