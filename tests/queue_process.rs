//! The queue across real processes: a worker process SIGKILLed mid-job loses nothing (its
//! lease expires and another worker finishes the job), and two worker processes sharing
//! one database never run a job twice and stop gracefully on SIGTERM.
//!
//! The worker processes are this test binary re-run with `--ignored --exact
//! child_worker_entry`, configured through environment variables.

#[path = "support/db.rs"]
mod testdb;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use pipewright::clock::Clock;
use pipewright::db::Db;
use pipewright::metrics::Metrics;
use pipewright::queue::store::{self, JobState};
use pipewright::queue::{Job, NewJob, Registry, WorkerOptions, WorkerPool};
use serde::{Deserialize, Serialize};
use testdb::{wait_until, TestDb};
use tokio::sync::Notify;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Recorded {
    n: u64,
}

impl Job for Recorded {
    const KIND: &'static str = "test_recorded";
}

/// Lease used by child workers, in ms: short, so the test waits little after a SIGKILL.
const CHILD_LEASE_MS: i64 = 1_500;

async fn record(db: &Db, job_id: i64, who: &str) {
    let sql = "INSERT INTO test_runs (job_id, who) VALUES ($1, $2)";
    match db {
        Db::Sqlite(p) => sqlx::query(sql)
            .bind(job_id)
            .bind(who)
            .execute(p)
            .await
            .map(|_| ()),
        Db::Postgres(p) => sqlx::query(sql)
            .bind(job_id)
            .bind(who)
            .execute(p)
            .await
            .map(|_| ()),
    }
    .expect("record run");
}

async fn runs(db: &Db) -> Vec<(i64, String)> {
    let sql = "SELECT job_id, who FROM test_runs ORDER BY job_id";
    match db {
        Db::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await,
        Db::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await,
    }
    .expect("read runs")
}

async fn create_runs_table(db: &Db) {
    let sql = "CREATE TABLE test_runs (job_id BIGINT NOT NULL, who TEXT NOT NULL)";
    match db {
        Db::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        Db::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
    }
    .expect("create table");
}

/// Not a test: the body of a worker process spawned by the tests below.
#[test]
#[ignore = "entry point of child worker processes; run by the other tests"]
fn child_worker_entry() {
    let Ok(url) = std::env::var("PW_CHILD_DB") else {
        return;
    };
    let mode = std::env::var("PW_CHILD_MODE").unwrap_or_default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let db = Db::connect(&url).await.unwrap();
        let who = format!("child-{}", std::process::id());
        let (hdb, hwho, block) = (db.clone(), who.clone(), mode == "block");
        let registry = Registry::new().register::<Recorded, _, _>(move |run, _job| {
            let (db, who) = (hdb.clone(), hwho.clone());
            async move {
                record(&db, run.id, &who).await;
                if block {
                    // Hang mid-job until SIGKILL arrives.
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                Ok(())
            }
        });
        let mut opts = WorkerOptions::new(4);
        opts.lease_ms = CHILD_LEASE_MS;
        opts.heartbeat_ms = 300;
        opts.poll_ms = 20;
        let pool = WorkerPool::new(
            db.clone(),
            registry,
            Clock::System,
            opts,
            Arc::new(Notify::new()),
            Arc::new(Metrics::new()),
        )
        .start();
        pipewright::app::shutdown_signal().await;
        pool.shutdown().await;
        db.close().await;
    });
}

fn spawn_child(url: &str, mode: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_worker_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PW_CHILD_DB", url)
        .env("PW_CHILD_MODE", mode)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child worker")
}

fn sigterm(child: &Child) {
    let pid = child.id();
    // The `kill` command keeps the tests free of `unsafe` (libc::kill needs it).
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_job_loses_nothing() {
    for t in TestDb::all().await {
        create_runs_table(&t.db).await;
        let id = store::enqueue(&t.db, &NewJob::of(&Recorded { n: 1 }), Clock::System.now())
            .await
            .unwrap()
            .unwrap();
        let mut child = spawn_child(&t.url, "block");
        let db = t.db.clone();
        wait_until("child started the job", || {
            let db = db.clone();
            async move { !runs(&db).await.is_empty() }
        })
        .await;
        child.kill().expect("SIGKILL"); // std's kill() is SIGKILL on Unix
        child.wait().unwrap();
        let held = store::get(&t.db, id).await.unwrap().unwrap();
        assert_eq!(
            held.state,
            JobState::Running,
            "{}: job is still leased by the dead worker",
            t.name
        );

        // A surviving worker takes it over once the lease expires.
        let (pdb, done) = (t.db.clone(), Arc::new(Notify::new()));
        let registry = Registry::new().register::<Recorded, _, _>(move |run, _| {
            let db = pdb.clone();
            async move {
                record(&db, run.id, "survivor").await;
                Ok(())
            }
        });
        let mut opts = WorkerOptions::new(1);
        opts.reap_ms = 100;
        opts.poll_ms = 20;
        let pool = WorkerPool::new(
            t.db.clone(),
            registry,
            Clock::System,
            opts,
            done,
            Arc::new(Metrics::new()),
        )
        .start();
        let db = t.db.clone();
        wait_until("job finished by the survivor", || {
            let db = db.clone();
            async move { store::get(&db, id).await.unwrap().unwrap().state == JobState::Succeeded }
        })
        .await;
        pool.shutdown().await;
        let job = store::get(&t.db, id).await.unwrap().unwrap();
        assert_eq!(job.attempts, 2, "{}", t.name);
        let who: Vec<String> = runs(&t.db).await.into_iter().map(|(_, w)| w).collect();
        assert_eq!(who.len(), 2, "{}: {who:?}", t.name);
        assert!(who[0].starts_with("child-") || who[1].starts_with("child-"));
        assert!(who.contains(&"survivor".to_owned()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_never_run_a_job_twice() {
    for t in TestDb::all().await {
        create_runs_table(&t.db).await;
        const M: i64 = 400;
        let now = Clock::System.now();
        for n in 0..M {
            store::enqueue(&t.db, &NewJob::of(&Recorded { n: n as u64 }), now)
                .await
                .unwrap();
        }
        let mut children = [spawn_child(&t.url, "record"), spawn_child(&t.url, "record")];
        let db = t.db.clone();
        wait_until("all jobs succeeded", || {
            let db = db.clone();
            async move {
                store::list(
                    &db,
                    &store::ListFilter {
                        state: Some(JobState::Succeeded),
                        kind: None,
                        limit: M + 1,
                    },
                )
                .await
                .unwrap()
                .len() as i64
                    == M
            }
        })
        .await;
        for c in &children {
            sigterm(c);
        }
        for c in &mut children {
            let status = tokio::task::block_in_place(|| c.wait()).unwrap();
            assert!(
                status.success(),
                "{}: child did not stop gracefully: {status}",
                t.name
            );
        }
        let all = runs(&t.db).await;
        assert_eq!(
            all.len() as i64,
            M,
            "{}: some job ran twice or not at all",
            t.name
        );
        let mut ids: Vec<i64> = all.iter().map(|(id, _)| *id).collect();
        ids.dedup();
        assert_eq!(ids.len() as i64, M);
        let workers: std::collections::BTreeSet<&str> =
            all.iter().map(|(_, w)| w.as_str()).collect();
        eprintln!("{}: {} jobs shared by {:?}", t.name, M, workers);
    }
}
