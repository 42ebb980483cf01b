//! `[api] tls_cert_file` / `tls_key_file`: the API speaks HTTPS (rustls)
//! and its links say so; plain HTTP gets nothing.

use crate::helpers::{Backend, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_serves_https_when_given_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.api.tls_cert_file = Some(cert.clone());
        s.api.tls_key_file = Some(key.clone());
    })
    .await;
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap(),
        )
        .build()
        .unwrap();

    let secure = client
        .get(format!("https://127.0.0.1:{port}/v1"))
        .send()
        .await
        .unwrap();
    let status = secure.status();
    let body: serde_json::Value = secure.json().await.unwrap();
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/v1"))
        .send()
        .await;

    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(
        body["links"][0]["href"],
        format!("https://127.0.0.1:{port}/v1/")
    );
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "no plain HTTP"
    );
}
