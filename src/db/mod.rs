//! The database: one pool for SQLite or PostgreSQL, migrations, and one file per table
//! group with the SQL for it. SQL lives only here and in `queue/store.rs`.
//!
//! Both backends accept `$1`-style parameters, so most statements are written once and
//! run through [`with_pool!`], which expands the same code for each pool type.

pub mod audit;
pub mod console;
pub mod credentials;
pub mod deliveries;
pub mod first_runs;
pub mod github_apps;
pub mod installations;
pub mod learn;
pub mod pull_requests;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

/// How long a SQLite connection waits for the write lock before failing, in milliseconds.
pub const SQLITE_BUSY_TIMEOUT_MS: u64 = 10_000;
/// Connections in the SQLite pool. SQLite has one writer at a time; a few readers help.
pub const SQLITE_POOL_SIZE: u32 = 8;
/// Connections in the PostgreSQL pool of one process.
pub const PG_POOL_SIZE: u32 = 16;
/// Connections of a worker pool's bookkeeping pool (see [`Db::relaxed_for_queue`]).
pub const QUEUE_POOL_SIZE: u32 = 4;
/// How long to wait for a free pooled connection, in seconds.
pub const POOL_ACQUIRE_TIMEOUT_SECS: u64 = 30;

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// A connection pool on one of the two supported backends.
#[derive(Clone, Debug)]
pub enum Db {
    /// Embedded SQLite (WAL, busy timeout, foreign keys on).
    Sqlite(SqlitePool),
    /// PostgreSQL.
    Postgres(PgPool),
}

/// Runs the same block against whichever pool `db` holds; `$pool` is bound to it.
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// The backend a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Db {
    /// Opens a pool for `url` (`sqlite://file` is created if missing). Does not migrate.
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .context("invalid SQLite database URL")?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // NORMAL is durable in WAL mode except on power loss of the last commits;
                // FULL makes every commit an fsync. We keep FULL: an accepted delivery must
                // survive a crash, and group commit amortises the fsync.
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_millis(SQLITE_BUSY_TIMEOUT_MS))
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(SQLITE_POOL_SIZE)
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(POOL_ACQUIRE_TIMEOUT_SECS))
                .connect_with(opts)
                .await
                .context("cannot open the SQLite database")?;
            Ok(Db::Sqlite(pool))
        } else {
            let opts = PgConnectOptions::from_str(url).context("invalid PostgreSQL URL")?;
            let pool = PgPoolOptions::new()
                .max_connections(PG_POOL_SIZE)
                // sqlx pings every connection it hands out by default: one extra round
                // trip per query. A broken connection surfaces as a query error anyway.
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(POOL_ACQUIRE_TIMEOUT_SECS))
                .connect_with(opts)
                .await
                .context("cannot connect to PostgreSQL")?;
            Ok(Db::Postgres(pool))
        }
    }

    /// Connects and applies pending migrations.
    pub async fn connect_and_migrate(url: &str) -> anyhow::Result<Db> {
        let db = Db::connect(url).await?;
        db.migrate().await?;
        Ok(db)
    }

    /// Applies pending migrations (safe to run from several processes at once).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Db::Sqlite(p) => SQLITE_MIGRATOR.run(p).await,
            Db::Postgres(p) => PG_MIGRATOR.run(p).await,
        }
        .context("cannot apply database migrations")
    }

    /// A second pool on the same database for the queue's own bookkeeping (claim,
    /// heartbeat, complete, fail, reap), whose commits do not wait for the disk:
    /// PostgreSQL `synchronous_commit = off`, SQLite `synchronous = NORMAL`.
    ///
    /// Why this is safe: losing the last few such commits in a crash can only put a job
    /// back to an earlier state (queued, or running with a lease that then expires), so
    /// it runs again, which at-least-once delivery allows. Enqueues, deliveries and
    /// everything handlers write keep full durability on the main pool.
    pub fn relaxed_for_queue(&self) -> Db {
        match self {
            Db::Sqlite(pool) => {
                let opts = (*pool.connect_options())
                    .clone()
                    .synchronous(SqliteSynchronous::Normal);
                Db::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(QUEUE_POOL_SIZE)
                        .test_before_acquire(false)
                        .acquire_timeout(Duration::from_secs(POOL_ACQUIRE_TIMEOUT_SECS))
                        .connect_lazy_with(opts),
                )
            }
            Db::Postgres(pool) => {
                // The queue runs the same few statements thousands of times a second;
                // re-planning the claim on every call (PostgreSQL's default for statements
                // whose parameters look selective) cost more than executing it. The
                // generic plan walks `jobs_ready` in order with a LIMIT, which is the right
                // plan whatever the parameters.
                let opts = (*pool.connect_options()).clone().options([
                    ("synchronous_commit", "off"),
                    ("plan_cache_mode", "force_generic_plan"),
                ]);
                Db::Postgres(
                    PgPoolOptions::new()
                        .max_connections(QUEUE_POOL_SIZE)
                        .test_before_acquire(false)
                        .acquire_timeout(Duration::from_secs(POOL_ACQUIRE_TIMEOUT_SECS))
                        .connect_lazy_with(opts),
                )
            }
        }
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Ready = reachable and every migration this binary knows is applied.
    pub async fn check_ready(&self) -> anyhow::Result<()> {
        let expected = match self {
            Db::Sqlite(_) => SQLITE_MIGRATOR.iter().count(),
            Db::Postgres(_) => PG_MIGRATOR.iter().count(),
        } as i64;
        let applied: i64 = with_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM _sqlx_migrations WHERE success",
            )
            .fetch_one(pool)
            .await
        })
        .context("database unreachable or not migrated")?;
        anyhow::ensure!(
            applied >= expected,
            "{applied} of {expected} migrations applied"
        );
        Ok(())
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await)
    }
}

/// True if the error is a unique-constraint violation (both backends).
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(e) => e.is_unique_violation(),
        _ => false,
    }
}
