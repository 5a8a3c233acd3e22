//! The `deliveries` table: every accepted webhook delivery, keyed by forge and delivery
//! id, written in the same transaction as the job it queues. A redelivery finds its row
//! and queues nothing. Rows older than the retention window are swept.

use crate::clock::Millis;
use crate::db::Db;
use crate::forge::Forge;
use crate::queue::NewJob;

/// How long delivery ids are remembered for de-duplication, in milliseconds (7 days;
/// GitHub lets users redeliver deliveries of the past 3 days).
pub const DELIVERY_RETENTION_MS: Millis = 7 * 24 * 60 * 60 * 1000;

/// An accepted delivery and the job it queues.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// Forge that sent it.
    pub forge: Forge,
    /// The forge's delivery id.
    pub delivery_id: String,
    /// Event name (for operators).
    pub event: String,
    /// The job to queue; its `dedupe_key` must be set (it maps results back).
    pub job: NewJob,
}

/// What became of one delivery of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// First time seen: stored, and its job queued (`None` if an identical live job
    /// already existed).
    Accepted {
        /// The queued job.
        job_id: Option<i64>,
    },
    /// Seen before: nothing written.
    Duplicate,
}

/// Stores a batch of deliveries and their jobs in ONE transaction (group commit: one
/// fsync for the batch). Results are in input order.
pub async fn record_batch(
    db: &Db,
    items: &[NewDelivery],
    now: Millis,
) -> Result<Vec<Recorded>, sqlx::Error> {
    match db {
        Db::Sqlite(pool) => {
            // Two multi-row statements per chunk instead of two per delivery: sqlx's
            // SQLite driver costs tens of microseconds per statement, more than the insert.
            let mut tx = pool.begin().await?;
            let mut out = Vec::with_capacity(items.len());
            for chunk in items.chunks(SQLITE_ROWS_PER_STATEMENT) {
                out.extend(record_chunk_sqlite(&mut tx, chunk, now).await?);
            }
            tx.commit().await?;
            Ok(out)
        }
        Db::Postgres(pool) => {
            // One round trip for the whole batch: arrays in, one row per new delivery out.
            let mut forge = Vec::with_capacity(items.len());
            let mut delivery = Vec::with_capacity(items.len());
            let mut event = Vec::with_capacity(items.len());
            let mut kind = Vec::with_capacity(items.len());
            let mut payload = Vec::with_capacity(items.len());
            let mut dedupe = Vec::with_capacity(items.len());
            let mut concurrency = Vec::with_capacity(items.len());
            let mut priority = Vec::with_capacity(items.len());
            let mut max_attempts = Vec::with_capacity(items.len());
            let mut run_at = Vec::with_capacity(items.len());
            for item in items {
                forge.push(item.forge.as_str().to_owned());
                delivery.push(item.delivery_id.clone());
                event.push(item.event.clone());
                kind.push(item.job.kind.clone());
                payload.push(item.job.payload.clone());
                dedupe.push(item.job.dedupe_key.clone());
                concurrency.push(item.job.concurrency_key.clone());
                priority.push(item.job.priority);
                max_attempts.push(item.job.max_attempts);
                run_at.push(item.job.run_at.unwrap_or(now));
            }
            let rows: Vec<(String, String, Option<i64>)> = sqlx::query_as(
                "WITH input AS ( \
                   SELECT DISTINCT ON (forge, delivery_id) * FROM UNNEST( \
                     $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
                     $7::text[], $8::bigint[], $9::bigint[], $10::bigint[]) WITH ORDINALITY \
                     AS t(forge, delivery_id, event, kind, payload, dedupe_key, \
                          concurrency_key, priority, max_attempts, run_at, ord) \
                   ORDER BY forge, delivery_id, ord), \
                 new_deliveries AS ( \
                   INSERT INTO deliveries (forge, delivery_id, event, received_at) \
                   SELECT forge, delivery_id, event, $11 FROM input \
                   ON CONFLICT DO NOTHING RETURNING forge, delivery_id), \
                 new_jobs AS ( \
                   INSERT INTO jobs (kind, payload, dedupe_key, concurrency_key, priority, \
                     state, run_at, attempts, max_attempts, created_at, updated_at) \
                   SELECT i.kind, i.payload, i.dedupe_key, i.concurrency_key, i.priority, \
                     'queued', i.run_at, 0, i.max_attempts, $11, $11 \
                   FROM input i JOIN new_deliveries n USING (forge, delivery_id) \
                   ORDER BY i.ord \
                   ON CONFLICT DO NOTHING RETURNING id, dedupe_key) \
                 SELECT i.forge, i.delivery_id, j.id \
                 FROM input i JOIN new_deliveries n USING (forge, delivery_id) \
                 LEFT JOIN new_jobs j ON j.dedupe_key = i.dedupe_key",
            )
            .bind(&forge)
            .bind(&delivery)
            .bind(&event)
            .bind(&kind)
            .bind(&payload)
            .bind(&dedupe)
            .bind(&concurrency)
            .bind(&priority)
            .bind(&max_attempts)
            .bind(&run_at)
            .bind(now)
            .fetch_all(pool)
            .await?;
            let mut accepted = std::collections::HashMap::with_capacity(rows.len());
            for (f, d, job) in rows {
                accepted.insert((f, d), job);
            }
            Ok(items
                .iter()
                .map(|item| {
                    // Take, so a delivery repeated inside one batch counts once.
                    match accepted
                        .remove(&(item.forge.as_str().to_owned(), item.delivery_id.clone()))
                    {
                        Some(job_id) => Recorded::Accepted { job_id },
                        None => Recorded::Duplicate,
                    }
                })
                .collect())
        }
    }
}

/// Rows per multi-row SQLite statement (8 bound values per job row stays far below
/// SQLite's 32,766-variable limit).
const SQLITE_ROWS_PER_STATEMENT: usize = 500;

async fn record_chunk_sqlite(
    tx: &mut sqlx::SqliteConnection,
    chunk: &[NewDelivery],
    now: Millis,
) -> Result<Vec<Recorded>, sqlx::Error> {
    use std::collections::{HashMap, HashSet};
    let mut sql =
        String::from("INSERT INTO deliveries (forge, delivery_id, event, received_at) VALUES ");
    for i in 0..chunk.len() {
        let b = i * 3;
        sql.push_str(&format!(
            "{}(${}, ${}, ${}, ${})",
            if i == 0 { "" } else { ", " },
            b + 1,
            b + 2,
            b + 3,
            chunk.len() * 3 + 1
        ));
    }
    sql.push_str(" ON CONFLICT DO NOTHING RETURNING forge, delivery_id");
    let mut q = sqlx::query_as::<_, (String, String)>(&sql);
    for item in chunk {
        q = q
            .bind(item.forge.as_str())
            .bind(&item.delivery_id)
            .bind(&item.event);
    }
    let inserted: HashSet<(String, String)> =
        q.bind(now).fetch_all(&mut *tx).await?.into_iter().collect();

    // Jobs for the deliveries that are new (first occurrence only, in input order).
    let mut seen = HashSet::new();
    let fresh: Vec<&NewDelivery> = chunk
        .iter()
        .filter(|d| {
            let key = (d.forge.as_str().to_owned(), d.delivery_id.clone());
            inserted.contains(&key) && seen.insert(key)
        })
        .collect();
    let mut job_ids: HashMap<String, i64> = HashMap::new();
    if !fresh.is_empty() {
        let mut sql = String::from(
            "INSERT INTO jobs (kind, payload, dedupe_key, concurrency_key, priority, state, \
             run_at, attempts, max_attempts, created_at, updated_at) VALUES ",
        );
        let now_param = fresh.len() * 7 + 1;
        for i in 0..fresh.len() {
            let b = i * 7;
            sql.push_str(&format!(
                "{}(${}, ${}, ${}, ${}, ${}, 'queued', ${}, 0, ${}, ${now_param}, ${now_param})",
                if i == 0 { "" } else { ", " },
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7,
            ));
        }
        sql.push_str(" ON CONFLICT DO NOTHING RETURNING id, dedupe_key");
        let mut q = sqlx::query_as::<_, (i64, Option<String>)>(&sql);
        for d in &fresh {
            q = q
                .bind(&d.job.kind)
                .bind(&d.job.payload)
                .bind(&d.job.dedupe_key)
                .bind(&d.job.concurrency_key)
                .bind(d.job.priority)
                .bind(d.job.run_at.unwrap_or(now))
                .bind(d.job.max_attempts);
        }
        for (id, key) in q.bind(now).fetch_all(&mut *tx).await? {
            if let Some(key) = key {
                job_ids.insert(key, id);
            }
        }
    }
    let mut accepted: HashSet<(String, String)> = fresh
        .iter()
        .map(|d| (d.forge.as_str().to_owned(), d.delivery_id.clone()))
        .collect();
    Ok(chunk
        .iter()
        .map(|d| {
            if accepted.remove(&(d.forge.as_str().to_owned(), d.delivery_id.clone())) {
                Recorded::Accepted {
                    job_id: d
                        .job
                        .dedupe_key
                        .as_ref()
                        .and_then(|k| job_ids.get(k).copied()),
                }
            } else {
                Recorded::Duplicate
            }
        })
        .collect())
}

/// Forgets deliveries received before `before`; returns how many.
pub async fn sweep(db: &Db, before: Millis) -> Result<u64, sqlx::Error> {
    crate::db::with_pool!(db, pool => {
        sqlx::query("DELETE FROM deliveries WHERE received_at < $1")
            .bind(before)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })
}

/// Number of stored deliveries (tests and `jobs` tooling).
pub async fn count(db: &Db) -> Result<i64, sqlx::Error> {
    crate::db::with_pool!(db, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM deliveries").fetch_one(pool).await
    })
}
