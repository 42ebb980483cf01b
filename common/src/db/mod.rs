//! The database: one diesel connection type over PostgreSQL (distributed mode)
//! and SQLite (embedded mode), an r2d2 pool, embedded migrations and the
//! row models with their queries.
//!
//! Invariants: every query goes through [`Db::run`], which runs it on the
//! blocking pool inside the caller's span; queries use only SQL both
//! backends understand, so a model compiles once for both.

pub mod models;
pub mod schema;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

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
    Unavailable(#[source] r2d2::PoolError),
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

/// Opens connections of the right kind; SQLite connections get WAL mode, a
/// busy timeout and foreign keys.
#[derive(Debug)]
struct Manager {
    backend: Backend,
    busy_timeout: Duration,
}

impl ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<AnyConnection, r2d2::Error> {
        match &self.backend {
            Backend::Postgres(url) => PgConnection::establish(url)
                .map(AnyConnection::Postgresql)
                .map_err(r2d2::Error::ConnectionError),
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

/// A handle to the database pool. Cloning is shallow.
#[derive(Clone)]
pub struct Db {
    pool: r2d2::Pool<Manager>,
    /// One permit per pooled connection: [`Db::run`] waits here, on no
    /// thread, until a connection can be had at once.
    permits: Arc<tokio::sync::Semaphore>,
    sqlite: bool,
}

impl Db {
    /// Opens a pool for `url` (creating the SQLite file's directory).
    ///
    /// # Errors
    /// When the first connection cannot be made.
    pub fn connect(url: &str, pool_size: u32, busy_timeout: Duration) -> Result<Db, DbError> {
        let backend = Backend::from_url(url);
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
        };
        if sqlite {
            // One connection first: it switches a fresh file to WAL (a
            // persistent setting that needs the file to itself) before the
            // pool opens its connections side by side.
            manager
                .connect()
                .map_err(|e| DbError::Open(e.to_string()))?;
        }
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            .connection_timeout(Duration::from_secs(10))
            .build(manager)
            .map_err(DbError::Unavailable)?;
        let permits = Arc::new(tokio::sync::Semaphore::new(pool_size as usize));
        Ok(Db {
            pool,
            permits,
            sqlite,
        })
    }

    /// Whether this is the embedded SQLite database.
    pub fn is_sqlite(&self) -> bool {
        self.sqlite
    }

    /// Runs `f` with a pooled connection on the blocking pool, in the
    /// caller's span.
    ///
    /// # Errors
    /// Whatever `f` returns, or [`DbError::Unavailable`] without a connection.
    pub async fn run<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut AnyConnection) -> Result<T, DbError> + Send + 'static,
    {
        // A blocking thread only once a connection is free: without the
        // permit, 256 concurrent requests parked 256 threads in `pool.get()`.
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| DbError::Task(e.to_string()))?;
        let pool = self.pool.clone();
        telemetry::spawn_blocking(move || {
            let _permit = permit;
            let mut conn = pool.get().map_err(DbError::Unavailable)?;
            f(&mut conn)
        })
        .await
        .map_err(|e| DbError::Task(e.to_string()))?
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
