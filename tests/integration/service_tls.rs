//! TLS to PostgreSQL and RabbitMQ: `[database] tls_ca_file` and an
//! `amqps://` `[amqp] url` with `[amqp] tls_ca_file`, against servers the
//! test sets up to accept TLS only (a PostgreSQL with `hostssl` alone, a
//! RabbitMQ node without a plain listener; certificates made with
//! `openssl`). `ferric api` and a conductor deploy nodes through them, every
//! connection the servers see is TLS, and a server whose certificate another
//! CA signed stops start-up with an error that says so and names the CA
//! file.

use std::process::Command;

use reqwest::StatusCode;
use secrecy::SecretString;

use crate::distributed::Cluster;
use crate::helpers::certs;
use crate::helpers::private_pg::PrivatePg;
use crate::helpers::private_rabbit::PrivateRabbit;

/// `psql` (Debian's, with OpenSSL) against the private server over TLS;
/// the unaligned result, or the error.
fn psql(port: u16, sslmode: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .arg(format!(
            "postgresql://postgres@127.0.0.1:{port}/postgres?sslmode={sslmode}"
        ))
        .args(["-Atc", sql])
        .output()
        .expect("psql runs");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Why `ferric api` would not start with `settings` (it must not).
async fn start_up_error(settings: ferric_common::config::Settings) -> String {
    let error = ferric::distributed::ApiProcess::start(settings)
        .await
        .err()
        .expect("start-up fails");
    format!("{error:#}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_and_a_conductor_deploy_over_tls_to_postgresql_and_rabbitmq() {
    let dir = tempfile::tempdir().unwrap();
    let certificates = certs::make(dir.path());
    let pg = PrivatePg::start_tls(&certificates);
    let rabbit = PrivateRabbit::start_tls(&certificates).await;
    let refused = psql(pg.port, "disable", "select 1").unwrap_err();
    assert!(refused.contains("no encryption"), "TLS only: {refused}");

    // The database by name (verified against the certificate's DNS name),
    // the broker by address (its IP name).
    let db_url = format!("postgres://postgres@localhost:{}/postgres", pg.port);
    let cluster = Cluster::start_on(&db_url, 1, |s| {
        s.database.tls_ca_file = Some(certificates.ca.clone());
        s.amqp.url = SecretString::from(rabbit.url("127.0.0.1"));
        s.amqp.tls_ca_file = Some(certificates.ca.clone());
    })
    .await;
    let uuids = cluster.available_nodes(5).await;
    let replies = cluster.provision_all(&uuids, "active").await;
    assert!(
        replies.iter().all(|s| *s == StatusCode::ACCEPTED),
        "{replies:?}"
    );
    for uuid in &uuids {
        cluster.wait_state(uuid, "active").await;
    }

    // What the servers saw: Ferric's sessions, every one over TLS.
    let sessions = psql(
        pg.port,
        "require",
        "select count(*) filter (where s.ssl), count(*) filter (where not s.ssl) \
         from pg_stat_ssl s join pg_stat_activity a using (pid) \
         where a.backend_type = 'client backend' and a.pid <> pg_backend_pid()",
    )
    .unwrap();
    let (tls, plain) = sessions.split_once('|').unwrap();
    assert!(tls.parse::<u32>().unwrap() > 0, "{sessions}");
    assert_eq!(plain, "0", "{sessions}");
    let connections = rabbit.ctl(&["list_connections", "ssl", "ssl_protocol"]);
    let lines: Vec<&str> = connections.lines().filter(|l| !l.is_empty()).collect();
    assert!(
        lines.len() >= 2,
        "the API's and the conductor's: {connections}"
    );
    assert!(lines.iter().all(|l| l.starts_with("true")), "{connections}");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(
    clippy::print_stderr,
    reason = "prints the start-up errors the closing note quotes"
)]
async fn a_server_certificate_from_another_ca_stops_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let certificates = certs::make(dir.path());
    let other_dir = tempfile::tempdir().unwrap();
    let other = certs::make(other_dir.path());
    let pg = PrivatePg::start_tls(&certificates);
    let rabbit = PrivateRabbit::start_tls(&certificates).await;
    let settings = |db_ca: &std::path::Path, broker_ca: &std::path::Path| {
        let mut s = ferric_common::config::Settings::default();
        s.database.url = Some(SecretString::from(format!(
            "postgres://postgres@localhost:{}/postgres",
            pg.port
        )));
        s.database.tls_ca_file = Some(db_ca.to_owned());
        s.amqp.url = SecretString::from(rabbit.url("127.0.0.1"));
        s.amqp.tls_ca_file = Some(broker_ca.to_owned());
        s.amqp.prefix = format!("t{}.", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        s.api.port = 0;
        s
    };

    let database = start_up_error(settings(&other.ca, &certificates.ca)).await;
    eprintln!("ferric api, PostgreSQL's certificate from another CA: {database}");
    for part in [
        // At once, not after the pool's wait for a connection.
        "cannot open the database: TLS to PostgreSQL at localhost:",
        "invalid peer certificate",
        other.ca.to_str().unwrap(),
    ] {
        assert!(database.contains(part), "{part:?} in {database}");
    }
    let broker = start_up_error(settings(&certificates.ca, &other.ca)).await;
    eprintln!("ferric api, RabbitMQ's certificate from another CA: {broker}");
    for part in [
        "connecting to RabbitMQ",
        "invalid peer certificate",
        other.ca.to_str().unwrap(),
    ] {
        assert!(broker.contains(part), "{part:?} in {broker}");
    }
    let connections = rabbit.ctl(&["list_connections", "name"]);
    assert!(connections.trim().is_empty(), "{connections}");
}
