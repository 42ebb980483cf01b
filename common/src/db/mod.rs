//! The database: one diesel connection type over PostgreSQL (distributed mode)
//! and SQLite (embedded mode), an r2d2 pool, embedded migrations and the
//! row models with their queries.
//!
//! Invariants: every query goes through [`Db::run`], which runs it on the
//! blocking pool inside the caller's span; queries use only SQL both
//! backends understand, so a model compiles once for both.
//!
//! Outages: a checkout waits at most `[database] connection_timeout_ms`
//! (API and conductor). A handle either fails fast (the default, the API's:
//! while the database is known to be down a call waits 100 ms at most, for
//! a connection the pool has made again in the background, so callers get
//! 503 without queueing behind each other) or rides an outage out (the
//! conductor's: a call that failed for want of a connection, or lost its
//! connection, is run again with backoff for up to `[database]
//! outage_tolerance_secs`, so a restart or a failover of PostgreSQL fails
//! no accepted work). A call is retried only after a
//! transient error ([`DbError::is_transient`]): either nothing ran, or the
//! connection died under it and PostgreSQL rolled its transaction back; the
//! one ambiguous case, a connection lost while its COMMIT was in flight,
//! runs the call again, which every conductor write tolerates (each is a
//! guarded `UPDATE` to absolute values or an insert whose duplicate fails
//! loudly).

pub mod models;
mod pg_tls;
pub mod schema;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection};
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::telemetry;

const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");

/// Key of the PostgreSQL advisory lock that serialises migrations ("ferric" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x0000_6665_7272_6963;

/// A connection to either backend; queries written against it run on both.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

/// Which database a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// `postgres://` or `postgresql://` URL, passed to libpq as is.
    Postgres(String),
    /// `sqlite://<path>` or a plain file path.
    Sqlite(String),
}

impl Backend {
    /// Classifies a database URL.
    pub fn from_url(url: &str) -> Backend {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres(url.to_owned())
        } else {
            Backend::Sqlite(url.strip_prefix("sqlite://").unwrap_or(url).to_owned())
        }
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, Backend::Sqlite(_))
    }
}

/// Errors from the database layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had from the pool (database down or pool exhausted).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migration(String),
    /// The database file could not be opened or prepared.
    #[error("cannot open the database: {0}")]
    Open(String),
    /// The blocking task running the query panicked or was cancelled.
    #[error("database task failed: {0}")]
    Task(String),
}

impl DbError {
    /// Whether the error comes from the database being out of reach rather
    /// than from the query: no connection could be had, the connection
    /// died under the query (a server restart, a terminated backend, a
    /// network drop), or the server is a standby that refuses writes (mid
    /// failover). Running the call again later may succeed.
    pub fn is_transient(&self) -> bool {
        use diesel::result::DatabaseErrorKind as Kind;
        match self {
            DbError::Unavailable(_) => true,
            DbError::Query(diesel::result::Error::DatabaseError(kind, _)) => matches!(
                kind,
                Kind::ClosedConnection | Kind::UnableToSendCommand | Kind::ReadOnlyTransaction
            ),
            _ => false,
        }
    }

    /// Whether the error is a unique-constraint violation (a duplicate).
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            DbError::Query(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }

    /// The constraint or column text of a unique violation, to tell which one.
    pub fn violation_detail(&self) -> String {
        match self {
            DbError::Query(diesel::result::Error::DatabaseError(_, info)) => format!(
                "{} {} {}",
                info.message(),
                info.constraint_name().unwrap_or_default(),
                info.column_name().unwrap_or_default()
            ),
            _ => String::new(),
        }
    }
}

/// How long PostgreSQL lets one of Ferric's sessions sit idle inside a
/// transaction before it ends the session (releasing its locks).
const IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(10);

/// libpq's network timeouts, added to a PostgreSQL URL that does not set
/// them: a connection attempt gives up after 5 s, and a connection whose
/// peer went silent (a partition, a host gone) fails within about 15 s
/// instead of the kernel's 15 minutes, so the call can be retried.
const NETWORK_TIMEOUTS: [(&str, &str); 5] = [
    ("connect_timeout", "5"),
    ("keepalives_idle", "5"),
    ("keepalives_interval", "2"),
    ("keepalives_count", "3"),
    ("tcp_user_timeout", "15000"),
];

/// `url` with each of [`NETWORK_TIMEOUTS`] it does not set already.
fn with_network_timeouts(url: &str) -> String {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let given: Vec<&str> = query
        .split('&')
        .filter_map(|pair| pair.split('=').next())
        .collect();
    let mut out = url.to_owned();
    for (key, value) in NETWORK_TIMEOUTS {
        if given.contains(&key) {
            continue;
        }
        out.push(if out.contains('?') { '&' } else { '?' });
        out.push_str(key);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// Opens connections of the right kind; PostgreSQL ones get network
/// timeouts and an idle-in-transaction limit, SQLite ones WAL mode, a busy
/// timeout and foreign keys.
#[derive(Debug)]
struct Manager {
    backend: Backend,
    busy_timeout: Duration,
    /// PostgreSQL over TLS: the relay `backend`'s URL points at.
    tls: Option<pg_tls::Relay>,
}

impl Manager {
    /// libpq's error, with the TLS relay's reason when it has one (libpq
    /// then only saw its socket closed).
    fn why_not(&self, error: diesel::ConnectionError) -> diesel::ConnectionError {
        match self.tls.as_ref().and_then(pg_tls::Relay::last_error) {
            Some(relay) => diesel::ConnectionError::BadConnection(relay.message),
            None => error,
        }
    }
}

impl ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<AnyConnection, r2d2::Error> {
        match &self.backend {
            Backend::Postgres(url) => {
                let mut conn = PgConnection::establish(&with_network_timeouts(url))
                    .map_err(|e| r2d2::Error::ConnectionError(self.why_not(e)))?;
                // A client cut off mid-transaction (a partitioned
                // conductor) holds its row locks only this long: Ferric's
                // transactions never wait on anything outside the database.
                conn.batch_execute(&format!(
                    "SET idle_in_transaction_session_timeout = {}",
                    IDLE_IN_TRANSACTION_TIMEOUT.as_millis()
                ))
                .map_err(r2d2::Error::QueryError)?;
                Ok(AnyConnection::Postgresql(conn))
            }
            Backend::Sqlite(path) => {
                let mut conn =
                    SqliteConnection::establish(path).map_err(r2d2::Error::ConnectionError)?;
                // busy_timeout first: switching a fresh file to WAL takes an
                // exclusive lock that the pool's other new connections must
                // wait for, not fail on.
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                    self.busy_timeout.as_millis()
                ))
                .map_err(r2d2::Error::QueryError)?;
                Ok(AnyConnection::Sqlite(conn))
            }
        }
    }

    /// A PostgreSQL connection is checked with `SELECT 1` on checkout (the
    /// server may have restarted); a SQLite one is a file handle that does
    /// not go stale, so it is not (that query cost a parse per request).
    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), r2d2::Error> {
        match conn {
            AnyConnection::Sqlite(_) => Ok(()),
            AnyConnection::Postgresql(_) => conn
                .batch_execute("SELECT 1")
                .map_err(r2d2::Error::QueryError),
        }
    }

    fn has_broken(&self, _conn: &mut AnyConnection) -> bool {
        false
    }
}

/// A handle to the database pool. Cloning is shallow; clones share the pool
/// and what is known of the database's health, each keeps its own outage
/// policy.
#[derive(Clone)]
pub struct Db {
    pool: r2d2::Pool<Manager>,
    /// One permit per pooled connection: [`Db::run`] waits here, on no
    /// thread, until a connection can be had at once.
    permits: Arc<tokio::sync::Semaphore>,
    /// This handle's own cap on the pool's connections, taken before a
    /// pool permit (`None`: the whole pool): a process whose API and
    /// conductor share a pool caps the conductor, so its bursts never
    /// queue every connection ahead of the API's reads.
    share: Option<Arc<tokio::sync::Semaphore>>,
    sqlite: bool,
    /// How long one checkout waits for a connection.
    checkout_timeout: Duration,
    /// `Some`: calls ride an outage out this long; `None`: they fail fast.
    ride_out: Option<Duration>,
    health: Arc<Health>,
}

/// What every handle of one pool knows of the database's reachability.
#[derive(Debug, Default)]
struct Health {
    /// A call failed with a transient error and none has succeeded since.
    down: AtomicBool,
    /// When the last transient failure was seen (`None`: never).
    last_failure: Mutex<Option<Instant>>,
}

impl Health {
    fn failed(&self, error: &DbError) {
        if let Ok(mut last) = self.last_failure.lock() {
            *last = Some(Instant::now());
        }
        if !self.down.swap(true, Ordering::AcqRel) {
            tracing::warn!(error = %error, "the database is unreachable");
        }
    }

    fn succeeded(&self) {
        if self.down.load(Ordering::Acquire) && self.down.swap(false, Ordering::AcqRel) {
            tracing::warn!("the database is reachable again");
        }
    }
}

/// How long a pool's database has been reachable.
#[derive(Debug, Clone)]
pub struct OutageClock(Arc<Health>);

impl OutageClock {
    /// How long the database has been reachable without a transient
    /// failure (`Duration::MAX` when none was ever seen): what the
    /// conductors' heartbeats have had time to show again after an outage.
    pub fn reachable_for(&self) -> Duration {
        self.0
            .last_failure
            .lock()
            .ok()
            .and_then(|last| *last)
            .map_or(Duration::MAX, |at| at.elapsed())
    }
}

/// How long a fail-fast call waits for a connection while the database is
/// known to be down.
const DOWN_CHECKOUT_TIMEOUT: Duration = Duration::from_millis(100);

/// Backoff between a riding-out call's tries.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

impl Db {
    /// Opens a pool for `url` (creating the SQLite file's directory).
    ///
    /// # Errors
    /// When the first connection cannot be made.
    pub fn connect(url: &str, pool_size: u32, busy_timeout: Duration) -> Result<Db, DbError> {
        Db::connect_with_tls(url, pool_size, busy_timeout, None)
    }

    /// Opens a pool for `url`; PostgreSQL over TLS verified against
    /// `tls_ca_file` when it is given (or the URL asks for `verify-full`
    /// with an `sslrootcert`), see [`pg_tls`].
    ///
    /// # Errors
    /// When the first connection cannot be made; at once, naming the CA,
    /// when the server refuses TLS or its certificate is refused.
    pub fn connect_with_tls(
        url: &str,
        pool_size: u32,
        busy_timeout: Duration,
        tls_ca_file: Option<&Path>,
    ) -> Result<Db, DbError> {
        let mut backend = Backend::from_url(url);
        let mut tls = None;
        if let Backend::Postgres(url) = &mut backend {
            let plan = pg_tls::plan(url, tls_ca_file)?;
            *url = plan.url;
            tls = plan.relay;
        } else if tls_ca_file.is_some() {
            return Err(DbError::Open(
                "database.tls_ca_file applies to PostgreSQL only".into(),
            ));
        }
        if let Backend::Sqlite(path) = &backend
            && let Some(dir) = Path::new(path).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| DbError::Open(format!("cannot create {}: {e}", dir.display())))?;
        }
        let sqlite = backend.is_sqlite();
        let manager = Manager {
            backend,
            busy_timeout,
            tls,
        };
        if manager.tls.is_some()
            && manager.connect().is_err()
            && let Some(relay) = manager.tls.as_ref().and_then(pg_tls::Relay::last_error)
            && relay.permanent
        {
            // A wrong CA or a server without TLS: waiting will not help.
            return Err(DbError::Open(relay.message));
        }
        if sqlite {
            // One connection first: it switches a fresh file to WAL (a
            // persistent setting that needs the file to itself) before the
            // pool opens its connections side by side.
            manager
                .connect()
                .map_err(|e| DbError::Open(e.to_string()))?;
        }
        let checkout_timeout = Duration::from_secs(10);
        // r2d2 retries failed connections in the background with a backoff
        // capped at half its connection timeout: 1 s here, so a pool finds
        // the database again within half a second of its return (checkouts
        // wait `checkout_timeout`, not this).
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            .connection_timeout(Duration::from_secs(1))
            .build_unchecked(manager);
        drop(
            pool.get_timeout(checkout_timeout)
                .map_err(|e| DbError::Unavailable(e.to_string()))?,
        );
        let permits = Arc::new(tokio::sync::Semaphore::new(pool_size as usize));
        Ok(Db {
            pool,
            permits,
            share: None,
            sqlite,
            checkout_timeout,
            ride_out: None,
            health: Arc::default(),
        })
    }

    /// This handle using at most `connections` of the pool's connections at
    /// once (at least one); other handles of the pool are not limited by it.
    #[must_use]
    pub fn sharing_at_most(mut self, connections: usize) -> Db {
        self.share = Some(Arc::new(tokio::sync::Semaphore::new(connections.max(1))));
        self
    }

    /// This handle's checkouts wait at most `timeout` for a connection
    /// (10 s unless set).
    #[must_use]
    pub fn with_checkout_timeout(mut self, timeout: Duration) -> Db {
        self.checkout_timeout = timeout;
        self
    }

    /// This handle riding outages out: a call that meets a transient error
    /// is run again with backoff until it succeeds or `tolerance` (at least
    /// one checkout timeout) has passed since it was made — its waits for
    /// a connection included, so no call outlives an outage by more.
    #[must_use]
    pub fn riding_out(mut self, tolerance: Duration) -> Db {
        self.ride_out = Some(tolerance);
        self
    }

    /// What this pool knows of the database's reachability, to read inside
    /// a call (after a call rode an outage out, not before it).
    pub fn outage_clock(&self) -> OutageClock {
        OutageClock(self.health.clone())
    }

    /// Whether this is the embedded SQLite database.
    pub fn is_sqlite(&self) -> bool {
        self.sqlite
    }

    /// Runs `f` with a pooled connection on the blocking pool, in the
    /// caller's span; again after a transient error while this handle rides
    /// outages out (see the module's doc).
    ///
    /// # Errors
    /// Whatever `f` returns, or [`DbError::Unavailable`] without a connection.
    pub async fn run<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: Fn(&mut AnyConnection) -> Result<T, DbError> + Send + Sync + 'static,
    {
        let Some(tolerance) = self.ride_out else {
            return self.run_once(f).await;
        };
        let f = Arc::new(f);
        // The whole call, waits for a connection included, ends by then;
        // a first try has at least its usual checkout time.
        let started = Instant::now();
        let deadline = started + tolerance.max(self.checkout_timeout);
        let mut backoff = FIRST_BACKOFF;
        loop {
            let call = f.clone();
            match self
                .run_once_until(move |conn| call(conn), Some(deadline))
                .await
            {
                Err(e) if e.is_transient() && Instant::now() + backoff < deadline => {
                    tracing::debug!(error = %e, ?backoff, "database call failed; trying again");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                other => return other,
            }
        }
    }

    /// One try of [`Db::run`], noting what it says of the database's health.
    async fn run_once<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut AnyConnection) -> Result<T, DbError> + Send + 'static,
    {
        self.run_once_until(f, None).await
    }

    /// One try, its waits for a permit and a connection ending by
    /// `deadline` when given.
    async fn run_once_until<T, F>(&self, f: F, deadline: Option<Instant>) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut AnyConnection) -> Result<T, DbError> + Send + 'static,
    {
        // A blocking thread only once a connection is free: without the
        // permit, 256 concurrent requests parked 256 threads in `pool.get()`.
        let wait = |semaphore: Arc<tokio::sync::Semaphore>| async move {
            let acquire = semaphore.acquire_owned();
            match deadline {
                None => acquire.await,
                Some(deadline) => tokio::time::timeout_at(deadline.into(), acquire)
                    .await
                    .map_err(|_| {
                        DbError::Unavailable("timed out waiting for a database connection".into())
                    })?,
            }
            .map_err(|e| DbError::Task(e.to_string()))
        };
        let share = match &self.share {
            Some(share) => Some(wait(share.clone()).await?),
            None => None,
        };
        let permit = wait(self.permits.clone()).await?;
        // Known down (read once the permit is ours: the calls before us may
        // just have found out): a fail-fast call takes a connection only if
        // the pool has one at hand (r2d2 keeps reconnecting in the background).
        let timeout = if self.ride_out.is_none() && self.health.down.load(Ordering::Acquire) {
            DOWN_CHECKOUT_TIMEOUT
        } else {
            self.checkout_timeout
        };
        let timeout = deadline.map_or(timeout, |deadline| {
            timeout
                .min(deadline.saturating_duration_since(Instant::now()))
                .max(DOWN_CHECKOUT_TIMEOUT)
        });
        let (pool, health) = (self.pool.clone(), self.health.clone());
        telemetry::spawn_blocking(move || {
            let result = pool
                .get_timeout(timeout)
                .map_err(|e| DbError::Unavailable(e.to_string()))
                .and_then(|mut conn| f(&mut conn));
            // Before the permit goes to the next call.
            match &result {
                Err(e) if e.is_transient() => health.failed(e),
                _ => health.succeeded(),
            }
            drop(permit);
            drop(share);
            result
        })
        .await
        .map_err(|e| DbError::Task(e.to_string()))?
    }

    /// Asks the database a trivial question (a readiness probe).
    ///
    /// # Errors
    /// As [`Db::run`].
    pub async fn ping(&self) -> Result<(), DbError> {
        self.run(|conn| Ok(conn.batch_execute("SELECT 1")?)).await
    }

    /// Applies every pending migration; returns the versions applied.
    ///
    /// # Errors
    /// When a migration fails.
    ///
    /// On PostgreSQL the migrations run under an advisory lock, so processes
    /// starting together (an API and its conductors) migrate one at a time.
    pub async fn migrate(&self) -> Result<Vec<String>, DbError> {
        self.run(|conn| {
            let versions = |applied: Vec<diesel::migration::MigrationVersion<'_>>| {
                applied.iter().map(ToString::to_string).collect::<Vec<_>>()
            };
            match conn {
                AnyConnection::Postgresql(c) => {
                    c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))?;
                    let result = c
                        .run_pending_migrations(POSTGRES_MIGRATIONS)
                        .map(versions)
                        .map_err(|e| DbError::Migration(e.to_string()));
                    c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))?;
                    result
                }
                AnyConnection::Sqlite(c) => c
                    .run_pending_migrations(SQLITE_MIGRATIONS)
                    .map(versions)
                    .map_err(|e| DbError::Migration(e.to_string())),
            }
        })
        .await
    }

    /// Reverts every applied migration (tests and `ferric db downgrade`).
    ///
    /// # Errors
    /// When a down migration fails.
    pub async fn revert_all(&self) -> Result<Vec<String>, DbError> {
        self.run(|conn| {
            let reverted = match conn {
                AnyConnection::Postgresql(c) => c.revert_all_migrations(POSTGRES_MIGRATIONS),
                AnyConnection::Sqlite(c) => c.revert_all_migrations(SQLITE_MIGRATIONS),
            }
            .map_err(|e| DbError::Migration(e.to_string()))?;
            Ok(reverted.iter().map(ToString::to_string).collect())
        })
        .await
    }

    /// The newest applied migration version, `None` on an empty database.
    ///
    /// # Errors
    /// When the migrations table cannot be read.
    pub async fn version(&self) -> Result<Option<String>, DbError> {
        self.run(|conn| {
            let applied = match conn {
                AnyConnection::Postgresql(c) => c.applied_migrations(),
                AnyConnection::Sqlite(c) => c.applied_migrations(),
            }
            .map_err(|e| DbError::Migration(e.to_string()))?;
            Ok(applied.iter().map(ToString::to_string).max())
        })
        .await
    }
}

/// The current time as stored in the database: UTC, microsecond precision
/// (what PostgreSQL keeps and Ironic prints).
pub fn now() -> chrono::NaiveDateTime {
    use chrono::{SubsecRound, Utc};
    Utc::now().naive_utc().trunc_subsecs(6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::result::{DatabaseErrorKind as Kind, Error};

    fn database(kind: Kind) -> DbError {
        DbError::Query(Error::DatabaseError(kind, Box::new(String::from("x"))))
    }

    #[test]
    fn network_timeouts_are_added_unless_the_url_sets_them() {
        assert_eq!(
            with_network_timeouts("postgres://u@db/ferric"),
            "postgres://u@db/ferric?connect_timeout=5&keepalives_idle=5&keepalives_interval=2\
             &keepalives_count=3&tcp_user_timeout=15000"
        );
        assert_eq!(
            with_network_timeouts(
                "postgres://u@a,b/f?target_session_attrs=read-write&connect_timeout=1\
                 &keepalives_idle=1&keepalives_interval=1&keepalives_count=1"
            ),
            "postgres://u@a,b/f?target_session_attrs=read-write&connect_timeout=1\
             &keepalives_idle=1&keepalives_interval=1&keepalives_count=1&tcp_user_timeout=15000"
        );
    }

    #[test]
    fn only_errors_of_reach_are_transient() {
        assert!(DbError::Unavailable("refused".into()).is_transient());
        for kind in [
            Kind::ClosedConnection,
            Kind::UnableToSendCommand,
            Kind::ReadOnlyTransaction,
        ] {
            assert!(database(kind).is_transient());
        }
        for kind in [
            Kind::UniqueViolation,
            Kind::ForeignKeyViolation,
            Kind::SerializationFailure,
            Kind::Unknown,
        ] {
            assert!(!database(kind).is_transient());
        }
        assert!(!DbError::Query(Error::NotFound).is_transient());
        assert!(!DbError::Migration("bad".into()).is_transient());
        assert!(!DbError::Task("panicked".into()).is_transient());
    }
    #[tokio::test]
    async fn a_capped_handle_leaves_the_rest_of_the_pool_to_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("cap.sqlite").display());
        let db = Db::connect(&url, 3, Duration::from_secs(5)).unwrap();
        let capped = db.clone().sharing_at_most(1);
        // Two calls of the capped handle that each hold their connection
        // until told to let go.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let held = Arc::new(Mutex::new(held));
        let mut calls = Vec::new();
        for _ in 0..2 {
            let (capped, held) = (capped.clone(), held.clone());
            calls.push(tokio::spawn(async move {
                capped
                    .run(move |_| {
                        let _ = held.lock().map(|rx| rx.recv());
                        Ok(())
                    })
                    .await
            }));
        }
        // Both have run as far as they can: one holds a pool permit, the
        // other waits for the handle's own.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(db.permits.available_permits(), 2, "the cap was passed");
        // The uncapped handle still gets connections at once.
        for _ in 0..2 {
            tokio::time::timeout(Duration::from_secs(5), db.run(|_| Ok(())))
                .await
                .expect("the rest of the pool is free")
                .unwrap();
        }
        release.send(()).unwrap();
        release.send(()).unwrap();
        for call in calls {
            call.await.unwrap().unwrap();
        }
    }
}
