//! Every migration runs up and down on PostgreSQL and SQLite, and
//! `db upgrade` is idempotent.

use std::time::Duration;

use ferric_common::db::Db;

use crate::helpers::db::TestPg;

async fn up_down_up(url: &str) {
    let db = Db::connect(url, 2, Duration::from_secs(5)).unwrap();

    let first = db.migrate().await.unwrap();
    let again = db.migrate().await.unwrap();
    let version = db.version().await.unwrap();
    let reverted = db.revert_all().await.unwrap();
    let empty_version = db.version().await.unwrap();
    let reapplied = db.migrate().await.unwrap();

    assert!(!first.is_empty());
    assert!(again.is_empty(), "upgrade is idempotent");
    assert_eq!(version.as_deref(), first.last().map(String::as_str));
    assert_eq!(reverted.len(), first.len());
    assert_eq!(empty_version, None);
    assert_eq!(reapplied, first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_up_and_down_on_postgres() {
    let pg = TestPg::new();
    up_down_up(&pg.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_up_and_down_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    up_down_up(&format!("sqlite://{}", dir.path().join("m.db").display())).await;
}
