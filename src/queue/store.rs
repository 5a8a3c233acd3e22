//! All SQL of the job queue. Every function takes the pool (or a transaction) and returns
//! domain types. Times are passed in from the caller's clock, never read from the
//! database, so both backends and tests agree on "now".
//!
//! Claiming is one statement per batch on both backends; PostgreSQL adds
//! `FOR UPDATE SKIP LOCKED` so concurrent claimers never wait on each other. A unique
//! partial index allows one running job per concurrency key; a claim that would break it
//! fails and is retried one job at a time.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use sqlx::Row;

use super::NewJob;
use crate::clock::Millis;
use crate::db::{is_unique_violation, with_pool, Backend, Db};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for `run_at`.
    Queued,
    /// Claimed by a worker holding a lease.
    Running,
    /// Done.
    Succeeded,
    /// Failed, will retry at `run_at`.
    Failed,
    /// Failed `max_attempts` times or permanently; kept for `jobs retry`.
    Dead,
}

impl JobState {
    /// Every state, for metrics.
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Dead,
    ];

    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Dead => "dead",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!("unknown job state `{s}` (queued, running, succeeded, failed, dead)")
            })
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobRow {
    /// Id.
    pub id: i64,
    /// Kind.
    pub kind: String,
    /// JSON payload.
    pub payload: String,
    /// Dedupe key.
    pub dedupe_key: Option<String>,
    /// Concurrency key.
    pub concurrency_key: Option<String>,
    /// Priority (higher first).
    pub priority: i64,
    /// State.
    pub state: JobState,
    /// Earliest next run (ms since epoch).
    pub run_at: Millis,
    /// Attempts started so far.
    pub attempts: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// Worker holding the lease.
    pub locked_by: Option<String>,
    /// Lease expiry (ms since epoch).
    pub locked_until: Option<Millis>,
    /// Last failure.
    pub last_error: Option<String>,
    /// Created (ms since epoch).
    pub created_at: Millis,
    /// Last change (ms since epoch).
    pub updated_at: Millis,
    /// Last start (ms since epoch).
    pub started_at: Option<Millis>,
    /// End (ms since epoch).
    pub finished_at: Option<Millis>,
}

const JOB_COLUMNS: &str = "id, kind, payload, dedupe_key, concurrency_key, priority, state, \
    run_at, attempts, max_attempts, locked_by, locked_until, last_error, created_at, \
    updated_at, started_at, finished_at";

pub(crate) fn job_from_row<R>(row: &R) -> Result<JobRow, sqlx::Error>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let state: String = row.try_get("state")?;
    Ok(JobRow {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        payload: row.try_get("payload")?,
        dedupe_key: row.try_get("dedupe_key")?,
        concurrency_key: row.try_get("concurrency_key")?,
        priority: row.try_get("priority")?,
        state: state
            .parse()
            .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
        run_at: row.try_get("run_at")?,
        attempts: row.try_get("attempts")?,
        max_attempts: row.try_get("max_attempts")?,
        locked_by: row.try_get("locked_by")?,
        locked_until: row.try_get("locked_until")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

/// Longest `last_error` kept, in bytes (errors may carry response bodies).
pub const MAX_ERROR_BYTES: usize = 8 * 1024;

fn clip_error(error: &str) -> String {
    if error.len() <= MAX_ERROR_BYTES {
        return error.to_owned();
    }
    let mut end = MAX_ERROR_BYTES;
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [truncated]", &error[..end])
}

const INSERT_JOB: &str = "INSERT INTO jobs (kind, payload, dedupe_key, concurrency_key, priority, \
    state, run_at, attempts, max_attempts, created_at, updated_at) \
    VALUES ($1, $2, $3, $4, $5, 'queued', $6, 0, $7, $8, $8) \
    ON CONFLICT DO NOTHING RETURNING id";

/// Inserts a job; `None` when a live job with the same dedupe key exists.
pub async fn enqueue(db: &Db, job: &NewJob, now: Millis) -> Result<Option<i64>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_scalar::<_, i64>(INSERT_JOB)
            .bind(&job.kind)
            .bind(&job.payload)
            .bind(&job.dedupe_key)
            .bind(&job.concurrency_key)
            .bind(job.priority)
            .bind(job.run_at.unwrap_or(now))
            .bind(job.max_attempts)
            .bind(now)
            .fetch_optional(pool)
            .await
    })
}

/// A job a worker now holds a lease on.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    /// Id.
    pub id: i64,
    /// Kind.
    pub kind: String,
    /// JSON payload.
    pub payload: String,
    /// This attempt's number (1 = first).
    pub attempt: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// When it was due (for queue latency).
    pub run_at: Millis,
}

/// Claims up to `limit` due jobs of the given kinds for `worker`, leasing them until
/// `now + lease_ms`. Never returns two jobs with the same concurrency key, nor one whose
/// key is already running.
pub async fn claim(
    db: &Db,
    worker: &str,
    kinds: &[String],
    limit: i64,
    now: Millis,
    lease_ms: Millis,
) -> Result<Vec<ClaimedJob>, sqlx::Error> {
    if kinds.is_empty() || limit <= 0 {
        return Ok(Vec::new());
    }
    match claim_once(db, worker, kinds, limit, now, lease_ms).await {
        // Two due jobs of one concurrency key in a batch, or a race with another claimer:
        // the unique index refused the whole statement; fall back to one at a time.
        Err(e) if is_unique_violation(&e) => {
            let mut claimed = Vec::new();
            for _ in 0..limit {
                match claim_once(db, worker, kinds, 1, now, lease_ms).await {
                    Ok(mut one) if !one.is_empty() => claimed.append(&mut one),
                    Ok(_) => break,
                    Err(e) if is_unique_violation(&e) => continue,
                    Err(e) => return Err(e),
                }
            }
            Ok(claimed)
        }
        other => other,
    }
}

/// The claim statement; only the kind filter and the locking differ per backend.
fn claim_sql(backend: Backend) -> String {
    // `failed` jobs are due again at their backoff `run_at`; `queued` at theirs.
    // A job whose concurrency key is running waits (the index would refuse it anyway).
    // PostgreSQL: `= ANY(ARRAY(subquery))` runs the locking subquery once as an InitPlan;
    // it plans in a fifth of the time of `IN (subquery)`, and planning dominated a claim.
    // SQLite has one writer at a time, so its single statement is atomic without locks.
    let (open, kind_filter, close) = match backend {
        Backend::Postgres => (
            "= ANY(ARRAY(",
            "j.kind = ANY($4)",
            "FOR UPDATE SKIP LOCKED))",
        ),
        Backend::Sqlite => ("IN (", "j.kind IN (SELECT value FROM json_each($4))", ")"),
    };
    format!(
        "UPDATE jobs SET state = 'running', locked_by = $1, locked_until = $2, \
         attempts = attempts + 1, started_at = $3, updated_at = $3 \
         WHERE id {open} \
           SELECT j.id FROM jobs j \
           WHERE j.state IN ('queued', 'failed') AND j.run_at <= $3 AND {kind_filter} \
             AND (j.concurrency_key IS NULL OR NOT EXISTS ( \
               SELECT 1 FROM jobs r WHERE r.state = 'running' \
               AND r.concurrency_key = j.concurrency_key)) \
           ORDER BY j.priority DESC, j.run_at, j.id \
           LIMIT $5 {close} \
         RETURNING id, kind, payload, attempts, max_attempts, run_at"
    )
}

async fn claim_once(
    db: &Db,
    worker: &str,
    kinds: &[String],
    limit: i64,
    now: Millis,
    lease_ms: Millis,
) -> Result<Vec<ClaimedJob>, sqlx::Error> {
    let sql = claim_sql(db.backend());
    let rows: Vec<(i64, String, String, i64, i64, i64)> = match db {
        Db::Postgres(pool) => {
            sqlx::query_as(&sql)
                .bind(worker)
                .bind(now + lease_ms)
                .bind(now)
                .bind(kinds)
                .bind(limit)
                .fetch_all(pool)
                .await?
        }
        Db::Sqlite(pool) => {
            let kinds_json = serde_json::to_string(kinds).expect("strings serialize");
            sqlx::query_as(&sql)
                .bind(worker)
                .bind(now + lease_ms)
                .bind(now)
                .bind(kinds_json)
                .bind(limit)
                .fetch_all(pool)
                .await?
        }
    };
    Ok(rows
        .into_iter()
        .map(
            |(id, kind, payload, attempt, max_attempts, run_at)| ClaimedJob {
                id,
                kind,
                payload,
                attempt,
                max_attempts,
                run_at,
            },
        )
        .collect())
}

/// Extends the lease of every job `worker` still holds; returns how many.
pub async fn heartbeat(
    db: &Db,
    worker: &str,
    now: Millis,
    lease_ms: Millis,
) -> Result<u64, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query(
            "UPDATE jobs SET locked_until = $1 WHERE locked_by = $2 AND state = 'running'",
        )
        .bind(now + lease_ms)
        .bind(worker)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
    })
}

/// Marks jobs succeeded, only where `worker` still holds them (`locked_by` is set only
/// while a job is running, so it alone identifies a held job; naming `state` too made
/// PostgreSQL scan the running-jobs index instead of the primary key). Returns the ids
/// that were still held (a job whose lease was lost and reclaimed is not touched).
pub async fn complete(
    db: &Db,
    worker: &str,
    ids: &[i64],
    now: Millis,
) -> Result<Vec<i64>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    match db {
        Db::Postgres(pool) => {
            sqlx::query_scalar(
                "UPDATE jobs SET state = 'succeeded', locked_by = NULL, locked_until = NULL, \
                 last_error = NULL, finished_at = $1, updated_at = $1 \
                 WHERE id = ANY($2) AND locked_by = $3 RETURNING id",
            )
            .bind(now)
            .bind(ids)
            .bind(worker)
            .fetch_all(pool)
            .await
        }
        Db::Sqlite(pool) => {
            let ids_json = serde_json::to_string(ids).expect("integers serialize");
            sqlx::query_scalar(
                "UPDATE jobs SET state = 'succeeded', locked_by = NULL, locked_until = NULL, \
                 last_error = NULL, finished_at = $1, updated_at = $1 \
                 WHERE id IN (SELECT value FROM json_each($2)) AND locked_by = $3 \
                 RETURNING id",
            )
            .bind(now)
            .bind(ids_json)
            .bind(worker)
            .fetch_all(pool)
            .await
        }
    }
}

/// What happened to a failed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Will run again at the given time.
    WillRetry(Millis),
    /// Dead-lettered.
    Dead,
    /// The worker no longer held the job (lease lost); nothing changed.
    NotHeld,
}

/// Records a failed attempt: retry at `retry_at`, or dead when attempts are used up or
/// `permanent`.
pub async fn fail(
    db: &Db,
    worker: &str,
    id: i64,
    error: &str,
    retry_at: Millis,
    permanent: bool,
    now: Millis,
) -> Result<FailOutcome, sqlx::Error> {
    let error = clip_error(error);
    let state: Option<String> = with_pool!(db, pool => {
        sqlx::query_scalar(
            "UPDATE jobs SET \
               state = CASE WHEN $1 OR attempts >= max_attempts THEN 'dead' ELSE 'failed' END, \
               run_at = $2, last_error = $3, locked_by = NULL, locked_until = NULL, \
               updated_at = $4, \
               finished_at = CASE WHEN $1 OR attempts >= max_attempts THEN $4 ELSE NULL END \
             WHERE id = $5 AND locked_by = $6 AND state = 'running' RETURNING state",
        )
        .bind(permanent)
        .bind(retry_at)
        .bind(&error)
        .bind(now)
        .bind(id)
        .bind(worker)
        .fetch_optional(pool)
        .await
    })?;
    Ok(match state.as_deref() {
        None => FailOutcome::NotHeld,
        Some("dead") => FailOutcome::Dead,
        Some(_) => FailOutcome::WillRetry(retry_at),
    })
}

/// Puts a held job back to `queued` at `until` without counting the attempt (rate limits,
/// graceful shutdown). Returns whether the worker still held it.
pub async fn defer(
    db: &Db,
    worker: &str,
    id: i64,
    until: Millis,
    reason: Option<&str>,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let reason = reason.map(clip_error);
    with_pool!(db, pool => {
        sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = attempts - 1, run_at = $1, \
               last_error = COALESCE($2, last_error), locked_by = NULL, locked_until = NULL, \
               updated_at = $3 \
             WHERE id = $4 AND locked_by = $5 AND state = 'running'",
        )
        .bind(until)
        .bind(&reason)
        .bind(now)
        .bind(id)
        .bind(worker)
        .execute(pool)
        .await
        .map(|r| r.rows_affected() == 1)
    })
}

/// Error recorded on a job whose worker vanished.
pub const LEASE_EXPIRED_ERROR: &str =
    "lease expired: the worker stopped heartbeating (killed or lost)";

/// Returns running jobs whose lease expired to the queue (or to dead when their attempts
/// are used up). Any process may call it; it is idempotent.
pub async fn reap_expired(db: &Db, now: Millis) -> Result<u64, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query(
            "UPDATE jobs SET \
               state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'failed' END, \
               run_at = $1, last_error = $2, locked_by = NULL, locked_until = NULL, \
               updated_at = $1, \
               finished_at = CASE WHEN attempts >= max_attempts THEN $1 ELSE NULL END \
             WHERE state = 'running' AND locked_until < $1",
        )
        .bind(now)
        .bind(LEASE_EXPIRED_ERROR)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
    })
}

/// Filter for [`list`].
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this state.
    pub state: Option<JobState>,
    /// Only this kind.
    pub kind: Option<String>,
    /// At most this many (newest first).
    pub limit: i64,
}

/// Jobs, newest first.
pub async fn list(db: &Db, filter: &ListFilter) -> Result<Vec<JobRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs \
         WHERE ($1 IS NULL OR state = $1) AND ($2 IS NULL OR kind = $2) \
         ORDER BY id DESC LIMIT $3"
    );
    let state = filter.state.map(|s| s.as_str().to_owned());
    with_pool!(db, pool => {
        sqlx::query(&sql)
            .bind(&state)
            .bind(&filter.kind)
            .bind(filter.limit)
            .fetch_all(pool)
            .await?
            .iter()
            .map(job_from_row)
            .collect()
    })
}

/// One job by id.
pub async fn get(db: &Db, id: i64) -> Result<Option<JobRow>, sqlx::Error> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
    with_pool!(db, pool => {
        match sqlx::query(&sql).bind(id).fetch_optional(pool).await? {
            Some(row) => job_from_row(&row).map(Some),
            None => Ok(None),
        }
    })
}

/// Why a job could not be revived.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    /// No such job.
    #[error("job {0} does not exist")]
    NotFound(i64),
    /// Only dead or failed jobs can be retried.
    #[error("job {id} is {state}; only dead or failed jobs can be retried")]
    WrongState {
        /// The job.
        id: i64,
        /// Its state.
        state: JobState,
    },
    /// Another live job has the same dedupe key, so this one would duplicate its work.
    #[error("job {0} duplicates a live job with the same dedupe key; nothing to retry")]
    Duplicate(i64),
    /// Database error.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Revives a dead (or failed) job: queued now, attempts reset.
pub async fn retry(db: &Db, id: i64, now: Millis) -> Result<(), RetryError> {
    let result = with_pool!(db, pool => {
        sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = 0, run_at = $1, updated_at = $1, \
               finished_at = NULL WHERE id = $2 AND state IN ('dead', 'failed')",
        )
        .bind(now)
        .bind(id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
    });
    match result {
        Ok(1) => Ok(()),
        Ok(_) => match get(db, id).await? {
            None => Err(RetryError::NotFound(id)),
            Some(job) => Err(RetryError::WrongState {
                id,
                state: job.state,
            }),
        },
        Err(e) if is_unique_violation(&e) => Err(RetryError::Duplicate(id)),
        Err(e) => Err(e.into()),
    }
}

/// Revives every dead job; returns the ids revived and those skipped as duplicates.
pub async fn retry_all_dead(db: &Db, now: Millis) -> Result<(Vec<i64>, Vec<i64>), sqlx::Error> {
    let ids: Vec<i64> = with_pool!(db, pool => {
        sqlx::query_scalar("SELECT id FROM jobs WHERE state = 'dead' ORDER BY id")
            .fetch_all(pool)
            .await
    })?;
    let (mut revived, mut skipped) = (Vec::new(), Vec::new());
    for id in ids {
        match retry(db, id, now).await {
            Ok(()) => revived.push(id),
            Err(RetryError::Db(e)) => return Err(e),
            Err(_) => skipped.push(id),
        }
    }
    Ok((revived, skipped))
}

/// Deletes dead jobs that finished before `before`; returns how many.
pub async fn purge_dead(db: &Db, before: Millis) -> Result<u64, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query("DELETE FROM jobs WHERE state = 'dead' AND finished_at < $1")
            .bind(before)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })
}

/// Deletes succeeded jobs that finished before `before` (retention); returns how many.
pub async fn purge_succeeded(db: &Db, before: Millis) -> Result<u64, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query("DELETE FROM jobs WHERE state = 'succeeded' AND finished_at < $1")
            .bind(before)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })
}

/// Job counts by (kind, state), for metrics.
pub async fn counts(db: &Db) -> Result<Vec<(String, JobState, i64)>, sqlx::Error> {
    let rows: Vec<(String, String, i64)> = with_pool!(db, pool => {
        sqlx::query_as("SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state")
            .fetch_all(pool)
            .await
    })?;
    Ok(rows
        .into_iter()
        .filter_map(|(k, s, n)| s.parse().ok().map(|s| (k, s, n)))
        .collect())
}

/// Jobs due now and waiting for a worker.
pub async fn ready_depth(db: &Db, now: Millis) -> Result<i64, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'failed') AND run_at <= $1",
        )
        .bind(now)
        .fetch_one(pool)
        .await
    })
}

/// Drops the waiting work of a removed installation (analyses, commands, reconciles):
/// jobs whose payload names the forge and installation and are not running. Returns how
/// many were dropped. Running ones finish and find the installation inactive.
pub async fn drop_installation_jobs(
    db: &Db,
    forge: &str,
    installation: &str,
) -> Result<u64, sqlx::Error> {
    match db {
        Db::Sqlite(pool) => sqlx::query(
            "DELETE FROM jobs WHERE state IN ('queued', 'failed') AND kind <> 'handle_event' \
             AND json_extract(payload, '$.forge') = $1 \
             AND json_extract(payload, '$.installation') = $2",
        )
        .bind(forge)
        .bind(installation)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()),
        Db::Postgres(pool) => sqlx::query(
            "DELETE FROM jobs WHERE state IN ('queued', 'failed') AND kind <> 'handle_event' \
             AND payload::jsonb ->> 'forge' = $1 AND payload::jsonb ->> 'installation' = $2",
        )
        .bind(forge)
        .bind(installation)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()),
    }
}
