//! Queue throughput benchmark on SQLite and (with `PIPEWRIGHT_TEST_DATABASE_URL`)
//! PostgreSQL: enqueue/s from 4 concurrent producers, then claim+complete/s of no-op jobs
//! with one pool of 1 worker task, one pool of 4, and 4 pools of 1 (as 4 processes
//! would). Run: `cargo bench --bench queue`. `PW_BENCH_JOBS` sets the job count (10,000).

#[path = "../tests/support/db.rs"]
mod testdb;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pipewright::clock::Clock;
use pipewright::metrics::Metrics;
use pipewright::queue::store::{self, JobState, ListFilter};
use pipewright::queue::{Job, NewJob, Registry, WorkerOptions, WorkerPool};
use pipewright::Db;
use serde::{Deserialize, Serialize};
use testdb::TestDb;
use tokio::sync::Notify;

#[derive(Serialize, Deserialize)]
struct Noop {
    n: usize,
}

impl Job for Noop {
    const KIND: &'static str = "bench_noop";
}

async fn enqueue_all(db: &Db, n: usize, producers: usize) -> f64 {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..producers {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            for i in (p..n).step_by(producers) {
                store::enqueue(&db, &NewJob::of(&Noop { n: i }), Clock::System.now())
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

async fn succeeded(db: &Db) -> usize {
    store::counts(db)
        .await
        .unwrap()
        .into_iter()
        .filter(|(k, s, _)| k == Noop::KIND && *s == JobState::Succeeded)
        .map(|(_, _, n)| n as usize)
        .sum()
}

async fn drain(db: &Db, n: usize, pools: usize, concurrency: usize) -> f64 {
    let ran = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..pools {
        let ran = ran.clone();
        let registry = Registry::new().register::<Noop, _, _>(move |_, _| {
            let ran = ran.clone();
            async move {
                ran.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        });
        let mut opts = WorkerOptions::new(concurrency);
        opts.poll_ms = 5;
        handles.push(
            WorkerPool::new(
                db.clone(),
                registry,
                Clock::System,
                opts,
                Arc::new(Notify::new()),
                Arc::new(Metrics::new()),
            )
            .start(),
        );
    }
    // Watch the in-process counter (free) rather than the table, so polling does not load
    // the database; then wait for the last batched completions to land.
    while ran.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    while succeeded(db).await < n {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    for h in handles {
        h.shutdown().await;
    }
    assert_eq!(ran.load(Ordering::Relaxed), n, "a job ran twice");
    rate
}

/// Refreshes planner statistics, as autovacuum does within a minute in production (the
/// migration makes it analyze `jobs` after 1% of rows change). Without statistics a
/// freshly filled table is planned as tiny: a sort of every ready row per claim.
async fn analyze(db: &Db) {
    if let Db::Postgres(pool) = db {
        sqlx::query("ANALYZE jobs").execute(pool).await.unwrap();
    }
}

async fn clear(db: &Db) {
    store::purge_succeeded(db, i64::MAX).await.unwrap();
    let left = store::list(
        db,
        &ListFilter {
            state: None,
            kind: None,
            limit: 1,
        },
    )
    .await
    .unwrap();
    assert!(left.is_empty());
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let n: usize = std::env::var("PW_BENCH_JOBS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000);
        println!("queue benchmark: {n} no-op jobs per run");
        let mut targets = vec![TestDb::sqlite().await];
        if let Some(pg) = TestDb::postgres().await {
            targets.push(pg);
        }
        for t in &targets {
            // Raw statement costs, sequential, on the relaxed pool the workers use.
            let q = t.db.relaxed_for_queue();
            enqueue_all(&t.db, 2000, 4).await;
            analyze(&t.db).await;
            let kinds = vec![Noop::KIND.to_owned()];
            let start = Instant::now();
            let mut ids = Vec::new();
            for _ in 0..2000 {
                let c = store::claim(&q, "raw", &kinds, 1, Clock::System.now(), 30_000)
                    .await
                    .unwrap();
                ids.push(c[0].id);
            }
            let claim_us = start.elapsed().as_micros() as f64 / 2000.0;
            let start = Instant::now();
            for id in &ids {
                store::complete(&q, "raw", &[*id], Clock::System.now())
                    .await
                    .unwrap();
            }
            let complete_us = start.elapsed().as_micros() as f64 / 2000.0;
            println!(
                "{:<9} one claim {claim_us:.0} us, one complete {complete_us:.0} us (sequential)",
                t.name
            );
            clear(&t.db).await;
            for (label, pools, concurrency) in [
                ("1 pool x 1 worker", 1, 1),
                ("1 pool x 4 workers", 1, 4),
                ("4 pools x 1 worker", 4, 1),
            ] {
                let enq = enqueue_all(&t.db, n, 4).await;
                analyze(&t.db).await;
                let rate = drain(&t.db, n, pools, concurrency).await;
                println!(
                    "{:<9} enqueue (4 producers) {:>8.0}/s   claim+complete, {label:<18} {:>8.0}/s",
                    t.name, enq, rate
                );
                clear(&t.db).await;
            }
        }
    });
}
